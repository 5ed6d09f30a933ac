"""Least privilege in PostgreSQL: each role connects and does what it may, and is refused what
it may not (reference_sql/000_roles.sql). Run against the seeded test database."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg2
import psycopg2.errors
import pytest
from psycopg2.extensions import connection as Connection

from jobs.config.postgres_url import target_from_env

pytestmark = pytest.mark.integration


def _connect(env: dict[str, str], role: str) -> Connection:
    return psycopg2.connect(**target_from_env(env, role=role).psycopg2_kwargs())


@pytest.fixture()
def as_pipeline(test_db_env: dict[str, str]) -> Iterator[Connection]:
    conn = _connect(test_db_env, "pipeline")
    yield conn
    conn.close()


@pytest.fixture()
def as_reporting(test_db_env: dict[str, str]) -> Iterator[Connection]:
    conn = _connect(test_db_env, "reporting")
    yield conn
    conn.close()


@pytest.fixture()
def as_admin(test_db_env: dict[str, str]) -> Iterator[Connection]:
    conn = _connect(test_db_env, "admin")
    conn.autocommit = True
    yield conn
    conn.close()


def refused(conn: Connection, statement: str) -> str:
    """Run ``statement``, expect a permission error, roll back; the error's first line."""
    with pytest.raises(psycopg2.Error) as caught, conn.cursor() as cur:
        cur.execute(statement)
    conn.rollback()
    assert isinstance(
        caught.value,
        psycopg2.errors.InsufficientPrivilege | psycopg2.errors.ReadOnlySqlTransaction,
    ), caught.value
    return str(caught.value).splitlines()[0]


def test_the_jobs_do_not_use_the_admin_role(test_db_env: dict[str, str]) -> None:
    users = {role: target_from_env(test_db_env, role=role).user for role in ("pipeline", "admin")}
    assert users["pipeline"] != users["admin"]
    with _connect(test_db_env, "pipeline") as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user"
        )
        assert cur.fetchone() == (False, False, False)


def test_an_owner_that_cannot_log_in_owns_every_table(as_admin: Connection) -> None:
    with as_admin.cursor() as cur:
        cur.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'enrich_owner'")
        assert cur.fetchone() == (False,)
        cur.execute(
            "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname IN ('reference', 'pipeline')"
        )
        assert cur.fetchall() == [("enrich_owner",)]
        cur.execute(
            "SELECT DISTINCT pg_get_userbyid(nspowner) FROM pg_namespace "
            "WHERE nspname IN ('reference', 'pipeline')"
        )
        assert cur.fetchall() == [("enrich_owner",)]


def test_the_pipeline_role_reads_lookups_and_writes_only_pipeline_rows(
    as_pipeline: Connection,
) -> None:
    with as_pipeline.cursor() as cur:
        cur.execute("SELECT count(*) FROM reference.merchant_lookup")
        row = cur.fetchone()
        assert row is not None and row[0] > 0
        cur.execute(
            "INSERT INTO pipeline.category_daily_summary VALUES "
            "('2026-01-01', 'c', 'USD', 1, 1.00, gen_random_uuid())"
        )
        cur.execute("UPDATE pipeline.category_daily_summary SET total_amount = 2")
        cur.execute("DELETE FROM pipeline.category_daily_summary")
        cur.execute("CREATE TEMPORARY TABLE stage (LIKE pipeline.category_daily_summary)")
    as_pipeline.rollback()


@pytest.mark.parametrize(
    "statement",
    [
        "DROP TABLE reference.merchant_lookup",
        "ALTER TABLE reference.merchant_lookup ADD COLUMN x int",
        "TRUNCATE reference.merchant_lookup",
        "DELETE FROM reference.merchant_lookup",
        "UPDATE reference.merchant_lookup SET category = 'x'",
        "INSERT INTO reference.merchant_lookup (merchant_id, merchant_name) VALUES ('M', 'N')",
        "DROP TABLE pipeline.enrichment_runs",
        "ALTER TABLE pipeline.category_daily_summary DROP COLUMN run_id",
        "TRUNCATE pipeline.category_daily_summary",
        "CREATE TABLE pipeline.mine (x int)",
        "CREATE TABLE reference.mine (x int)",
        "CREATE TABLE public.mine (x int)",
        "CREATE SCHEMA mine",
    ],
)
def test_the_pipeline_role_has_no_ddl_and_cannot_change_lookups(
    as_pipeline: Connection, statement: str
) -> None:
    message = refused(as_pipeline, statement)
    assert "permission denied" in message or "must be owner" in message


