"""The fault suite: whatever happens to a run, the outputs end up exactly as after one clean run.

Every test starts from a copy of the same state S0 (batch 1 processed, batch 2 ingested but not
yet processed; batch 2 repeats some of batch 1's transaction ids with corrected values), does
its damage to a batch run, checks that the exit was non-zero with one clear message (or that
the process was killed), that the committed outputs are still readable and are either S0's or
the clean run's, and then that the next run converges to exactly the clean run's curated rows,
quarantine rows and summary rows (full contents; only the run id and time columns differ).

`make test` runs them all with the other tests; `make test-faults` runs only these, and
`pytest -m faults_smoke` three of them, a quick check of the harness.
"""

from __future__ import annotations

import csv
import gzip
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.config.postgres_url import PostgresTarget
from jobs.config.settings import S3Settings
from jobs.core.transforms import daily_category_summary

from .conftest import TEST_DB, generate
from .harness import (
    Job,
    Outputs,
    PipelineCopy,
    copy_pipeline,
    data_objects,
    delta_log_versions,
    drop_pipeline,
    error_lines,
    new_pipeline,
    read_outputs,
    runs,
    stack,
)

pytestmark = [pytest.mark.integration, pytest.mark.faults]

CURATED = "financial_data_curated_enriched"
QUARANTINE = "financial_data_quarantine"


@dataclass(frozen=True)
class Ground:
    s0: PipelineCopy
    s0_outputs: Outputs
    clean: PipelineCopy
    clean_outputs: Outputs
    admin: PostgresTarget
    s3: S3Settings
    work: Path


