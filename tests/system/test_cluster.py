"""The same input through local mode and through a real standalone cluster (master + 2 workers
on 127.0.0.1, started by scripts/cluster.sh): identical curated and quarantine contents and
identical summaries. The cluster side goes through scripts/submit.sh, which ships the job code
as build/jobs.zip (--py-files) and the JARs with --jars; the local side runs the same jobs
in-process on the test session (local mode through submit.sh is tests/system/test_end_to_end.py's)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from jobs.config.postgres_url import PostgresTarget
from jobs.config.settings import S3Settings
from tests.harness import (
    RUN_COLUMNS,
    PipelineCopy,
    drop_pipeline,
    ingest_here,
    new_pipeline,
    read_outputs,
    run_batch_here,
    table_rows,
)
from tests.stack import ROOT, TEST_DB, generate, submit

pytestmark = pytest.mark.integration

# Differ between two runs by design: ids and clocks of the ingest and of the run.
RUN_SPECIFIC = RUN_COLUMNS | {"_ingest_id", "_ingested_at", "_record_id"}


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


@pytest.fixture()
def two_pipelines(
    admin_target: PostgresTarget, s3: S3Settings, test_db_env: dict[str, str]
) -> Iterator[tuple[PipelineCopy, PipelineCopy]]:
    """Two empty pipelines, each with a bucket and a seeded database of its own."""
    pipelines = tuple(new_pipeline(admin_target, s3, test_db_env, TEST_DB) for _ in range(2))
    yield pipelines[0], pipelines[1]
    for pipeline in pipelines:
        drop_pipeline(admin_target, s3, pipeline)


def test_local_and_cluster_give_identical_outputs(
    spark: SparkSession,
    master: str,
    two_pipelines: tuple[PipelineCopy, PipelineCopy],
    s3: S3Settings,
    tmp_path: Path,
) -> None:
    source = tmp_path / "input.csv"
    generate(source, 2000, 777)
    local, on_cluster = two_pipelines
    ingest_here(spark, local.env, str(source))
    assert run_batch_here(spark, local.env).result.status == "succeeded"

    # Executors get an interpreter that does not exist: the run only passes if they need
    # nothing from the driver's virtualenv (every transform is a Spark SQL expression).
    cluster_env = {
        **on_cluster.env,
        "SPARK_MASTER": master,
        "PYSPARK_PYTHON": "/nonexistent/executor-python",
    }
    for args in (("ingest", str(source)), ("batch_enrich",)):
        result = submit(cluster_env, *args)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    local_summary = read_outputs(local).summary
    assert read_outputs(on_cluster).summary == local_summary
    assert len(local_summary) > 10
    for table in ("curated", "quarantine"):
        local_rows = table_rows(s3, getattr(local.bucket.tables, table), RUN_SPECIFIC)
        cluster_rows = table_rows(s3, getattr(on_cluster.bucket.tables, table), RUN_SPECIFIC)
        assert cluster_rows == local_rows, f"{table} differs between local and cluster"
        assert local_rows
