"""Reference data over time: merchant_lookup's history kept by PostgreSQL (trigger, exclusion
constraint, read-only for the jobs) and the point-in-time join of the batch job (each
transaction enriched with the merchant as it was at its event_ts)."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from pyspark.sql import SparkSession

from jobs.adapters.object_store import read_columns
from tests.harness import (
    PipelineCopy,
    curated_summary,
    ingest_here,
    read_outputs,
    run_batch_here,
)
from tests.stack import generate

pytestmark = pytest.mark.integration

CHANGE = "2026-11-08 00:00+00"  # mid-way through the generated events (2026-11-01 .. 14)


@pytest.fixture()
def pipeline(empty_pipeline: PipelineCopy) -> PipelineCopy:
    return empty_pipeline


def as_admin(pipeline: PipelineCopy, *statements: tuple[str, tuple[Any, ...]]) -> None:
    """``statements`` in one transaction as the admin role, as `make psql DB_ROLE=admin` would."""
    with pipeline.connect_admin() as conn, conn.cursor() as cur:
        for statement, params in statements:
            cur.execute(statement, params)
    conn.close()


def versions(pipeline: PipelineCopy, merchant_id: str) -> list[tuple[Any, ...]]:
    with pipeline.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT category, valid_from, valid_to FROM reference.merchant_lookup_history "
            "WHERE merchant_id = %s ORDER BY valid_from NULLS FIRST",
            (merchant_id,),
        )
        found: list[tuple[Any, ...]] = cur.fetchall()
    conn.close()
    return found


def test_the_database_keeps_the_history_and_refuses_overlaps(pipeline: PipelineCopy) -> None:
    [(category, since, until)] = versions(pipeline, "MER-XYZ")  # seeded: valid since always
    assert (category, since, until) == ("Electronics", None, None)

    as_admin(
        pipeline,
        ("SET LOCAL enrich.effective_from = %s", (CHANGE,)),
        ("UPDATE reference.merchant_lookup SET category = 'Gadgets' WHERE merchant_id = %s", ("MER-XYZ",)),
    )  # fmt: skip
    as_admin(  # the same values again: no new version
        pipeline,
        ("UPDATE reference.merchant_lookup SET category = 'Gadgets' WHERE merchant_id = %s", ("MER-XYZ",)),
    )  # fmt: skip
    old, new = versions(pipeline, "MER-XYZ")
    assert old[0] == "Electronics" and old[1] is None and old[2] is not None
    assert new[0] == "Gadgets" and new[1] == old[2] and new[2] is None
    assert str(new[1].date()) == "2026-11-08"

    as_admin(pipeline, ("DELETE FROM reference.merchant_lookup WHERE merchant_id = 'MER-123'", ()))
    [(_, _, ended)] = versions(pipeline, "MER-123")
    assert ended is not None  # a deleted merchant's last version ends

    with pytest.raises(
        psycopg2.errors.ExclusionViolation, match="merchant_lookup_history_no_overlap"
    ):
        as_admin(
            pipeline,
            (
                "INSERT INTO reference.merchant_lookup_history "
                "(merchant_id, merchant_name, category, valid_from) VALUES (%s, 'x', 'y', %s)",
                ("MER-XYZ", "2026-11-09 00:00+00"),
            ),
        )
    with pipeline.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM reference.merchant_lookup_history_gaps")
        assert cur.fetchone() == (0,)
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):  # the jobs only read it
            cur.execute("UPDATE reference.merchant_lookup_history SET category = 'x'")
    conn.close()


def curated_categories(pipeline: PipelineCopy, merchant_id: str) -> set[tuple[bool, str]]:
    """(event before CHANGE?, category) of the merchant's curated rows."""
    table = read_columns(
        pipeline.settings.s3,
        pipeline.bucket.tables.curated,
        ["merchant_id", "event_ts", "enriched_category"],
    )
    return {
        (str(row["event_ts"]) < "2026-11-08", row["enriched_category"])
        for row in table.to_pylist()
        if row["merchant_id"] == merchant_id
    }


def test_each_transaction_gets_the_merchant_as_it_was_at_its_time(
    spark: SparkSession, pipeline: PipelineCopy, tmp_path: Path
) -> None:
    data = tmp_path / "transactions.csv"
    generate(data, 800, 61)
    with data.open() as handle:
        rows = list(csv.DictReader(handle))
    counts = Counter(r["merchant_id"] for r in rows if r["merchant_id"].startswith("MER-0"))
    merchant = next(
        m
        for m, _ in counts.most_common()
        if {r["event_ts"][:10] < "2026-11-08" for r in rows if r["merchant_id"] == m}
        == {True, False}
    )
    [(before, _, _)] = versions(pipeline, merchant)
    as_admin(
        pipeline,
        ("SET LOCAL enrich.effective_from = %s", (CHANGE,)),
        ("UPDATE reference.merchant_lookup SET category = 'Reclassified' WHERE merchant_id = %s", (merchant,)),
    )  # fmt: skip
    ingest_here(spark, pipeline.env, str(data))
    run_batch_here(spark, pipeline.env)

    assert curated_categories(pipeline, merchant) == {(True, before), (False, "Reclassified")}
    first = read_outputs(pipeline)
    assert first.summary == curated_summary(spark, pipeline)

    # A later change (in effect from now, after every event) and a re-enrichment of every
    # date: the same rows as before, since the history of those dates did not change.
    as_admin(
        pipeline,
        ("UPDATE reference.merchant_lookup SET category = 'Later' WHERE merchant_id = %s", (merchant,)),
    )  # fmt: skip
    again = run_batch_here(
        spark, pipeline.env, "--from-date", "2026-10-01", "--to-date", "2026-12-31"
    )
    assert "lookups changed" in again.output
    assert read_outputs(pipeline) == first
