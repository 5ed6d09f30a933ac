"""The fault suite's cases that need no process of their own, called in-process on the shared
session: the clean run itself, wrong credentials, bad input files, a re-enriched date range and
schema drift. Each starts from a copy of state S0 (tests/harness.py) and ends, where the case
allows it, with the next run converging to exactly the clean run's outputs.

A refusal here is the job's own exception: its exit code and its message are what
jobs/runs/cli.py prints as one line (tests/system/test_end_to_end.py checks that line through
spark-submit)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.core.errors import EnrichmentError, ServiceUnavailableError, SourceError
from jobs.runs.ingest import IngestResult, append_records, read_files
from tests.harness import (
    Ground,
    PipelineCopy,
    assert_converges,
    captured_log,
    copy_pipeline,
    curated_summary,
    drop_pipeline,
    ingest_here,
    read_outputs,
    reclassify_merchant,
    run_batch_here,
    runs,
)
from tests.stack import generate

pytestmark = [pytest.mark.integration, pytest.mark.faults]


# --------------------------------------------------------------------------------------------
# The clean run itself
# --------------------------------------------------------------------------------------------


@pytest.mark.faults_smoke
def test_clean_incremental_run_equals_a_full_rebuild(
    spark: SparkSession, ground: Ground, pipeline: PipelineCopy
) -> None:
    context = spark.sparkContext
    context.setJobGroup("full-rebuild", "the full run's Spark jobs")
    try:
        run_batch_here(spark, pipeline.env, "--full")
    finally:
        context.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]
    assert read_outputs(pipeline) == ground.clean_outputs
    # A rewrite runs without adaptive execution (one job per query, not per stage): 19 jobs
    # with it, 10 without; the bound is 15. The session gets it back afterwards.
    assert len(context.statusTracker().getJobIdsForGroup("full-rebuild")) <= 15
    assert spark.conf.get("spark.sql.adaptive.enabled") == "true"


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
    # Nothing was committed to quarantine since the synced run: its rows were appended, no MERGE.
    [last_commit] = DeltaTable.forPath(spark, tables.quarantine).history(1).collect()
    assert last_commit["operation"] == "WRITE", last_commit["operation"]
    # The replaced rows were marked in deletion vectors: the MERGE wrote no file again.
    [merge] = DeltaTable.forPath(spark, tables.curated).history(1).collect()
    metrics = merge["operationMetrics"]
    assert merge["operation"] == "MERGE", merge["operation"]
    assert int(metrics["numTargetRowsUpdated"]) == second["rows_replaced"]
    assert int(metrics["numTargetDeletionVectorsAdded"]) > 0
    assert int(metrics["numTargetFilesRemoved"]) == 0
    # ... and it was given the new rows' id range, so files outside it were not read.
    predicate = merge["operationParameters"]["predicate"]
    assert ">= TXN-" in predicate and "<= TXN-" in predicate, predicate


def test_a_curated_table_without_deletion_vectors_gets_them_and_the_same_results(
    spark: SparkSession, ground: Ground, pipeline: PipelineCopy
) -> None:
    """A curated table made before deletion vectors were the default: the next run switches
    them on in a commit of its own, and every output is what it is without the switch."""
    curated = pipeline.bucket.tables.curated
    spark.sql(
        f"ALTER TABLE delta.`{curated}` SET TBLPROPERTIES (delta.enableDeletionVectors = false)"
    )
    with captured_log() as log:
        assert "SUCCEEDED (incremental)" in run_batch_here(spark, pipeline.env).output
    assert "setting properties of curated table" in log.getvalue()
    assert "delta.enableDeletionVectors = true" in log.getvalue()
    assert read_outputs(pipeline) == ground.clean_outputs
    merge, switch = DeltaTable.forPath(spark, curated).history(2).collect()
    assert switch["operation"] == "SET TBLPROPERTIES" and merge["operation"] == "MERGE"
    assert int(merge["operationMetrics"]["numTargetDeletionVectorsAdded"]) > 0


def test_corrections_alone_replace_rows_and_new_ids_among_old_ones_are_appended(
    spark: SparkSession, ground: Ground, pipeline: PipelineCopy
) -> None:
    """A run whose every id the curated table holds (late corrections) replaces them by a MERGE
    that inserts nothing; a run whose ids all lie within the table's id range but are new is a
    plain append; the same ids corrected again, their old rows now marked by the first MERGE's
    deletion vectors, are replaced again. All keep the invariants: one row per id, the summary
    the table's."""
    run_batch_here(spark, pipeline.env)  # S0 -> the clean state
    tables = pipeline.bucket.tables
    curated = spark.read.format("delta").load(tables.curated)
    header = "transaction_id,merchant_id,amount,currency,event_ts\n"

    def csv_line(row: dict[str, object], transaction_id: str, amount: object) -> str:
        event_ts = row["event_ts"].strftime("%Y-%m-%dT%H:%M:%SZ")  # type: ignore[attr-defined]
        return f"{transaction_id},{row['merchant_id']},{amount},{row['currency']},{event_ts}\n"

    sample = [r.asDict() for r in curated.orderBy("transaction_id").collect()[1:-1:7]]
    corrections = ground.work / "corrections.csv"
    corrections.write_text(
        header + "".join(csv_line(r, r["transaction_id"], r["amount"] + 1) for r in sample)
    )
    ingest_here(spark, pipeline.env, str(corrections))
    job = run_batch_here(spark, pipeline.env)
    assert "the table holds every transaction_id of the run" in job.output
    [merge] = DeltaTable.forPath(spark, tables.curated).history(1).collect()
    assert merge["operation"] == "MERGE", merge["operation"]
    assert merge["operationParameters"]["notMatchedPredicates"] == "[]"
    assert int(merge["operationMetrics"]["numTargetRowsUpdated"]) == len(sample)
    assert int(merge["operationMetrics"]["numTargetRowsInserted"]) == 0
    assert runs(pipeline)[-1]["rows_replaced"] == len(sample)
    amounts = {
        r["transaction_id"]: r["amount"]
        for r in spark.read.format("delta").load(tables.curated).collect()
    }
    assert all(amounts[r["transaction_id"]] == r["amount"] + 1 for r in sample)

    # "<id>-b" sorts right after "<id>": inside the table's id range, in no row.
    fresh = ground.work / "between.csv"
    fresh.write_text(header + "".join(csv_line(r, f"{r['transaction_id']}-b", 5) for r in sample))
    ingest_here(spark, pipeline.env, str(fresh))
    job = run_batch_here(spark, pipeline.env)
    assert "it holds no transaction_id of the run" in job.output
    [append] = DeltaTable.forPath(spark, tables.curated).history(1).collect()
    assert append["operation"] == "WRITE", append["operation"]
    assert int(append["operationMetrics"]["numOutputRows"]) == len(sample)
    after = spark.read.format("delta").load(tables.curated)
    assert after.count() == len(amounts) + len(sample)
    assert after.groupBy("transaction_id").count().filter("count > 1").count() == 0
    assert read_outputs(pipeline).summary == curated_summary(spark, pipeline)

    # Corrected again: the first MERGE's deletion vectors mark rows of the files these ids
    # fall in, so a small run's ids are counted there by delta-rs, which applies them.
    again = ground.work / "corrections-again.csv"
    again.write_text(
        header + "".join(csv_line(r, r["transaction_id"], r["amount"] + 2) for r in sample)
    )
    ingest_here(spark, pipeline.env, str(again))
    job = run_batch_here(spark, pipeline.env)
    assert f"counting its {len(sample)} ids there with delta-rs" in job.output
    assert "the table holds every transaction_id of the run" in job.output
    final = spark.read.format("delta").load(tables.curated)
    assert final.count() == len(amounts) + len(sample)
    amounts = {r["transaction_id"]: r["amount"] for r in final.collect()}
    assert all(amounts[r["transaction_id"]] == r["amount"] + 2 for r in sample)
    assert read_outputs(pipeline).summary == curated_summary(spark, pipeline)


