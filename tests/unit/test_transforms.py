"""Each transform on small hand-written DataFrames, compared exactly with chispa."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from chispa import assert_df_equality
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DateType,
    DecimalType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from jobs.core.models import LookupSpec
from jobs.core.schemas import (
    AMOUNT_TYPE,
    CORRUPT_RECORD,
    INPUT_SCHEMA,
    RAW_RECORD,
    RAW_SCHEMA,
    SOURCE_VERSION,
)
from jobs.core.transforms import (
    Clock,
    EarlierClock,
    Transform,
    add_lineage,
    add_rejection_reasons,
    add_validity,
    appended_rows,
    as_inserts,
    changed_dates,
    curated_rows,
    daily_category_summary,
    event_date_between,
    flag_superseded_duplicates,
    join_lookup,
    key_in,
    parse_input_records,
    quarantined_rows,
    raw_changes_as_rows,
    rejected_rows,
    run_counts,
    summary_changes,
    superseded_rows,
    valid_raw_text,
)

INGESTED = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
AS_OF = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
MERCHANT = LookupSpec(
    name="merchant",
    table="reference.merchant_lookup",
    key="merchant_id",
    join_on="merchant_id",
    columns={"merchant_name": "merchant_name", "category": "enriched_category"},
    when_unmatched={"enriched_category": "UNKNOWN"},
    when_null={"enriched_category": "UNCATEGORIZED"},
)


def ts(text: str) -> datetime:
    """A UTC timestamp as Spark returns it with session time zone UTC (naive, in UTC)."""
    return datetime.fromisoformat(text).astimezone(UTC).replace(tzinfo=None)


def raw_rows(
    spark: SparkSession, rows: list[tuple[object, ...]], versions: list[int] | None = None
) -> DataFrame:
    """Raw-table rows from (transaction_id, merchant_id, amount, currency, event_ts,
    ingested_at, parse_errors), committed in raw version 1 unless ``versions`` says otherwise."""
    versions = versions or [1] * len(rows)
    full = [
        (
            tid,
            mid,
            amount,
            cur,
            event,
            f"r{n}",
            "file:/in.csv",
            "ingest-1",
            ingested,
            None,
            errors,
            v,
        )
        for n, ((tid, mid, amount, cur, event, ingested, errors), v) in enumerate(
            zip(rows, versions, strict=True)
        )
    ]
    schema = StructType([*RAW_SCHEMA.fields, StructField(SOURCE_VERSION, LongType())])
    return spark.createDataFrame(full, schema)


# --------------------------------------------------------------------------------------------
# parse_input_records
# --------------------------------------------------------------------------------------------


def parse(spark: SparkSession, rows: list[tuple[str | None, ...]]) -> DataFrame:
    df = spark.createDataFrame(rows, INPUT_SCHEMA)
    return df.transform(parse_input_records(F.lit("file:/in.csv"), "ingest-1", INGESTED))


def test_parse_types_values_and_normalises_utc_offsets(spark: SparkSession) -> None:
    parsed = parse(
        spark,
        [
            ("T1", "MER-ABC", "12.50", "usd", "2026-11-01T23:30:00-05:00", None),
            (" T2 ", "MER-XYZ", "7", "EUR", "2026-11-02T00:00:00Z", None),
            ("T3", "MER-123", "0.01", "GBP", "2026-11-02 08:15:00", None),
        ],
    ).select("transaction_id", "amount", "currency", "event_ts", "_parse_errors")
    expected = spark.createDataFrame(
        [
            ("T1", Decimal("12.50"), "USD", ts("2026-11-02T04:30:00+00:00"), []),
            ("T2", Decimal("7.00"), "EUR", ts("2026-11-02T00:00:00+00:00"), []),
            ("T3", Decimal("0.01"), "GBP", ts("2026-11-02T08:15:00+00:00"), []),
        ],
        StructType(
            [
                StructField("transaction_id", StringType()),
                StructField("amount", AMOUNT_TYPE),
                StructField("currency", StringType()),
                StructField("event_ts", TimestampType()),
                StructField("_parse_errors", ArrayType(StringType(), containsNull=False), False),
            ]
        ),
    )
    assert_df_equality(parsed, expected, ignore_row_order=True, ignore_nullable=True)


def test_parse_keeps_unparseable_rows_with_their_text_and_every_error(spark: SparkSession) -> None:
    parsed = parse(
        spark,
        [
            ("T1", "M", "12.345", "USD", "2026-11-01T00:00:00Z", None),
            ("T2", "M", "abc", "USD", "not a time", None),
            ("T3", "M", "99999999999999999999.00", "USD", "2026-11-01T00:00:00Z", None),
            (None, None, None, None, None, "T4,M,oops"),
            ("T5", "M", "", "USD", "", None),
        ],
    )
    rows = {row["transaction_id"]: row for row in parsed.collect()}
    assert rows["T1"]["_parse_errors"] == ["amount '12.345' has more than 2 decimals"]
    assert rows["T1"]["amount"] is None
    # A bad amount does not take the row's good timestamp with it.
    assert rows["T1"]["event_ts"] == ts("2026-11-01T00:00:00+00:00")
    assert rows["T2"]["_parse_errors"] == [
        "amount 'abc' is not a number",
        "event_ts 'not a time' is not a timestamp",
    ]
    assert '"amount":"abc"' in rows["T2"]["_raw_record"]
    assert rows["T3"]["_parse_errors"] == ["amount '99999999999999999999.00' is out of range"]
    assert rows[None]["_parse_errors"] == ["record could not be split into fields"]
    assert rows[None]["_raw_record"] == "T4,M,oops"
    # Blank fields are missing values, not parse errors: validation reports them.
    assert rows["T5"]["_parse_errors"] == []
    assert rows["T5"]["amount"] is None and rows["T5"]["event_ts"] is None
    assert rows["T5"]["_raw_record"] is None


def not_utf8() -> Column:
    """ "T4," then a byte that starts a two-byte character and one that cannot continue it."""
    return F.unhex(F.lit("54342CC328")).cast("string")


def text_as_hex(df: DataFrame) -> tuple[str, bool]:
    row = df.select(F.hex(RAW_RECORD).alias("hex"), F.is_valid_utf8(RAW_RECORD).alias("ok")).first()
    assert row is not None
    return row["hex"], row["ok"]


def test_parse_keeps_a_line_that_is_not_utf8_as_valid_text(spark: SparkSession) -> None:
    """A compressed file under a text name: its lines are kept, with invalid bytes as U+FFFD,
    because delta-rs and DuckDB refuse a Parquet string that is not UTF-8."""
    lines = spark.createDataFrame([(None,) * 6], INPUT_SCHEMA).withColumn(
        CORRUPT_RECORD, not_utf8()
    )
    assert text_as_hex(lines.withColumnRenamed(CORRUPT_RECORD, RAW_RECORD)) == ("54342CC328", False)
    parsed = lines.transform(parse_input_records(F.lit("file:/in.jsonl"), "i", INGESTED))
    assert text_as_hex(parsed) == ("54342CEFBFBD28", True)


def test_raw_text_written_by_earlier_ingests_is_read_as_valid_utf8(spark: SparkSession) -> None:
    row = ("T1", "M", None, "USD", ts("2026-11-01T00:00:00+00:00"), INGESTED, ["x"])
    raw = raw_rows(spark, [row]).withColumn(RAW_RECORD, not_utf8())
    assert text_as_hex(raw.transform(valid_raw_text)) == ("54342CEFBFBD28", True)


# --------------------------------------------------------------------------------------------
# add_rejection_reasons
# --------------------------------------------------------------------------------------------


def reasons_of(df: DataFrame) -> dict[str | None, list[str]]:
    validated = df.transform(add_rejection_reasons(AS_OF, 60, {"USD", "EUR"}))
    return {row["transaction_id"]: row["rejection_reasons"] for row in validated.collect()}


def test_validation_gives_every_reason_that_applies(spark: SparkSession) -> None:
    df = raw_rows(
        spark,
        [
            ("OK", "M1", Decimal("1.00"), "USD", ts("2026-11-20T12:59:00+00:00"), INGESTED, []),
            ("NEG", "M1", Decimal("-5.00"), "USD", ts("2026-11-01T00:00:00+00:00"), INGESTED, []),
            ("ZERO", "M1", Decimal("0.00"), "XYZ", None, INGESTED, []),
            ("FUT", "", Decimal("1.00"), "EUR", ts("2026-11-20T13:01:00+00:00"), INGESTED, []),
            (" ", "M1", None, None, ts("2026-11-01T00:00:00+00:00"), INGESTED, []),
            ("BAD", "M1", None, "USD", None, INGESTED, ["amount 'x' is not a number"]),
        ],
    )
    assert reasons_of(df) == {
        "OK": [],
        "NEG": ["amount_not_positive"],
        "ZERO": ["amount_not_positive", "unknown_currency", "missing_event_ts"],
        "FUT": ["missing_merchant_id", "event_ts_in_future"],
        " ": ["missing_transaction_id", "missing_amount", "missing_currency"],
        "BAD": ["malformed_record: amount 'x' is not a number", "missing_event_ts"],
    }


def test_rows_without_parse_errors_get_the_same_reasons_as_rows_with_an_empty_list(
    spark: SparkSession,
) -> None:
    """A row that parsed whole is checked without Spark's array functions; NULL parse errors
    (as a writer other than the ingest may leave) must read as none."""
    rows = [
        ("OK", "M1", Decimal("1.00"), "USD", ts("2026-11-20T12:59:00+00:00"), INGESTED),
        ("NULLAMT", "M1", None, "USD", ts("2026-11-01T00:00:00+00:00"), INGESTED),
        ("BLANK", " ", Decimal("2.00"), " ", None, INGESTED),
        ("FUT", "M1", Decimal("1.00"), "USD", ts("2026-11-20T13:01:00+00:00"), INGESTED),
    ]
    expected = {
        "OK": [],
        "NULLAMT": ["missing_amount"],
        "BLANK": ["missing_merchant_id", "missing_currency", "missing_event_ts"],
        "FUT": ["event_ts_in_future"],
    }
    no_errors: list[list[str] | None] = [[], None]
    for errors in no_errors:
        df = raw_rows(spark, [(*row, errors) for row in rows])
        validated = df.transform(add_rejection_reasons(AS_OF, 60, {"USD", "EUR"}))
        got = {
            row["transaction_id"]: (row["rejection_reasons"], row["_is_valid"])
            for row in validated.collect()
        }
        assert got == {tid: (reasons, not reasons) for tid, reasons in expected.items()}


def test_validity_alone_says_what_the_reasons_say_without_array_functions(
    spark: SparkSession,
) -> None:
    """The classification checks every row with ``add_validity``: the same verdict as the
    reasons give (valid = no reason), and a plan that stays in whole-stage generated code (the
    reasons' ``transform``/``exists``/``filter`` would take the operator out of it)."""
    df = raw_rows(
        spark,
        [
            ("OK", "M1", Decimal("1.00"), "USD", ts("2026-11-20T12:59:00+00:00"), INGESTED, []),
            ("NULLERR", "M1", Decimal("1.00"), "USD", ts("2026-11-20T12:59:00+00:00"), INGESTED, None),
            ("NEG", "M1", Decimal("-5.00"), "USD", ts("2026-11-01T00:00:00+00:00"), INGESTED, []),
            ("FUT", "", Decimal("1.00"), "EUR", ts("2026-11-20T13:01:00+00:00"), INGESTED, []),
            (" ", "M1", None, None, ts("2026-11-01T00:00:00+00:00"), INGESTED, []),
            ("CUR", "M1", Decimal("1.00"), "XYZ", ts("2026-11-01T00:00:00+00:00"), INGESTED, []),
            ("BAD", "M1", None, "USD", None, INGESTED, ["amount 'x' is not a number"]),
            (None, None, None, None, None, INGESTED, ["record could not be split into fields"]),
        ],
    )  # fmt: skip
    valid = df.transform(add_validity(AS_OF, 60, {"USD", "EUR"}))
    verdicts = {row["transaction_id"]: row["_is_valid"] for row in valid.collect()}
    assert verdicts == {tid: not reasons for tid, reasons in reasons_of(df).items()}
    assert verdicts["OK"] and verdicts["NULLERR"] and not verdicts["BAD"]
    plan = valid._jdf.queryExecution().executedPlan().toString()
    projects = [line for line in plan.splitlines() if "Project [" in line]
    assert projects and all("*(" in line for line in projects), plan  # in generated code


def test_rows_an_unfinished_run_read_keep_its_clock(spark: SparkSession) -> None:
    """A recovery judges "in the future" the rows of the raw versions an unfinished run read by
    that run's start, the first such run's where two read them: the dead run may have committed
    its verdict (quarantined as in the future) and a later clock would curate the row too."""
    dead_first = EarlierClock(3, 5, datetime(2026, 11, 20, 10, 0, tzinfo=UTC))
    dead_second = EarlierClock(3, 7, datetime(2026, 11, 20, 11, 0, tzinfo=UTC))
    clock = Clock(AS_OF, (dead_second, dead_first))  # any order: the earliest start decides
    # max_future_minutes 60: the latest allowed is 11:00 for the first dead run's versions,
    # 12:00 for the second's, 13:00 for the others.
    at_11_30 = ts("2026-11-20T11:30:00+00:00")
    at_12_30 = ts("2026-11-20T12:30:00+00:00")
    rows: list[tuple[object, ...]] = []
    versions: list[int] = []
    for version in (2, 3, 5, 6, 7, 8):
        for tag, event_ts in (("1130", at_11_30), ("1230", at_12_30)):
            rows.append((f"V{version}-{tag}", "M1", Decimal("1.00"), "USD", event_ts, INGESTED, []))
            versions.append(version)
    df = raw_rows(spark, rows, versions)
    expected = {
        "V2-1130": True, "V2-1230": True,
        "V3-1130": False, "V3-1230": False, "V5-1130": False, "V5-1230": False,
        "V6-1130": True, "V6-1230": False, "V7-1130": True, "V7-1230": False,
        "V8-1130": True, "V8-1230": True,
    }  # fmt: skip
    valid = df.transform(add_validity(clock, 60, {"USD"}))
    assert {r["transaction_id"]: r["_is_valid"] for r in valid.collect()} == expected
    with_reasons = df.transform(add_rejection_reasons(clock, 60, {"USD"}))
    reasons = {r["transaction_id"]: r["rejection_reasons"] for r in with_reasons.collect()}
    assert reasons == {
        tid: [] if is_valid else ["event_ts_in_future"] for tid, is_valid in expected.items()
    }
    # Without earlier runs, a Clock is the time it holds, for every row.
    same = df.transform(add_validity(Clock(AS_OF), 0, {"USD"}))
    assert_df_equality(same, df.transform(add_validity(AS_OF, 0, {"USD"})), ignore_row_order=True)
    valid_ids = {r["transaction_id"] for r in same.collect() if r["_is_valid"]}
    assert valid_ids == {tid for tid in expected if tid.endswith("1130")}  # by 12:00, all rows


def test_malformed_line_is_only_reported_as_malformed(spark: SparkSession) -> None:
    df = raw_rows(
        spark, [(None, None, None, None, None, INGESTED, ["record could not be split into fields"])]
    )
    assert reasons_of(df) == {None: ["malformed_record: record could not be split into fields"]}


# --------------------------------------------------------------------------------------------
# flag_superseded_duplicates
# --------------------------------------------------------------------------------------------


def test_latest_ingestion_wins_and_invalid_rows_do_not_compete(spark: SparkSession) -> None:
    earlier = datetime(2026, 11, 19, tzinfo=UTC)
    df = raw_rows(
        spark,
        [
            ("T1", "M1", Decimal("1.00"), "USD", ts("2026-11-01T00:00:00+00:00"), earlier, []),
            ("T1", "M1", Decimal("2.00"), "USD", ts("2026-11-01T00:00:00+00:00"), INGESTED, []),
            ("T2", "M1", Decimal("3.00"), "USD", ts("2026-11-01T00:00:00+00:00"), INGESTED, []),
            ("T2", "M1", Decimal("-3.00"), "USD", ts("2026-11-01T00:00:00+00:00"), INGESTED, []),
        ],
    )
    flagged = (
        df.transform(add_rejection_reasons(AS_OF, 60, {"USD"}))
        .transform(flag_superseded_duplicates)
        .select("transaction_id", "amount", "_is_valid", "_is_duplicate")
    )
    expected = spark.createDataFrame(
        [
            ("T1", Decimal("1.00"), True, True),
            ("T1", Decimal("2.00"), True, False),
            ("T2", Decimal("3.00"), True, False),
            ("T2", Decimal("-3.00"), False, False),
        ],
        "transaction_id string, amount decimal(18,2), _is_valid boolean, _is_duplicate boolean",
    )
    assert_df_equality(flagged, expected, ignore_row_order=True, ignore_nullable=True)


def test_the_later_raw_commit_wins_whatever_the_clocks_said(spark: SparkSession) -> None:
    """Ingest clocks can disagree; the order of raw commits cannot."""
    later_clock = datetime(2026, 11, 21, tzinfo=UTC)
    df = raw_rows(
        spark,
        [
            ("T1", "M1", Decimal("1.00"), "USD", ts("2026-11-01T00:00:00+00:00"), later_clock, []),
            ("T1", "M1", Decimal("2.00"), "USD", ts("2026-11-01T00:00:00+00:00"), INGESTED, []),
        ],
        versions=[3, 4],
    )
    winners = (
        df.transform(add_rejection_reasons(AS_OF, 60, {"USD"}))
        .transform(flag_superseded_duplicates)
        .filter(~F.col("_is_duplicate"))
    )
    assert [(r["amount"], r[SOURCE_VERSION]) for r in winners.collect()] == [(Decimal("2.00"), 4)]


def test_identical_repeats_in_one_commit_are_decided_by_record_id(spark: SparkSession) -> None:
    row: tuple[object, ...] = (
        "T1",
        "M1",
        Decimal("1.00"),
        "USD",
        ts("2026-11-01T00:00:00+00:00"),
        INGESTED,
        [],
    )
    df = raw_rows(spark, [row, row, row])
    for partitions in (1, 3):
        winners = (
            df.repartition(partitions)
            .transform(add_rejection_reasons(AS_OF, 60, {"USD"}))
            .transform(flag_superseded_duplicates)
            .filter(~F.col("_is_duplicate"))
        )
        assert [r["_record_id"] for r in winners.collect()] == ["r2"]


# --------------------------------------------------------------------------------------------
# join_lookup
# --------------------------------------------------------------------------------------------


def merchants(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame(
        [("MER-ABC", "Alpha Mart", "Groceries"), ("MER-NUL", "No Category Ltd", None)],
        "merchant_id string, merchant_name string, category string",
    )


def test_join_lookup_match_no_match_null_value_and_null_key(spark: SparkSession) -> None:
    data = spark.createDataFrame(
        [("T1", "MER-ABC"), ("T2", "MER-UNK"), ("T3", "MER-NUL"), ("T4", None)],
        "transaction_id string, merchant_id string",
    )
    joined = data.transform(join_lookup(merchants(spark), MERCHANT))
    expected = spark.createDataFrame(
        [
            ("T1", "MER-ABC", True, "Alpha Mart", "Groceries"),
            ("T2", "MER-UNK", False, None, "UNKNOWN"),
            ("T3", "MER-NUL", True, "No Category Ltd", "UNCATEGORIZED"),
            ("T4", None, False, None, "UNKNOWN"),
        ],
        StructType(
            [
                StructField("transaction_id", StringType()),
                StructField("merchant_id", StringType()),
                StructField("_matched_merchant", BooleanType(), False),
                StructField("merchant_name", StringType()),
                StructField("enriched_category", StringType()),
            ]
        ),
    )
    assert_df_equality(joined, expected, ignore_row_order=True, ignore_nullable=True)


def test_a_temporal_lookup_joins_the_version_valid_at_each_event(spark: SparkSession) -> None:
    history = spark.createDataFrame(
        [
            ("MER-A", "Alpha", "Groceries", None, ts("2026-11-10T00:00:00+00:00")),
            ("MER-A", "Alpha", "Travel", ts("2026-11-10T00:00:00+00:00"), None),
            ("MER-B", "Beta", None, ts("2026-11-05T00:00:00+00:00"), None),  # added on 11-05
        ],
        "merchant_id string, merchant_name string, category string, "
        "valid_from timestamp, valid_to timestamp",
    )
    data = spark.createDataFrame(
        [
            ("T1", "MER-A", ts("2026-10-01T00:00:00+00:00")),  # before any change: open start
            ("T2", "MER-A", ts("2026-11-09T23:59:59+00:00")),
            ("T3", "MER-A", ts("2026-11-10T00:00:00+00:00")),  # valid_from is inclusive
            ("T4", "MER-B", ts("2026-11-04T00:00:00+00:00")),  # before its first version
            ("T5", "MER-B", ts("2026-11-06T00:00:00+00:00")),
            ("T6", "MER-A", None),
        ],
        "transaction_id string, merchant_id string, event_ts timestamp",
    )
    spec = LookupSpec(**{**MERCHANT.__dict__, "temporal": True})
    joined = data.transform(join_lookup(history, spec)).select(
        "transaction_id", "_matched_merchant", "enriched_category"
    )
    expected = spark.createDataFrame(
        [
            ("T1", True, "Groceries"),
            ("T2", True, "Groceries"),
            ("T3", True, "Travel"),
            ("T4", False, "UNKNOWN"),
            ("T5", True, "UNCATEGORIZED"),
            ("T6", False, "UNKNOWN"),
        ],
        "transaction_id string, _matched_merchant boolean, enriched_category string",
    )
    assert_df_equality(joined, expected, ignore_row_order=True, ignore_nullable=True)


# --------------------------------------------------------------------------------------------
# curated / quarantine split, counts and summary
# --------------------------------------------------------------------------------------------


def classified(
    spark: SparkSession, validate: Callable[..., Transform] = add_rejection_reasons
) -> DataFrame:
    df = raw_rows(
        spark,
        [
            (
                "T1",
                "MER-ABC",
                Decimal("10.10"),
                "USD",
                ts("2026-11-01T23:59:59+00:00"),
                INGESTED,
                [],
            ),
            (
                "T2",
                "MER-UNK",
                Decimal("5.05"),
                "USD",
                ts("2026-11-02T00:00:00+00:00"),
                INGESTED,
                [],
            ),
            (
                "T2",
                "MER-UNK",
                Decimal("5.05"),
                "USD",
                ts("2026-11-02T00:00:00+00:00"),
                INGESTED,
                [],
            ),
            (
                "T3",
                "MER-ABC",
                Decimal("-1.00"),
                "USD",
                ts("2026-11-01T10:00:00+00:00"),
                INGESTED,
                [],
            ),
            (
                "T4",
                "MER-ABC",
                Decimal("0.20"),
                "USD",
                ts("2026-11-01T00:00:00+00:00"),
                INGESTED,
                [],
            ),
        ],
    )
    return (
        df.transform(validate(AS_OF, 60, {"USD"}))
        .transform(flag_superseded_duplicates)
        .transform(join_lookup(merchants(spark), MERCHANT))
        .transform(add_lineage("run-1", AS_OF))
    )


def test_rows_classified_by_validity_alone_are_quarantined_with_their_reasons(
    spark: SparkSession,
) -> None:
    """``rejected_rows`` (the runs' quarantine) on rows classified with ``add_validity`` gives
    the rows and reasons ``quarantined_rows`` gives on rows classified with the reasons."""
    with_reasons = classified(spark)
    by_validity = classified(spark, add_validity)
    expected = with_reasons.transform(quarantined_rows)
    got = by_validity.transform(rejected_rows(AS_OF, 60, {"USD"}))
    assert got.columns == expected.columns
    assert_df_equality(got, expected, ignore_row_order=True)
    assert "rejection_reasons" not in by_validity.columns  # the classification carries none


def test_every_row_lands_in_exactly_one_output_and_counts_reconcile(spark: SparkSession) -> None:
    rows = classified(spark)
    curated = rows.transform(curated_rows(["merchant_name", "enriched_category"]))
    quarantine = rows.transform(quarantined_rows)
    assert sorted(r["transaction_id"] for r in curated.collect()) == ["T1", "T2", "T4"]
    assert sorted(
        (r["transaction_id"], tuple(r["rejection_reasons"])) for r in quarantine.collect()
    ) == [
        ("T2", ("duplicate_transaction_id",)),
        ("T3", ("amount_not_positive",)),
    ]
    counts = rows.transform(run_counts(MERCHANT)).first()
    assert counts is not None
    assert counts.asDict() == {
        "counts_row": True,
        "unmatched_value": None,
        "rows_read": 5,
        "rows_curated": 3,
        "rows_quarantined": 1,
        "rows_duplicate": 1,
        "rows_unmatched": 1,
        "curated_id_low": "T1",
        "curated_id_high": "T4",
    }


def test_run_counts_rows_after_the_counts_are_the_top_unmatched_values_of_curated_rows(
    spark: SparkSession,
) -> None:
    rows = spark.createDataFrame(
        [
            *[(f"A{n}", "MER-A", True, False, False) for n in range(2)],
            *[(f"B{n}", "MER-B", True, False, False) for n in range(2)],
            ("C1", "MER-C", True, False, False),
            ("N1", None, True, False, False),
            ("M1", "MER-ABC", True, False, True),  # matched
            *[(f"X{n}", "MER-X", False, False, False) for n in range(3)],  # quarantined
            ("A0", "MER-D", True, True, False),  # a superseded duplicate
        ],
        "transaction_id string, merchant_id string, _is_valid boolean, _is_duplicate boolean, "
        "_matched_merchant boolean",
    )

    def rows_after_the_counts(top: int) -> list[tuple[str | None, int]]:
        counts, *values = rows.transform(run_counts(MERCHANT, top)).collect()
        assert counts["counts_row"] and counts["rows_read"] == 11
        assert counts["rows_unmatched"] == 6
        return [(row["unmatched_value"], row["rows_unmatched"]) for row in values]

    assert rows_after_the_counts(2) == [("MER-A", 2), ("MER-B", 2)]
    assert rows_after_the_counts(9) == [("MER-A", 2), ("MER-B", 2), (None, 1), ("MER-C", 1)]
    assert rows.limit(0).transform(run_counts(MERCHANT)).collect() == []


def test_run_counts_without_the_id_range_are_the_same_counts_from_a_hash_aggregate(
    spark: SparkSession,
) -> None:
    rows = spark.createDataFrame(
        [("T2", "MER-X", True, False, False), ("T1", "MER-ABC", True, False, True)],
        "transaction_id string, merchant_id string, _is_valid boolean, _is_duplicate boolean, "
        "_matched_merchant boolean",
    )
    with_range = rows.transform(run_counts(MERCHANT)).collect()
    without = rows.transform(run_counts(MERCHANT, id_range=False))
    assert (with_range[0]["curated_id_low"], with_range[0]["curated_id_high"]) == ("T1", "T2")
    expected = [
        {**row.asDict(), "curated_id_low": None, "curated_id_high": None} for row in with_range
    ]
    assert [row.asDict() for row in without.collect()] == expected
    # A text minimum makes Spark sort every row to aggregate; without it, a hash aggregate.
    plan = without._jdf.queryExecution().executedPlan().toString()
    assert "SortAggregate" not in plan and "HashAggregate" in plan


def test_summary_sums_decimals_exactly_per_utc_day(spark: SparkSession) -> None:
    curated = classified(spark).transform(curated_rows(["merchant_name", "enriched_category"]))
    summary = curated.transform(daily_category_summary)
    expected = spark.createDataFrame(
        [
            (date(2026, 11, 1), "Groceries", "USD", 2, Decimal("10.30")),
            (date(2026, 11, 2), "UNKNOWN", "USD", 1, Decimal("5.05")),
        ],
        StructType(
            [
                StructField("event_date", DateType()),
                StructField("category", StringType()),
                StructField("currency", StringType()),
                StructField("transaction_count", LongType(), False),
                StructField("total_amount", DecimalType(20, 2)),
            ]
        ),
    )
    assert_df_equality(summary, expected, ignore_row_order=True, ignore_nullable=True)


# --------------------------------------------------------------------------------------------
# change feeds: raw rows in, replaced curated rows and changed dates out
# --------------------------------------------------------------------------------------------

CDF_TYPES = "_change_type string, _commit_version bigint, _commit_timestamp timestamp"


def test_raw_changes_keep_inserts_with_their_commit_version(spark: SparkSession) -> None:
    changes = spark.createDataFrame(
        [("T1", "insert", 5, AS_OF), ("T2", "delete", 6, AS_OF)],
        f"transaction_id string, {CDF_TYPES}",
    )
    rows = changes.transform(raw_changes_as_rows)
    expected = spark.createDataFrame([("T1", 5)], "transaction_id string, _source_version bigint")
    assert_df_equality(rows, expected, ignore_nullable=True)


def test_appended_rows_get_the_version_of_the_commit_that_added_their_file(
    spark: SparkSession,
) -> None:
    read = spark.createDataFrame(
        [("T1", ("part-a.parquet",)), ("T2", ("part-b.parquet",)), ("T3", ("part-a.parquet",))],
        "transaction_id string, _metadata struct<file_name: string>",
    )
    rows = read.transform(appended_rows({"part-a.parquet": 3, "part-b.parquet": 7}))
    expected = spark.createDataFrame(
        [("T1", 3), ("T2", 7), ("T3", 3)], "transaction_id string, _source_version bigint"
    )
    assert_df_equality(rows.drop("_metadata"), expected, ignore_nullable=True)
    unmapped = read.transform(appended_rows({"part-a.parquet": 3}))
    with pytest.raises(Exception, match=r"no commit version known for file part-b\.parquet"):
        unmapped.collect()


def curated_change(
    tid: str, record: str, day: date, change: str, version: int
) -> tuple[object, ...]:
    return (
        tid,
        "M1",
        "Shop",
        "Groceries",
        Decimal("1.00"),
        "USD",
        datetime(day.year, day.month, day.day, 12),
        record,
        "file:/in.csv",
        "ingest-1",
        datetime(2026, 11, 20),
        "run-0",
        version - 1,
        datetime(2026, 11, 20),
        day,
        change,
        version,
        datetime(2026, 11, 20),
    )


CURATED_CHANGE_SCHEMA = (
    "transaction_id string, merchant_id string, merchant_name string, enriched_category string, "
    "amount decimal(18,2), currency string, event_ts timestamp, _record_id string, "
    "_source_file string, _ingest_id string, _ingested_at timestamp, _run_id string, "
    f"_source_version bigint, _enriched_at timestamp, event_date date, {CDF_TYPES}"
)


def test_a_replaced_record_is_quarantined_and_a_replayed_one_is_not(spark: SparkSession) -> None:
    d1, d2, d3 = date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3)
    changes = spark.createDataFrame(
        [
            # version 7: T1's record r1 (on d1) replaced by r9 (on d2): r1 is superseded.
            curated_change("T1", "r1", d1, "update_preimage", 7),
            curated_change("T1", "r9", d2, "update_postimage", 7),
            # version 8: a rerun after a crash writes r9 again: nothing is superseded.
            curated_change("T1", "r9", d2, "update_preimage", 8),
            curated_change("T1", "r9", d2, "update_postimage", 8),
            curated_change("T5", "r5", d3, "insert", 8),
        ],
        CURATED_CHANGE_SCHEMA,
    )
    superseded = changes.transform(superseded_rows("run-2", AS_OF))
    assert [
        (r["transaction_id"], r["_record_id"], r["rejection_reasons"], r["_run_id"])
        for r in superseded.collect()
    ] == [("T1", "r1", ["duplicate_transaction_id"], "run-2")]
    assert superseded.columns == list(quarantined_rows(classified(spark)).columns)
    assert sorted(r["event_date"] for r in changes.transform(changed_dates).collect()) == [
        d1,
        d2,
        d3,
    ]


def test_summary_changes_add_new_sides_and_take_away_old_ones(spark: SparkSession) -> None:
    d1, d2, d3 = date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3)

    def costing(amount: str, row: tuple[object, ...]) -> tuple[object, ...]:
        return (*row[:4], Decimal(amount), *row[5:])

    changes = spark.createDataFrame(
        [
            # version 7: T1 moves from d1 to d2; version 8: its amount is corrected.
            curated_change("T1", "r1", d1, "update_preimage", 7),
            curated_change("T1", "r9", d2, "update_postimage", 7),
            curated_change("T1", "r9", d2, "update_preimage", 8),
            costing("3.50", curated_change("T1", "r10", d2, "update_postimage", 8)),
            # d3: one row in, one row out: the date nets to zero and is still listed.
            costing("2.25", curated_change("T5", "r5", d3, "insert", 8)),
            costing("2.25", curated_change("T6", "r6", d3, "delete", 8)),
        ],
        CURATED_CHANGE_SCHEMA,
    )
    expected = spark.createDataFrame(
        [
            (d1, "Groceries", "USD", -1, Decimal("-1.00")),
            (d2, "Groceries", "USD", 1, Decimal("3.50")),
            (d3, "Groceries", "USD", 0, Decimal("0.00")),
        ],
        StructType(
            [
                StructField("event_date", DateType()),
                StructField("category", StringType()),
                StructField("currency", StringType()),
                StructField("transaction_count", LongType()),
                StructField("total_amount", DecimalType(20, 2)),
            ]
        ),
    )
    assert_df_equality(
        changes.transform(summary_changes), expected, ignore_row_order=True, ignore_nullable=True
    )


