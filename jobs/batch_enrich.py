"""Batch enrichment job: raw Delta + Postgres lookups -> curated Delta, quarantine, summary.

    spark-submit ... jobs/batch_enrich.py [--full | --from-date D --to-date D]
                                          [--wait-for-lock SECONDS] [--run-id ID]
    (or: make submit-batch ARGS="...")

Incremental by default: a run reads only the raw commits made since the last successful run
(its watermark, kept in pipeline.enrichment_runs), MERGEs the new rows into curated by
transaction id, adds the rejected ones to quarantine by record id, and rewrites the summary
rows of the event dates it touched, in one Postgres transaction with its run record. Every
write is keyed, so redoing the work of a run that died replaces instead of doubling.
"""

from __future__ import annotations

import argparse
import logging
import sys
import uuid
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

import psycopg2
from psycopg2.extensions import connection as Connection
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import delta_io, delta_log, failpoints, jdbc_io, pg_store
from jobs.cli import describe_failure, run_main
from jobs.currencies import ISO_4217_CODES
from jobs.errors import ConfigError, ServiceUnavailableError, SourceError
from jobs.models import FULL, RANGE, PipelineState, RunCounts, RunResult, SummaryRow
from jobs.planning import Plan, plan_run
from jobs.preflight import check_buckets
from jobs.report import format_run_summary
from jobs.schemas import CDF_COLUMNS, RAW_COLUMNS, schema_drift
from jobs.session import spark_session
from jobs.settings import Settings, load_settings
from jobs.transforms import (
    add_lineage,
    add_rejection_reasons,
    changed_dates,
    check_lookup_columns,
    curated_rows,
    daily_category_summary,
    event_date_between,
    flag_superseded_duplicates,
    join_lookup,
    quarantined_rows,
    raw_changes_as_rows,
    run_counts,
    superseded_rows,
    top_unmatched,
)

JOB_NAME = "batch_enrich"
log = logging.getLogger("enrich.batch")


@dataclass(frozen=True)
class BatchOptions:
    full: bool = False
    date_range: tuple[date, date] | None = None
    run_id: str | None = None
    wait_for_lock: float = 0.0


def parse_args(argv: Sequence[str] | None = None) -> BatchOptions:
    parser = argparse.ArgumentParser(prog="batch_enrich", description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--full",
        action="store_true",
        help="rebuild curated, quarantine and summary from all raw data",
    )
    mode.add_argument("--force", action="store_true", help=argparse.SUPPRESS)  # old name of --full
    parser.add_argument(
        "--from-date", type=date.fromisoformat, help="re-enrich curated rows from this event date"
    )
    parser.add_argument(
        "--to-date", type=date.fromisoformat, help="... to this event date (inclusive)"
    )
    parser.add_argument(
        "--wait-for-lock",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="if another run is writing the same tables, wait this long for it (default: refuse)",
    )
    parser.add_argument("--run-id", help="use this run id (default: a new UUID)")
    args = parser.parse_args(argv)
    if args.run_id is not None:
        try:
            uuid.UUID(args.run_id)
        except ValueError:
            parser.error(f"--run-id must be a UUID (got {args.run_id!r})")
    date_range = None
    if args.from_date or args.to_date:
        if args.full or args.force:
            parser.error("--full cannot be combined with --from-date/--to-date")
        first = args.from_date or args.to_date
        date_range = (first, args.to_date or first)
    return BatchOptions(
        full=args.full or args.force,
        date_range=date_range,
        run_id=args.run_id,
        wait_for_lock=args.wait_for_lock,
    )


def classify_rows(
    raw: DataFrame, lookups: Sequence[DataFrame], settings: Settings, run_id: str, as_of: datetime
) -> DataFrame:
    """Every raw row with its rejection reasons, duplicate flag, lookup columns and lineage."""
    classified = raw.transform(
        add_rejection_reasons(as_of, settings.max_future_minutes, ISO_4217_CODES)
    ).transform(flag_superseded_duplicates)
    for spec, lookup in zip(settings.lookups, lookups, strict=True):
        classified = classified.transform(join_lookup(lookup, spec))
    return classified.transform(add_lineage(run_id, as_of))


def check_raw_table(spark: SparkSession, settings: Settings) -> None:
    """Refuse a raw table this version cannot process safely, naming what is wrong."""
    path = settings.tables.raw
    problems = schema_drift(delta_io.table_schema(spark, path))
    if settings.new_raw_columns == "ignore":
        problems = [p for p in problems if not p.endswith(" is new")]
    if problems:
        raise SourceError(
            f"raw table {path} does not have the expected columns: {'; '.join(problems)}. "
            "Nothing was written. A new column can be ignored with [schema] new_raw_columns = "
            '"ignore" in conf/enrichment.toml; a missing or retyped column needs the table fixed'
        )
    if delta_io.table_properties(spark, path).get("delta.appendOnly", "false") != "true":
        raise SourceError(
            f"raw table {path} is not append-only (delta.appendOnly); incremental runs read only "
            "appended rows, so a raw table that can be updated or deleted from is refused"
        )


