"""Lookup tables read from PostgreSQL over JDBC."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession

from jobs.postgres_url import PostgresTarget
from jobs.settings import LookupSpec


def quote_identifier(name: str) -> str:
    """Quote a [schema.]name for SQL; names are validated as plain identifiers in settings."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in name.split("."))


def read_lookup(
    spark: SparkSession, target: PostgresTarget, spec: LookupSpec, fetchsize: int
) -> DataFrame:
    """Read the whole lookup table; the caller checks its columns (transforms.check_lookup_columns).

    Credentials travel as JDBC connection properties through py4j, never in the URL or a
    command line. ``fetchsize`` makes pgjdbc stream the rows instead of loading them at once.
    """
    return (
        spark.read.format("jdbc")
        .option("url", target.jdbc_url())
        .option("driver", "org.postgresql.Driver")
        .option("dbtable", quote_identifier(spec.table))
        .option("user", target.user)
        .option("password", target.password)
        .option("fetchsize", str(fetchsize))
        .load()
    )
