"""Statements that make the Delta tables addressable by name in spark-sql.

    python -m scripts.sql_catalog > build/spark-sql-init.sql      (scripts/spark_sql.sh runs it)

Only tables that exist are registered, so spark-sql starts cleanly before the first run.
"""

from __future__ import annotations

import sys

from jobs.adapters import object_store
from jobs.config.settings import Settings, load_settings
from jobs.core.errors import EnrichmentError


def table_names(settings: Settings) -> dict[str, str]:
    """Catalog name -> Delta table path."""
    return {
        "raw.transactions": settings.tables.raw,
        "curated.transactions_enriched": settings.tables.curated,
        "curated.transactions_quarantine": settings.tables.quarantine,
    }


def _has_table(settings: Settings, path: str) -> bool:
    try:
        return object_store.table_version(settings.s3, path) is not None
    except EnrichmentError:
        return False


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
    existing = {name for name, path in names.items() if _has_table(settings, path)}
    for name in sorted(set(names) - existing):
        print(f"spark-sql: {name} does not exist yet (run make demo)", file=sys.stderr)
    print("\n".join(init_statements(names, existing)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
