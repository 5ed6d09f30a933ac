"""`make bench` at a tiny size: every measurement is taken, the peer computes what the job
computes, and the results file and chart are written. Not a speed test: CI checks the harness
works; the numbers come from a full-size run (README, "Performance")."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, QueryBuilder

from jobs.adapters.object_store import delta_storage_options
from jobs.config.postgres_url import env_for_database
from jobs.config.settings import s3_from_env
from scripts.bench.run import summary_rows
from tests.stack import ROOT, ScratchBucket, submit_env

pytestmark = pytest.mark.integration


def test_the_bench_measures_everything_on_a_tiny_size(
    test_db_env: dict[str, str], bucket: ScratchBucket, tmp_path: Path
) -> None:
    out = tmp_path / "bench"
    result = subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "python"), "-m", "scripts.bench.run",
            "--rows", "3000", "--merchants", "12000", "--sizes", "1000,3000",
            "--course-rows", "2000", "--summary-rows", "20000", "--loop-rows", "500",
            "--stream-files", "3", "--stream-file-rows", "20", "--small-runs", "2",
            "--database", "enrichment_bench_test",
            "--raw-location", bucket.path("bench-raw"),
            "--output-location", bucket.path("bench-out"),
            "--out", str(out),
        ],
        # Two sizes (the bench wants three) keep the test short: the fit works on two.
        env={**submit_env(test_db_env), "BENCH_ALLOW_FEW_SIZES": "1"}, cwd=ROOT, capture_output=True, text=True, timeout=1200, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    report = json.loads((out / "latest.json").read_text())
    results = report["results"]
    assert set(results) == {
        "job", "floor", "peer", "course", "spark_start", "noop", "one_percent", "small_run",
        "corrections", "plain_join", "stream_first", "stream_latency", "stream_burst", "summary_copy",
        "summary_row_by_row",
    }  # fmt: skip
    assert [run["rows"] for run in report["job_full_runs"]] == [1000, 3000]
    assert results["peer"]["detail"]["same_counts_and_summary_as_job"] is True
    assert results["peer"]["detail"]["rows_read"] == 3000
    assert results["noop"]["detail"]["status"] == "noop"
    assert results["one_percent"]["detail"]["rows_read"] == 30
    assert results["course"]["rows"] == 2000
    assert results["job"]["peak_rss_mb"] > 100  # a JVM and a Python driver were measured
    assert report["fit"]["seconds_per_million"] is not None
    assert [run["rows"] for run in report["floor_runs"]] == [1000, 3000]
    assert report["floor_fit"]["seconds_per_million"] is not None
    small = results["small_run"]
    assert small["detail"]["rows_read"] == 30  # 1,000 new rows, at most 1%
    assert len(small["detail"]["runs"]) == 2  # each after its own ingest; the median reported
    assert abs(small["seconds"] - max(run["seconds"] for run in small["detail"]["runs"])) < 0.06
    corrections = results["corrections"]
    assert corrections["rows"] == 3 and corrections["detail"]["rows_replaced"] == 3
    rewrite = corrections["detail"]["curated_rewrite"]
    # curated has deletion vectors: the replaced rows are marked, no file is written again
    assert rewrite["operation"] == "MERGE" and rewrite["deletion_vectors_added"] > 0
    assert rewrite["bytes_removed"] == 0 and rewrite["rewritten_share"] == 0
    assert 0 < rewrite["written_share"] <= 1
    # CPU seconds: the run's process tree and the local stack's servers
    assert results["job"]["cpu_seconds"]["job"] > 1
    assert 0 < results["job"]["cpu_seconds"]["job_system"] < results["job"]["cpu_seconds"]["job"]
    assert {"minio", "postgres"} <= set(results["job"]["cpu_seconds"])
    stream = results["stream_latency"]["detail"]
    assert (
        stream["files"] == 3 and 0 < stream["latency_p50_seconds"] <= stream["latency_p95_seconds"]
    )
    assert results["stream_first"]["seconds"] > 0  # a file landed before the measured ones
    assert results["stream_burst"]["rows"] == 30 and stream["burst_micro_batches"] >= 1
    assert results["plain_join"]["rows"] == 1000  # at the first size, next to the job's run
    assert len(report["targets"]) == 15
    # Spark jobs by phase, from each job run's event log
    full_jobs = results["job"]["detail"]["spark"]
    assert full_jobs["spark_jobs"] == sum(p["spark_jobs"] for p in full_jobs["phases"].values())
    assert {"classify", "curated", "quarantine", "summary"} <= set(full_jobs["phases"])
    # The headline run (the largest size) was recorded, and its samples sorted into parts.
    profile = full_jobs["cpu_profile"]
    assert profile["samples"] > 0
    assert sum(p["samples"] for p in profile["parts"]) == profile["samples"]
    assert "Parquet encoding (write)" in {p["part"] for p in profile["parts"]}
    assert "CPU on Java threads:" in result.stderr  # the progress lines
    incremental = results["one_percent"]["detail"]["spark"]
    assert incremental["spark_jobs"] > 0 and "curated" in incremental["phases"]
    assert "Spark jobs per incremental run" in result.stdout
    assert (out / "latest.png").read_bytes()[:4] == b"\x89PNG"
    assert "Targets (2 cores)" in result.stdout and "job: full run" in result.stdout
    # The summary-write measure wrote synthetic rows into the bench database's summary table and
    # put the runs' rows back: the bench's tables are left in step for a run after the bench.
    bench_db = env_for_database(test_db_env, "enrichment_bench_test")
    assert summary_rows(bench_db) == curated_group_by(test_db_env, bucket.path("bench-out"))


def curated_group_by(env: dict[str, str], output_location: str) -> set[tuple[object, ...]]:
    """The GROUP BY of the bench's curated table, read by delta-rs (deletion vectors applied)."""
    table = DeltaTable(
        f"{output_location}/curated", storage_options=delta_storage_options(s3_from_env(env))
    )
    query = (
        "SELECT event_date, enriched_category, currency, count(*), "
        "CAST(sum(amount) AS DECIMAL(20, 2)) FROM t GROUP BY 1, 2, 3"
    )
    result = pa.table(QueryBuilder().register("t", table).execute(query).read_all())
    return {tuple(row.values()) for row in result.to_pylist()}