class BatchRun:
    """One run's reads and writes, in the order that keeps every crash recoverable:
    curated MERGE -> quarantine insert -> summary + run record in one Postgres transaction."""

    def __init__(
        self,
        spark: SparkSession,
        settings: Settings,
        plan: Plan,
        state: PipelineState,
        pending: RunResult,
        lock: Connection,
    ) -> None:
        self.spark = spark
        self.settings = settings
        self.plan = plan
        self.state = state
        self.pending = pending
        self.lock = lock
        self.note = f"run_id={pending.run_id} mode={plan.mode}"

    def _before_commit(self) -> None:
        pg_store.check_lock_held(self.lock, self.settings.postgres)

    def _lookups(self) -> list[DataFrame]:
        settings = self.settings
        lookups = []
        for spec in settings.lookups:
            log.info(
                "reading lookup %s over JDBC (fetchsize %d)", spec.table, settings.jdbc_fetchsize
            )
            lookup = jdbc_io.read_lookup(
                self.spark, settings.postgres, spec, settings.jdbc_fetchsize
            )
            check_lookup_columns(lookup, spec)
            lookups.append(lookup.select(*spec.lookup_columns).persist())
        return lookups

    def _classified(self, lookups: list[DataFrame]) -> DataFrame:
        plan, tables = self.plan, self.settings.tables
        first = plan.raw_version_from if plan.mode != RANGE else 0
        assert first is not None
        log.info("reading raw table %s, versions %d..%d", tables.raw, first, plan.raw_version_to)
        changes = delta_io.read_changes(self.spark, tables.raw, first, plan.raw_version_to)
        raw = changes.select(*RAW_COLUMNS, *CDF_COLUMNS).transform(raw_changes_as_rows)
        classified = classify_rows(
            raw, lookups, self.settings, self.pending.run_id, self.pending.started_at
        ).transform(failpoints.fail_first_task_attempts)
        return classified

    def _counts(self, classified: DataFrame) -> tuple[RunCounts, list[tuple[str, int]]]:
        first_lookup = self.settings.lookups[0]
        counts_row = classified.transform(run_counts(first_lookup)).first()
        assert counts_row is not None  # an aggregate without grouping always has one row
        counts = RunCounts(**counts_row.asDict())
        top = [
            (str(r["value"]), int(r["count"]))
            for r in classified.transform(top_unmatched(first_lookup)).collect()
        ]
        log.info(
            "rows read %d: curated %d (unmatched %d), quarantined %d, duplicates %d",
            counts.rows_read,
            counts.rows_curated,
            counts.rows_unmatched,
            counts.rows_quarantined,
            counts.rows_duplicate,
        )
        return counts, top

    def _check_curated_columns(self, curated: DataFrame) -> None:
        path = self.settings.tables.curated
        problems = schema_drift(delta_io.table_schema(self.spark, path), curated.schema)
        if problems:
            raise ConfigError(
                f"curated table {path} does not have the columns the configured lookups produce: "
                f"{'; '.join(problems)}. Run with --full to rebuild it"
            )

    def execute(
        self, curated_latest: int | None
    ) -> tuple[RunResult, list[SummaryRow], list[date] | None]:
        """``curated_latest``: the curated table's version the plan was made from."""
        plan, tables = self.plan, self.settings.tables
        outputs = [o for spec in self.settings.lookups for o in spec.columns.values()]
        counts, top = RunCounts(0, 0, 0, 0, 0), list[tuple[str, int]]()
        quarantine_version: int | None = None
        curated_version = curated_latest
        has_new_rows = plan.raw_version_from is None or plan.raw_version_from <= plan.raw_version_to
        lookups: list[DataFrame] = []
        cached: DataFrame | None = None
        classified: DataFrame | None = None
        try:
            if has_new_rows:
                lookups = self._lookups()
                cached = self._classified(lookups).persist(StorageLevel.MEMORY_AND_DISK)
                classified = cached
                if plan.mode == RANGE:
                    assert plan.date_range is not None
                    classified = classified.transform(event_date_between(*plan.date_range))
                log.info("validating, de-duplicating and joining %d lookups", len(lookups))
                counts, top = self._counts(classified)
                failpoints.reached("batch-classified")
                curated = classified.transform(curated_rows(outputs))
                if plan.mode == FULL:
                    curated_version, quarantine_version = self._write_full(classified, curated)
                else:
                    self._check_curated_columns(curated)
                    curated_version = self._write_curated(curated)
            replaced = 0
            dates: list[date] | None = None
            if plan.mode != FULL:
                quarantine_version, replaced, dates = self._sync_quarantine_and_dates(
                    classified, curated_version
                )
        finally:
            if cached is not None:
                cached.unpersist()
            for lookup in lookups:
                lookup.unpersist()

        assert curated_version is not None
        committed = delta_io.read_version(self.spark, tables.curated, curated_version)
        if dates is not None:
            committed = committed.filter(F.col("event_date").isin(dates))
        log.info(
            "computing the daily summary for %s",
            "every date" if dates is None else f"{len(dates)} changed date(s)",
        )
        summary = [
            SummaryRow(**row.asDict())
            for row in committed.transform(daily_category_summary).collect()
        ]
        failpoints.reached("summary-computed")
        result = replace(
            self.pending,
            status="succeeded",
            ended_at=datetime.now(UTC),
            counts=replace(counts, rows_replaced=replaced),
            curated_version=curated_version,
            quarantine_version=quarantine_version,
            summary_rows=len(summary),
            summary_dates=None if dates is None else len(dates),
            top_unmatched=top,
        )
        return result, summary, dates

    def _write_full(self, classified: DataFrame, curated: DataFrame) -> tuple[int, int]:
        """Both tables replaced; their new versions (curated, quarantine)."""
        tables = self.settings.tables
        self._before_commit()
        failpoints.reached("before-curated-commit")
        log.info("replacing curated table %s", tables.curated)
        # One shuffle by date before a partitioned write: a few files per date, not one per task.
        version = delta_io.overwrite(
            curated.repartition("event_date"), tables.curated, self.note, ["event_date"]
        )
        failpoints.reached("curated-committed")
        self._before_commit()
        log.info("replacing quarantine table %s", tables.quarantine)
        quarantine_version = delta_io.overwrite(
            classified.transform(quarantined_rows), tables.quarantine, self.note
        )
        failpoints.reached("quarantine-committed")
        return version, quarantine_version

    def _write_curated(self, curated: DataFrame) -> int:
        plan, tables = self.plan, self.settings.tables
        self._before_commit()
        failpoints.reached("before-curated-commit")
        if plan.mode == RANGE:
            assert plan.date_range is not None
            first, last = plan.date_range
            log.info(
                "replacing event dates %s..%s of curated table %s", first, last, tables.curated
            )
            version = delta_io.overwrite(
                curated.repartition("event_date"),
                tables.curated,
                self.note,
                ["event_date"],
                replace_where=f"event_date >= '{first}' AND event_date <= '{last}'",
            )
        else:
            log.info("merging into curated table %s by transaction_id", tables.curated)
            version = delta_io.upsert(curated, tables.curated, "transaction_id", self.note)
        failpoints.reached("curated-committed")
        return version

    def _sync_quarantine_and_dates(
        self, classified: DataFrame | None, curated_version: int | None
    ) -> tuple[int | None, int, list[date] | None]:
        """Quarantine the batch's rejects and every curated row replaced since the summary was
        last in step, and list the event dates whose summary rows must be rewritten.

        Working from the curated change feed since the last synced version, not from this
        run's own commit, is what lets a run finish the work of one that died after its
        curated commit: that commit's replaced rows and dates are in the feed too."""
        tables = self.settings.tables
        synced = self.state.synced
        assert synced is not None and synced.curated_version is not None
        assert curated_version is not None
        quarantine = classified.transform(quarantined_rows) if classified is not None else None
        replaced = 0
        dates: list[date] = []
        if curated_version > synced.curated_version:
            changes = delta_io.read_changes(
                self.spark, tables.curated, synced.curated_version + 1, curated_version
            ).persist()
            try:
                superseded = changes.transform(
                    superseded_rows(self.pending.run_id, self.pending.started_at)
                ).persist()
                replaced = superseded.count()
                dates = sorted(r["event_date"] for r in changes.transform(changed_dates).collect())
                if replaced:
                    quarantine = (
                        superseded if quarantine is None else quarantine.unionByName(superseded)
                    )
                version = self._insert_quarantine(quarantine)
                superseded.unpersist()
            finally:
                changes.unpersist()
        else:
            version = self._insert_quarantine(quarantine)
        return version, replaced, dates

    def _insert_quarantine(self, quarantine: DataFrame | None) -> int | None:
        tables = self.settings.tables
        if quarantine is None:
            version = delta_io.latest_version(self.spark, tables.quarantine)
        else:
            self._before_commit()
            log.info("adding rejected and replaced rows to quarantine table %s", tables.quarantine)
            version = delta_io.insert_missing(
                quarantine, tables.quarantine, "_record_id", self.note
            )
        failpoints.reached("quarantine-committed")
        return version


