"""One batch run, as a story: gather the state (run records, the tables' versions, schemas and
properties, the lookups' fingerprint) without Spark, plan from it (pure), refuse tables it
cannot process, record the start, then start Spark only if there is work, execute, record the
end.

Incremental by default: a run reads only the raw commits made since the last successful run
(its watermark, kept in pipeline.enrichment_runs), MERGEs the new rows into curated by
transaction id, adds the rejected ones to quarantine by record id, and rewrites the summary
rows of the event dates it touched (those rows as the last successful run left them plus what
curated's change feed adds since), in one PostgreSQL transaction with its run record. Every
write is keyed, so redoing the work of a run that died replaces instead of doubling.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import partial

import psycopg2
from psycopg2.extensions import connection as Connection
from pyspark.sql import DataFrame, SparkSession

from jobs.adapters import metrics, object_store, postgres, run_store, session, writer_lock
from jobs.adapters.jvm_errors import describe_failure
from jobs.adapters.object_store import AppendedFiles, TableSnapshot
from jobs.config.settings import Settings
from jobs.core.contracts import check_change_feed, check_raw_table
from jobs.core.errors import PostgresUnavailableError, SourceError
from jobs.core.models import FULL, RANGE, PipelineState, RunResult, RunStart, StreamBatch
from jobs.core.planning import Plan, plan_run
from jobs.runs import failpoints
from jobs.runs.batch_writes import BatchWrites, planned_raw_files

JOB_NAME = "batch_enrich"
log = logging.getLogger("enrich.batch")


@dataclass(frozen=True)
class BatchOptions:
    full: bool = False
    date_range: tuple[date, date] | None = None
    run_id: str | None = None
    wait_for_lock: float = 0.0
    table_paths: Mapping[str, str] = field(default_factory=dict)  # overrides of conf/


@dataclass(frozen=True)
class Gathered:
    """Everything a run is planned from, read without Spark."""

    pipeline: PipelineState
    raw: TableSnapshot
    curated: TableSnapshot | None
    lookup_fingerprint: str

    @property
    def curated_version(self) -> int | None:
        return None if self.curated is None else self.curated.version


def gather(
    conn: Connection, settings: Settings, fingerprint: Callable[[], str] | None = None
) -> Gathered:
    """``fingerprint``: the lookups' digest, when the caller keeps it (the stream checks it on
    an interval); otherwise it is computed here."""
    tables = settings.tables
    pipeline = run_store.pipeline_state(conn, tables.curated)
    raw = object_store.table_snapshot(settings.s3, tables.raw)
    if raw is None:
        raise SourceError(
            f"no raw Delta table at {tables.raw}; land data first "
            "(make ingest FILES=... or make demo)"
        )
    return Gathered(
        pipeline,
        raw,
        object_store.table_snapshot(settings.s3, tables.curated),
        fingerprint() if fingerprint else run_store.lookup_fingerprint(conn, settings.lookups),
    )


def check_tables(plan: Plan, found: Gathered, settings: Settings) -> None:
    """Refuse, by name and before anything is written, tables this run cannot process: a raw
    table not in the expected shape, a curated table without the change feed that a run
    merging into it reads back."""
    raw = found.raw
    check_raw_table(raw.path, raw.schema, raw.properties, settings.new_raw_columns)
    if plan.mode != FULL:
        assert found.curated is not None  # the plan is a full rebuild where curated is missing
        check_change_feed(found.curated.path, found.curated.properties)


def describe_unfinished(state: PipelineState) -> str:
    parts = []
    for run in state.unfinished:
        what = {
            "running": "died without recording an end",
            "crashed": "died, and the run that found it did not finish either",
        }.get(run.status, "failed")
        versions = (
            f", raw versions {run.raw_version_from}..{run.raw_version_to}"
            if run.raw_version_to is not None
            else ""
        )
        parts.append(
            f"run {run.run_id} ({run.mode or 'unknown mode'}, started "
            f"{run.started_at:%Y-%m-%d %H:%M:%S}{versions}) {what}"
        )
    return "; ".join(parts)


def run_start(
    run_id: str, started: datetime, settings: Settings, plan: Plan, found: Gathered
) -> RunStart:
    """The run record's first version: what the run covers and why (pure)."""
    synced = found.pipeline.synced
    message = plan.reason
    lookups_changed = synced is not None and found.lookup_fingerprint != synced.lookup_fingerprint
    if lookups_changed and plan.mode != FULL:
        message += (
            "; note: the lookups changed since the last run, and rows curated "
            "before keep their old enrichment (re-enrich them with "
            "--from-date/--to-date or --full)"
        )
    tables = settings.tables
    return RunStart(
        run_id=run_id,
        mode=plan.mode,
        started_at=started,
        raw_table=tables.raw,
        curated_table=tables.curated,
        quarantine_table=tables.quarantine,
        raw_version_from=plan.raw_version_from if plan.mode != RANGE else None,
        raw_version_to=plan.raw_version_to,
        date_range=plan.date_range,
        recovered=found.pipeline.unfinished,
        message=message,
    )


