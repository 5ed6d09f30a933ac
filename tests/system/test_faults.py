"""The fault suite's cases that need a process of their own: whatever happens to a run, the
outputs end up exactly as after one clean run.

Every test starts from a copy of the same state S0 (batch 1 processed, batch 2 ingested but not
yet processed; batch 2 repeats some of batch 1's transaction ids with corrected values; built
once, tests/harness.py), does its damage to a batch run started with spark-submit (kill -9 at a
failpoint, a server stopped, task attempts failing), checks that the exit was non-zero with one
clear message (or that the process was killed), that the committed outputs are still readable
and are either S0's or the clean run's, and then that the next run converges to exactly the
clean run's curated rows, quarantine rows and summary rows (full contents; only the run id and
time columns differ). That next run is called in-process: recovering needs no process of its
own. The cases that need none at all (bad input, drift, ranges, wrong credentials) are in
tests/integration/test_run_cases.py.

`make test` runs them all with the other tests; `make test-faults` runs the whole fault suite
(these and those), `pytest -m faults_smoke` three of them, a quick check of the harness.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from jobs.adapters.object_store import table_version
from jobs.core.errors import ConcurrentRunError
from tests.harness import (
    INGEST_COLUMNS,
    Ground,
    Job,
    PipelineCopy,
    assert_between_s0_and_clean,
    assert_converges,
    config_with,
    copy_pipeline,
    curated_summary,
    data_objects,
    delta_log_versions,
    drop_pipeline,
    error_lines,
    ingest_here,
    read_outputs,
    reclassify_merchant,
    run_batch_here,
    runs,
    stack,
)
from tests.stack import generate

pytestmark = [pytest.mark.integration, pytest.mark.faults]

CURATED = "financial_data_curated_enriched"
QUARANTINE = "financial_data_quarantine"


# --------------------------------------------------------------------------------------------
# kill -9 of the whole driver (spark-submit JVM + Python) at a named moment
# --------------------------------------------------------------------------------------------

KILL_POINTS = [
    "run-started",
    "batch-classified",
    "before-curated-commit",
    pytest.param("curated-committed", marks=pytest.mark.faults_smoke),
    "quarantine-committed",
    "summary-computed",
    "postgres-summary-written",
    "postgres-committed",
]

QUARANTINE_COMMITTED = {"quarantine-committed", "summary-computed", "postgres-summary-written"}


@pytest.mark.parametrize("point", KILL_POINTS)
def test_kill_9_at(spark: SparkSession, ground: Ground, pipeline: PipelineCopy, point: str) -> None:
    job = Job(pipeline.env, ["batch_enrich"], ground.work / f"fp-{point}", [point])
    job.pause_at(point)
    job.kill()
    assert job.process.returncode == -9
    if point == "postgres-committed":
        # The run had finished its work: the next one has nothing to do.
        assert_between_s0_and_clean(ground, pipeline)
        assert read_outputs(pipeline) == ground.clean_outputs
        after = run_batch_here(spark, pipeline.env)
        assert after.result.status == "noop"
        return
    assert_converges(spark, ground, pipeline)
    if point in QUARANTINE_COMMITTED:
        # The killed run appended its quarantine rows; the recovery must not append them again
        # (its insert-only MERGE finds them there and may commit nothing at all).
        s0_version = table_version(ground.s3, ground.s0.bucket.tables.quarantine)
        assert s0_version is not None
        history = DeltaTable.forPath(spark, pipeline.bucket.tables.quarantine).history()
        since_s0 = [r["operation"] for r in history.collect() if r["version"] > s0_version]
        assert since_s0.count("WRITE") == 1 and set(since_s0) <= {"WRITE", "MERGE"}, since_s0
    killed, recovery = runs(pipeline)[-2:]
    assert killed["status"] == "crashed" and "driver died" in killed["error"]
    assert recovery["status"] == "succeeded"
    assert str(killed["run_id"]) in [str(r) for r in recovery["recovered_runs"]]


@pytest.mark.parametrize(
    ("paused_at", "table"),
    [("before-curated-commit", CURATED), ("curated-committed", QUARANTINE)],
    ids=["curated", "quarantine"],
)
def test_kill_9_while_a_delta_commit_is_being_written(
    spark: SparkSession, ground: Ground, pipeline: PipelineCopy, paused_at: str, table: str
) -> None:
    """Killed after the commit's data files are in the store but before its log entry."""
    bucket = pipeline.bucket.name
    job = Job(pipeline.env, ["batch_enrich"], ground.work / f"fp-w-{table}", [paused_at])
    job.pause_at(paused_at)
    files_before = data_objects(ground.s3, bucket, table)
    log_before = delta_log_versions(ground.s3, bucket, table)
    job.release(paused_at)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if data_objects(ground.s3, bucket, table) - files_before:
            job.kill()
            break
        time.sleep(0.01)
    else:
        raise AssertionError("the run wrote no data file:\n" + job.output[-4000:])
    assert delta_log_versions(ground.s3, bucket, table) == log_before, (
        "the commit finished before the kill landed"
    )
    assert data_objects(ground.s3, bucket, table) - files_before  # orphan files, never committed
    assert_converges(spark, ground, pipeline)


