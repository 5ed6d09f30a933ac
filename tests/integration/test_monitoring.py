"""Monitoring on real servers: `scripts/monitor.sh up` (make monitor-up) starts Prometheus, a
Pushgateway and the PostgreSQL exporter; after a run, Prometheus's HTTP API returns the run's
series and PostgreSQL's, and the exporter reads server statistics as the monitoring role only."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import psycopg2
import pytest
from pyspark.sql import SparkSession

from jobs.config.postgres_url import target_from_env
from tests.harness import PipelineCopy, run_batch_here
from tests.stack import ROOT

pytestmark = pytest.mark.integration


def monitor(action: str) -> None:
    done = subprocess.run(
        ["scripts/monitor.sh", action], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def prometheus() -> Iterator[str]:
    monitor("up")
    yield os.environ["PROMETHEUS_URL"]
    monitor("down")


def query(prometheus: str, promql: str, timeout: float = 30) -> list[dict[str, Any]]:
    """The query's result once it has one (Prometheus scrapes every 5 s), or []."""
    deadline = time.monotonic() + timeout
    url = f"{prometheus}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    while True:
        with urllib.request.urlopen(url, timeout=5) as response:
            result: list[dict[str, Any]] = json.load(response)["data"]["result"]
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


def test_after_a_run_prometheus_has_its_series_and_postgresqls(
    spark: SparkSession, prometheus: str, pipeline: PipelineCopy
) -> None:
    run = run_batch_here(spark, {**pipeline.env, "PUSHGATEWAY_URL": os.environ["PUSHGATEWAY_URL"]})
    counts = run.result.counts
    assert counts is not None
    table = pipeline.bucket.tables.curated
    labels = f'pipeline="batch_enrich", table="{table}"'
    for name, expected in (
        ("enrich_run_success", 1),
        ("enrich_run_rows_read", counts.rows_read),
        ("enrich_run_rows_curated", counts.rows_curated),
        ("enrich_run_rows_quarantined", counts.rows_quarantined),
        ("enrich_run_rows_unmatched", counts.rows_unmatched),
        ("enrich_raw_lag_versions", 0),
    ):
        [series] = query(prometheus, f"{name}{{{labels}}}")
        assert float(series["value"][1]) == expected, name
    [since] = query(prometheus, f"time() - enrich_run_last_success_timestamp_seconds{{{labels}}}")
    assert 0 <= float(since["value"][1]) < 120

    [up] = query(prometheus, "pg_up")
    assert up["value"][1] == "1"
    assert query(prometheus, f'pg_stat_database_numbackends{{datname="{pipeline.dbname}"}}')
    assert query(prometheus, 'ALERTS{alertname="PostgresDown"}', timeout=0) == []

    # The exporter is logged in as the monitoring role, which reads no table of the pipeline.
    admin = psycopg2.connect(**target_from_env(pipeline.env, role="admin").psycopg2_kwargs())
    with admin, admin.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = 'enrich_monitoring'")
        row = cur.fetchone()
        assert row is not None and row[0] >= 1
    admin.close()
    monitoring = psycopg2.connect(
        **target_from_env(pipeline.env, role="monitoring").psycopg2_kwargs()
    )
    with monitoring.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege):
        cur.execute("SELECT count(*) FROM reference.merchant_lookup")
    monitoring.close()
