"""The SparkSession every job opens.

Static settings (Delta extension and catalog, S3A path style, UTC) come from
conf/spark-defaults.conf via SPARK_CONF_DIR. Here only the endpoint is added. S3 credentials
are never put in the Spark configuration: S3A reads them from the process environment
(EnvironmentVariableCredentialsProvider), so they appear in no command line, UI page or log.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pyspark.sql import SparkSession

from jobs.config.settings import S3Settings

# hadoop-aws 3.5.0 reads objects through the analytics stream by default (HADOOP-19559). For
# every distinct Parquet object it reads, that stream keeps an entry until the filesystem is
# closed (HADOOP-20058), and Spark's filesystems live as long as the JVM: measured here, 27 KB
# of heap per Parquet file read, growing without end (4,000 files: +107 MB; classic +7 MB). A
# batch run's JVM ends within minutes and reads a narrow scan faster through it; the stream's
# lives for days, so it reads through the classic stream (docs/performance.md).
S3A_INPUT_STREAM_KEY = "fs.s3a.input.stream.type"  # Hadoop's name; Spark's has the prefix
S3A_INPUT_STREAM = f"spark.hadoop.{S3A_INPUT_STREAM_KEY}"
LONG_RUNNING_INPUT_STREAM = "classic"


def session_builder(
    app_name: str, s3: S3Settings, long_running: bool = False
) -> SparkSession.Builder:
    """``long_running``: the JVM lives for days (the stream), not one run."""
    builder = (
        SparkSession.builder.appName(app_name)
        .config("spark.hadoop.fs.s3a.endpoint", s3.endpoint)
        .config("spark.hadoop.fs.s3a.endpoint.region", s3.region)
        .config("spark.hadoop.fs.s3a.connection.ssl.enabled", str(s3.uses_ssl).lower())
    )
    if long_running:
        builder = builder.config(S3A_INPUT_STREAM, LONG_RUNNING_INPUT_STREAM)
    return builder


@contextmanager
def spark_session(
    app_name: str, s3: S3Settings, long_running: bool = False
) -> Iterator[SparkSession]:
    spark = session_builder(app_name, s3, long_running).getOrCreate()
    try:
        yield spark
    finally:
        spark.stop()


ADAPTIVE_EXECUTION = "spark.sql.adaptive.enabled"


@contextmanager
def adaptive_execution(spark: SparkSession, enabled: bool) -> Iterator[None]:
    """Spark's adaptive query execution on or off for what runs inside, as before afterwards.
    AQE submits every query stage as a Spark job of its own: a run whose shuffles have their
    partition counts set and whose small sides are broadcast by hint gains nothing from it but
    twice the jobs (docs/performance.md)."""
    before = spark.conf.get(ADAPTIVE_EXECUTION)
    spark.conf.set(ADAPTIVE_EXECUTION, str(enabled).lower())
    try:
        yield
    finally:
        if before is None:
            spark.conf.unset(ADAPTIVE_EXECUTION)
        else:
            spark.conf.set(ADAPTIVE_EXECUTION, before)
