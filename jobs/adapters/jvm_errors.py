"""JVM exceptions as one line of text, taken while the driver JVM can still answer.

A py4j exception holds a reference into the JVM: its text, its causes and its stack trace are
asked of the JVM when it is printed. Once the session's close has ended the driver JVM
(``session.end_driver_jvm``), that fails, so ``spark_session`` turns an exception leaving it
into a ``JvmFailure`` that carries its text."""

from __future__ import annotations

import re

_JAVA_NOISE = re.compile(
    r"^(py4j\.protocol\.)?Py4JJavaError: |^An error occurred while calling \S+\.\s*"
)


class JvmFailure(Exception):
    """A JVM exception, described (``describe_failure``) before its JVM ended."""


def from_jvm(error: BaseException) -> bool:
    """True for an exception that refers to a JVM object (py4j's, or pyspark's captured)."""
    return any(getattr(error, name, None) is not None for name in ("java_exception", "_origin"))


def _root_cause(error: BaseException) -> str | None:
    """The innermost JVM exception's message: Spark wraps the one that explains the failure
    (a TLS check, a refused login) in its own, whose message is often redacted."""
    java = getattr(error, "java_exception", None) or getattr(error, "_origin", None)
    message = None
    for _ in range(20):
        if java is None:
            break
        try:
            text = java.getMessage()
            java = java.getCause()
        except Exception:  # not a JVM object after all, or the JVM is gone
            break
        if text:
            message = str(text)
    return message


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def describe_failure(error: BaseException) -> str:
    """One line for an unexpected failure, JVM stack traces cut down to their message."""
    java = getattr(error, "java_exception", None)
    try:
        text = str(java) if java is not None else str(error)
    except Exception:  # py4j asks the JVM for the text, and that JVM is gone
        text = type(error).__name__
    first = _JAVA_NOISE.sub("", _first_line(text) or type(error).__name__)
    root = _root_cause(error)
    if root and _first_line(root) and _first_line(root) not in first:
        first = f"{first} (cause: {_first_line(root)})"
    return first[:600]