def test_kill_9_of_the_jvm_alone_ends_the_python_driver_too(
    spark: SparkSession, ground: Ground, pipeline: PipelineCopy
) -> None:
    job = Job(pipeline.env, ["batch_enrich"], ground.work / "fp-jvm", ["batch-classified"])
    job.pause_at("batch-classified")
    job.kill_jvm_only()
    job.release("batch-classified")
    code = job.finish(timeout=120)
    assert code != 0
    assert_converges(spark, ground, pipeline)


def test_kill_9_during_the_recovery_run(
    spark: SparkSession, ground: Ground, pipeline: PipelineCopy
) -> None:
    first = Job(pipeline.env, ["batch_enrich"], ground.work / "fp-r1", ["curated-committed"])
    first.pause_at("curated-committed")
    first.kill()
    second = Job(
        pipeline.env, ["batch_enrich"], ground.work / "fp-r2", ["postgres-summary-written"]
    )
    second.pause_at("postgres-summary-written")
    assert "recovering: run" in second.output
    second.kill()
    assert_converges(spark, ground, pipeline)
    records = runs(pipeline)
    assert [r["status"] for r in records[-3:]] == ["crashed", "crashed", "succeeded"]
    assert len(records[-1]["recovered_runs"]) == 2


def test_kill_9_during_a_full_rebuild(
    spark: SparkSession, ground: Ground, pipeline: PipelineCopy
) -> None:
    job = Job(pipeline.env, ["batch_enrich", "--full"], ground.work / "fp-f", ["curated-committed"])
    job.pause_at("curated-committed")
    job.kill()
    after = assert_converges(spark, ground, pipeline)
    assert "completing full rebuild" in after.output


def test_kill_9_after_the_quarantine_append_made_beside_curated_s(
    spark: SparkSession, ground: Ground
) -> None:
    """A run whose ids are all new appends its curated rows and, in a thread beside it, its
    quarantine rows. Killed with that quarantine append committed and curated's not begun, the
    next run ends as a clean run does: it appends curated, and the quarantine rows already
    there are not inserted again."""
    fresh = ground.work / "batch3.csv"
    generate(fresh, 200, 23)  # ids after batch 1's and 2's
    clean = copy_pipeline(ground.admin, ground.s3, ground.clean)
    killed = copy_pipeline(ground.admin, ground.s3, ground.clean)
    try:
        ingest_here(spark, clean.env, str(fresh))
        assert "appending to curated table" in run_batch_here(spark, clean.env).output
        ingest_here(spark, killed.env, str(fresh))
        bucket = killed.bucket.name
        quarantine_commits = delta_log_versions(ground.s3, bucket, QUARANTINE)
        curated_commits = delta_log_versions(ground.s3, bucket, CURATED)
        job = Job(
            killed.env, ["batch_enrich"], ground.work / "fp-beside", ["before-curated-commit"]
        )
        job.pause_at("before-curated-commit")
        deadline = time.monotonic() + 120
        while delta_log_versions(ground.s3, bucket, QUARANTINE) == quarantine_commits:
            assert time.monotonic() < deadline, "no quarantine commit:\n" + job.output[-3000:]
            time.sleep(0.1)
        job.kill()
        assert delta_log_versions(ground.s3, bucket, CURATED) == curated_commits
        after = run_batch_here(spark, killed.env)
        assert "recovering: run" in after.output
        assert "appending to curated table" in after.output
        assert read_outputs(killed, INGEST_COLUMNS) == read_outputs(clean, INGEST_COLUMNS)
    finally:
        drop_pipeline(ground.admin, ground.s3, killed)
        drop_pipeline(ground.admin, ground.s3, clean)


