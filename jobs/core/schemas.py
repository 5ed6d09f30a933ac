"""Column names and schemas of the raw, curated and quarantine tables."""

from __future__ import annotations

from pyspark.sql.types import (
    ArrayType,
    DecimalType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

AMOUNT_TYPE = DecimalType(18, 2)
CORRUPT_RECORD = "_corrupt_record"
RAW_RECORD = "_raw_record"  # a row's input text, kept where it did not parse
# The raw table commit a row came from; the latest commit wins among repeats of an id.
SOURCE_VERSION = "_source_version"

# Columns Delta's change data feed adds to every row it returns.
CHANGE_TYPE = "_change_type"
COMMIT_VERSION = "_commit_version"
CDF_COLUMNS = (CHANGE_TYPE, COMMIT_VERSION, "_commit_timestamp")

# The business columns of a raw transaction, in file order.
INPUT_COLUMNS = ("transaction_id", "merchant_id", "amount", "currency", "event_ts")

# What the ingest job reads from a file: every business column as text, parsed afterwards,
# plus Spark's corrupt-record column for lines it cannot split into fields.
INPUT_SCHEMA = StructType(
    [StructField(name, StringType()) for name in INPUT_COLUMNS]
    + [StructField(CORRUPT_RECORD, StringType())]
)

RAW_SCHEMA = StructType(
    [
        StructField("transaction_id", StringType()),
        StructField("merchant_id", StringType()),
        StructField("amount", AMOUNT_TYPE),
        StructField("currency", StringType()),
        StructField("event_ts", TimestampType()),
        # ingestion metadata
        StructField("_record_id", StringType()),
        StructField("_source_file", StringType()),
        StructField("_ingest_id", StringType()),
        StructField("_ingested_at", TimestampType()),
        StructField(RAW_RECORD, StringType()),
        StructField("_parse_errors", ArrayType(StringType(), containsNull=False)),
    ]
)
RAW_COLUMNS = tuple(field.name for field in RAW_SCHEMA.fields)

QUARANTINE_COLUMNS = (
    "transaction_id",
    "merchant_id",
    "amount",
    "currency",
    "event_ts",
    "rejection_reasons",
    "_raw_record",
    "_record_id",
    "_source_file",
    "_ingest_id",
    "_ingested_at",
    "_run_id",
    "_source_version",
    "_enriched_at",
)
