"""One ingest run: CSV or JSON-lines files (local paths or s3a://) appended to the raw table.

Rows that cannot be parsed are not dropped: they are appended with their original text in
``_raw_record`` and the problems in ``_parse_errors``, counted, and quarantined by the batch job.
A CSV file whose header is not the expected one is refused as a whole. One ingest appends to a
raw table at a time (a PostgreSQL advisory lock; Delta on S3 allows one writing driver).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from jobs.adapters import delta, object_store, writer_lock
from jobs.adapters.jvm_errors import describe_failure
from jobs.config.settings import Settings
from jobs.core.contracts import check_csv_header, check_ingest_target
from jobs.core.errors import SourceError
from jobs.core.schemas import CORRUPT_RECORD, INPUT_SCHEMA
from jobs.core.transforms import parse_input_records

JOB_NAME = "ingest"
FORMATS = ("csv", "jsonl")
log = logging.getLogger("enrich.ingest")


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


EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl"}


def format_of(path: str) -> str | None:
    """csv or jsonl, from the file name's extension; None if it is neither."""
    lowered = path.lower()
    return next((fmt for ext, fmt in EXTENSIONS.items() if lowered.endswith(ext)), None)


def read_files(spark: SparkSession, paths: Sequence[str], file_format: str) -> DataFrame:
    """The files' text fields, one row per record, unparsable lines kept (PERMISSIVE). CSV
    headers are not checked here (``first_lines`` + ``check_csv_header``)."""
    reader = (
        spark.read.schema(INPUT_SCHEMA)
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT_RECORD)
    )
    try:
        if file_format == "csv":
            return reader.option("header", "true").csv(list(paths))
        return reader.json(list(paths))
    except AnalysisException as error:
        raise SourceError(f"cannot read input: {describe_failure(error)}") from None


def read_input(spark: SparkSession, options: IngestOptions) -> DataFrame:
    if options.file_format == "csv":
        try:
            headers = first_lines(spark, options.paths)
        except AnalysisException as error:
            raise SourceError(f"cannot read input: {describe_failure(error)}") from None
        for file, header in headers:
            check_csv_header(file, header)
    return read_files(spark, options.paths, options.file_format)


def first_lines(spark: SparkSession, paths: Sequence[str]) -> list[tuple[str, str | None]]:
    """(file, first line) of every file under ``paths``."""
    rows = (
        spark.read.text(list(paths))
        .filter(F.col("_metadata.file_block_start") == 0)  # the split that holds line 1
        .select(F.col("_metadata.file_path").alias("file"), F.col("value"))
        .groupBy("file")
        .agg(F.first("value").alias("header"))
        .collect()
    )
    return [(str(row["file"]), row["header"]) for row in rows]


def run(spark: SparkSession, settings: Settings, options: IngestOptions) -> IngestResult:
    raw = settings.tables.raw
    object_store.check_buckets(settings.s3, [raw])
    ingest_id = str(uuid.uuid4())
    with writer_lock.hold(
        settings.postgres, [raw], f"{JOB_NAME} {ingest_id}", options.wait_for_lock, log.info
    ):
        return _ingest(spark, settings, options, ingest_id)


def _ingest(
    spark: SparkSession, settings: Settings, options: IngestOptions, ingest_id: str
) -> IngestResult:
    log.info("reading %d input path(s) as %s", len(options.paths), options.file_format)
    return append_records(spark, settings, read_input(spark, options), ingest_id)


def append_records(
    spark: SparkSession,
    settings: Settings,
    records: DataFrame,
    ingest_id: str,
    txn: tuple[str, int] | None = None,
) -> IngestResult:
    """Parse ``records`` (``read_files``'s shape) and append them to the raw table in one
    commit. ``txn``: (application id, version) of an idempotent write: a commit that is already
    in the table's log for that pair is not made again (the stream's replayed micro-batches).

    The rows are counted while they are written (``DataFrame.observe``), so the input is read
    and parsed once, by the write, and never held in memory (docs/performance.md)."""
    raw = settings.tables.raw
    ingested_at = datetime.now(UTC)
    parsed = records.transform(
        parse_input_records(F.col("_metadata.file_path"), ingest_id, ingested_at)
    )
    if parsed.isEmpty():
        log.info("no rows in the input; raw table left unchanged")
        return IngestResult(ingest_id, 0, 0, object_store.table_version(settings.s3, raw))
    existing = object_store.table_snapshot(settings.s3, raw)
    check_ingest_target(raw, None if existing is None else existing.schema, parsed.schema)
    log.info("appending the input's rows to %s", raw)
    counted = Observation("ingest")
    created = delta.RAW_TABLE_PROPERTIES if existing is None else None
    version = delta.append(
        parsed.observe(counted, *_counts()), raw, f"ingest_id={ingest_id}", created, txn
    )
    if existing is not None and version == existing.version:
        # Delta found the txn's commit in the log and skipped the write (a replayed
        # micro-batch): nothing was read, so the rows are counted on their own.
        log.info("the input's rows were appended before (a replay); counting them")
        counts = parsed.agg(*_counts()).first()
        assert counts is not None
        values = counts.asDict()
    else:
        values = counted.get
    rows, unparsed = int(values["rows"]), int(values["unparsed"] or 0)
    log.info("appended %d rows (%d could not be parsed) to %s", rows, unparsed, raw)
    return IngestResult(ingest_id, rows, unparsed, version)


def _counts() -> list[Column]:
    """The ingest's counts of its parsed rows: all of them, and those with parse errors."""
    return [
        F.count(F.lit(1)).alias("rows"),
        F.sum(F.when(F.size("_parse_errors") > 0, 1).otherwise(0)).alias("unparsed"),
    ]