def test_a_row_the_killed_run_quarantined_as_in_the_future_stays_out_of_curated(
    spark: SparkSession, ground: Ground, pipeline: PipelineCopy
) -> None:
    """A row dated just after the killed run's start (max_future_minutes = 0) and before its
    recovery's: the killed run committed it to quarantine as in the future; the recovery must
    judge it by the killed run's clock, not curate it too (never in both outputs)."""
    work = ground.work / "fp-clock"
    work.mkdir()
    env = {**pipeline.env, "ENRICH_CONFIG": str(config_with(work, max_future_minutes=0))}
    # Far enough ahead for the killed run to start before it (its JVM starts in 6-15 s).
    ahead = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=30)
    rows = work / "ahead.csv"
    rows.write_text(
        "transaction_id,merchant_id,amount,currency,event_ts\n"
        f"TXN-AHEAD-1,MER-ABC,12.50,USD,{ahead:%Y-%m-%dT%H:%M:%SZ}\n"
    )
    ingest_here(spark, env, str(rows))
    job = Job(env, ["batch_enrich"], work, ["quarantine-committed"])
    job.pause_at("quarantine-committed")

    def where(transaction_id: str) -> dict[str, list[object]]:
        tables = pipeline.bucket.tables
        found: dict[str, list[object]] = {}
        for name, path, column in [
            ("curated", tables.curated, "_record_id"),
            ("quarantine", tables.quarantine, "rejection_reasons"),
        ]:
            table = spark.read.format("delta").load(path)
            rows = table.filter(table.transaction_id == transaction_id).select(column).collect()
            found[name] = [row[0] for row in rows]
        return found

    assert where("TXN-AHEAD-1") == {"curated": [], "quarantine": [["event_ts_in_future"]]}
    job.kill()
    assert runs(pipeline)[-1]["started_at"] < ahead
    time.sleep(max(0.0, (ahead - datetime.now(UTC)).total_seconds() + 1))
    after = run_batch_here(spark, env)  # by its own clock, the row is no longer in the future
    assert "recovering: run" in after.output
    assert where("TXN-AHEAD-1") == {"curated": [], "quarantine": [["event_ts_in_future"]]}
    curated = spark.read.format("delta").load(pipeline.bucket.tables.curated)
    quarantine = spark.read.format("delta").load(pipeline.bucket.tables.quarantine)
    assert curated.join(quarantine, "_record_id").count() == 0


def test_kill_9_after_a_date_range_commit(spark: SparkSession, ground: Ground) -> None:
    """A --from-date run killed after its curated commit (whole dates replaced): the next plain
    run brings the summary in step from curated's change feed, whose deletes take the replaced
    rows away and whose inserts add their re-enriched versions."""
    pipeline = copy_pipeline(ground.admin, ground.s3, ground.clean)
    try:
        reclassify_merchant(pipeline, "MER-ABC", "Reclassified")
        day = "2026-11-05"
        args = ["batch_enrich", "--from-date", day, "--to-date", day]
        job = Job(pipeline.env, args, ground.work / "fp-range", ["curated-committed"])
        job.pause_at("curated-committed")
        job.kill()
        after = run_batch_here(spark, pipeline.env)
        assert "SUCCEEDED (incremental)" in after.output, after.output[-3000:]
        outputs = read_outputs(pipeline)
        assert outputs.summary == curated_summary(spark, pipeline)
        assert any(r[0].isoformat() == day and r[1] == "Reclassified" for r in outputs.summary)
        assert [r for r in outputs.summary if r[0].isoformat() != day] == [
            r for r in ground.clean_outputs.summary if r[0].isoformat() != day
        ]
        killed, recovery = runs(pipeline)[-2:]
        assert (killed["status"], killed["mode"]) == ("crashed", "range")
        assert str(killed["run_id"]) in [str(r) for r in recovery["recovered_runs"]]
    finally:
        drop_pipeline(ground.admin, ground.s3, pipeline)


