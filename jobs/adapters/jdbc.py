"""Lookup tables read from PostgreSQL over JDBC."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession

from jobs.config.postgres_url import PostgresTarget
from jobs.core.contracts import check_lookup_columns
from jobs.core.models import LookupSpec


def quote_identifier(name: str) -> str:
    """Quote a [schema.]name for SQL; names are validated as plain identifiers in settings."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in name.split("."))


def read_lookup(
    spark: SparkSession, target: PostgresTarget, spec: LookupSpec, fetchsize: int
) -> DataFrame:
    """The lookup table's configured columns, refused by name if it is not in that shape.

    Credentials travel as JDBC connection properties through py4j, never in the URL or a
    command line. ``fetchsize`` makes pgjdbc stream the rows instead of loading them at once.
    """
    table = (
        spark.read.format("jdbc")
        .option("url", target.jdbc_url())
        .option("driver", "org.postgresql.Driver")
        .option("dbtable", quote_identifier(spec.source_table))
        .option("user", target.user)
        .option("password", target.password)
        .option("fetchsize", str(fetchsize))
        .load()
    )
    check_lookup_columns(spec, table.schema)
    return table.select(*spec.lookup_columns)