def _describe_unfinished(state: PipelineState) -> str:
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


def run(
    start_spark: Callable[[], SparkSession], settings: Settings, options: BatchOptions
) -> RunResult:
    """One batch run. Spark is started (``start_spark``) only once the run has work to do."""
    run_id = options.run_id or str(uuid.uuid4())
    started = datetime.now(UTC)
    tables = settings.tables
    check_buckets(settings.s3, [tables.raw, tables.curated, tables.quarantine])
    with pg_store.connect(settings.postgres) as conn:
        pg_store.check_pipeline_tables(conn)
        with pg_store.writer_lock(
            settings.postgres,
            [tables.curated, tables.quarantine],
            f"{JOB_NAME} run {run_id}",  # at most 63 characters: PostgreSQL cuts application names
            options.wait_for_lock,
            on_wait=log.info,
        ) as lock:
            failpoints.reached("lock-acquired")
            state = pg_store.pipeline_state(conn, tables.curated)
            raw_latest = delta_log.latest_version(settings.s3, tables.raw)
            if raw_latest is None:
                raise SourceError(
                    f"no raw Delta table at {tables.raw}; land data first "
                    "(make ingest FILES=... or make demo)"
                )
            curated_latest = delta_log.latest_version(settings.s3, tables.curated)
            plan = plan_run(state, raw_latest, curated_latest, options.full, options.date_range)
            # A no-op on the raw table the last successful run read needs no Spark: that table
            # has no commit since, and that run checked it. Any other raw table is checked.
            same_raw = state.synced is not None and state.synced.raw_table == tables.raw
            spark = None if plan.noop and same_raw else start_spark()
            if spark is not None:
                check_raw_table(spark, settings)
            if state.unfinished:
                log.warning("recovering: %s", _describe_unfinished(state))
            log.info("run %s: %s (%s)", run_id, plan.mode, plan.reason)
            fingerprint = pg_store.lookup_fingerprint(conn, settings.lookups)
            message = plan.reason
            lookups_changed = (
                state.synced is not None and fingerprint != state.synced.lookup_fingerprint
            )
            if lookups_changed and plan.mode != FULL:
                message += (
                    "; note: the lookups changed since the last run, and rows curated "
                    "before keep their old enrichment (re-enrich them with "
                    "--from-date/--to-date or --full)"
                )
            pending = RunResult(
                run_id=run_id,
                status="running",
                mode=plan.mode,
                started_at=started,
                ended_at=started,
                raw_table=tables.raw,
                curated_table=tables.curated,
                quarantine_table=tables.quarantine,
                raw_version_from=plan.raw_version_from if plan.mode != RANGE else None,
                raw_version_to=plan.raw_version_to,
                date_range=plan.date_range,
                recovered=state.unfinished,
                message=message,
            )
            pg_store.start_run(conn, pending, JOB_NAME)
            pg_store.mark_crashed(
                conn, [r.run_id for r in state.unfinished if r.status == "running"], run_id
            )
            failpoints.reached("run-started")
            try:
                if plan.noop:
                    assert state.synced is not None
                    result = replace(
                        pending,
                        status="noop",
                        ended_at=datetime.now(UTC),
                        curated_version=state.synced.curated_version,
                        quarantine_version=delta_log.latest_version(settings.s3, tables.quarantine),
                        message=message + "; outputs left as they are (--full rebuilds them)",
                    )
                    pg_store.record_noop(conn, result, fingerprint)
                    return result
                assert spark is not None  # only a no-op runs without Spark
                result, summary, dates = BatchRun(
                    spark, settings, plan, state, pending, lock
                ).execute(curated_latest)
                log.info("writing %d summary rows and the run record to PostgreSQL", len(summary))
                try:
                    pg_store.finish_run(conn, result, fingerprint, summary, dates)
                except psycopg2.Error as error:
                    raise ServiceUnavailableError(
                        f"PostgreSQL at {settings.postgres.redacted()} failed during the summary "
                        f"write (nothing of it was committed; the next run completes it): "
                        f"{describe_failure(error)}"
                    ) from None
                failpoints.reached("postgres-committed")
                return result
            except BaseException as error:
                if not pg_store.record_failure(settings.postgres, run_id, describe_failure(error)):
                    log.warning(
                        "could not mark run %s as failed: PostgreSQL is not reachable; the next "
                        "run will find it unfinished and complete its work",
                        run_id,
                    )
                raise


def main(argv: Sequence[str] | None = None) -> int:
    def body() -> int:
        options = parse_args(argv)
        settings = load_settings()
        with ExitStack() as stack:
            result = run(
                lambda: stack.enter_context(spark_session("enrich-batch", settings.s3)),
                settings,
                options,
            )
        print(format_run_summary(result))
        return 0

    return run_main(JOB_NAME, body)


if __name__ == "__main__":
    sys.exit(main())
