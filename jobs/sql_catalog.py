"""Statements that make the Delta tables addressable by name in spark-sql.

    python -m jobs.sql_catalog > build/spark-sql-init.sql

Only tables that exist are registered, so spark-sql starts cleanly before the first run.
"""

from __future__ import annotations

import sys

from botocore.exceptions import BotoCoreError, ClientError

from jobs.buckets import bucket_of, s3_client
from jobs.errors import EnrichmentError
from jobs.settings import Settings, load_settings


def table_names(settings: Settings) -> dict[str, str]:
    """Catalog name -> Delta table path."""
    return {
        "raw.transactions": settings.tables.raw,
        "curated.transactions_enriched": settings.tables.curated,
        "curated.transactions_quarantine": settings.tables.quarantine,
    }


def _has_delta_log(settings: Settings, path: str) -> bool:
    bucket = bucket_of(path)
    prefix = path.split("://", 1)[1].split("/", 1)[1].rstrip("/") + "/_delta_log/"
    try:
        listing = s3_client(settings.s3).list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
    except (BotoCoreError, ClientError):
        return False
    return int(listing.get("KeyCount", 0)) > 0


def init_statements(names: dict[str, str], existing: set[str]) -> list[str]:
    statements = []
    for database in sorted({name.split(".")[0] for name in names}):
        statements.append(f"CREATE DATABASE IF NOT EXISTS {database};")
    for name, path in names.items():
        if name in existing:
            escaped = path.replace("'", "\\'")
            statements.append(
                f"CREATE TABLE IF NOT EXISTS {name} USING delta LOCATION '{escaped}';"
            )
    return statements


def main() -> int:
    try:
        settings = load_settings()
    except EnrichmentError as error:
        print(f"spark-sql: error: {error}", file=sys.stderr)
        return 2
    names = table_names(settings)
    existing = {name for name, path in names.items() if _has_delta_log(settings, path)}
    for name in sorted(set(names) - existing):
        print(f"spark-sql: {name} does not exist yet (run make demo)", file=sys.stderr)
    print("\n".join(init_statements(names, existing)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