# --------------------------------------------------------------------------------------------
# Servers going away, wrong credentials
# --------------------------------------------------------------------------------------------


def one_clear_error(job: Job, code: int, *fragments: str) -> None:
    assert job.finish() == code, job.output[-4000:]
    [line] = error_lines(job.output)
    for fragment in fragments:
        assert fragment in line


@pytest.mark.exclusive
@pytest.mark.parametrize(
    ("server", "message"),
    [("postgres", "cannot connect to PostgreSQL at postgresql://"), ("minio", "object store")],
)
def test_server_stopped_before_the_run(
    spark: SparkSession, ground: Ground, pipeline: PipelineCopy, server: str, message: str
) -> None:
    stack(f"{server}-down")
    try:
        job = Job(pipeline.env, ["batch_enrich"], ground.work / f"fp-{server}-down")
        one_clear_error(job, 4, message)
    finally:
        stack(f"{server}-up")
    assert_converges(spark, ground, pipeline, recovering=False)


@pytest.mark.exclusive
@pytest.mark.parametrize(
    ("server", "paused_at", "message"),
    [
        ("postgres", "curated-committed", "PostgreSQL"),
        ("minio", "before-curated-commit", "did not answer"),
    ],
)
def test_server_stopped_in_the_middle_of_the_run(
    spark: SparkSession,
    ground: Ground,
    pipeline: PipelineCopy,
    server: str,
    paused_at: str,
    message: str,
) -> None:
    job = Job(pipeline.env, ["batch_enrich"], ground.work / f"fp-{server}-mid", [paused_at])
    job.pause_at(paused_at)
    stack(f"{server}-down")
    try:
        job.release(paused_at)
        one_clear_error(job, 4, message)
    finally:
        stack(f"{server}-up")
    assert_converges(spark, ground, pipeline)


# --------------------------------------------------------------------------------------------
# Task retries, one writer at a time
# --------------------------------------------------------------------------------------------


def test_task_retries_do_not_duplicate_anything(
    spark: SparkSession, ground: Ground, pipeline: PipelineCopy
) -> None:
    """local[2,3] allows 3 attempts per task; the first attempt of every task fails. The run
    is also the one spark-submit whose driver options name no JIT tier (the tests' others give
    the first tier): the run chooses it itself for its few raw rows, as a user's run does."""
    env = {
        **pipeline.env,
        "SPARK_MASTER": "local[2,3]",
        "ENRICH_DRIVER_JVM_OPTS": "-Dspark.sql.codegen.factoryMode=NO_CODEGEN",
    }
    job = Job(env, ["batch_enrich"], ground.work / "fp-retry", ["fail-first-task-attempts"])
    assert job.finish() == 0, job.output[-5000:]
    assert "first attempt of this task fails on purpose" in job.output  # retries did happen
    assert "driver JVM: the JIT's first tier only (a run of " in job.output
    assert read_outputs(pipeline) == ground.clean_outputs


def test_a_second_writer_is_refused_and_a_waiting_one_runs_after(
    spark: SparkSession, ground: Ground, pipeline: PipelineCopy
) -> None:
    first = Job(pipeline.env, ["batch_enrich"], ground.work / "fp-l1", ["run-started"])
    first.pause_at("run-started")
    first_id = runs(pipeline)[-1]["run_id"]
    with pytest.raises(ConcurrentRunError) as refused:  # in-process: no process needed
        run_batch_here(spark, pipeline.env)
    assert refused.value.exit_code == 5
    for fragment in ("another run is writing", f"run {first_id}", "--wait-for-lock"):
        assert fragment in str(refused.value)
    waiting = Job(pipeline.env, ["batch_enrich", "--wait-for-lock", "600"], ground.work / "fp-l3")
    waiting.wait_for(f"waiting for batch_enrich run {first_id}")
    first.release("run-started")
    assert first.finish() == 0, first.output[-4000:]
    assert waiting.finish() == 0, waiting.output[-4000:]
    assert "NOOP" in waiting.output
    assert read_outputs(pipeline) == ground.clean_outputs
