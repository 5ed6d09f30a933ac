"""Errors that end a run with one clear message and a non-zero exit status."""

from __future__ import annotations


def first_line(error: BaseException) -> str:
    """The first non-blank line of an error's message (drivers add hints on later lines)."""
    lines = (line.strip() for line in str(error).splitlines())
    return next((line for line in lines if line), type(error).__name__)


class EnrichmentError(Exception):
    """Base class: the message names the problem and is shown to the user as-is."""

    exit_code = 1


class ConfigError(EnrichmentError):
    """A setting is missing or wrong; the message names the setting."""

    exit_code = 2


class SourceError(EnrichmentError):
    """An input (file, table, lookup) is missing or not in the expected shape."""

    exit_code = 3


class ServiceUnavailableError(EnrichmentError):
    """A server the run needs (PostgreSQL, the object store) cannot be reached or refused us."""

    exit_code = 4


class PostgresUnavailableError(ServiceUnavailableError):
    """PostgreSQL cannot be reached, or a connection to it was lost."""


class ConcurrentRunError(EnrichmentError):
    """Another run is writing the same tables; Delta on S3 allows one writing driver at a time."""

    exit_code = 5


class BackupError(EnrichmentError):
    """A backup cannot be taken or restored as asked (gone, damaged, its files vacuumed)."""

    exit_code = 6