def test_the_pipeline_role_reads_nothing_outside_its_schemas(
    as_admin: Connection, as_pipeline: Connection, as_reporting: Connection
) -> None:
    with as_admin.cursor() as cur:
        cur.execute("DROP SCHEMA IF EXISTS elsewhere CASCADE")
        cur.execute("CREATE SCHEMA elsewhere")
        cur.execute("CREATE TABLE elsewhere.salaries AS SELECT 1 AS amount")
        cur.execute("CREATE TABLE public.notes AS SELECT 'n' AS note")
    try:
        for conn in (as_pipeline, as_reporting):
            assert "permission denied for schema elsewhere" in refused(
                conn, "SELECT * FROM elsewhere.salaries"
            )
            assert "permission denied for table notes" in refused(
                conn, "SELECT * FROM public.notes"
            )
    finally:
        with as_admin.cursor() as cur:
            cur.execute("DROP SCHEMA elsewhere CASCADE")
            cur.execute("DROP TABLE public.notes")


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO pipeline.enrichment_runs (run_id, job_name, status) "
        "VALUES (gen_random_uuid(), 'x', 'running')",
        "UPDATE reference.merchant_lookup SET category = 'x'",
        "DELETE FROM pipeline.category_daily_summary",
        "CREATE TABLE pipeline.mine (x int)",
    ],
)
def test_the_reporting_role_reads_and_cannot_write(
    as_reporting: Connection, statement: str
) -> None:
    with as_reporting.cursor() as cur:
        cur.execute("SELECT count(*) FROM reference.merchant_lookup")
        cur.execute("SELECT count(*) FROM pipeline.enrichment_runs")
        cur.execute("SELECT count(*) FROM pipeline.category_daily_summary")
    as_reporting.rollback()
    refused(as_reporting, statement)
    with as_reporting.cursor() as cur:  # refused by privilege too, not only by read-only mode
        cur.execute("SET TRANSACTION READ WRITE")
        cur.execute(
            "SELECT has_table_privilege('pipeline.enrichment_runs', 'INSERT'), "
            "has_table_privilege('reference.merchant_lookup', 'UPDATE')"
        )
        assert cur.fetchone() == (False, False)
    as_reporting.rollback()


def test_default_privileges_cover_a_table_added_later(
    as_admin: Connection, as_pipeline: Connection, as_reporting: Connection
) -> None:
    with as_admin.cursor() as cur:
        cur.execute("SET ROLE enrich_owner")  # how scripts/seed.sh applies reference_sql/
        cur.execute("CREATE TABLE pipeline.added_later (x int)")
        cur.execute("CREATE TABLE reference.added_lookup (k text PRIMARY KEY)")
        cur.execute("RESET ROLE")
    try:
        with as_pipeline.cursor() as cur:
            cur.execute("INSERT INTO pipeline.added_later VALUES (1)")
            cur.execute("SELECT count(*) FROM reference.added_lookup")
        as_pipeline.commit()
        assert "permission denied" in refused(
            as_pipeline, "INSERT INTO reference.added_lookup VALUES ('k')"
        )
        with as_reporting.cursor() as cur:
            cur.execute("SELECT x FROM pipeline.added_later")
            assert cur.fetchall() == [(1,)]
        as_reporting.rollback()
    finally:
        with as_admin.cursor() as cur:
            cur.execute("DROP TABLE pipeline.added_later, reference.added_lookup")


def test_seeding_twice_keeps_the_privileges(test_db_env: dict[str, str]) -> None:
    from tests.stack import run_seed

    again = run_seed(test_db_env)
    assert again.returncode == 0, again.stderr
    with _connect(test_db_env, "pipeline") as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT has_table_privilege('reference.merchant_lookup', 'SELECT'), "
            "has_table_privilege('reference.merchant_lookup', 'UPDATE'), "
            "has_table_privilege('pipeline.category_daily_summary', 'DELETE')"
        )
        assert cur.fetchone() == (True, False, True)