@dataclass(frozen=True)
class HeldLock:
    """A caller that holds the writer lock across many runs (the stream): its connections, and
    what it keeps between runs (the lookups' digest and their DataFrames)."""

    conn: Connection  # run records and the summary
    lock: Connection  # the writer lock's own connection
    fingerprint: Callable[[], str] | None = None
    lookups: Callable[[SparkSession], list[DataFrame]] | None = None


def run(
    start_spark: Callable[[], SparkSession], settings: Settings, options: BatchOptions
) -> RunResult:
    """One batch run. Spark is started (``start_spark``) only once the run has work to do."""
    tables = settings.tables
    object_store.check_buckets(settings.s3, [tables.raw, tables.curated, tables.quarantine])
    with postgres.connect(settings.postgres) as conn:
        run_store.check_pipeline_tables(conn)
        run_id = options.run_id or str(uuid.uuid4())
        with writer_lock.hold(
            settings.postgres,
            [tables.curated, tables.quarantine],
            f"{JOB_NAME} run {run_id}",  # at most 63 characters: PostgreSQL cuts application names
            options.wait_for_lock,
            on_wait=log.info,
        ) as lock:
            failpoints.reached("lock-acquired")
            options = dataclasses.replace(options, run_id=run_id)
            return run_locked(HeldLock(conn, lock), start_spark, settings, options)


def run_locked(
    held: HeldLock,
    start_spark: Callable[[], SparkSession],
    settings: Settings,
    options: BatchOptions,
    job_name: str = JOB_NAME,
    stream_batch: StreamBatch | None = None,
) -> RunResult:
    """One run by a caller that holds the writer lock; ``stream_batch``: the micro-batch this
    run enriches, recorded in the run's last transaction."""
    conn = held.conn
    run_id = options.run_id or str(uuid.uuid4())
    started = datetime.now(UTC)
    found = gather(conn, settings, held.fingerprint)
    plan = plan_run(
        found.pipeline,
        found.raw.version,
        found.curated_version,
        options.full,
        options.date_range,
    )
    check_tables(plan, found, settings)
    if found.pipeline.unfinished:
        log.warning("recovering: %s", describe_unfinished(found.pipeline))
    log.info("run %s: %s (%s)", run_id, plan.mode, plan.reason)
    start = run_start(run_id, started, settings, plan, found)
    run_store.start_run(conn, start, job_name)
    crashed = [r.run_id for r in found.pipeline.unfinished if r.status == "running"]
    run_store.mark_crashed(conn, crashed, run_id)
    failpoints.reached("run-started")
    try:
        if plan.noop:  # decided without Spark, and needs none
            result = record_noop(conn, settings, start, found, stream_batch)
        else:
            raw_files = planned_raw_files(settings.s3, settings.tables.raw, plan, found.raw)
            spark = start_sized_spark(start_spark, raw_files)
            result = execute(held, spark, settings, plan, start, found, raw_files, stream_batch)
    except BaseException as error:
        if not run_store.record_failure(settings.postgres, run_id, describe_failure(error)):
            log.warning(
                "could not mark run %s as failed: PostgreSQL is not reachable; the next "
                "run will find it unfinished and complete its work",
                run_id,
            )
        push_metrics(settings, job_name, started, None, found.raw.version)
        raise
    push_metrics(settings, job_name, started, result, found.raw.version)
    return result