# --------------------------------------------------------------------------------------------
# Wrong credentials: refused before anything is read or written
# --------------------------------------------------------------------------------------------


def refused(spark: SparkSession, env: dict[str, str], *args: str) -> tuple[EnrichmentError, str]:
    """The error a run stops with, and what it logged."""
    with captured_log() as log, pytest.raises(EnrichmentError) as caught:
        run_batch_here(spark, env, *args)
    return caught.value, log.getvalue()


def test_wrong_postgres_password(
    spark: SparkSession, ground: Ground, pipeline: PipelineCopy
) -> None:
    wrong = "wrong-password-for-the-test"
    error, log = refused(spark, {**pipeline.env, "POSTGRES_PASSWORD": wrong})
    assert isinstance(error, ServiceUnavailableError) and error.exit_code == 4
    assert "password authentication failed" in str(error)
    assert wrong not in str(error) + log
    assert_converges(spark, ground, pipeline, recovering=False)


def test_wrong_object_store_key(
    spark: SparkSession, ground: Ground, pipeline: PipelineCopy
) -> None:
    wrong = "WRONGKEY" + "0" * 12
    error, _ = refused(spark, {**pipeline.env, "AWS_ACCESS_KEY_ID": wrong})
    assert isinstance(error, ServiceUnavailableError) and error.exit_code == 4
    assert "refused the credentials" in str(error)
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
    with pytest.raises(SourceError, match="unexpected CSV header") as caught:
        ingest_here(spark, pipeline.env, str(bad))
    assert caught.value.exit_code == 3
    assert_converges(spark, ground, pipeline, recovering=False)


