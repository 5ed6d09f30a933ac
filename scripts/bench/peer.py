"""The single-node peer for `make bench`: the batch job's full run done with DuckDB and delta-rs.

Reads the raw Delta table's rows with their commit versions (delta-rs change feed), the lookups
from Postgres (COPY), applies the same rules as jobs/transforms.py (every rejection reason, the
latest raw commit wins among valid rows of one transaction id, UNKNOWN / UNCATEGORIZED / OTHER
for unmatched lookups), writes curated (partitioned by event_date) and quarantine as Delta
tables on the object store and replaces the summary rows in Postgres with COPY in one
transaction. Prints one JSON line of counts, which the bench compares with the job's.

    python -m scripts.bench.peer RAW_URI CURATED_URI QUARANTINE_URI
"""

from __future__ import annotations

import io
import json
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import psycopg2
import pyarrow as pa
import pyarrow.csv as pa_csv
from deltalake import DeltaTable, write_deltalake

from jobs.adapters.object_store import delta_storage_options
from jobs.config.postgres_url import target_from_env
from jobs.config.settings import S3Settings, load_settings
from jobs.core.currencies import ISO_4217_CODES


def storage_options(s3: S3Settings) -> dict[str, str]:
    # One writer (the bench) at a time; MinIO has no DynamoDB-style commit lock.
    return {**delta_storage_options(s3), "AWS_S3_ALLOW_UNSAFE_RENAME": "true"}


def s3_uri(path: str) -> str:
    return "s3://" + path.split("://", 1)[1]


def lookup_table(cur: Any, query: str, column_types: dict[str, Any] | None = None) -> Any:
    buffer = io.BytesIO()
    cur.copy_expert(f"COPY ({query}) TO STDOUT WITH (FORMAT csv, HEADER true)", buffer)
    buffer.seek(0)
    options = pa_csv.ConvertOptions(strings_can_be_null=True, column_types=column_types or {})
    return pa_csv.read_csv(buffer, convert_options=options)


CLASSIFY = """
CREATE TEMP TABLE classified AS
WITH raw AS (
    SELECT * EXCLUDE (_change_type, _commit_version, _commit_timestamp),
           CAST(_commit_version AS BIGINT) AS _source_version,
           coalesce(_parse_errors, []::VARCHAR[]) AS pe
    FROM raw_changes WHERE _change_type = 'insert'
),
flags AS (
    SELECT *,
        len(list_filter(pe, lambda e: starts_with(e, 'record'))) > 0 AS row_error,
        len(list_filter(pe, lambda e: starts_with(e, 'amount'))) > 0 AS amount_unparsed,
        len(list_filter(pe, lambda e: starts_with(e, 'event_ts'))) > 0 AS ts_unparsed
    FROM raw
),
reasoned AS (
    SELECT * EXCLUDE (pe, row_error, amount_unparsed, ts_unparsed),
        list_concat(
            list_transform(pe, lambda e: 'malformed_record: ' || e),
            list_filter([
                CASE WHEN coalesce(trim(transaction_id), '') = '' AND NOT row_error
                     THEN 'missing_transaction_id' END,
                CASE WHEN coalesce(trim(merchant_id), '') = '' AND NOT row_error
                     THEN 'missing_merchant_id' END,
                CASE WHEN amount IS NULL AND NOT amount_unparsed AND NOT row_error
                     THEN 'missing_amount' END,
                CASE WHEN amount <= 0 THEN 'amount_not_positive' END,
                CASE WHEN coalesce(trim(currency), '') = '' AND NOT row_error
                     THEN 'missing_currency' END,
                CASE WHEN coalesce(trim(currency), '') <> '' AND NOT list_contains($codes, currency)
                     THEN 'unknown_currency' END,
                CASE WHEN event_ts IS NULL AND NOT ts_unparsed AND NOT row_error
                     THEN 'missing_event_ts' END,
                CASE WHEN event_ts > $latest_allowed THEN 'event_ts_in_future' END
            ], lambda r: r IS NOT NULL)
        ) AS rejection_reasons
    FROM flags
),
ranked AS (
    SELECT *, len(rejection_reasons) = 0 AS is_valid,
        row_number() OVER (
            PARTITION BY transaction_id, len(rejection_reasons) = 0
            ORDER BY _source_version DESC NULLS LAST, _ingested_at DESC NULLS LAST,
                     _ingest_id DESC NULLS LAST, _source_file DESC NULLS LAST,
                     _record_id DESC NULLS LAST
        ) AS rank
    FROM reasoned
)
SELECT r.* EXCLUDE (rank), r.is_valid AND r.rank > 1 AS is_duplicate,
    m.merchant_id IS NOT NULL AS merchant_matched,
    m.merchant_name,
    CASE WHEN m.merchant_id IS NULL THEN 'UNKNOWN'
         WHEN m.category IS NULL THEN 'UNCATEGORIZED'
         ELSE m.category END AS enriched_category
FROM ranked r LEFT JOIN merchants m ON r.merchant_id = m.merchant_id
    AND (m.valid_from IS NULL OR r.event_ts >= m.valid_from)
    AND (m.valid_to IS NULL OR r.event_ts < m.valid_to)
"""

