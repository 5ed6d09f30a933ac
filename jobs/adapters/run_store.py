"""The runs' records in PostgreSQL (psycopg2): run records, the daily summary, and the state
a run is planned from (the last synced run, unfinished runs, the lookups' fingerprint).

The summary is small (days x categories x currencies), so it is written from the driver in one
transaction together with the run record: COPY into a temporary table, then replace the dates
the run touched. Spark's JDBC writer commits per partition and a retried task could insert
twice; this cannot.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import socket
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import connection as Connection

from jobs.adapters.postgres import connect
from jobs.config.postgres_url import PostgresTarget
from jobs.core.errors import ConfigError, ServiceUnavailableError, first_line
from jobs.core.models import (
    LookupSpec,
    PipelineState,
    RunCounts,
    RunResult,
    RunStart,
    StreamBatch,
    SummaryRow,
    SyncedRun,
    UnfinishedRun,
)

SUMMARY = sql.Identifier("pipeline", "category_daily_summary")
# Marks the digest's kind in a fingerprint: one recorded by an earlier version (an md5 of the
# ordered rows) differs from it, so the first run after the upgrade notes the lookups as
# changed once (a note only: the plan does not depend on it).
FINGERPRINT_FORMAT = "hashsum64:"
_COUNT_NAMES = tuple(f.name for f in dataclasses.fields(RunCounts))


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
    """A digest of the configured lookups' contents: a rerun is a no-op only if they are unchanged.

    Per lookup, its row count and the sum of a 64-bit hash of each row's text: the same rows in
    any order or physical layout give the same digest, a changed, added or removed row another
    (short of a 64-bit hash collision).
    PostgreSQL neither sorts the rows nor builds one string of them, as an ordered ``md5`` of
    ``string_agg`` did: 0.46 -> 0.14 s for a 300k-row history, paid by every run and by the
    stream's checks (docs/performance.md)."""
    parts = []
    with conn.cursor() as cur:
        for spec in specs:
            columns = [sql.Identifier(c) for c in spec.lookup_columns]
            table = sql.Identifier(*spec.source_table.split("."))
            query = sql.SQL(
                "SELECT count(*), coalesce(sum(hashtextextended(row({cols})::text, 0)"
                "::numeric), 0)::text FROM {table}"
            ).format(cols=sql.SQL(", ").join(columns), table=table)
            try:
                cur.execute(query)
            except psycopg2.Error as error:
                conn.rollback()
                raise ConfigError(
                    f"lookup '{spec.name}' ({spec.source_table}): {first_line(error)}"
                ) from None
            count, digest = cur.fetchone() or (0, "")
            parts.append(
                f"{spec.name}:{spec.source_table}:{','.join(spec.lookup_columns)}:{count}:"
                f"{FINGERPRINT_FORMAT}{digest}"
            )
    conn.rollback()
    return json.dumps(parts)


def _synced_run(row: Sequence[Any]) -> SyncedRun:
    """From (run_id, raw_version_to, curated_version_written, lookup_fingerprint, started_at,
    raw_table, quarantine_version_written)."""
    return SyncedRun(
        run_id=row[0],
        raw_version_to=int(row[1]),
        curated_version=None if row[2] is None else int(row[2]),
        lookup_fingerprint=str(row[3] or ""),
        raw_table=str(row[5] or ""),
        quarantine_version=None if row[6] is None else int(row[6]),
    )


