"""Ingest job: append CSV or JSON-lines files (local paths or s3a://) to the raw Delta table.

    spark-submit ... jobs/ingest.py FILE [FILE ...] [--format csv|jsonl]   (or: make ingest FILES=...)

Rows that cannot be parsed are not dropped: they are appended with their original text in
``_raw_record`` and the problems in ``_parse_errors``, counted, and quarantined by the batch job.
A CSV file whose header is not the expected one is refused as a whole. One ingest appends to a
raw table at a time (a PostgreSQL advisory lock; Delta on S3 allows one writing driver).
"""

from __future__ import annotations

import argparse
import logging
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import delta_io, pg_store
from jobs.cli import describe_failure, run_main
from jobs.errors import SourceError
from jobs.preflight import check_buckets
from jobs.schemas import CORRUPT_RECORD, INPUT_COLUMNS, INPUT_SCHEMA
from jobs.session import spark_session
from jobs.settings import Settings, load_settings
from jobs.transforms import parse_input_records

JOB_NAME = "ingest"
log = logging.getLogger("enrich.ingest")
FORMATS = ("csv", "jsonl")


@dataclass(frozen=True)
class IngestOptions:
    paths: tuple[str, ...]
    file_format: str
    wait_for_lock: float = 0.0


@dataclass(frozen=True)
class IngestResult:
    ingest_id: str
    rows_appended: int
    rows_unparsed: int
    raw_version: int | None


def parse_args(argv: Sequence[str] | None = None) -> IngestOptions:
    parser = argparse.ArgumentParser(prog="ingest", description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="+", help="files or folders, local or s3a://")
    parser.add_argument(
        "--format",
        choices=(*FORMATS, "auto"),
        default="auto",
        help="input format (default: from the first file's extension)",
    )
    parser.add_argument(
        "--wait-for-lock",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="if another ingest is appending to the raw table, wait this long (default: refuse)",
    )
    args = parser.parse_args(argv)
    file_format = args.format
    if file_format == "auto":
        first = args.paths[0].lower()
        if first.endswith((".jsonl", ".json", ".ndjson")):
            file_format = "jsonl"
        elif first.endswith(".csv"):
            file_format = "csv"
        else:
            parser.error(f"cannot tell the format of {args.paths[0]!r}; pass --format csv|jsonl")
    return IngestOptions(
        paths=tuple(args.paths), file_format=file_format, wait_for_lock=args.wait_for_lock
    )


def read_input(spark: SparkSession, options: IngestOptions) -> DataFrame:
    reader = (
        spark.read.schema(INPUT_SCHEMA)
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT_RECORD)
    )
    try:
        if options.file_format == "csv":
            check_csv_headers(spark, options.paths)
            return reader.option("header", "true").csv(list(options.paths))
        return reader.json(list(options.paths))
    except AnalysisException as error:
        raise SourceError(f"cannot read input: {describe_failure(error)}") from None


def check_csv_headers(spark: SparkSession, paths: Sequence[str]) -> None:
    """Refuse files whose header is not the expected columns: a positional read would
    silently put values into the wrong columns."""
    expected = ",".join(INPUT_COLUMNS)
    first_lines = (
        spark.read.text(list(paths))
        .filter(F.col("_metadata.file_block_start") == 0)  # the split that holds line 1
        .select(F.col("_metadata.file_path").alias("file"), F.col("value"))
        .groupBy("file")
        .agg(F.first("value").alias("header"))
        .collect()
    )
    for row in first_lines:
        header = (row["header"] or "").strip().lstrip("\ufeff").replace(" ", "")
        if header.lower() != expected:
            raise SourceError(
                f"{row['file']}: unexpected CSV header {row['header']!r}; expected {expected!r}"
            )


def check_raw_schema(spark: SparkSession, path: str, rows: DataFrame) -> None:
    """Refuse to append to a raw table whose columns differ from what this version writes."""
    if not delta_io.table_exists(spark, path):
        return
    existing = dict(spark.read.format("delta").load(path).dtypes)
    incoming = dict(rows.dtypes)
    differences = sorted(
        f"{name} ({existing.get(name, 'absent')} in the table, {incoming.get(name, 'absent')} here)"
        for name in set(existing) | set(incoming)
        if existing.get(name) != incoming.get(name)
    )
    if differences:
        raise SourceError(f"raw table {path} has a different schema: {'; '.join(differences)}")


def run(spark: SparkSession, settings: Settings, options: IngestOptions) -> IngestResult:
    check_buckets(settings.s3, [settings.tables.raw])
    ingest_id = str(uuid.uuid4())
    with pg_store.writer_lock(
        settings.postgres,
        [settings.tables.raw],
        f"{JOB_NAME} {ingest_id}",
        options.wait_for_lock,
        on_wait=log.info,
    ):
        return _ingest(spark, settings, options, ingest_id)


def _ingest(
    spark: SparkSession, settings: Settings, options: IngestOptions, ingest_id: str
) -> IngestResult:
    ingested_at = datetime.now(UTC)
    log.info("reading %d input path(s) as %s", len(options.paths), options.file_format)
    parsed = (
        read_input(spark, options)
        .transform(parse_input_records(F.col("_metadata.file_path"), ingest_id, ingested_at))
        .cache()
    )
    try:
        counts = parsed.agg(
            F.count(F.lit(1)).alias("rows"),
            F.sum(F.when(F.size("_parse_errors") > 0, 1).otherwise(0)).alias("unparsed"),
        ).first()
        assert counts is not None
        rows, unparsed = int(counts["rows"]), int(counts["unparsed"] or 0)
        if rows == 0:
            log.info("no rows in the input; raw table left unchanged")
            return IngestResult(
                ingest_id, 0, 0, delta_io.latest_version(spark, settings.tables.raw)
            )
        check_raw_schema(spark, settings.tables.raw, parsed)
        log.info(
            "appending %d rows (%d could not be parsed) to %s", rows, unparsed, settings.tables.raw
        )
        version = delta_io.append(
            parsed,
            settings.tables.raw,
            f"ingest_id={ingest_id}",
            new_table_properties=delta_io.RAW_TABLE_PROPERTIES,
        )
    finally:
        parsed.unpersist()
    return IngestResult(ingest_id, rows, unparsed, version)


def main(argv: Sequence[str] | None = None) -> int:
    def body() -> int:
        options = parse_args(argv)
        settings = load_settings()
        with spark_session("enrich-ingest", settings.s3) as spark:
            result = run(spark, settings, options)
        print(
            f"\nIngest {result.ingest_id}: {result.rows_appended:,} rows appended to "
            f"{settings.tables.raw} (version {result.raw_version}); "
            f"{result.rows_unparsed:,} could not be parsed and will be quarantined by the batch job\n"
        )
        return 0

    return run_main(JOB_NAME, body)


if __name__ == "__main__":
    sys.exit(main())
