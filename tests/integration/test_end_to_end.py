"""End to end: generate -> ingest -> batch job, through scripts/submit.sh (what `make ingest` and
`make submit-batch` run), then the design's invariants checked by querying the outputs."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import psycopg2
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.adapters import jdbc, object_store
from jobs.adapters.object_store import s3_client
from jobs.config.settings import S3Settings, Settings, load_settings
from jobs.core.transforms import daily_category_summary

from .conftest import ScratchBucket, delete_bucket, generate, submit

pytestmark = pytest.mark.integration


@dataclass
class Pipeline:
    env: dict[str, str]
    settings: Settings
    batch: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def pipeline(
    tmp_path_factory: pytest.TempPathFactory, test_db_env: dict[str, str], s3: S3Settings
) -> Iterator[Pipeline]:
    client = s3_client(s3)
    bucket = ScratchBucket(f"test-e2e-{uuid.uuid4().hex[:12]}")
    client.create_bucket(Bucket=bucket.name)
    env = {**test_db_env, **bucket.env()}
    data = tmp_path_factory.mktemp("input")
    generate(data / "batch.csv", 3000, 1234)
    generate(data / "batch.jsonl", 1000, 99)
    # One input from a local path, one from the object store.
    client.upload_file(str(data / "batch.jsonl"), bucket.name, "incoming/batch.jsonl")
    for source in (str(data / "batch.csv"), f"s3a://{bucket.name}/incoming/batch.jsonl"):
        landed = submit(env, "ingest", source)
        assert landed.returncode == 0, landed.stdout[-3000:] + landed.stderr[-3000:]
    # The same CSV again: a file ingested twice must not double anything downstream.
    again = submit(env, "ingest", str(data / "batch.csv"))
    assert again.returncode == 0, again.stderr[-3000:]
    batch = submit(env, "batch_enrich")
    assert batch.returncode == 0, batch.stderr[-3000:]
    settings = replace(load_settings(env), tables=bucket.tables)
    yield Pipeline(env, settings, batch)
    delete_bucket(s3, bucket.name)


def tables(spark: SparkSession, settings: Settings) -> tuple[DataFrame, DataFrame, DataFrame]:
    read = spark.read.format("delta").load
    paths = settings.tables
    return read(paths.raw), read(paths.curated), read(paths.quarantine)


def latest_run(settings: Settings) -> dict[str, object]:
    with psycopg2.connect(**settings.postgres.psycopg2_kwargs()) as conn, conn.cursor() as cur:
        cur.execute("SELECT * FROM enrichment_runs ORDER BY started_at DESC LIMIT 1")
        assert cur.description is not None
        names = [column.name for column in cur.description]
        row = cur.fetchone()
    assert row is not None
    return dict(zip(names, row, strict=True))


def test_batch_prints_a_run_summary(pipeline: Pipeline) -> None:
    out = pipeline.batch.stdout
    assert "SUCCEEDED" in out
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


def test_rerun_with_no_new_data_changes_nothing(spark: SparkSession, pipeline: Pipeline) -> None:
    settings = pipeline.settings
    versions = (
        object_store.table_version(settings.s3, settings.tables.curated),
        object_store.table_version(settings.s3, settings.tables.quarantine),
    )
    rerun = submit(pipeline.env, "batch_enrich")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "NOOP" in rerun.stdout and "no new raw data" in rerun.stdout
    assert (
        object_store.table_version(settings.s3, settings.tables.curated),
        object_store.table_version(settings.s3, settings.tables.quarantine),
    ) == versions
    assert latest_run(settings)["status"] == "noop"


# --------------------------------------------------------------------------------------------
# Failures: one clear line, a non-zero exit, outputs untouched, no secret in the output.
# --------------------------------------------------------------------------------------------


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    # spark-submit's PythonRunner merges the driver's stderr into its stdout.
    output = result.stdout + result.stderr
    return [line for line in output.splitlines() if " ERROR enrich: " in line]


def test_missing_setting_is_named(pipeline: Pipeline) -> None:
    env = {k: v for k, v in pipeline.env.items() if k != "POSTGRES_URL"}
    result = submit(env, "batch_enrich")
    assert result.returncode == 2
    [line] = error_lines(result)
    assert "POSTGRES_URL is not set" in line


def test_postgres_down_gives_one_clear_message(spark: SparkSession, pipeline: Pipeline) -> None:
    before = object_store.table_version(pipeline.settings.s3, pipeline.settings.tables.curated)
    target = pipeline.settings.postgres
    closed_port_url = f"postgresql://{target.user}@{target.host}:1/{target.dbname}"
    env = {**pipeline.env, "POSTGRES_URL": closed_port_url}
    result = submit(env, "batch_enrich", "--full")
    assert result.returncode == 4
    [line] = error_lines(result)
    assert f"cannot connect to PostgreSQL at {closed_port_url}" in line
    assert pipeline.env["POSTGRES_PASSWORD"] not in result.stdout + result.stderr
    assert (
        object_store.table_version(pipeline.settings.s3, pipeline.settings.tables.curated) == before
    )


def test_wrong_object_store_secret_gives_one_clear_message(
    spark: SparkSession, pipeline: Pipeline
) -> None:
    before = object_store.table_version(pipeline.settings.s3, pipeline.settings.tables.curated)
    wrong = "wrong-secret-" + uuid.uuid4().hex
    result = submit({**pipeline.env, "AWS_SECRET_ACCESS_KEY": wrong}, "batch_enrich", "--full")
    assert result.returncode == 4
    [line] = error_lines(result)
    assert "refused the credentials" in line
    assert wrong not in result.stdout + result.stderr
    assert (
        object_store.table_version(pipeline.settings.s3, pipeline.settings.tables.curated) == before
    )


def test_csv_with_a_wrong_header_is_refused_whole(
    spark: SparkSession, pipeline: Pipeline, tmp_path: Path
) -> None:
    before = object_store.table_version(pipeline.settings.s3, pipeline.settings.tables.raw)
    bad = tmp_path / "swapped.csv"
    bad.write_text(
        "merchant_id,transaction_id,amount,currency,event_ts\nMER-ABC,T-1,1.00,USD,2026-11-01T00:00:00Z\n"
    )
    result = submit(pipeline.env, "ingest", str(bad))
    assert result.returncode == 3
    [line] = error_lines(result)
    assert "swapped.csv: unexpected CSV header" in line
    assert object_store.table_version(pipeline.settings.s3, pipeline.settings.tables.raw) == before