def pipeline_state(conn: Connection, curated_table: str) -> PipelineState:
    """The last run that left the outputs in step, and the runs after it that did not finish."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT run_id::text, raw_version_to, curated_version_written, lookup_fingerprint, "
            "started_at, raw_table, quarantine_version_written FROM pipeline.enrichment_runs "
            "WHERE curated_table = %s AND status IN ('succeeded', 'noop') "
            "ORDER BY started_at DESC LIMIT 1",
            (curated_table,),
        )
        row = cur.fetchone()
        synced = None if row is None else _synced_run(row)
        cur.execute(
            "SELECT run_id::text, status, mode, started_at, raw_version_from, raw_version_to, error, "
            "job_name FROM pipeline.enrichment_runs "
            "WHERE curated_table = %s AND status IN ('running', 'crashed', 'failed') "
            "AND started_at > %s ORDER BY started_at",
            (curated_table, row[4] if row else datetime(1970, 1, 1, tzinfo=UTC)),
        )
        unfinished = [UnfinishedRun(*r) for r in cur.fetchall()]
    conn.rollback()
    return PipelineState(synced, unfinished)


def mark_crashed(conn: Connection, run_ids: Sequence[str], by_run_id: str) -> None:
    """Runs left 'running' while nobody holds the writer lock have died: say so."""
    if not run_ids:
        return
    with conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE pipeline.enrichment_runs SET status = 'crashed', "
            "error = coalesce(error, %s) WHERE run_id = ANY(%s::uuid[]) AND status = 'running'",
            (
                f"the driver died before recording an end (killed, or it lost its connections); "
                f"found by run {by_run_id}, which redoes its work",
                list(run_ids),
            ),
        )


def start_run(conn: Connection, run: RunStart, job_name: str) -> None:
    with conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO pipeline.enrichment_runs (run_id, job_name, status, mode, started_at, "
            "raw_table, curated_table, quarantine_table, raw_version_from, raw_version_to, "
            "range_from, range_to, recovered_runs, driver) "
            "VALUES (%s, %s, 'running', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::uuid[], %s)",
            (
                run.run_id,
                job_name,
                run.mode,
                run.started_at,
                run.raw_table,
                run.curated_table,
                run.quarantine_table,
                run.raw_version_from,
                run.raw_version_to,
                run.date_range[0] if run.date_range else None,
                run.date_range[1] if run.date_range else None,
                [r.run_id for r in run.recovered],
                f"{socket.gethostname()}:{os.getpid()}",
            ),
        )


def _counts_params(counts: RunCounts | None) -> dict[str, Any]:
    return dataclasses.asdict(counts) if counts else dict.fromkeys(_COUNT_NAMES)


def _update_run(cur: Any, result: RunResult, fingerprint: str) -> None:
    cur.execute(
        """
        UPDATE pipeline.enrichment_runs SET
            status = %(status)s, ended_at = %(ended_at)s,
            raw_version_to = %(raw_version_to)s,
            curated_version_written = %(curated_version)s,
            quarantine_version_written = %(quarantine_version)s,
            rows_read = %(rows_read)s, rows_curated = %(rows_curated)s,
            rows_quarantined = %(rows_quarantined)s, rows_duplicate = %(rows_duplicate)s,
            rows_unmatched = %(rows_unmatched)s, rows_replaced = %(rows_replaced)s,
            summary_dates_rewritten = %(summary_dates)s,
            lookup_fingerprint = %(fingerprint)s,
            details = %(details)s
        WHERE run_id = %(run_id)s
        """,
        {
            "status": result.status,
            "ended_at": result.ended_at,
            "raw_version_to": result.raw_version_to,
            "curated_version": result.curated_version,
            "quarantine_version": result.quarantine_version,
            "summary_dates": result.summary_dates,
            "fingerprint": fingerprint,
            "details": json.dumps(
                {
                    "top_unmatched": [[value, count] for value, count in result.top_unmatched],
                    "summary_rows_written": result.summary_rows,
                    "message": result.message,
                }
            ),
            "run_id": result.run_id,
            **_counts_params(result.counts),
        },
    )


def summary_rows(conn: Connection, dates: Sequence[date]) -> list[SummaryRow]:
    """The summary rows of ``dates`` as the last synced run left them."""
    with conn, conn.cursor() as cur:
        cur.execute(
            sql.SQL(
                "SELECT event_date, category, currency, transaction_count, total_amount "
                "FROM {} WHERE event_date = ANY(%s::date[])"
            ).format(SUMMARY),
            (list(dates),),
        )
        return [SummaryRow(*row) for row in cur.fetchall()]


def stream_batch_committed(conn: Connection, query_id: str, batch_id: int) -> bool:
    """Whether a micro-batch's work is committed (its row is written last, with the summary)."""
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT 1 FROM pipeline.stream_batches WHERE query_id = %s AND batch_id = %s",
            (query_id, batch_id),
        )
        return cur.fetchone() is not None


def _seconds(since: datetime, until: datetime) -> float:
    return round(max(0.0, (until - since).total_seconds()), 3)


def _insert_stream_batch(cur: Any, batch: StreamBatch, run_id: str | None) -> None:
    now = datetime.now(UTC)
    landed = batch.oldest_landed_at
    cur.execute(
        "INSERT INTO pipeline.stream_batches (query_id, batch_id, run_id, committed_at, files, "
        "files_refused, rows_ingested, raw_version, duration_s, lag_s, details) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            batch.query_id,
            batch.batch_id,
            run_id,
            now,
            len(batch.files),
            len(batch.refused),
            batch.rows_ingested,
            batch.raw_version,
            _seconds(batch.started_at, now),
            None if landed is None else _seconds(landed, now),
            json.dumps({"files": batch.files, "refused": batch.refused}),
        ),
    )


