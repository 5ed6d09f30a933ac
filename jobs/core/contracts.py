"""Every "refuse by name" check of the jobs, in one place.

Each check is pure: it takes what an adapter read (a table's schema or properties, a lookup's
columns, a file's first line) and either returns or raises an error whose message names the
table or file, the column, and what to do. Ingest, batch and the stream call these right after
their reads and before they write anything.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql.types import StructType

from jobs.core.errors import ConfigError, SourceError
from jobs.core.models import VALID_FROM, VALID_TO, LookupSpec
from jobs.core.schemas import INPUT_COLUMNS, RAW_SCHEMA

APPEND_ONLY = "delta.appendOnly"
CHANGE_FEED = "delta.enableChangeDataFeed"
DELETION_VECTORS = "delta.enableDeletionVectors"
STATS_COLUMNS = "delta.dataSkippingStatsColumns"
STATS_COLUMN_COUNT = "delta.dataSkippingNumIndexedCols"
NEW_COLUMN_SUFFIX = " is new"


def schema_drift(actual: StructType, expected: StructType = RAW_SCHEMA) -> list[str]:
    """What differs between a table's columns and the expected ones, one entry per column.

    Nullability is not compared; a column added, removed or retyped is."""
    have = {f.name: f.dataType.simpleString() for f in actual.fields}
    want = {f.name: f.dataType.simpleString() for f in expected.fields}
    problems = []
    for name in want:
        if name not in have:
            problems.append(f"column '{name}' is missing")
        elif have[name] != want[name]:
            problems.append(f"column '{name}' is {have[name]}, expected {want[name]}")
    problems += [
        f"column '{name}' ({have[name]}){NEW_COLUMN_SUFFIX}" for name in have if name not in want
    ]
    return problems


def enabled(properties: Mapping[str, str], name: str) -> bool:
    return properties.get(name, "false").lower() == "true"


def check_raw_table(
    path: str, schema: StructType, properties: Mapping[str, str], new_columns: str = "refuse"
) -> None:
    """A raw table the batch job can process safely: the expected columns, append-only, with a
    change feed. ``new_columns`` is the ``[schema] new_raw_columns`` policy."""
    problems = schema_drift(schema)
    if new_columns == "ignore":
        problems = [p for p in problems if not p.endswith(NEW_COLUMN_SUFFIX)]
    if problems:
        raise SourceError(
            f"raw table {path} does not have the expected columns: {'; '.join(problems)}. "
            "Nothing was written. A new column can be ignored with [schema] new_raw_columns = "
            '"ignore" in conf/enrichment.toml; a missing or retyped column needs the table fixed'
        )
    if not enabled(properties, APPEND_ONLY):
        raise SourceError(
            f"raw table {path} is not append-only ({APPEND_ONLY}); incremental runs read only "
            "appended rows, so a raw table that can be updated or deleted from is refused"
        )
    check_change_feed(path, properties)


def check_change_feed(path: str, properties: Mapping[str, str]) -> None:
    """A table whose commits are read back through its change data feed has one."""
    if not enabled(properties, CHANGE_FEED):
        raise SourceError(
            f"Delta table {path} has no change data feed ({CHANGE_FEED} is not true); "
            "tables written by this version of the jobs have it. Re-ingest the raw data into a "
            "new table, or set the property and run with --full"
        )


def check_ingest_target(path: str, existing: StructType | None, incoming: StructType) -> None:
    """Ingest appends only to a raw table with exactly the columns it writes (or a new one)."""
    if existing is None:
        return
    problems = schema_drift(existing, incoming)
    if problems:
        raise SourceError(
            f"raw table {path} has a different schema than this version writes: "
            f"{'; '.join(problems)}. Nothing was appended"
        )


def check_curated_table(path: str, existing: StructType, incoming: StructType) -> None:
    """An incremental run MERGEs only into a curated table with the columns it produces."""
    problems = schema_drift(existing, incoming)
    if problems:
        raise ConfigError(
            f"curated table {path} does not have the columns the configured lookups produce: "
            f"{'; '.join(problems)}. Run with --full to rebuild it"
        )


def check_lookup_columns(spec: LookupSpec, schema: StructType) -> None:
    """A lookup in the configured shape: every configured column there, a text key."""
    types = {f.name: f.dataType.simpleString() for f in schema.fields}
    table = spec.source_table
    for column in spec.lookup_columns:
        if column not in types:
            hint = " (a temporal lookup reads its history table)" if spec.temporal else ""
            raise SourceError(
                f"lookup table {table} has no column '{column}' "
                f"(configured for lookup '{spec.name}'{hint}; it has: {', '.join(types)})"
            )
    if types[spec.key] != "string":
        raise SourceError(
            f"lookup table {table}: key column '{spec.key}' must be text, found {types[spec.key]}"
        )
    for column in (VALID_FROM, VALID_TO) if spec.temporal else ():
        if types[column] != "timestamp":
            raise SourceError(
                f"lookup table {table}: validity column '{column}' must be timestamptz, "
                f"found {types[column]}"
            )


def check_csv_header(file: str, header: str | None) -> None:
    """A CSV file's first line names the expected columns in order: a positional read of
    another order would put values into the wrong columns silently."""
    expected = ",".join(INPUT_COLUMNS)
    found = (header or "").strip().lstrip("\ufeff").replace(" ", "")
    if found.lower() != expected:
        raise SourceError(f"{file}: unexpected CSV header {header!r}; expected {expected!r}")
