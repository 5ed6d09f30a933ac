"""Connections to PostgreSQL (psycopg2) that fail with one message naming the server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
from psycopg2.extensions import connection as Connection

from jobs.config.postgres_url import PostgresTarget
from jobs.core.errors import PostgresUnavailableError, first_line


def open_connection(target: PostgresTarget, application_name: str | None = None) -> Connection:
    """A connection, or PostgresUnavailableError naming the server (never the password)."""
    kwargs = target.psycopg2_kwargs()
    if application_name is not None:
        kwargs = {**kwargs, "application_name": application_name[:63]}
    try:
        return psycopg2.connect(**kwargs)
    except psycopg2.OperationalError as error:
        raise PostgresUnavailableError(
            f"cannot connect to PostgreSQL at {target.redacted()}: {first_line(error)}"
        ) from None


@contextmanager
def connect(target: PostgresTarget) -> Iterator[Connection]:
    conn = open_connection(target)
    try:
        yield conn
    finally:
        conn.close()