def record_stream_batch(conn: Connection, batch: StreamBatch) -> None:
    """A micro-batch that left the tables as they were (every file refused, or empty)."""
    with conn, conn.cursor() as cur:
        _insert_stream_batch(cur, batch, None)


def finish_run(
    conn: Connection,
    result: RunResult,
    fingerprint: str,
    summary: Sequence[SummaryRow],
    dates: Sequence[date] | None,
    before_record: Callable[[], None] = lambda: None,
    stream_batch: StreamBatch | None = None,
) -> None:
    """Replace the summary rows of ``dates`` (all rows if None) and close the run record (and
    the micro-batch's record, for the stream), in one transaction: either all are there or
    none is. ``before_record`` is called between the two (the fault suite stops a run there)."""
    buffer = io.StringIO()
    # Every field quoted: in COPY csv an unquoted empty field would be NULL, not an empty string.
    writer = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_ALL)
    for row in summary:
        writer.writerow(
            (
                row.event_date.isoformat(),
                row.category,
                row.currency,
                row.transaction_count,
                row.total_amount,
                result.run_id,
            )
        )
    buffer.seek(0)
    with conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TEMPORARY TABLE summary_stage (LIKE pipeline.category_daily_summary) ON COMMIT DROP"
        )
        cur.copy_expert(
            "COPY summary_stage (event_date, category, currency, transaction_count, total_amount, run_id) "
            "FROM STDIN (FORMAT csv)",
            buffer,
        )
        if dates is None:
            cur.execute(sql.SQL("DELETE FROM {}").format(SUMMARY))
        else:
            cur.execute(
                sql.SQL("DELETE FROM {} WHERE event_date = ANY(%s::date[])").format(SUMMARY),
                (list(dates),),
            )
        cur.execute(sql.SQL("INSERT INTO {} SELECT * FROM summary_stage").format(SUMMARY))
        before_record()
        _update_run(cur, result, fingerprint)
        if stream_batch is not None:
            _insert_stream_batch(cur, stream_batch, result.run_id)


def record_noop(
    conn: Connection,
    result: RunResult,
    fingerprint: str,
    stream_batch: StreamBatch | None = None,
) -> None:
    with conn, conn.cursor() as cur:
        _update_run(cur, result, fingerprint)
        if stream_batch is not None:
            _insert_stream_batch(cur, stream_batch, result.run_id)


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


def record_after(
    conn: Connection,
    run_id: str,
    job_name: str,
    started_at: datetime,
    synced_run_id: str,
    curated_version: int | None,
    quarantine_version: int | None,
    details: dict[str, Any],
) -> None:
    """A succeeded record of a job that changed no row (a maintenance): the synced run's
    watermark and lookups, the tables' new versions. The next run plans from it."""
    with conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO pipeline.enrichment_runs (run_id, job_name, status, started_at, ended_at, "
            "raw_table, curated_table, quarantine_table, raw_version_to, curated_version_written, "
            "quarantine_version_written, lookup_fingerprint, details, driver) "
            "SELECT %s, %s, 'succeeded', %s, %s, raw_table, curated_table, quarantine_table, "
            "raw_version_to, %s, %s, lookup_fingerprint, %s, %s "
            "FROM pipeline.enrichment_runs WHERE run_id = %s",
            (
                run_id,
                job_name,
                started_at,
                datetime.now(UTC),
                curated_version,
                quarantine_version,
                json.dumps(details),
                f"{socket.gethostname()}:{os.getpid()}",
                synced_run_id,
            ),
        )
        if cur.rowcount != 1:
            raise ConfigError(f"run {synced_run_id} is not in pipeline.enrichment_runs")


def last_job_record(conn: Connection, curated_table: str, job_name: str) -> SyncedRun | None:
    """The versions the last succeeded ``job_name`` record left (the last maintenance's)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT run_id::text, raw_version_to, curated_version_written, lookup_fingerprint, "
            "started_at, raw_table, quarantine_version_written FROM pipeline.enrichment_runs "
            "WHERE curated_table = %s AND job_name = %s AND status = 'succeeded' "
            "ORDER BY started_at DESC LIMIT 1",
            (curated_table, job_name),
        )
        row = cur.fetchone()
    conn.rollback()
    return None if row is None else _synced_run(row)
