"""Batch enrichment job: raw Delta + Postgres lookups -> curated Delta, quarantine, summary.

    spark-submit ... jobs/batch_enrich.py [--force] [--run-id ID]   (or: make submit-batch)

Each run reads one pinned version of the raw table, validates, de-duplicates, joins the
configured lookups, replaces the curated and quarantine tables in one Delta commit each, and
then writes the daily summary and its run record to Postgres in one transaction. A run with no
new raw data and unchanged lookups changes nothing and says so.
"""

from __future__ import annotations

import argparse
import logging
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import psycopg2
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession

from jobs import delta_io, jdbc_io, pg_store
from jobs.cli import describe_failure, run_main
from jobs.currencies import ISO_4217_CODES
from jobs.errors import ServiceUnavailableError, SourceError
from jobs.models import RunCounts, RunResult, SummaryRow
from jobs.preflight import check_buckets
from jobs.report import format_run_summary
from jobs.session import spark_session
from jobs.settings import Settings, load_settings
from jobs.transforms import (
    add_lineage,
    add_rejection_reasons,
    check_lookup_columns,
    curated_rows,
    daily_category_summary,
    flag_superseded_duplicates,
    join_lookup,
    quarantined_rows,
    run_counts,
    top_unmatched,
)

JOB_NAME = "batch_enrich"
log = logging.getLogger("enrich.batch")


@dataclass(frozen=True)
class BatchOptions:
    force: bool = False
    run_id: str | None = None


def parse_args(argv: Sequence[str] | None = None) -> BatchOptions:
    parser = argparse.ArgumentParser(prog="batch_enrich", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--force", action="store_true", help="rebuild the outputs even if nothing changed"
    )
    parser.add_argument("--run-id", help="use this run id (default: a new UUID)")
    args = parser.parse_args(argv)
    if args.run_id is not None:
        try:
            uuid.UUID(args.run_id)
        except ValueError:
            parser.error(f"--run-id must be a UUID (got {args.run_id!r})")
    return BatchOptions(force=args.force, run_id=args.run_id)


def classify_rows(
    raw: DataFrame,
    lookups: Sequence[DataFrame],
    settings: Settings,
    run_id: str,
    raw_version: int,
    as_of: datetime,
) -> DataFrame:
    """Every raw row with its rejection reasons, duplicate flag, lookup columns and lineage."""
    classified = raw.transform(
        add_rejection_reasons(as_of, settings.max_future_minutes, ISO_4217_CODES)
    ).transform(flag_superseded_duplicates)
    for spec, lookup in zip(settings.lookups, lookups, strict=True):
        classified = classified.transform(join_lookup(lookup, spec))
    return classified.transform(add_lineage(run_id, raw_version, as_of))


def enrich(
    spark: SparkSession, settings: Settings, pending: RunResult
) -> tuple[RunResult, list[SummaryRow]]:
    tables = settings.tables
    run_id, raw_version, started = pending.run_id, pending.raw_version, pending.started_at
    log.info("reading raw table %s at version %d", tables.raw, raw_version)
    raw = delta_io.read_version(spark, tables.raw, raw_version)

    lookups = []
    for spec in settings.lookups:
        log.info("reading lookup %s over JDBC (fetchsize %d)", spec.table, settings.jdbc_fetchsize)
        lookup = jdbc_io.read_lookup(spark, settings.postgres, spec, settings.jdbc_fetchsize)
        check_lookup_columns(lookup, spec)
        lookups.append(lookup.select(*spec.lookup_columns).persist())

    classified = classify_rows(raw, lookups, settings, run_id, raw_version, started).persist(
        StorageLevel.MEMORY_AND_DISK
    )
    try:
        first_lookup = settings.lookups[0]
        log.info("validating, de-duplicating and joining %d lookups", len(lookups))
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

        note = f"run_id={run_id} raw_version={raw_version}"
        outputs = [output for spec in settings.lookups for output in spec.columns.values()]
        log.info("writing curated table %s", tables.curated)
        # One shuffle by date before a partitioned write: a few files per date, not one per task.
        curated = classified.transform(curated_rows(outputs)).repartition("event_date")
        curated_version = delta_io.overwrite(curated, tables.curated, note, ["event_date"])
        log.info("writing quarantine table %s", tables.quarantine)
        quarantine_version = delta_io.overwrite(
            classified.transform(quarantined_rows), tables.quarantine, note
        )
    finally:
        classified.unpersist()
        for lookup in lookups:
            lookup.unpersist()

    # The summary is computed from the curated version just committed, so it equals its GROUP BY.
    committed = delta_io.read_version(spark, tables.curated, curated_version)
    summary = [
        SummaryRow(**row.asDict()) for row in committed.transform(daily_category_summary).collect()
    ]
    result = replace(
        pending,
        status="succeeded",
        ended_at=datetime.now(UTC),
        counts=counts,
        curated_version=curated_version,
        quarantine_version=quarantine_version,
        summary_rows=len(summary),
        top_unmatched=top,
    )
    return result, summary


def run(spark: SparkSession, settings: Settings, options: BatchOptions) -> RunResult:
    run_id = options.run_id or str(uuid.uuid4())
    started = datetime.now(UTC)
    tables = settings.tables
    check_buckets(settings.s3, [tables.raw, tables.curated, tables.quarantine])
    with pg_store.connect(settings.postgres) as conn:
        pg_store.check_pipeline_tables(conn)
        raw_version = delta_io.latest_version(spark, tables.raw)
        if raw_version is None:
            raise SourceError(
                f"no raw Delta table at {tables.raw}; land data first (make ingest FILES=... or make demo)"
            )
        fingerprint = pg_store.lookup_fingerprint(conn, settings.lookups)
        previous = pg_store.last_successful_run(conn, tables.raw)
        pg_store.start_run(conn, run_id, JOB_NAME, tables.raw)
        log.info("run %s started (raw version %d)", run_id, raw_version)
        pending = RunResult(
            run_id=run_id,
            status="running",
            started_at=started,
            ended_at=started,
            raw_table=tables.raw,
            curated_table=tables.curated,
            quarantine_table=tables.quarantine,
            raw_version=raw_version,
        )
        try:
            if (
                not options.force
                and previous == (raw_version, fingerprint)
                and delta_io.table_exists(spark, tables.curated)
            ):
                result = replace(
                    pending,
                    status="noop",
                    ended_at=datetime.now(UTC),
                    message="no new raw data and unchanged lookups since the last successful run; "
                    "outputs left as they are (use --force to rebuild)",
                )
                pg_store.record_noop(conn, result, fingerprint)
                return result
            result, summary = enrich(spark, settings, pending)
            log.info("writing %d summary rows and the run record to PostgreSQL", len(summary))
            try:
                pg_store.finish_run(conn, result, fingerprint, summary)
            except psycopg2.Error as error:
                raise ServiceUnavailableError(
                    f"PostgreSQL at {settings.postgres.redacted()} failed during the summary write "
                    f"(nothing of it was committed): {describe_failure(error)}"
                ) from None
            return result
        except BaseException as error:
            if not pg_store.record_failure(settings.postgres, run_id, describe_failure(error)):
                log.warning("could not mark run %s as failed: PostgreSQL is not reachable", run_id)
            raise


def main(argv: Sequence[str] | None = None) -> int:
    def body() -> int:
        options = parse_args(argv)
        settings = load_settings()
        with spark_session("enrich-batch", settings.s3) as spark:
            result = run(spark, settings, options)
        print(format_run_summary(result))
        return 0

    return run_main(JOB_NAME, body)


if __name__ == "__main__":
    sys.exit(main())