def test_appended_rows_as_inserts_change_the_summary_by_their_own_group_by(
    spark: SparkSession,
) -> None:
    curated = classified(spark).transform(curated_rows(["merchant_name", "enriched_category"]))
    assert_df_equality(
        curated.transform(as_inserts).transform(summary_changes),
        curated.transform(daily_category_summary),
        ignore_row_order=True,
        ignore_nullable=True,
    )


def test_event_date_between_is_inclusive_in_utc(spark: SparkSession) -> None:
    df = spark.createDataFrame(
        [
            ("a", ts("2026-11-01T23:59:59+00:00")),
            ("b", ts("2026-11-03T00:00:00+00:00")),
            ("c", ts("2026-11-02T00:30:00+02:00")),
            ("d", None),
        ],
        "id string, event_ts timestamp",
    )
    kept = df.transform(event_date_between(date(2026, 11, 1), date(2026, 11, 2)))
    assert sorted(r["id"] for r in kept.collect()) == ["a", "c"]


def test_key_in_keeps_exactly_the_rows_whose_key_is_listed(spark: SparkSession) -> None:
    """One SQL expression for many keys: quotes and backslashes in a key stay literal."""
    names = spark.createDataFrame(
        [("O'Brien",), ("back\\slash",), ("plain",), ("other",), ("'); DROP",)], "k string"
    )
    kept = names.filter(key_in("k", ["O'Brien", "back\\slash", "plain", "absent"]))
    assert sorted(r["k"] for r in kept.collect()) == ["O'Brien", "back\\slash", "plain"]
    numbers = spark.createDataFrame([(1,), (2,), (3,)], "n bigint")
    assert [r["n"] for r in numbers.filter(key_in("n", [3, 1])).orderBy("n").collect()] == [1, 3]
    assert numbers.filter(key_in("n", [])).count() == 0
    days = spark.createDataFrame([(date(2026, 1, 1),), (date(2026, 1, 2),)], "d date")
    assert days.filter(key_in("d", [date(2026, 1, 2)])).count() == 1  # other types: isin
