"""Guarded table maintenance (jobs/runs/maintain.py) on real MinIO, PostgreSQL and Delta tables,
from a copy of the fault suite's state S0: OPTIMIZE and VACUUM change no result of any later
run, the number of files drops, and a retention shorter than a backup needs is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from jobs import maintain as maintain_job
from jobs.adapters.object_store import split_path
from jobs.config.postgres_url import target_from_env
from jobs.config.settings import load_settings
from jobs.core.errors import ConfigError
from jobs.runs import backup, maintain
from tests.harness import (
    Ground,
    PipelineCopy,
    config_with,
    data_objects,
    read_outputs,
    run_batch_here,
    runs,
)

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def maintain_here(spark: SparkSession, env: dict[str, str], *args: str) -> maintain.MaintainResult:
    """jobs/maintain.py's ``run`` with the arguments ``args``, on ``spark``."""
    return maintain.run(lambda: spark, load_settings(env), maintain_job.parse_args(list(args)))


def table_files(pipeline: PipelineCopy) -> set[str]:
    s3, tables = pipeline.settings.s3, pipeline.bucket.tables
    found = set()
    for path in (tables.curated, tables.quarantine):
        bucket, table = split_path(path)
        found |= data_objects(s3, bucket, table)
    return found


def test_maintenance_changes_no_result_and_drops_files(
    spark: SparkSession, ground: Ground, pipeline: PipelineCopy, tmp_path: Path
) -> None:
    # No time travel promised: only what the pipeline itself needs is kept.
    env = {**pipeline.env, "ENRICH_CONFIG": str(config_with(tmp_path, time_travel_hours=0))}

    first = maintain_here(spark, env)  # never maintained: the whole tables
    assert [t.partitions for t in first.tables] == [None, None]
    assert read_outputs(pipeline) == ground.s0_outputs
    assert "SUCCEEDED (incremental)" in run_batch_here(spark, env).output
    assert read_outputs(pipeline) == ground.clean_outputs

    before = table_files(pipeline)
    dry = maintain_here(spark, env, "--dry-run")
    curated = dry.tables[0]
    assert curated.partitions, "the dates the incremental run merged into"
    every_date = {row[0].isoformat() for row in ground.clean_outputs.summary}
    assert set(curated.partitions) <= every_date
    doomed = {split_path(path)[1] for t in dry.tables for path in t.deleted}
    assert doomed and doomed <= before  # the files the MERGE replaced, still there
    assert table_files(pipeline) == before

    done = maintain_here(spark, env)
    after = table_files(pipeline)
    assert not (after & doomed)
    assert len(after) < len(before)
    assert sum(t.files_removed for t in done.tables) > sum(t.files_added for t in done.tables)
    assert read_outputs(pipeline) == ground.clean_outputs
    record = runs(pipeline)[-1]
    assert (record["job_name"], record["status"]) == ("maintain", "succeeded")

    # Every kind of run after it gives what it gives without maintenance.
    assert "NOOP" in run_batch_here(spark, env).output
    dates = ("--from-date", "2026-10-01", "--to-date", "2026-12-31")
    assert "SUCCEEDED (range)" in run_batch_here(spark, env, *dates).output
    assert read_outputs(pipeline) == ground.clean_outputs
    assert "SUCCEEDED (full)" in run_batch_here(spark, env, "--full").output
    assert read_outputs(pipeline) == ground.clean_outputs

    # A backup of this point needs its versions' files: a shorter retention is refused, naming it.
    taken = backup.take(load_settings(env), target_from_env(env, role="reporting"))
    with pytest.raises(ConfigError, match=f"needed by backup {taken.manifest.backup_id}"):
        maintain_here(spark, env, "--retain-hours", "0")

    # A run that died (its start record, as kill -9 leaves it): its work must be completed first.
    with pipeline.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO pipeline.enrichment_runs (run_id, job_name, status, mode, curated_table) "
            "VALUES (gen_random_uuid(), 'batch_enrich', 'running', 'incremental', %s)",
            (pipeline.bucket.tables.curated,),
        )
    conn.close()
    with pytest.raises(ConfigError, match="did not finish; run make submit-batch first"):
        maintain_here(spark, env)
