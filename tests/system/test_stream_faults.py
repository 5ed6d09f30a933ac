"""The streaming job as a process (scripts/submit.sh stream_enrich, what `make submit-stream`
runs): killed with SIGKILL at several moments of its micro-batches and started again, it ends
in exactly the clean stream's outputs, with each landing appended to raw once; SIGTERM stops it
after the micro-batch in progress; a batch run is refused while it runs; PostgreSQL going
away under a micro-batch is waited out (up to [stream] postgres_outage_seconds), past that the
stream stops with one clear line and a restart completes the work."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from jobs.adapters.object_store import s3_client, split_path
from jobs.config.postgres_url import PostgresTarget
from jobs.config.settings import S3Settings
from tests.harness import (
    INGEST_COLUMNS,
    Job,
    Outputs,
    PipelineCopy,
    config_with,
    delta_log_versions,
    drop_pipeline,
    error_lines,
    land,
    new_pipeline,
    read_outputs,
    stack,
    stream_batches,
    stream_here,
)
from tests.stack import TEST_DB, generate, submit

pytestmark = [pytest.mark.integration, pytest.mark.faults]


class Landings:
    def __init__(self, work: Path) -> None:
        self.files = [work / f"landing{i}.csv" for i in (1, 2, 3)]
        for seed, file in enumerate(self.files, start=51):
            generate(file, 200, seed)
        self.config = config_with(work, max_files_per_trigger=1)

    def env(self, pipeline: PipelineCopy) -> dict[str, str]:
        return {**pipeline.env, "ENRICH_CONFIG": str(self.config)}


@pytest.fixture(scope="module")
def landings(tmp_path_factory: pytest.TempPathFactory) -> Landings:
    return Landings(tmp_path_factory.mktemp("stream-faults"))


@pytest.fixture(scope="module")
def clean_outputs(
    spark: SparkSession,
    admin_target: PostgresTarget,
    s3: S3Settings,
    test_db_env: dict[str, str],
    landings: Landings,
) -> Iterator[Outputs]:
    """The three landings streamed in-process with nothing going wrong."""
    clean = new_pipeline(admin_target, s3, test_db_env, TEST_DB)
    land(clean, *landings.files)
    stream_here(spark, landings.env(clean), "--available-now")
    yield read_outputs(clean, INGEST_COLUMNS)
    drop_pipeline(admin_target, s3, clean)


@pytest.fixture()
def landed(empty_pipeline: PipelineCopy, landings: Landings) -> PipelineCopy:
    land(empty_pipeline, *landings.files)
    return empty_pipeline


def raw_commits(pipeline: PipelineCopy, s3: S3Settings) -> int:
    return delta_log_versions(s3, pipeline.bucket.name, "financial_data_delta")


def checkpoint_key(pipeline: PipelineCopy, log: str, batch_id: int, temporary: bool = False) -> str:
    """The object key of the stream's checkpoint file ``log``/``batch_id`` (or of a temporary
    file Spark writes before renaming it to that name)."""
    _, prefix = split_path(pipeline.bucket.env()["STREAM_CHECKPOINT_PATH"])
    name = f".{batch_id}.{uuid.uuid4()}.tmp" if temporary else str(batch_id)
    return f"{prefix}/{log}/{name}"


def leave_torn_checkpoint_write(
    s3: S3Settings, pipeline: PipelineCopy, log: str, batch_id: int, body: bytes
) -> None:
    key = checkpoint_key(pipeline, log, batch_id, temporary=True)
    s3_client(s3).put_object(Bucket=pipeline.bucket.name, Key=key, Body=body)


def test_killed_at_each_moment_and_restarted_it_ends_as_the_clean_stream(
    landed: PipelineCopy,
    landings: Landings,
    clean_outputs: Outputs,
    s3: S3Settings,
    tmp_path: Path,
) -> None:
    env = landings.env(landed)
    # Each start replays micro-batch 0 and is killed one step further into it: after the raw
    # append, after the curated commit, after the PostgreSQL commit (before Spark's own
    # checkpoint commit). The next start finds batch 0 committed and is killed after
    # micro-batch 1's curated append (its ids are all new); the last does batches 1 and 2.
    for moment in ("stream-raw-appended", "curated-committed", "postgres-committed"):
        job = Job(env, ["stream_enrich", "--available-now"], tmp_path / moment, [moment])
        job.pause_at(moment)
        job.kill()
        assert raw_commits(landed, s3) == 1, f"killed at {moment}: batch 0 appended twice?"
    # What a kill during Spark's write of its commit of batch 0 leaves: Spark writes a
    # checkpoint file as a hidden temporary object and renames it, so the object store holds
    # the temporary (here cut short) and no commits/0.
    leave_torn_checkpoint_write(s3, landed, "commits", 0, b'v1\n{"nextBatchWa')
    appended = Job(env, ["stream_enrich", "--available-now"], tmp_path / "1", ["curated-committed"])
    appended.pause_at("curated-committed")
    appended.kill()
    # A kill inside the rename of offsets/1 (S3A copies, then deletes): both objects are there.
    offsets = checkpoint_key(landed, "offsets", 1)
    body = s3_client(s3).get_object(Bucket=landed.bucket.name, Key=offsets)["Body"].read()
    leave_torn_checkpoint_write(s3, landed, "offsets", 1, body)
    assert "micro-batch 0 was committed before a restart; its replay is skipped" in appended.output
    assert "appending to curated table" in appended.output, appended.output[-3000:]
    last = Job(env, ["stream_enrich", "--available-now"], tmp_path / "last")
    assert last.finish() == 0, last.output[-3000:]
    # The replay of micro-batch 1 finds all its rows in curated: it replaces them, doubling
    # nothing.
    assert "the table holds every transaction_id of the run" in last.output, last.output[-3000:]

    # The torn writes' leftovers were passed over: the commits of every batch are there.
    for batch_id in (0, 1, 2):
        s3_client(s3).head_object(
            Bucket=landed.bucket.name, Key=checkpoint_key(landed, "commits", batch_id)
        )
    assert raw_commits(landed, s3) == 3  # one append per landing, whatever was replayed
    assert [b["batch_id"] for b in stream_batches(landed)] == [0, 1, 2]
    assert read_outputs(landed, INGEST_COLUMNS) == clean_outputs


def test_sigterm_stops_after_the_micro_batch_and_batch_is_refused_meanwhile(
    landed: PipelineCopy, landings: Landings, tmp_path: Path
) -> None:
    env = landings.env(landed)
    job = Job(env, ["stream_enrich", "--trigger", "1s"], tmp_path, ["curated-committed"])
    job.pause_at("curated-committed")

    refused = submit(landed.env, "batch_enrich")
    assert refused.returncode == 5
    [line] = error_lines(refused.stdout + refused.stderr)
    assert "another run is writing" in line and "stream_enrich" in line

    os.killpg(job.process.pid, signal.SIGTERM)  # what Ctrl-C or `kill` of the group sends
    job.wait_for("SIGTERM received: stopping after the micro-batch in progress")
    job.release("curated-committed")
    assert job.finish(timeout=300) == 0, job.output[-3000:]
    assert "Stream stopped (a stop signal) after 1 micro-batch(es)" in job.output
    [record] = stream_batches(landed)
    assert record["batch_id"] == 0 and record["rows_ingested"] > 0


@pytest.mark.exclusive
def test_postgres_away_a_micro_batch_waits_for_it_and_past_the_limit_the_stream_stops(
    landed: PipelineCopy, landings: Landings, clean_outputs: Outputs, tmp_path: Path
) -> None:
    impatient = {
        **landed.env,
        "ENRICH_CONFIG": str(
            config_with(tmp_path, max_files_per_trigger=1, postgres_outage_seconds=2)
        ),
    }
    job = Job(
        impatient, ["stream_enrich", "--available-now"], tmp_path / "a", ["stream-raw-appended"]
    )
    job.pause_at("stream-raw-appended")
    stack("postgres-down")
    try:
        job.release("stream-raw-appended")
        assert job.finish(timeout=300) == 4, job.output[-3000:]
    finally:
        stack("postgres-up")
    [line] = error_lines(job.output)
    assert "PostgreSQL" in line and "was unreachable for" in line and "start it again" in line

    # With the default limit (300 s), an outage under a micro-batch is waited out.
    env = landings.env(landed)
    job = Job(env, ["stream_enrich", "--available-now"], tmp_path / "b", ["curated-committed"])
    job.pause_at("curated-committed")
    stack("postgres-down")
    try:
        job.release("curated-committed")
        job.wait_for("micro-batch 0 waits for it")
    finally:
        stack("postgres-up")
    assert job.finish(timeout=300) == 0, job.output[-3000:]
    assert "PostgreSQL is back: micro-batch 0 runs again" in job.output
    assert read_outputs(landed, INGEST_COLUMNS) == clean_outputs