def write_corrections(batch1: Path, out: Path, fresh: Path) -> None:
    """Batch 2: new rows plus 60 of batch 1's ids again, with a new amount, three days later."""
    with batch1.open() as handle:
        rows = [r for r in csv.DictReader(handle) if r["transaction_id"].startswith("TXN-")]
    corrected = []
    for row in rows[:300:5]:
        if not re.fullmatch(r"\d+\.\d\d", row["amount"]) or not row["event_ts"].endswith("Z"):
            continue
        day = int(row["event_ts"][8:10])
        corrected.append(
            {
                **row,
                "amount": f"{float(row['amount']) + 1:.2f}",
                "event_ts": f"{row['event_ts'][:8]}{day + 3:02d}{row['event_ts'][10:]}",
            }
        )
    with fresh.open() as handle:
        new = list(csv.DictReader(handle))
    with out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(new[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(new + corrected)


def run_batch(pipeline: PipelineCopy, work: Path, *args: str) -> Job:
    job = Job(pipeline.env, ["batch_enrich", *args], work / f"fp-{time.monotonic_ns()}")
    code = job.finish()
    assert code == 0, job.output[-5000:]
    return job


@pytest.fixture(scope="module")
def ground(
    spark: SparkSession,
    admin_target: PostgresTarget,
    s3: S3Settings,
    test_db_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Ground]:
    work = tmp_path_factory.mktemp("faults")
    generate(work / "batch1.csv", 600, 21)
    generate(work / "fresh.csv", 200, 22)
    write_corrections(work / "batch1.csv", work / "batch2.csv", work / "fresh.csv")
    s0 = new_pipeline(admin_target, s3, test_db_env, TEST_DB)
    for step in (
        ["ingest", str(work / "batch1.csv")],
        ["batch_enrich"],
        ["ingest", str(work / "batch2.csv")],
    ):
        job = Job(s0.env, step, work / "fp-s0")
        assert job.finish() == 0, job.output[-5000:]
    s0_outputs = read_outputs(spark, s0)
    clean = copy_pipeline(admin_target, s3, s0)
    clean_run = run_batch(clean, work)
    assert "SUCCEEDED (incremental)" in clean_run.output
    clean_outputs = read_outputs(spark, clean)
    assert clean_outputs != s0_outputs
    yield Ground(s0, s0_outputs, clean, clean_outputs, admin_target, s3, work)
    drop_pipeline(admin_target, s3, clean)
    drop_pipeline(admin_target, s3, s0)


@pytest.fixture()
def pipeline(ground: Ground) -> Iterator[PipelineCopy]:
    copy = copy_pipeline(ground.admin, ground.s3, ground.s0)
    yield copy
    drop_pipeline(ground.admin, ground.s3, copy)


def assert_between_s0_and_clean(
    spark: SparkSession, ground: Ground, pipeline: PipelineCopy
) -> None:
    """After a fault: every output still readable, each one as S0 left it or as the clean run."""
    now = read_outputs(spark, pipeline)
    assert now.curated in (ground.s0_outputs.curated, ground.clean_outputs.curated)
    assert now.quarantine in (ground.s0_outputs.quarantine, ground.clean_outputs.quarantine)
    assert now.summary in (ground.s0_outputs.summary, ground.clean_outputs.summary)


def assert_converges(
    spark: SparkSession, ground: Ground, pipeline: PipelineCopy, recovering: bool = True
) -> Job:
    assert_between_s0_and_clean(spark, ground, pipeline)
    after = run_batch(pipeline, ground.work)
    if recovering:
        assert "recovering: run" in after.output
    outputs = read_outputs(spark, pipeline)
    assert outputs.curated == ground.clean_outputs.curated
    assert outputs.quarantine == ground.clean_outputs.quarantine
    assert outputs.summary == ground.clean_outputs.summary
    return after


# --------------------------------------------------------------------------------------------
# The clean run itself
# --------------------------------------------------------------------------------------------


@pytest.mark.faults_smoke
def test_clean_incremental_run_equals_a_full_rebuild(
    spark: SparkSession, ground: Ground, pipeline: PipelineCopy
) -> None:
    run_batch(pipeline, ground.work, "--full")
    assert read_outputs(spark, pipeline) == ground.clean_outputs


@pytest.mark.faults_smoke
def test_clean_run_record_counts_and_invariants(spark: SparkSession, ground: Ground) -> None:
    first, second = runs(ground.clean)
    assert (first["mode"], first["status"]) == ("full", "succeeded")
    assert (second["mode"], second["status"]) == ("incremental", "succeeded")
    assert (second["raw_version_from"], second["raw_version_to"]) == (1, 1)
    assert second["rows_read"] == (
        second["rows_curated"] + second["rows_quarantined"] + second["rows_duplicate"]
    )
    assert second["rows_replaced"] >= 30  # batch 2's corrections replaced batch 1's rows
    assert second["details"]["top_unmatched"]
    tables = ground.clean.bucket.tables
    read = spark.read.format("delta").load
    raw_ids = {r["_record_id"] for r in read(tables.raw).select("_record_id").collect()}
    curated_ids = [r["_record_id"] for r in read(tables.curated).select("_record_id").collect()]
    quarantined = [r["_record_id"] for r in read(tables.quarantine).select("_record_id").collect()]
    assert len(curated_ids) + len(quarantined) == len(raw_ids)
    assert set(curated_ids) | set(quarantined) == raw_ids
    curated = read(tables.curated)
    assert curated.groupBy("transaction_id").count().filter("count > 1").count() == 0
    # A corrected id keeps only its latest record: the one from batch 2 (raw version 1).
    corrected = curated.filter(F.col("_source_file").endswith("batch2.csv"))
    repeated = corrected.join(
        read(tables.raw)
        .filter(F.col("_source_file").endswith("batch1.csv"))
        .select("transaction_id"),
        "transaction_id",
    )
    assert repeated.count() >= 30


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


@pytest.mark.parametrize("point", KILL_POINTS)
def test_kill_9_at(spark: SparkSession, ground: Ground, pipeline: PipelineCopy, point: str) -> None:
    job = Job(pipeline.env, ["batch_enrich"], ground.work / f"fp-{point}", [point])
    job.pause_at(point)
    job.kill()
    assert job.process.returncode == -9
    if point == "postgres-committed":
        # The run had finished its work: the next one has nothing to do.
        assert_between_s0_and_clean(spark, ground, pipeline)
        assert read_outputs(spark, pipeline) == ground.clean_outputs
        after = run_batch(pipeline, ground.work)
        assert "NOOP" in after.output
        return
    assert_converges(spark, ground, pipeline)
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


# --------------------------------------------------------------------------------------------
# Servers going away, wrong credentials
# --------------------------------------------------------------------------------------------


def one_clear_error(job: Job, code: int, *fragments: str) -> None:
    assert job.finish() == code, job.output[-4000:]
    [line] = error_lines(job.output)
    for fragment in fragments:
        assert fragment in line


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


def test_wrong_postgres_password(
    spark: SparkSession, ground: Ground, pipeline: PipelineCopy
) -> None:
    wrong = "wrong-password-for-the-test"
    job = Job({**pipeline.env, "POSTGRES_PASSWORD": wrong}, ["batch_enrich"], ground.work / "fp-pw")
    one_clear_error(job, 4, "password authentication failed")
    assert wrong not in job.output
    assert_converges(spark, ground, pipeline, recovering=False)


def test_wrong_object_store_key(
    spark: SparkSession, ground: Ground, pipeline: PipelineCopy
) -> None:
    wrong = "WRONGKEY" + "0" * 12
    job = Job({**pipeline.env, "AWS_ACCESS_KEY_ID": wrong}, ["batch_enrich"], ground.work / "fp-k")
    one_clear_error(job, 4, "refused the credentials")
    assert_converges(spark, ground, pipeline, recovering=False)


# --------------------------------------------------------------------------------------------
# Bad input files
# --------------------------------------------------------------------------------------------


def test_file_with_a_wrong_header_is_refused_and_changes_nothing(
    spark: SparkSession, ground: Ground, pipeline: PipelineCopy
) -> None:
    bad = ground.work / "swapped.csv"
    bad.write_text(
        "merchant_id,transaction_id,amount,currency,event_ts\nM,T,1.00,USD,2026-11-01T00:00:00Z\n"
    )
    job = Job(pipeline.env, ["ingest", str(bad)], ground.work / "fp-h")
    one_clear_error(job, 3, "unexpected CSV header")
    assert_converges(spark, ground, pipeline, recovering=False)


@pytest.mark.parametrize("kind", ["truncated", "corrupt"])
def test_truncated_or_corrupt_file_rows_are_quarantined_with_reason_file_and_run(
    spark: SparkSession, ground: Ground, pipeline: PipelineCopy, kind: str
) -> None:
    run_batch(pipeline, ground.work)  # S0 -> the clean state
    source = ground.work / f"{kind}.jsonl"
    generate(ground.work / "extra.jsonl", 40, 77)
    text = (ground.work / "extra.jsonl").read_bytes()
    if kind == "truncated":
        source.write_bytes(text[: len(text) - 25])  # the last record cut mid-way
    else:
        source.write_bytes(gzip.compress(text))  # compressed bytes under a .jsonl name
    landed = Job(pipeline.env, ["ingest", str(source)], ground.work / "fp-i")
    assert landed.finish() == 0, landed.output[-4000:]
    job = run_batch(pipeline, ground.work)
    run_id = runs(pipeline)[-1]["run_id"]
    tables = pipeline.bucket.tables
    quarantine = spark.read.format("delta").load(tables.quarantine)
    from_file = quarantine.filter(F.col("_source_file").endswith(f"{kind}.jsonl"))
    malformed = from_file.filter(
        F.exists("rejection_reasons", lambda r: r.startswith("malformed_record"))
    )
    assert malformed.count() >= 1
    assert {r["_run_id"] for r in malformed.collect()} == {str(run_id)}
    curated = spark.read.format("delta").load(tables.curated)
    new_curated = curated.filter(F.col("_source_file").endswith(f"{kind}.jsonl")).count()
    if kind == "truncated":
        assert new_curated >= 30  # the intact rows of the same file went through
    raw = spark.read.format("delta").load(tables.raw)
    raw_ids = {r["_record_id"] for r in raw.select("_record_id").collect()}
    curated_ids = [r["_record_id"] for r in curated.select("_record_id").collect()]
    quarantine_ids = [r["_record_id"] for r in quarantine.select("_record_id").collect()]
    assert len(curated_ids) + len(quarantine_ids) == len(raw_ids)
    assert set(curated_ids) | set(quarantine_ids) == raw_ids
    summary = read_outputs(spark, pipeline).summary
    expected = tuple(sorted(tuple(r) for r in curated.transform(daily_category_summary).collect()))
    assert summary == expected
    assert "SUCCEEDED (incremental)" in job.output


# --------------------------------------------------------------------------------------------
# Task retries, one writer at a time, date ranges, schema drift
# --------------------------------------------------------------------------------------------


def test_task_retries_do_not_duplicate_anything(
    spark: SparkSession, ground: Ground, pipeline: PipelineCopy
) -> None:
    """local[2,3] allows 3 attempts per task; the first attempt of every task fails."""
    env = {**pipeline.env, "SPARK_MASTER": "local[2,3]"}
    job = Job(env, ["batch_enrich"], ground.work / "fp-retry", ["fail-first-task-attempts"])
    assert job.finish() == 0, job.output[-5000:]
    assert "first attempt of this task fails on purpose" in job.output  # retries did happen
    assert read_outputs(spark, pipeline) == ground.clean_outputs


def test_a_second_writer_is_refused_and_a_waiting_one_runs_after(
    spark: SparkSession, ground: Ground, pipeline: PipelineCopy
) -> None:
    first = Job(pipeline.env, ["batch_enrich"], ground.work / "fp-l1", ["run-started"])
    first.pause_at("run-started")
    first_id = runs(pipeline)[-1]["run_id"]
    refused = Job(pipeline.env, ["batch_enrich"], ground.work / "fp-l2")
    one_clear_error(refused, 5, "another run is writing", f"run {first_id}", "--wait-for-lock")
    waiting = Job(pipeline.env, ["batch_enrich", "--wait-for-lock", "600"], ground.work / "fp-l3")
    waiting.wait_for(f"waiting for batch_enrich run {first_id}")
    first.release("run-started")
    assert first.finish() == 0, first.output[-4000:]
    assert waiting.finish() == 0, waiting.output[-4000:]
    assert "NOOP" in waiting.output
    assert read_outputs(spark, pipeline) == ground.clean_outputs


def test_a_date_range_is_re_enriched_and_nothing_else_changes(
    spark: SparkSession, ground: Ground
) -> None:
    pipeline = copy_pipeline(ground.admin, ground.s3, ground.clean)
    try:
        before = read_outputs(spark, pipeline)
        with pipeline.connect_admin() as conn, conn.cursor() as cur:
            cur.execute(
                "UPDATE reference.merchant_lookup SET category = 'Reclassified' "
                "WHERE merchant_id = 'MER-ABC'"
            )
        conn.close()
        day = "2026-11-05"
        job = run_batch(pipeline, ground.work, "--from-date", day, "--to-date", day)
        assert "SUCCEEDED (range)" in job.output
        curated = spark.read.format("delta").load(pipeline.bucket.tables.curated)
        columns = sorted(c for c in curated.columns if c not in ("_run_id", "_enriched_at"))

        def rows(condition: str) -> list[tuple[object, ...]]:
            picked = curated.filter(condition).select(*columns).collect()
            return sorted((tuple(r) for r in picked), key=repr)

        old = spark.createDataFrame(list(before.curated), curated.select(*columns).schema)
        kept = sorted((tuple(r) for r in old.filter(f"event_date <> '{day}'").collect()), key=repr)
        assert rows(f"event_date <> '{day}'") == kept
        changed = curated.filter(f"event_date = '{day}' AND merchant_id = 'MER-ABC'")
        assert changed.count() > 0
        assert {r["enriched_category"] for r in changed.collect()} == {"Reclassified"}
        assert (
            curated.filter(f"event_date = '{day}'").count()
            == old.filter(f"event_date = '{day}'").count()
        )
        summary = read_outputs(spark, pipeline).summary
        expected = tuple(
            sorted(tuple(r) for r in curated.transform(daily_category_summary).collect())
        )
        assert summary == expected
        assert [r for r in summary if str(r[0]) != day] == [
            r for r in before.summary if str(r[0]) != day
        ]
        assert read_outputs(spark, pipeline).quarantine == before.quarantine
        record = runs(pipeline)[-1]
        assert (record["mode"], record["raw_version_to"]) == ("range", 1)
    finally:
        drop_pipeline(ground.admin, ground.s3, pipeline)


def test_a_new_raw_column_is_refused_by_name_or_ignored_when_configured(
    spark: SparkSession, ground: Ground, pipeline: PipelineCopy
) -> None:
    raw = pipeline.bucket.tables.raw
    (
        spark.read.format("delta")
        .load(raw)
        .filter("_parse_errors IS NULL OR size(_parse_errors) = 0")
        .limit(1)
        .withColumn("transaction_id", F.lit("TXN-DRIFT-1"))
        .withColumn("_record_id", F.lit("drift-1"))
        .withColumn("channel", F.lit("web"))
        .write.format("delta")
        .mode("append")
        .option("mergeSchema", "true")
        .save(raw)
    )
    refused = Job(pipeline.env, ["batch_enrich"], ground.work / "fp-d1")
    one_clear_error(refused, 3, "column 'channel' (string) is new", "Nothing was written")
    assert read_outputs(spark, pipeline) == ground.s0_outputs
    config = ground.work / "ignore-new-columns.toml"
    original = (Path(__file__).parents[2] / "conf" / "enrichment.toml").read_text()
    config.write_text(original.replace('new_raw_columns = "refuse"', 'new_raw_columns = "ignore"'))
    accepted = Job(
        {**pipeline.env, "ENRICH_CONFIG": str(config)}, ["batch_enrich"], ground.work / "fp-d2"
    )
    assert accepted.finish() == 0, accepted.output[-4000:]
    curated = spark.read.format("delta").load(pipeline.bucket.tables.curated)
    assert curated.filter("transaction_id = 'TXN-DRIFT-1'").count() == 1
    assert "channel" not in curated.columns


def test_a_retyped_raw_column_is_refused_by_name(
    spark: SparkSession, ground: Ground, pipeline: PipelineCopy
) -> None:
    retyped = pipeline.bucket.path("retyped_raw")
    (
        spark.read.format("delta")
        .load(pipeline.bucket.tables.raw)
        .withColumn("amount", F.col("amount").cast("string"))
        .write.format("delta")
        .options(**{"delta.appendOnly": "true", "delta.enableChangeDataFeed": "true"})
        .save(retyped)
    )
    job = Job({**pipeline.env, "RAW_TABLE_PATH": retyped}, ["batch_enrich"], ground.work / "fp-t")
    one_clear_error(job, 3, "column 'amount' is string, expected decimal(18,2)")
