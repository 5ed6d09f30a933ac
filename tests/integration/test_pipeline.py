"""End to end in-process: generate -> ingest -> batch run, each called as the jobs call it (the
entry points' argument parsing, ``run`` on the shared session), then the design's invariants
checked by querying the outputs. The same flow through spark-submit is `make demo`, the
cluster test and the fault suite (tests/system)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg2
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.adapters import jdbc, object_store
from jobs.config.settings import S3Settings, Settings, load_settings
from jobs.core.transforms import daily_category_summary
from tests.harness import InProcessRun, ingest_here, run_batch_here
from tests.stack import ScratchBucket, delete_bucket, generate

pytestmark = pytest.mark.integration


@dataclass
class Pipeline:
    env: dict[str, str]
    settings: Settings
    batch: InProcessRun


@pytest.fixture(scope="module")
def pipeline(
    spark: SparkSession,
    tmp_path_factory: pytest.TempPathFactory,
    test_db_env: dict[str, str],
    s3: S3Settings,
) -> Iterator[Pipeline]:
    client = object_store.s3_client(s3)
    bucket = ScratchBucket(f"test-e2e-{uuid.uuid4().hex[:12]}")
    client.create_bucket(Bucket=bucket.name)
    env = {**test_db_env, **bucket.env()}
    data = tmp_path_factory.mktemp("input")
    generate(data / "batch.csv", 3000, 1234)
    generate(data / "batch.jsonl", 1000, 99)
    # One input from a local path, one from the object store.
    client.upload_file(str(data / "batch.jsonl"), bucket.name, "incoming/batch.jsonl")
    for source in (str(data / "batch.csv"), f"s3a://{bucket.name}/incoming/batch.jsonl"):
        assert ingest_here(spark, env, source).rows_appended > 0
    # The same CSV again: a file ingested twice must not double anything downstream.
    ingest_here(spark, env, str(data / "batch.csv"))
    batch = run_batch_here(spark, env)
    yield Pipeline(env, load_settings(env), batch)
    delete_bucket(s3, bucket.name)


def tables(spark: SparkSession, settings: Settings) -> tuple[DataFrame, DataFrame, DataFrame]:
    read = spark.read.format("delta").load
    paths = settings.tables
    return read(paths.raw), read(paths.curated), read(paths.quarantine)


def latest_run(settings: Settings) -> dict[str, object]:
    with psycopg2.connect(**settings.postgres.psycopg2_kwargs()) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT * FROM enrichment_runs WHERE curated_table = %s ORDER BY started_at DESC LIMIT 1",
            (settings.tables.curated,),
        )
        assert cur.description is not None
        names = [column.name for column in cur.description]
        row = cur.fetchone()
    assert row is not None
    return dict(zip(names, row, strict=True))


def test_batch_prints_a_run_summary(pipeline: Pipeline) -> None:
    out = pipeline.batch.output
    assert "SUCCEEDED (full)" in out
    for label in (
        "rows read",
        "curated",
        "rejected",
        "duplicates",
        "curated.transactions_enriched",
    ):
        assert label in out


def test_every_raw_row_is_in_exactly_one_output(spark: SparkSession, pipeline: Pipeline) -> None:
    raw, curated, quarantine = tables(spark, pipeline.settings)
    raw_ids = {r["_record_id"] for r in raw.select("_record_id").collect()}
    curated_ids = [r["_record_id"] for r in curated.select("_record_id").collect()]
    quarantine_ids = [r["_record_id"] for r in quarantine.select("_record_id").collect()]
    assert len(raw_ids) == raw.count() == 7000
    assert len(curated_ids) == len(set(curated_ids))
    assert len(quarantine_ids) == len(set(quarantine_ids))
    assert set(curated_ids).isdisjoint(quarantine_ids)
    assert set(curated_ids) | set(quarantine_ids) == raw_ids

    run = latest_run(pipeline.settings)
    assert run["status"] == "succeeded"
    assert run["rows_read"] == 7000
    assert run["rows_curated"] == len(curated_ids)
    assert run["rows_quarantined"] + run["rows_duplicate"] == len(quarantine_ids)  # type: ignore[operator]


def test_curated_has_one_row_per_transaction_id(spark: SparkSession, pipeline: Pipeline) -> None:
    _, curated, _ = tables(spark, pipeline.settings)
    assert curated.groupBy("transaction_id").count().filter("count > 1").count() == 0
    # The CSV was ingested twice: every one of its valid ids is still there exactly once,
    # and the superseded copies are in quarantine as duplicates.
    assert curated.filter(F.col("transaction_id").startswith("TXN-000004d2-")).count() > 2500


def test_summary_equals_the_group_by_of_curated(spark: SparkSession, pipeline: Pipeline) -> None:
    _, curated, _ = tables(spark, pipeline.settings)
    expected = {
        (r["event_date"], r["category"], r["currency"], r["transaction_count"], r["total_amount"])
        for r in curated.transform(daily_category_summary).collect()
    }
    with (
        psycopg2.connect(**pipeline.settings.postgres.psycopg2_kwargs()) as conn,
        conn.cursor() as cur,
    ):
        cur.execute(
            "SELECT event_date, category, currency, transaction_count, total_amount "
            "FROM category_daily_summary"
        )
        actual = set(cur.fetchall())
    assert actual == expected
    assert len(actual) > 10


def test_unknown_exactly_for_unmatched_merchants(spark: SparkSession, pipeline: Pipeline) -> None:
    settings = pipeline.settings
    _, curated, _ = tables(spark, settings)
    merchants = jdbc.read_lookup(spark, settings.postgres, settings.lookups[0], 10_000)
    known = merchants.select("merchant_id", F.lit(True).alias("known"))
    labelled = curated.join(known, "merchant_id", "left").select(
        F.coalesce("known", F.lit(False)).alias("known"),
        (F.col("enriched_category") == "UNKNOWN").alias("unknown"),
    )
    mismatches = labelled.filter(F.col("known") == F.col("unknown")).count()
    assert mismatches == 0
    assert labelled.filter("unknown").count() == latest_run(settings)["rows_unmatched"]
    assert labelled.filter("unknown").count() > 0
    sample = (
        curated.filter("merchant_id = 'MER-ABC'")
        .select("merchant_name", "enriched_category", "category_group")
        .distinct()
        .collect()
    )
    assert [tuple(r) for r in sample] == [("Alpha Mart", "Groceries", "Essentials")]


def test_quarantine_keeps_every_kind_of_bad_row_with_reasons(
    spark: SparkSession, pipeline: Pipeline
) -> None:
    _, _, quarantine = tables(spark, pipeline.settings)
    reasons = {
        reason.split(":")[0]
        for row in quarantine.select("rejection_reasons").collect()
        for reason in row["rejection_reasons"]
    }
    assert reasons == {
        "amount_not_positive",
        "missing_transaction_id",
        "missing_merchant_id",
        "unknown_currency",
        "malformed_record",
        "event_ts_in_future",
        "duplicate_transaction_id",
    }
    malformed = quarantine.filter(
        F.array_contains(
            "rejection_reasons", "malformed_record: record could not be split into fields"
        )
    )
    assert malformed.filter(F.col("_raw_record").contains("oops")).count() == malformed.count() > 0


def test_rerun_with_no_new_data_changes_nothing_and_starts_no_spark(
    spark: SparkSession, pipeline: Pipeline
) -> None:
    settings = pipeline.settings

    def versions() -> tuple[int | None, int | None]:
        return (
            object_store.table_version(settings.s3, settings.tables.curated),
            object_store.table_version(settings.s3, settings.tables.quarantine),
        )

    before = versions()
    started: list[bool] = []

    def start_spark() -> SparkSession:
        started.append(True)
        return spark

    from jobs.runs import batch

    rerun = batch.run(start_spark, settings, batch.BatchOptions())
    assert rerun.status == "noop" and "no new raw data" in rerun.message
    assert started == []
    assert versions() == before
    assert latest_run(settings)["status"] == "noop"
