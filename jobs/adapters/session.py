"""The SparkSession every job opens.

Static settings (Delta extension and catalog, S3A path style, UTC) come from
conf/spark-defaults.conf via SPARK_CONF_DIR. Here only the endpoint is added. S3 credentials
are never put in the Spark configuration: S3A reads them from the process environment
(EnvironmentVariableCredentialsProvider), so they appear in no command line, UI page or log.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress

from pyspark import SparkContext
from pyspark.sql import SparkSession

from jobs.adapters.jvm_errors import JvmFailure, describe_failure, from_jvm
from jobs.config.settings import S3Settings

log = logging.getLogger("enrich.session")

# hadoop-aws 3.5.0 reads objects through the analytics stream by default (HADOOP-19559). For
# every distinct Parquet object it reads, that stream keeps an entry until the filesystem is
# closed (HADOOP-20058), and Spark's filesystems live as long as the JVM: measured here, 27 KB
# of heap per Parquet file read, growing without end (4,000 files: +107 MB; classic +7 MB). A
# batch run's JVM ends within minutes and reads a narrow scan faster through it; the stream's
# lives for days, so it reads through the classic stream (docs/performance.md).
S3A_INPUT_STREAM_KEY = "fs.s3a.input.stream.type"  # Hadoop's name; Spark's has the prefix
S3A_INPUT_STREAM = f"spark.hadoop.{S3A_INPUT_STREAM_KEY}"
LONG_RUNNING_INPUT_STREAM = "classic"


# A run that reads at most this many raw rows has its driver JVM compile with the JIT's first
# tier (C1) only. On 2 cores the optimising tier (C2) spends seconds of CPU on code a small run
# calls a few thousand times, beside the tasks; a large run's loops need it. Measured on the
# 10M-row bench tables, whole process, tiered against first tier only, alternated
# (docs/performance.md): 1,000 new rows 17.5 -> 13.1 s (median of 4 each); 100,000 rows
# 21.9, 20.8 -> 16.9, 18.3 s; 300,000 rows 30.4, 25.0 -> 20.7, 24.4 s; 15,222 corrections
# (a MERGE into every date) 70.3, 60.7 -> 46.1, 54.3 s; but 1M rows 31.0 -> 34.8 s. The code
# cache stays at the tiered JIT's 240 MB (C1 alone reserves 48 MB, which a long session fills).
FIRST_TIER_JIT_MAX_ROWS = 300_000
FIRST_TIER_JIT = ("-XX:TieredStopAtLevel=1", "-XX:ReservedCodeCacheSize=240m")
# How the launcher (spark-class) passes JVM options to a local-mode driver; scripts/submit.sh
# sets the project's and ENRICH_DRIVER_JVM_OPTS there.
SUBMIT_OPTS = "SPARK_SUBMIT_OPTS"
# Set when this Python runs under a JVM that spark-submit started (other masters, the stream).
GATEWAY_PORT = "PYSPARK_GATEWAY_PORT"


def driver_jvm_options(env: Mapping[str, str], raw_rows: int | None) -> str | None:
    """The ``SPARK_SUBMIT_OPTS`` the driver JVM of a run reading ``raw_rows`` raw rows (None:
    not known) is to start with, when they differ from ``env``'s: the JIT's first tier only
    for a small run (``FIRST_TIER_JIT_MAX_ROWS``), put before the options already there so
    that a JIT setting of the user's (``ENRICH_DRIVER_JVM_OPTS``) wins. None: leave them, as
    for a large or unknown run, a JVM that is already running, or a JIT chosen by the user."""
    if raw_rows is None or raw_rows > FIRST_TIER_JIT_MAX_ROWS or GATEWAY_PORT in env:
        return None
    current = env.get(SUBMIT_OPTS, "")
    if "-XX:TieredStopAtLevel=" in current:
        return None
    return " ".join([*FIRST_TIER_JIT, current]).strip()


def size_driver_jvm(raw_rows: int | None) -> bool:
    """Before the session is opened: start this process's driver JVM as a run of ``raw_rows``
    raw rows wants it (``driver_jvm_options``); whether that changed its options. No effect
    once a JVM runs."""
    if SparkContext._active_spark_context is not None:
        return False
    options = driver_jvm_options(os.environ, raw_rows)
    if options is None:
        return False
    os.environ[SUBMIT_OPTS] = options
    return True


def jit_first_tier_only(spark: SparkSession) -> bool:
    """Whether the driver JVM runs with the JIT's first tier only, from its own arguments."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    arguments = jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments()
    levels = [str(a) for a in arguments if str(a).startswith("-XX:TieredStopAtLevel=")]
    return bool(levels) and levels[-1] == "-XX:TieredStopAtLevel=1"  # the JVM takes the last


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
    except Exception as error:
        if not from_jvm(error):
            raise
        # Described now: once the JVM has ended, a py4j exception cannot be turned into text.
        failure = JvmFailure(describe_failure(error))
        raise failure.with_traceback(error.__traceback__) from None
    finally:
        try:
            spark.stop()
        finally:
            end_driver_jvm()


# A stopped driver JVM's exit (shutdown hooks, freeing its heap) takes 1.5-2 s on 2 cores, and
# minutes when it writes the class archive (make setup). Past this, a run ends without it.
JVM_EXIT_TIMEOUT_SECONDS = 300.0


def end_driver_jvm(timeout: float = JVM_EXIT_TIMEOUT_SECONDS) -> bool:
    """After the session is stopped: end the driver JVM this Python started (local mode) and
    wait for it to exit, so that a run is over when its process is, with no JVM still shutting
    down beside the next command (or outside the time a caller measures). The JVM exits when
    its standard input closes. Whether a JVM of this process's own was waited for; a JVM that
    started this Python (spark-submit: other masters, the stream) waits for it instead."""
    gateway = SparkContext._gateway
    process: subprocess.Popen[bytes] | None = getattr(gateway, "proc", None)
    if gateway is None or process is None:
        return False
    gateway.shutdown()  # py4j's own close: it raises nothing when the JVM is gone already
    SparkContext._gateway = None
    SparkContext._jvm = None
    if process.stdin is not None:
        with suppress(OSError):
            process.stdin.close()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        log.warning(
            "the driver JVM (pid %d) has not exited %.0f s after its session", process.pid, timeout
        )
        return False
    return True


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