# The merchant lookup as the job reads it: every version, valid [from, to) (NULL: open), of a
# temporal lookup; today's rows, always valid, of a plain one. Times as naive UTC.
TEMPORAL_MERCHANTS = """
SELECT merchant_id, merchant_name, category,
       to_char(valid_from AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') AS valid_from,
       to_char(valid_to AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') AS valid_to
FROM reference.merchant_lookup_history
"""
PLAIN_MERCHANTS = """
SELECT merchant_id, merchant_name, category,
       NULL::text AS valid_from, NULL::text AS valid_to
FROM reference.merchant_lookup
"""

CURATED = """
SELECT c.transaction_id, c.merchant_id, c.merchant_name, c.enriched_category,
    CASE WHEN g.category IS NULL THEN 'OTHER' ELSE g.category_group END AS category_group,
    c.amount, c.currency, c.event_ts, c._record_id, c._source_file, c._ingest_id,
    c._ingested_at, $run_id AS _run_id, c._source_version, $as_of AS _enriched_at,
    CAST(c.event_ts AS DATE) AS event_date
FROM classified c LEFT JOIN category_groups g ON c.enriched_category = g.category
WHERE c.is_valid AND NOT c.is_duplicate
"""

QUARANTINE = """
SELECT transaction_id, merchant_id, amount, currency, event_ts,
    CASE WHEN is_duplicate THEN list_append(rejection_reasons, 'duplicate_transaction_id')
         ELSE rejection_reasons END AS rejection_reasons,
    _raw_record, _record_id, _source_file, _ingest_id, _ingested_at,
    $run_id AS _run_id, _source_version, $as_of AS _enriched_at
FROM classified WHERE NOT is_valid OR is_duplicate
"""

COUNTS = """
SELECT count(*) AS rows_read,
    count(*) FILTER (WHERE is_valid AND NOT is_duplicate) AS rows_curated,
    count(*) FILTER (WHERE NOT is_valid) AS rows_quarantined,
    count(*) FILTER (WHERE is_duplicate) AS rows_duplicate,
    count(*) FILTER (WHERE is_valid AND NOT is_duplicate AND NOT merchant_matched)
        AS rows_unmatched
FROM classified
"""

SUMMARY = """
SELECT CAST(event_ts AS DATE) AS event_date, enriched_category AS category, currency,
    count(*) AS transaction_count, CAST(sum(amount) AS DECIMAL(20, 2)) AS total_amount
FROM classified WHERE is_valid AND NOT is_duplicate
GROUP BY ALL
"""


def arrow_stream(db: duckdb.DuckDBPyConnection, query: str, params: dict[str, Any]) -> Any:
    """The query's result as a stream of Arrow record batches, written as it is produced."""
    reader = db.sql(query, params=params).to_arrow_reader()
    assert reader is not None
    return reader


def write_summary(conn: Any, rows: list[tuple[Any, ...]], run_id: str) -> None:
    buffer = io.StringIO()
    for event_date, category, currency, count, total in rows:
        buffer.write(f"{event_date}\t{category}\t{currency}\t{count}\t{total}\t{run_id}\n")
    buffer.seek(0)
    with conn, conn.cursor() as cur:
        cur.execute("DELETE FROM pipeline.category_daily_summary")
        cur.copy_expert(
            "COPY pipeline.category_daily_summary (event_date, category, currency, "
            "transaction_count, total_amount, run_id) FROM STDIN",
            buffer,
        )


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m scripts.bench.peer RAW CURATED QUARANTINE", file=sys.stderr)
        return 2
    raw_path, curated_path, quarantine_path = argv
    settings = load_settings()
    options = storage_options(settings.s3)
    as_of = datetime.now(UTC)
    run_id = str(uuid.uuid4())
    db = duckdb.connect()
    db.execute("SET TimeZone = 'UTC'")
    conn = psycopg2.connect(**target_from_env().psycopg2_kwargs())
    try:
        with conn.cursor() as cur:
            temporal = settings.lookups[0].temporal
            merchants = lookup_table(
                cur,
                TEMPORAL_MERCHANTS if temporal else PLAIN_MERCHANTS,
                {"valid_from": pa.timestamp("us"), "valid_to": pa.timestamp("us")},
            )
            category_groups = lookup_table(
                cur, "SELECT category, category_group FROM reference.category_group_lookup"
            )
        db.register("merchants", merchants)
        db.register("category_groups", category_groups)
        raw_changes = DeltaTable(s3_uri(raw_path), storage_options=options).load_cdf(
            starting_version=0
        )
        db.register("raw_changes", raw_changes)
        db.execute(
            CLASSIFY,
            {
                "codes": sorted(ISO_4217_CODES),
                "latest_allowed": as_of + timedelta(minutes=settings.max_future_minutes),
            },
        )
        params = {"run_id": run_id, "as_of": as_of}
        write_deltalake(
            s3_uri(curated_path),
            arrow_stream(db, CURATED, params),
            mode="overwrite",
            partition_by=["event_date"],
            storage_options=options,
        )
        write_deltalake(
            s3_uri(quarantine_path),
            arrow_stream(db, QUARANTINE, params),
            mode="overwrite",
            storage_options=options,
        )
        counts_row = db.execute(COUNTS).fetchone()
        assert counts_row is not None
        summary = db.execute(SUMMARY).fetchall()
        write_summary(conn, summary, run_id)
    finally:
        conn.close()
    names = ("rows_read", "rows_curated", "rows_quarantined", "rows_duplicate", "rows_unmatched")
    print(json.dumps({**dict(zip(names, counts_row, strict=True)), "summary_rows": len(summary)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