@pytest.mark.parametrize("kind", ["truncated", "corrupt"])
def test_truncated_or_corrupt_file_rows_are_quarantined_with_reason_file_and_run(
    spark: SparkSession, ground: Ground, pipeline: PipelineCopy, kind: str
) -> None:
    run_batch_here(spark, pipeline.env)  # S0 -> the clean state
    source = ground.work / f"{kind}.jsonl"
    generate(ground.work / "extra.jsonl", 40, 77)
    text = (ground.work / "extra.jsonl").read_bytes()
    if kind == "truncated":
        source.write_bytes(text[: len(text) - 25])  # the last record cut mid-way
    else:
        source.write_bytes(gzip.compress(text))  # compressed bytes under a .jsonl name
    landed = ingest_here(spark, pipeline.env, str(source))
    assert landed.rows_appended >= 1
    job = run_batch_here(spark, pipeline.env)
    run_id = runs(pipeline)[-1]["run_id"]
    assert str(run_id) == job.result.run_id
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
    assert read_outputs(pipeline).summary == curated_summary(spark, pipeline)
    assert "SUCCEEDED (incremental)" in job.output


# --------------------------------------------------------------------------------------------
# A date range re-enriched after a lookup change; schema drift
# --------------------------------------------------------------------------------------------


def test_a_date_range_is_re_enriched_and_nothing_else_changes(
    spark: SparkSession, ground: Ground
) -> None:
    pipeline = copy_pipeline(ground.admin, ground.s3, ground.clean)
    try:
        before = read_outputs(pipeline)
        reclassify_merchant(pipeline, "MER-ABC", "Reclassified")
        day = "2026-11-05"
        job = run_batch_here(spark, pipeline.env, "--from-date", day, "--to-date", day)
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
        summary = read_outputs(pipeline).summary
        assert summary == curated_summary(spark, pipeline)
        assert [r for r in summary if str(r[0]) != day] == [
            r for r in before.summary if str(r[0]) != day
        ]
        assert read_outputs(pipeline).quarantine == before.quarantine
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
    error, _ = refused(spark, pipeline.env)
    assert isinstance(error, SourceError) and error.exit_code == 3
    assert "column 'channel' (string) is new" in str(error)
    assert "Nothing was written" in str(error)
    assert read_outputs(pipeline) == ground.s0_outputs
    config = ground.work / "ignore-new-columns.toml"
    original = (Path(__file__).parents[2] / "conf" / "enrichment.toml").read_text()
    config.write_text(original.replace('new_raw_columns = "refuse"', 'new_raw_columns = "ignore"'))
    run_batch_here(spark, {**pipeline.env, "ENRICH_CONFIG": str(config)})
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
    error, _ = refused(spark, {**pipeline.env, "RAW_TABLE_PATH": retyped})
    assert isinstance(error, SourceError) and error.exit_code == 3
    assert "column 'amount' is string, expected decimal(18,2)" in str(error)


def test_an_ingest_counts_the_rows_it_writes_and_a_replay_appends_nothing(
    spark: SparkSession, ground: Ground, pipeline: PipelineCopy
) -> None:
    """The counts come from the write itself (``DataFrame.observe``): every row, the two that
    cannot be parsed among them. The same micro-batch appended again (its txn already in the
    log) appends nothing and still reports its rows; an input without rows leaves raw as it is."""
    settings = pipeline.settings
    raw = settings.tables.raw
    generate(ground.work / "counted.jsonl", 30, 91)
    source = ground.work / "counted-with-bad-lines.jsonl"
    source.write_text((ground.work / "counted.jsonl").read_text() + 'not json\n{"amount": \n')
    rows_before = spark.read.format("delta").load(raw).count()

    def append(path: Path, ingest_id: str, txn: tuple[str, int] | None) -> IngestResult:
        return append_records(
            spark, settings, read_files(spark, [str(path)], "jsonl"), ingest_id, txn
        )

    first = append(source, "counted-ingest", ("counted-app", 7))
    assert (first.rows_appended, first.rows_unparsed) == (32, 2)
    again = append(source, "counted-ingest", ("counted-app", 7))
    assert (again.rows_appended, again.rows_unparsed, again.raw_version) == (
        32, 2, first.raw_version,
    )  # fmt: skip
    empty = ground.work / "empty.jsonl"
    empty.write_text("")
    nothing = append(empty, "empty-ingest", None)
    assert (nothing.rows_appended, nothing.raw_version) == (0, first.raw_version)
    assert spark.read.format("delta").load(raw).count() == rows_before + 32
