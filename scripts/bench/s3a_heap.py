"""The driver heap that S3A keeps per Parquet file read, for one input stream type.

hadoop-aws 3.5.0's default input stream (``analytics``) keeps an entry for every distinct
object read until the filesystem closes (HADOOP-20058); this measures what that costs in one
JVM. Spark reads GROUPS folders of 1,000 one-row-group Parquet files each (written under PATH
by the first run), and the heap in use after a full GC is printed after each folder:

    scripts/submit.sh scripts/bench/s3a_heap.py s3a://curated-data-bucket/bench/s3a-heap 5
    scripts/submit.sh scripts/bench/s3a_heap.py s3a://curated-data-bucket/bench/s3a-heap 5 classic
"""

from __future__ import annotations

import sys
import time

from pyspark.sql import SparkSession

from jobs.adapters.session import S3A_INPUT_STREAM, S3A_INPUT_STREAM_KEY, session_builder
from jobs.config.settings import load_settings

FILES_PER_GROUP = 1_000


def heap_in_use_mb(spark: SparkSession) -> float:
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    for _ in range(2):
        jvm.java.lang.System.gc()
        time.sleep(0.5)
    runtime = jvm.java.lang.Runtime.getRuntime()
    return float(runtime.totalMemory() - runtime.freeMemory()) / 2**20


def written(spark: SparkSession, folder: str) -> bool:
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    marker = jvm.org.apache.hadoop.fs.Path(f"{folder}/_SUCCESS")
    hadoop_conf = spark.sparkContext._jsc.hadoopConfiguration()
    return bool(marker.getFileSystem(hadoop_conf).exists(marker))


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print("usage: s3a_heap.py PATH GROUPS [STREAM_TYPE]", file=sys.stderr)
        return 2
    path, groups = argv[0].rstrip("/"), int(argv[1])
    builder = session_builder("enrich-bench-s3a-heap", load_settings().s3)
    if len(argv) == 3:
        builder = builder.config(S3A_INPUT_STREAM, argv[2])
    spark = builder.getOrCreate()
    try:
        stream_type = spark.sparkContext._jsc.hadoopConfiguration().get(S3A_INPUT_STREAM_KEY)
        print(f"input stream: {stream_type or 'the default'}", flush=True)
        folders = [f"{path}/group-{n}" for n in range(groups + 1)]
        for folder in folders:
            if not written(spark, folder):  # written once, by a first run; listed, not read
                rows = FILES_PER_GROUP * 10
                spark.range(0, rows, 1, FILES_PER_GROUP).write.mode("overwrite").parquet(folder)
        spark.read.parquet(folders[0]).selectExpr("sum(id)").collect()  # warm-up: classes, plans
        start, started = heap_in_use_mb(spark), time.perf_counter()
        for n, folder in enumerate(folders[1:], start=1):
            spark.read.parquet(folder).selectExpr("sum(id)").collect()
            print(
                f"{n * FILES_PER_GROUP:,} files read: heap in use {heap_in_use_mb(spark):.1f} MB "
                f"(after the warm-up {start:.1f} MB), {time.perf_counter() - started:.1f} s",
                flush=True,
            )
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
