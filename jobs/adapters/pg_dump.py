"""pg_dump, pg_restore and psql for backups: one consistent snapshot out, one transaction in.

The connection settings and the password reach the tools through libpq's environment
(PGHOST, PGPASSWORD, ...), never their command lines.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from psycopg2.extensions import ISOLATION_LEVEL_REPEATABLE_READ
from psycopg2.extensions import connection as Connection

from jobs.adapters.postgres import open_connection
from jobs.config.postgres_url import PostgresTarget
from jobs.core.errors import BackupError, ConfigError, PostgresUnavailableError

# A restore waits this long at most for a table another session is reading (an open psql, a
# dashboard) before it gives up and changes nothing.
RESTORE_LOCK_TIMEOUT = "30s"


def tool(name: str) -> str:
    """The PostgreSQL client ``name``: from PG_BINDIR, else the newest installed server's bin
    folder (a pg_dump older than the server refuses to dump it), else the PATH."""
    folders = [os.environ["PG_BINDIR"]] if os.environ.get("PG_BINDIR") else []
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    folders += [str(p) for p in versions]
    for folder in folders:
        candidate = Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise ConfigError(
            f"{name} not found: install the PostgreSQL client (postgresql-client) or set PG_BINDIR"
        )
    return found


def _run(args: Sequence[str], target: PostgresTarget, what: str) -> None:
    done = subprocess.run(
        list(args),
        env={**os.environ, **target.libpq_env()},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["(no message)"]
        message = next((line for line in lines if "ERROR:" in line), lines[-1])
        message = re.sub(r"^(pg_dump|pg_restore|psql)(:[^:]*:\d+)?:\s*(error:\s*)?", "", message)
        message = re.sub(r"^ERROR:\s*", "", message)
        if "connection to server" in message or "could not connect" in message:
            raise PostgresUnavailableError(
                f"cannot connect to PostgreSQL at {target.redacted()}: {message}"
            )
        raise BackupError(f"{what} failed: {message}")


@contextmanager
def exported_snapshot(target: PostgresTarget) -> Iterator[tuple[Connection, str]]:
    """A read-only REPEATABLE READ transaction and its exported snapshot: what the caller reads
    on the connection and what pg_dump --snapshot dumps are the same instant."""
    conn = open_connection(target, application_name="spark-enrich backup")
    try:
        conn.set_session(isolation_level=ISOLATION_LEVEL_REPEATABLE_READ, readonly=True)
        with conn.cursor() as cur:
            cur.execute("SELECT pg_export_snapshot()")
            row = cur.fetchone()
        assert row is not None
        yield conn, str(row[0])
    finally:
        conn.rollback()
        conn.close()


def dump(target: PostgresTarget, snapshot: str, schemas: Sequence[str], out: Path) -> None:
    """``schemas`` as of ``snapshot``, in pg_dump's custom format (compressed)."""
    args = [tool("pg_dump"), "--format=custom", f"--snapshot={snapshot}", f"--file={out}"]
    args += [f"--schema={schema}" for schema in schemas]
    _run(args, target, "pg_dump")


def restore(target: PostgresTarget, dump_file: Path, work: Path, after: str) -> None:
    """Replace what ``dump_file`` holds (its schemas, dropped and recreated) and run ``after``
    (SQL and psql meta-commands) in one transaction: all of it, or nothing."""
    script = work / "restore.sql"
    _run(
        [tool("pg_restore"), "--clean", "--if-exists", f"--file={script}", str(dump_file)],
        target,
        "pg_restore",
    )
    text = script.read_text()
    # The dump turns lock waits off; a restore should rather fail than wait forever.
    text = text.replace("SET lock_timeout = 0;", f"SET lock_timeout = '{RESTORE_LOCK_TIMEOUT}';", 1)
    script.write_text(text + "\n" + after + "\n")
    _run(
        [
            tool("psql"),
            "--no-psqlrc",
            "--quiet",
            "--set=ON_ERROR_STOP=1",
            "--single-transaction",
            f"--file={script}",
            "--output=/dev/null",
        ],
        target,
        "restoring PostgreSQL",
    )
