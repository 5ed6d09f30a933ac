"""One writer at a time: PostgreSQL advisory locks on the table paths a run writes.

Delta on S3 is ACID only with a single writing driver per table, so every job that writes a
table holds its lock for the whole run. The locks live on their own connection: if the driver
dies, even by kill -9, the server drops the connection and the locks with it.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import psycopg2
from psycopg2.extensions import connection as Connection

from jobs.adapters.postgres import open_connection
from jobs.config.postgres_url import PostgresTarget
from jobs.core.errors import ConcurrentRunError, PostgresUnavailableError, first_line

_LOCK_CLASS = 0x454E  # first key of the two-key advisory lock: "this is a spark-enrich table"


def lock_key(table_path: str) -> int:
    """Second key of the advisory lock for one table: stable across processes and versions."""
    return zlib.crc32(table_path.encode()) & 0x7FFFFFFF


def _lock_holder(conn: Connection, key: int) -> str:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT a.application_name, a.backend_start, coalesce(host(a.client_addr), 'local') "
            "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objid = %s "
            "AND l.objsubid = 2",
            (_LOCK_CLASS, key),
        )
        row = cur.fetchone()
    if row is None:
        return "another run"
    name, since, client = row
    return f"{name or 'another session'} (connected {since:%Y-%m-%d %H:%M:%S %Z} from {client})"


@contextmanager
def hold(
    target: PostgresTarget,
    table_paths: Sequence[str],
    holder: str,
    wait_seconds: float,
    on_wait: Callable[[str], None] = lambda _: None,
) -> Iterator[Connection]:
    """Hold PostgreSQL advisory locks on ``table_paths`` for the duration of a run.

    The locks live on their own connection: if the driver dies, even by kill -9, the server
    drops the connection and the locks with it, so a crashed run never blocks the next one.
    Another run waits up to ``wait_seconds`` and then fails with ConcurrentRunError naming
    who holds the lock."""
    conn = open_connection(target, application_name=holder)
    conn.autocommit = True
    deadline = time.monotonic() + wait_seconds
    told = False
    try:
        for path in sorted(set(table_paths)):
            key = lock_key(path)
            while True:
                with conn.cursor() as cur:
                    cur.execute("SELECT pg_try_advisory_lock(%s, %s)", (_LOCK_CLASS, key))
                    row = cur.fetchone()
                if row is not None and row[0]:
                    break
                who = _lock_holder(conn, key)
                if time.monotonic() >= deadline:
                    raise ConcurrentRunError(
                        f"another run is writing {path}: {who}. Only one writer at a time is "
                        "safe on Delta over S3; wait for it to finish, or pass "
                        "--wait-for-lock SECONDS to queue behind it"
                    )
                if not told:
                    on_wait(f"waiting for {who} to finish writing {path}")
                    told = True
                time.sleep(0.5)
        yield conn
    finally:
        conn.close()


def check_held(lock_conn: Connection, target: PostgresTarget) -> None:
    """Before a commit: the lock's connection is still up, so no other writer can have started."""
    try:
        with lock_conn.cursor() as cur:
            cur.execute("SELECT 1")
    except psycopg2.Error as error:
        raise PostgresUnavailableError(
            f"lost the PostgreSQL connection that holds the writer lock ({target.redacted()}: "
            f"{first_line(error)}); stopping before writing anything more"
        ) from None
