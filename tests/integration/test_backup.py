"""Backup and restore across both stores (jobs/runs/backup.py, jobs/runs/restore.py), on real
PostgreSQL, MinIO and Delta tables, from a copy of the fault suite's state S0 (batch 1 processed,
batch 2 ingested): the restore drill, a restore stopped part-way, and every refusal."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession

from jobs.adapters import writer_lock
from jobs.adapters.object_store import delta_storage_options, s3_client, split_path
from jobs.config.postgres_url import PostgresTarget, target_from_env
from jobs.config.settings import BackupSettings, Settings
from jobs.core.errors import BackupError, ConcurrentRunError, ConfigError
from jobs.runs import backup, restore
from jobs.runs.restore import RestoreOptions
from tests.harness import (
    Ground,
    PipelineCopy,
    read_outputs,
    reclassify_merchant,
    run_batch_here,
    runs,
)

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def reader(pipeline: PipelineCopy) -> PostgresTarget:
    return target_from_env(pipeline.env, role="reporting")


def admin(pipeline: PipelineCopy) -> PostgresTarget:
    return target_from_env(pipeline.env, role="admin")


def restore_here(
    spark: SparkSession, pipeline: PipelineCopy, backup_id: str, factory: Any = None
) -> restore.RestoreResult:
    return restore.run(
        factory or (lambda: spark), pipeline.settings, admin(pipeline), RestoreOptions(backup_id)
    )


def reference_rows(pipeline: PipelineCopy) -> list[tuple[Any, ...]]:
    with pipeline.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT merchant_id, merchant_name, category, valid_from, valid_to "
            "FROM reference.merchant_lookup_history ORDER BY 1, 4 NULLS FIRST"
        )
        found: list[tuple[Any, ...]] = cur.fetchall()
    conn.close()
    return found


def test_the_restore_drill_back_to_run_1_then_forward_to_run_2(
    spark: SparkSession, ground: Ground, pipeline: PipelineCopy
) -> None:
    reference_before = reference_rows(pipeline)
    taken = backup.take(pipeline.settings, reader(pipeline))
    manifest = taken.manifest
    [synced] = [r for r in runs(pipeline) if r["status"] == "succeeded"]
    assert manifest.run_id == str(synced["run_id"])
    assert manifest.curated.version == synced["curated_version_written"]
    assert manifest.raw.version == synced["raw_version_to"]
    assert [m.backup_id for m in backup.manifests(pipeline.settings)] == [manifest.backup_id]

    # Run 2 (the fault suite's clean run), then a reference change: the restore undoes both.
    assert "SUCCEEDED (incremental)" in run_batch_here(spark, pipeline.env).output
    assert read_outputs(pipeline) == ground.clean_outputs
    reclassify_merchant(pipeline, "MER-XYZ", "Restored-Away")
    assert reference_rows(pipeline) != reference_before

    # A restore stopped after PostgreSQL was restored, before the Delta tables were: every job
    # refuses until it is run again.
    def killed() -> SparkSession:
        raise KeyboardInterrupt("stopped part-way")

    with pytest.raises(KeyboardInterrupt):
        restore_here(spark, pipeline, manifest.backup_id, killed)
    with pytest.raises(ConfigError, match=f"make restore BACKUP={manifest.backup_id} again"):
        run_batch_here(spark, pipeline.env)

    done = restore_here(spark, pipeline, manifest.backup_id)
    assert read_outputs(pipeline) == ground.s0_outputs
    assert reference_rows(pipeline) == reference_before
    assert done.summary_rows == len(ground.s0_outputs.summary)
    assert done.curated_rows == len(ground.s0_outputs.curated)
    record = runs(pipeline)[-1]
    assert (record["job_name"], record["status"], record["error"]) == ("restore", "succeeded", None)
    assert record["raw_version_to"] == manifest.raw.version
    assert manifest.curated.version is not None and done.curated_version is not None
    assert record["curated_version_written"] == done.curated_version > manifest.curated.version

    # The next run takes the raw data ingested after the backup again: exactly run 2's state.
    after = run_batch_here(spark, pipeline.env)
    assert "SUCCEEDED (incremental)" in after.output
    assert "recovering" not in after.output
    assert read_outputs(pipeline) == ground.clean_outputs


def test_refusals_name_the_problem_and_change_nothing(
    spark: SparkSession, pipeline: PipelineCopy, empty_pipeline: PipelineCopy
) -> None:
    with pytest.raises(BackupError, match=r"no successful run of .* yet"):
        backup.take(empty_pipeline.settings, reader(empty_pipeline))

    # Retention: only the newest `keep` stay.
    kept_two: Settings = dataclasses.replace(
        pipeline.settings,
        backup=BackupSettings(pipeline.settings.backup.location, keep=2),
    )
    start = datetime(2026, 12, 1, tzinfo=UTC)
    ids = [
        backup.take(kept_two, reader(pipeline), start + timedelta(minutes=i)).manifest.backup_id
        for i in range(3)
    ]
    assert [m.backup_id for m in backup.manifests(pipeline.settings)] == ids[1:]

    before = (read_outputs(pipeline), runs(pipeline))
    with pytest.raises(BackupError, match="is not a backup id"):
        restore_here(spark, pipeline, "yesterday")
    with pytest.raises(BackupError, match=f"no backup {ids[0]} in "):
        restore_here(spark, pipeline, ids[0])

    settings = pipeline.settings
    with (
        writer_lock.hold(
            settings.postgres,
            [settings.tables.curated, settings.tables.quarantine],
            "a test run",
            0,
        ),
        pytest.raises(ConcurrentRunError, match="a test run"),
    ):
        restore_here(spark, pipeline, ids[-1])

    # A data file of the backed-up curated version removed, as VACUUM would.
    curated = DeltaTable(
        settings.tables.curated, storage_options=delta_storage_options(settings.s3)
    )
    bucket, victim = split_path(sorted(curated.file_uris())[0])
    s3_client(settings.s3).delete_object(Bucket=bucket, Key=victim)
    with pytest.raises(BackupError, match=r"1 data file\(s\) of version \d+ are gone"):
        restore_here(spark, pipeline, ids[-1])
    with pytest.raises(BackupError, match="cannot be restored"):
        backup.take(pipeline.settings, reader(pipeline))
    assert runs(pipeline) == before[1]
    with pipeline.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pipeline.category_daily_summary")
        assert cur.fetchone() == (len(before[0].summary),)
    conn.close()