def push_metrics(
    settings: Settings,
    job_name: str,
    started: datetime,
    result: RunResult | None,
    raw_latest: int,
) -> None:
    """The run's metrics to the Pushgateway (``result`` None: the run failed)."""
    now = datetime.now(UTC)
    values: dict[str, float] = {
        "run_success": 0.0 if result is None else 1.0,
        "run_last_finished_timestamp_seconds": now.timestamp(),
        "run_duration_seconds": (now - started).total_seconds(),
    }
    if result is not None:
        counts = result.counts
        values |= {
            "run_last_success_timestamp_seconds": now.timestamp(),
            "run_rows_read": counts.rows_read if counts else 0,
            "run_rows_curated": counts.rows_curated if counts else 0,
            "run_rows_quarantined": counts.rows_quarantined if counts else 0,
            "run_rows_unmatched": counts.rows_unmatched if counts else 0,
            "run_rows_duplicate": counts.rows_duplicate if counts else 0,
            "raw_lag_versions": max(0, raw_latest - result.raw_version_to),
        }
    metrics.push(settings.pushgateway_url, job_name, settings.tables.curated, values)


def record_noop(
    conn: Connection,
    settings: Settings,
    start: RunStart,
    found: Gathered,
    stream_batch: StreamBatch | None = None,
) -> RunResult:
    assert found.pipeline.synced is not None  # a no-op follows a synced run
    result = start.finished(
        "noop",
        datetime.now(UTC),
        curated_version=found.pipeline.synced.curated_version,
        quarantine_version=object_store.table_version(settings.s3, settings.tables.quarantine),
        message=start.message + "; outputs left as they are (--full rebuilds them)",
    )
    run_store.record_noop(conn, result, found.lookup_fingerprint, stream_batch)
    return result


def start_sized_spark(
    start_spark: Callable[[], SparkSession], raw_files: AppendedFiles | None
) -> SparkSession:
    """The run's Spark session; a driver JVM it starts is sized to the raw rows the run reads
    (``session.size_driver_jvm``: the JIT's first tier only for a small run)."""
    rows = None if raw_files is None else raw_files.rows
    chosen = session.size_driver_jvm(rows)
    spark = start_spark()
    if chosen and session.jit_first_tier_only(spark):
        log.info("driver JVM: the JIT's first tier only (a run of %s raw rows)", f"{rows:,}")
    return spark


def execute(
    held: HeldLock,
    spark: SparkSession,
    settings: Settings,
    plan: Plan,
    start: RunStart,
    found: Gathered,
    raw_files: AppendedFiles | None,
    stream_batch: StreamBatch | None = None,
) -> RunResult:
    """The Delta writes, then the summary rows and the run record in one transaction."""
    conn, lock = held.conn, held.lock
    written = BatchWrites(
        spark,
        settings,
        plan,
        found.pipeline.synced,
        start,
        before_commit=lambda: writer_lock.check_held(lock, settings.postgres),
        synced_summary=lambda dates: run_store.summary_rows(conn, dates),
        shared_lookups=None if held.lookups is None else partial(held.lookups, spark),
        raw_files=raw_files,
    ).execute(found.curated)
    result = start.finished(
        "succeeded",
        datetime.now(UTC),
        counts=written.counts,
        curated_version=written.curated_version,
        quarantine_version=written.quarantine_version,
        summary_rows=len(written.summary),
        summary_dates=None if written.dates is None else len(written.dates),
        top_unmatched=written.top_unmatched,
    )
    log.info("writing %d summary rows and the run record to PostgreSQL", len(written.summary))
    try:
        run_store.finish_run(
            conn,
            result,
            found.lookup_fingerprint,
            written.summary,
            written.dates,
            before_record=lambda: failpoints.reached("postgres-summary-written"),
            stream_batch=stream_batch,
        )
    except psycopg2.Error as error:
        raise PostgresUnavailableError(
            f"PostgreSQL at {settings.postgres.redacted()} failed during the summary "
            f"write (nothing of it was committed; the next run completes it): "
            f"{describe_failure(error)}"
        ) from None
    failpoints.reached("postgres-committed")
    return result
