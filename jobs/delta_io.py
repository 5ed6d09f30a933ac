"""Delta Lake reads and writes on the object store."""

from __future__ import annotations

from collections.abc import Sequence

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession

from jobs.errors import SourceError


def table_exists(spark: SparkSession, path: str) -> bool:
    return bool(DeltaTable.isDeltaTable(spark, path))


def latest_version(spark: SparkSession, path: str) -> int | None:
    """The newest committed version of the table at ``path``, or None if there is no table."""
    if not table_exists(spark, path):
        return None
    last = DeltaTable.forPath(spark, path).history(1).select("version").first()
    return None if last is None else int(last["version"])


def read_version(spark: SparkSession, path: str, version: int) -> DataFrame:
    """The table as of ``version``: later commits by other writers do not change what a run sees."""
    if not table_exists(spark, path):
        raise SourceError(f"no Delta table at {path}")
    return spark.read.format("delta").option("versionAsOf", version).load(path)


def append(df: DataFrame, path: str, commit_note: str) -> int:
    df.write.format("delta").mode("append").option("userMetadata", commit_note).save(path)
    version = latest_version(df.sparkSession, path)
    assert version is not None
    return version


def overwrite(df: DataFrame, path: str, commit_note: str, partition_by: Sequence[str] = ()) -> int:
    """Replace the table's contents in one atomic Delta commit; returns the version written."""
    writer = (
        df.write.format("delta")
        .mode("overwrite")
        .option("overwriteSchema", "true")
        .option("userMetadata", commit_note)
    )
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    writer.save(path)
    version = latest_version(df.sparkSession, path)
    assert version is not None
    return version
