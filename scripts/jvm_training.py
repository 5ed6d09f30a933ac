"""The workload `make setup` runs once under spark-submit to record which JVM classes a job
loads, into a class data sharing archive (scripts/setup.sh, scripts/submit.sh): an ingest and
two batch runs' Spark work (full rebuild, then a MERGE of corrections) on local Delta tables,
with no server. Later spark-submits map those classes from the archive instead of finding,
reading and verifying them in the JARs again.

Run by `ENRICH_JVM_ARCHIVE_DUMP=<file> scripts/submit.sh scripts/jvm_training.py`; it prints
nothing useful and leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.adapters import delta
from jobs.adapters.session import end_driver_jvm
from jobs.config.settings import Settings, load_settings
from jobs.core.transforms import (
    add_lineage,
    changed_dates,
    curated_rows,
    daily_category_summary,
    parse_input_records,
    superseded_rows,
)
from jobs.runs.batch_writes import (
    classify_rows,
    count_rows,
    output_columns,
    quarantine_rows,
    raw_rows,
)
from jobs.runs.ingest import IngestOptions, read_input

HEADER = "transaction_id,merchant_id,amount,currency,event_ts\n"
FIRST = [
    "TXN-1,MER-1,10.00,EUR,2026-11-01T10:00:00Z",
    "TXN-2,MER-2,20.50,USD,2026-11-02T11:00:00Z",
    "TXN-3,MER-9,-1,XXX,not a time",
    "TXN-3,MER-1,5.00,EUR,2026-11-03T12:00:00Z",
    '"broken,line',
]
SECOND = ["TXN-1,MER-1,11.00,EUR,2026-11-04T10:00:00Z", "TXN-4,MER-2,7.25,GBP,2026-11-05T09:00:00Z"]
UNREACHABLE = "127.0.0.1:9"  # discard port: connections are refused at once


def training_settings(config: str, work: Path) -> Settings:
    return load_settings(
        {
            "ENRICH_CONFIG": config,
            "POSTGRES_URL": f"postgresql://training@{UNREACHABLE}/training",
            "S3_ENDPOINT": f"http://{UNREACHABLE}",
            "AWS_ACCESS_KEY_ID": "training",
            "AWS_SECRET_ACCESS_KEY": "training",
            "RAW_TABLE_PATH": str(work / "raw"),
            "CURATED_TABLE_PATH": str(work / "curated"),
            "QUARANTINE_TABLE_PATH": str(work / "quarantine"),
        }
    )


def lookup_frames(spark: SparkSession, settings: Settings) -> list[DataFrame]:
    frames = []
    for spec in settings.lookups:
        columns = [spec.key, *spec.columns]
        validity = [c for c in spec.lookup_columns if c not in columns]  # temporal: always valid
        rows = [
            (*(f"{column}-{i}" for column in columns), *(None for _ in validity)) for i in (1, 2)
        ]
        schema = ", ".join(
            [*(f"{c} string" for c in columns), *(f"{c} timestamp" for c in validity)]
        )
        frames.append(spark.createDataFrame(rows, schema))
    return frames


def ingest(spark: SparkSession, raw: str, file: Path, lines: list[str]) -> None:
    file.write_text(HEADER + "\n".join(lines) + "\n")
    parsed = read_input(spark, IngestOptions((str(file),), "csv")).transform(
        parse_input_records(F.col("_metadata.file_path"), file.stem, datetime.now(UTC))
    )
    delta.append(parsed, raw, "training", delta.RAW_TABLE_PROPERTIES)


def classified(
    spark: SparkSession, settings: Settings, first: int, last: int
) -> tuple[DataFrame, DataFrame]:
    """The classified rows with lineage, and their quarantine rows."""
    raw = raw_rows(spark, settings.tables.raw, first, last)
    as_of = datetime.now(UTC)
    rows = classify_rows(raw, lookup_frames(spark, settings), settings, as_of).persist()
    count_rows(rows, settings)
    rows = rows.transform(add_lineage("training", as_of))
    return rows, quarantine_rows(rows, settings, as_of)


def train(spark: SparkSession, config: str, work: Path) -> None:
    settings = training_settings(config, work)
    tables = settings.tables
    ingest(spark, tables.raw, work / "first.csv", FIRST)
    ingest(spark, tables.raw, work / "second.csv", SECOND)
    full, full_quarantine = classified(spark, settings, 0, 0)
    rows = full.transform(curated_rows(output_columns(settings)))
    delta.overwrite(rows.repartition("event_date"), tables.curated, "training", ["event_date"])
    delta.overwrite(full_quarantine, tables.quarantine, "training")
    later, later_quarantine = classified(spark, settings, 1, 1)
    version = delta.upsert(
        later.transform(curated_rows(output_columns(settings))),
        tables.curated,
        "transaction_id",
        "t",
    )
    changes = delta.read_changes(spark, tables.curated, 1, version)
    changes.transform(changed_dates).collect()
    superseded = changes.transform(superseded_rows("training", datetime.now(UTC)))
    quarantine = later_quarantine.unionByName(superseded)
    delta.insert_missing(quarantine, tables.quarantine, "_record_id", "training")
    committed = delta.read_version(spark, tables.curated, version)
    committed.filter(F.col("event_date").isin([datetime(2026, 11, 4).date()])).transform(
        daily_category_summary
    ).collect()
    # The JDBC and S3A clients' classes: both calls fail at once (nothing listens there).
    with contextlib.suppress(Exception):
        spark.read.format("jdbc").option("url", f"jdbc:postgresql://{UNREACHABLE}/training").option(
            "dbtable", "training"
        ).option("user", "training").load()
    hadoop = spark.sparkContext._jsc.hadoopConfiguration()
    for key, value in (("attempts.maximum", "1"), ("retry.limit", "0"), ("bucket.probe", "0")):
        hadoop.set(f"fs.s3a.{key}", value)
    with contextlib.suppress(Exception):
        delta.table_exists(spark, "s3a://training/none")


def main() -> int:
    config = os.environ["ENRICH_CONFIG"]  # scripts/submit.sh sets it
    spark = SparkSession.builder.appName("jvm-class-archive-training").getOrCreate()
    try:
        with tempfile.TemporaryDirectory(prefix="jvm-training-") as work:
            train(spark, config, Path(work))
    finally:
        spark.stop()
        end_driver_jvm()  # the JVM writes the archive as it exits: a minute or more on 2 cores
    return 0


if __name__ == "__main__":
    sys.exit(main())
