"""Named points where a test can stop a run, to crash it there on purpose (test-only).

With ``ENRICH_FAILPOINTS=name[,name...]`` and ``ENRICH_FAILPOINT_DIR=/some/dir`` set, a run that
reaches a named point prints ``FAILPOINT <name> reached`` and waits until the file
``<dir>/<name>`` exists. While it waits, the fault suite does its damage (kill -9 of the whole
driver, stopping PostgreSQL or MinIO) and then either lets it go on or never does. Without
those variables every call here is a no-op. The names are listed in ``POINTS``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import BooleanType

ENV_POINTS = "ENRICH_FAILPOINTS"
ENV_DIR = "ENRICH_FAILPOINT_DIR"
FAIL_FIRST_TASK_ATTEMPTS = "fail-first-task-attempts"
MAX_WAIT_SECONDS = 900

POINTS = (
    "lock-acquired",
    "stream-raw-appended",
    "run-started",
    "batch-classified",
    "before-curated-commit",
    "curated-committed",
    "quarantine-committed",
    "summary-computed",
    "postgres-summary-written",
    "postgres-committed",
    FAIL_FIRST_TASK_ATTEMPTS,
)


def _armed() -> set[str]:
    return {name.strip() for name in os.environ.get(ENV_POINTS, "").split(",") if name.strip()}


def enabled(name: str) -> bool:
    return name in _armed()


def reached(name: str) -> None:
    """Pause at ``name`` if a test armed it; otherwise return at once."""
    assert name in POINTS, name
    if name not in _armed():
        return
    release = Path(os.environ.get(ENV_DIR, ".")) / name
    print(f"FAILPOINT {name} reached (pid {os.getpid()})", file=sys.stdout, flush=True)
    deadline = time.monotonic() + MAX_WAIT_SECONDS
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    print(f"FAILPOINT {name} released", file=sys.stdout, flush=True)


def _passes_unless_first_attempt(_: object) -> bool:
    from pyspark import TaskContext

    context = TaskContext.get()
    if context is not None and context.attemptNumber() == 0:
        raise RuntimeError("failpoint: first attempt of this task fails on purpose")
    return True


def fail_first_task_attempts(df: DataFrame) -> DataFrame:
    """Make the first attempt of every task that computes ``df`` fail (Spark retries it)."""
    if not enabled(FAIL_FIRST_TASK_ATTEMPTS):
        return df
    check = F.udf(_passes_unless_first_attempt, BooleanType()).asNondeterministic()
    return df.filter(check(F.lit(1)))
