"""The job's writes to PostgreSQL: the run record and the daily summary (psycopg2).

The summary is small (days x categories x currencies), so it is written from the driver in one
transaction together with the run record: COPY into a temporary table, then replace. Spark's
JDBC writer commits per partition and a retried task could insert twice; this cannot.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import connection as Connection

from jobs.errors import ConfigError, ServiceUnavailableError
from jobs.models import RunCounts, RunResult, SummaryRow
from jobs.postgres_url import PostgresTarget
from jobs.settings import LookupSpec

RUNS = sql.Identifier("pipeline", "enrichment_runs")
SUMMARY = sql.Identifier("pipeline", "category_daily_summary")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@contextmanager
def connect(target: PostgresTarget) -> Iterator[Connection]:
    """A connection, or ServiceUnavailableError naming the server (never the password)."""
    try:
        conn = psycopg2.connect(**target.psycopg2_kwargs())
    except psycopg2.OperationalError as error:
        raise ServiceUnavailableError(
            f"cannot connect to PostgreSQL at {target.redacted()}: {_first_line(error)}"
        ) from None
    try:
        yield conn
    finally:
        conn.close()


def check_pipeline_tables(conn: Connection) -> None:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT to_regclass('pipeline.enrichment_runs') IS NOT NULL, "
            "to_regclass('pipeline.category_daily_summary') IS NOT NULL"
        )
        row = cur.fetchone()
    conn.rollback()
    if row is None or not all(row):
        raise ConfigError(
            "PostgreSQL has no pipeline.enrichment_runs / pipeline.category_daily_summary tables; "
            "apply reference_sql/ first (make seed)"
        )


def lookup_fingerprint(conn: Connection, specs: Sequence[LookupSpec]) -> str:
    """A digest of the configured lookups' contents: a rerun is a no-op only if they are unchanged."""
    parts = []
    with conn.cursor() as cur:
        for spec in specs:
            columns = [sql.Identifier(c) for c in spec.lookup_columns]
            table = sql.Identifier(*spec.table.split("."))
            query = sql.SQL(
                "SELECT count(*), md5(coalesce(string_agg(row({cols})::text, E'\\n' ORDER BY {key}), '')) "
                "FROM {table}"
            ).format(cols=sql.SQL(", ").join(columns), key=sql.Identifier(spec.key), table=table)
            try:
                cur.execute(query)
            except psycopg2.Error as error:
                conn.rollback()
                raise ConfigError(
                    f"lookup '{spec.name}' ({spec.table}): {_first_line(error)}"
                ) from None
            count, digest = cur.fetchone() or (0, "")
            parts.append(
                f"{spec.name}:{spec.table}:{','.join(spec.lookup_columns)}:{count}:{digest}"
            )
    conn.rollback()
    return json.dumps(parts)


def last_successful_run(conn: Connection, raw_table: str) -> tuple[int, str] | None:
    """(raw version read, lookup fingerprint) of the latest run that produced the outputs."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT raw_version_read, lookup_fingerprint FROM pipeline.enrichment_runs "
            "WHERE raw_table = %s AND status = 'succeeded' ORDER BY ended_at DESC LIMIT 1",
            (raw_table,),
        )
        row = cur.fetchone()
    conn.rollback()
    return None if row is None else (int(row[0]), str(row[1]))


def start_run(conn: Connection, run_id: str, job_name: str, raw_table: str) -> None:
    with conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO pipeline.enrichment_runs (run_id, job_name, status, raw_table) "
            "VALUES (%s, %s, 'running', %s)",
            (run_id, job_name, raw_table),
        )


def _counts_params(counts: RunCounts | None) -> dict[str, Any]:
    names = ("rows_read", "rows_curated", "rows_quarantined", "rows_duplicate", "rows_unmatched")
    return {name: (getattr(counts, name) if counts else None) for name in names}


def _update_run(cur: Any, result: RunResult, fingerprint: str) -> None:
    cur.execute(
        """
        UPDATE pipeline.enrichment_runs SET
            status = %(status)s, ended_at = %(ended_at)s,
            raw_version_read = %(raw_version)s,
            curated_version_written = %(curated_version)s,
            quarantine_version_written = %(quarantine_version)s,
            rows_read = %(rows_read)s, rows_curated = %(rows_curated)s,
            rows_quarantined = %(rows_quarantined)s, rows_duplicate = %(rows_duplicate)s,
            rows_unmatched = %(rows_unmatched)s,
            lookup_fingerprint = %(fingerprint)s,
            details = %(details)s
        WHERE run_id = %(run_id)s
        """,
        {
            "status": result.status,
            "ended_at": result.ended_at,
            "raw_version": result.raw_version,
            "curated_version": result.curated_version,
            "quarantine_version": result.quarantine_version,
            "fingerprint": fingerprint,
            "details": json.dumps(
                {
                    "top_unmatched": [[value, count] for value, count in result.top_unmatched],
                    "curated_table": result.curated_table,
                    "quarantine_table": result.quarantine_table,
                    "message": result.message,
                }
            ),
            "run_id": result.run_id,
            **_counts_params(result.counts),
        },
    )


def finish_run(
    conn: Connection, result: RunResult, fingerprint: str, summary: Sequence[SummaryRow]
) -> None:
    """Replace the summary and close the run record, both in one transaction."""
    buffer = io.StringIO()
    for row in summary:
        buffer.write(
            f"{row.event_date.isoformat()}\t{_copy_text(row.category)}\t{row.currency}\t"
            f"{row.transaction_count}\t{row.total_amount}\t{result.run_id}\n"
        )
    buffer.seek(0)
    with conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TEMPORARY TABLE summary_stage (LIKE pipeline.category_daily_summary) ON COMMIT DROP"
        )
        cur.copy_expert(
            "COPY summary_stage (event_date, category, currency, transaction_count, total_amount, run_id) "
            "FROM STDIN",
            buffer,
        )
        cur.execute(sql.SQL("DELETE FROM {}").format(SUMMARY))
        cur.execute(sql.SQL("INSERT INTO {} SELECT * FROM summary_stage").format(SUMMARY))
        _update_run(cur, result, fingerprint)


def record_noop(conn: Connection, result: RunResult, fingerprint: str) -> None:
    with conn, conn.cursor() as cur:
        _update_run(cur, result, fingerprint)


def record_failure(target: PostgresTarget, run_id: str, error: str) -> bool:
    """Best effort: mark the run failed. False if Postgres itself is what failed."""
    try:
        with connect(target) as conn, conn, conn.cursor() as cur:
            cur.execute(
                "UPDATE pipeline.enrichment_runs SET status = 'failed', ended_at = now(), error = %s "
                "WHERE run_id = %s",
                (error[:4000], run_id),
            )
        return True
    except (ServiceUnavailableError, psycopg2.Error):
        return False


def _copy_text(value: str) -> str:
    return (
        value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    )
