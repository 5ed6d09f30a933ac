"""The "refuse by name" checks (jobs.core.contracts): pure, on schemas and properties."""

from __future__ import annotations

import pytest
from pyspark.sql.types import IntegerType, StringType, StructField, StructType

from jobs.core.contracts import (
    check_change_feed,
    check_csv_header,
    check_curated_table,
    check_ingest_target,
    check_lookup_columns,
    check_raw_table,
    schema_drift,
)
from jobs.core.errors import ConfigError, SourceError
from jobs.core.models import LookupSpec
from jobs.core.schemas import RAW_SCHEMA

MERCHANT = LookupSpec(
    name="merchant",
    table="reference.merchant_lookup",
    key="merchant_id",
    join_on="merchant_id",
    columns={"merchant_name": "merchant_name", "category": "enriched_category"},
)
RAW_PROPERTIES = {"delta.appendOnly": "true", "delta.enableChangeDataFeed": "true"}
PATH = "s3a://raw-data-bucket/financial_data_delta"


def with_fields(schema: StructType, *extra: StructField, drop: str = "") -> StructType:
    return StructType([f for f in schema.fields if f.name != drop] + list(extra))


def test_schema_drift_names_each_added_missing_or_retyped_column() -> None:
    assert schema_drift(RAW_SCHEMA) == []
    fields = [f for f in RAW_SCHEMA.fields if f.name != "currency"]
    fields = [StructField("amount", StringType()) if f.name == "amount" else f for f in fields] + [
        StructField("channel", StringType())
    ]
    assert schema_drift(StructType(fields)) == [
        "column 'amount' is string, expected decimal(18,2)",
        "column 'currency' is missing",
        "column 'channel' (string) is new",
    ]


def test_a_raw_table_in_the_expected_shape_passes() -> None:
    check_raw_table(PATH, RAW_SCHEMA, RAW_PROPERTIES)


def test_a_new_raw_column_is_refused_by_name_unless_ignored() -> None:
    drifted = with_fields(RAW_SCHEMA, StructField("channel", StringType()))
    with pytest.raises(
        SourceError, match=r"column 'channel' \(string\) is new.*Nothing was written"
    ):
        check_raw_table(PATH, drifted, RAW_PROPERTIES)
    check_raw_table(PATH, drifted, RAW_PROPERTIES, new_columns="ignore")
    missing = with_fields(RAW_SCHEMA, drop="currency")
    with pytest.raises(SourceError, match="column 'currency' is missing"):
        check_raw_table(PATH, missing, RAW_PROPERTIES, new_columns="ignore")


@pytest.mark.parametrize(
    ("properties", "message"),
    [
        ({"delta.enableChangeDataFeed": "true"}, "is not append-only"),
        ({"delta.appendOnly": "true"}, "has no change data feed"),
        ({"delta.appendOnly": "TRUE", "delta.enableChangeDataFeed": "false"}, "no change data"),
    ],
)
def test_a_raw_table_without_its_properties_is_refused(
    properties: dict[str, str], message: str
) -> None:
    with pytest.raises(SourceError, match=message) as refused:
        check_raw_table(PATH, RAW_SCHEMA, properties)
    assert PATH in str(refused.value)


def test_change_feed() -> None:
    check_change_feed(PATH, {"delta.enableChangeDataFeed": "True"})
    with pytest.raises(SourceError, match="--full"):
        check_change_feed(PATH, {})


def test_ingest_appends_only_to_a_table_of_its_own_shape() -> None:
    check_ingest_target(PATH, None, RAW_SCHEMA)  # a new table
    check_ingest_target(PATH, RAW_SCHEMA, RAW_SCHEMA)
    older = with_fields(RAW_SCHEMA, drop="_parse_errors")
    with pytest.raises(
        SourceError, match=r"column '_parse_errors' is missing.*Nothing was appended"
    ):
        check_ingest_target(PATH, older, RAW_SCHEMA)


def test_a_curated_table_of_other_lookups_needs_a_full_rebuild() -> None:
    produced = StructType([StructField("transaction_id", StringType())])
    existing = with_fields(produced, StructField("category_group", StringType()))
    check_curated_table("s3a://c/t", produced, produced)
    with pytest.raises(ConfigError, match=r"'category_group' \(string\) is new.*--full"):
        check_curated_table("s3a://c/t", existing, produced)


def test_lookup_with_missing_column_is_refused_naming_table_and_column() -> None:
    schema = StructType([StructField(n, StringType()) for n in ("merchant_id", "merchant_name")])
    with pytest.raises(SourceError, match=r"reference\.merchant_lookup has no column 'category'"):
        check_lookup_columns(MERCHANT, schema)


def test_lookup_key_of_wrong_type_is_refused() -> None:
    schema = StructType(
        [StructField("merchant_id", IntegerType())]
        + [StructField(n, StringType()) for n in ("merchant_name", "category")]
    )
    with pytest.raises(SourceError, match="key column 'merchant_id' must be text, found int"):
        check_lookup_columns(MERCHANT, schema)


@pytest.mark.parametrize(
    "header",
    [
        "transaction_id,merchant_id,amount,currency,event_ts",
        "\ufeffTransaction_ID, merchant_id ,amount,currency,event_ts\r",
    ],
)
def test_csv_header_in_the_expected_order_passes(header: str) -> None:
    check_csv_header("a.csv", header)


@pytest.mark.parametrize(
    "header", ["merchant_id,transaction_id,amount,currency,event_ts", "", None, "T-1,M,1,USD,x"]
)
def test_csv_header_of_another_order_or_none_is_refused(header: str | None) -> None:
    with pytest.raises(SourceError, match=r"swapped\.csv: unexpected CSV header"):
        check_csv_header("swapped.csv", header)
