"""The same input through local mode and through a real standalone cluster (master + 2 workers
on 127.0.0.1, started by scripts/cluster.sh): identical curated and quarantine contents and
identical summaries. Both go through scripts/submit.sh, which ships the job code as
build/jobs.zip (--py-files) and the JARs with --jars."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from pyspark.sql import SparkSession

from jobs.adapters.object_store import s3_client
from jobs.config.postgres_url import target_from_env
from jobs.config.settings import S3Settings
from tests.stack import ROOT, ScratchBucket, delete_bucket, generate, submit

pytestmark = pytest.mark.integration

# Differ between two runs by design: ids and clocks of the ingest and of the run.
RUN_SPECIFIC = {"_ingest_id", "_ingested_at", "_record_id", "_run_id", "_enriched_at"}


def cluster(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "scripts" / "cluster.sh"), command],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.fixture(scope="module")
def master(test_db_env: dict[str, str]) -> Iterator[str]:
    was_running = "master running" in cluster("status", test_db_env).stderr
    started = cluster("up", test_db_env)
    assert started.returncode == 0, started.stderr
    yield "spark://127.0.0.1:7077"
    if not was_running:
        cluster("down", test_db_env)


def run_pipeline(
    env: dict[str, str], bucket: ScratchBucket, spark_master: str, source: Path
) -> set[tuple[object, ...]]:
    """Ingest and enrich ``source`` into ``bucket``; return the summary rows written to Postgres."""
    run_env = {**env, **bucket.env(), "SPARK_MASTER": spark_master}
    for args in (("ingest", str(source)), ("batch_enrich",)):
        result = submit(run_env, *args)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    with psycopg2.connect(**target_from_env(env).psycopg2_kwargs()) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT event_date, category, currency, transaction_count, total_amount "
            "FROM category_daily_summary"
        )
        return set(cur.fetchall())


def contents(spark: SparkSession, path: str) -> list[tuple[object, ...]]:
    df = spark.read.format("delta").load(path)
    columns = sorted(c for c in df.columns if c not in RUN_SPECIFIC)
    return sorted((tuple(row) for row in df.select(*columns).collect()), key=lambda row: repr(row))


def test_local_and_cluster_give_identical_outputs(
    spark: SparkSession,
    master: str,
    test_db_env: dict[str, str],
    s3: S3Settings,
    tmp_path: Path,
) -> None:
    source = tmp_path / "input.csv"
    generate(source, 2000, 777)
    buckets = [ScratchBucket(f"test-mode-{uuid.uuid4().hex[:12]}") for _ in range(2)]
    for bucket in buckets:
        s3_client(s3).create_bucket(Bucket=bucket.name)
    try:
        local_summary = run_pipeline(test_db_env, buckets[0], "local[2]", source)
        # Executors get an interpreter that does not exist: the run only passes if they need
        # nothing from the driver's virtualenv (every transform is a Spark SQL expression).
        no_python = {**test_db_env, "PYSPARK_PYTHON": "/nonexistent/executor-python"}
        cluster_summary = run_pipeline(no_python, buckets[1], master, source)
        assert cluster_summary == local_summary
        assert len(local_summary) > 10
        for table in ("curated", "quarantine"):
            local_rows = contents(spark, getattr(buckets[0].tables, table))
            cluster_rows = contents(spark, getattr(buckets[1].tables, table))
            assert cluster_rows == local_rows, f"{table} differs between local and cluster"
            assert local_rows
    finally:
        for bucket in buckets:
            delete_bucket(s3, bucket.name)
