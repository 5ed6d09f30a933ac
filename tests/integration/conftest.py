"""Fixtures on the real local stack (make up): a fresh test database seeded from reference_sql/,
and one bucket per test so tests never see each other's tables or the demo's."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import psycopg2
import pytest

from jobs.buckets import s3_client
from jobs.postgres_url import PostgresTarget, target_from_env
from jobs.settings import S3Settings, Settings, TablePaths, load_settings, s3_from_env

ROOT = Path(__file__).resolve().parents[2]
TEST_DB = "enrichment_test"

pytestmark = pytest.mark.integration


def _url_for(target: PostgresTarget, dbname: str) -> str:
    params = "&".join(f"{k}={v}" for k, v in target.params)
    return f"postgresql://{target.user}@{target.host}:{target.port}/{dbname}" + (
        f"?{params}" if params else ""
    )


def submit(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """scripts/submit.sh: the spark-submit path `make ingest` and `make submit-batch` use."""
    return subprocess.run(
        [str(ROOT / "scripts" / "submit.sh"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def generate(path: Path, rows: int, seed: int) -> None:
    subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "python"),
            "-m",
            "jobs.generate_transactions",
            "--rows",
            str(rows),
            "--output",
            str(path),
            "--seed",
            str(seed),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )


def delete_bucket(s3: S3Settings, name: str) -> None:
    client = s3_client(s3)
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=name, Delete={"Objects": keys})
    client.delete_bucket(Bucket=name)


def run_seed(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "scripts" / "seed.sh")], env=env, capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="session")
def admin_target() -> PostgresTarget:
    target = target_from_env()
    try:
        psycopg2.connect(**target.psycopg2_kwargs()).close()
    except psycopg2.OperationalError as error:
        pytest.exit(
            f"PostgreSQL at {target.redacted()} is not reachable ({error}); run 'make up'", 2
        )
    return target


@pytest.fixture(scope="session")
def test_db_env(admin_target: PostgresTarget) -> dict[str, str]:
    """Environment for jobs and scripts pointed at a freshly created, seeded test database.

    The password travels in POSTGRES_PASSWORD, not in the URL."""
    conn = psycopg2.connect(**{**admin_target.psycopg2_kwargs(), "dbname": "postgres"})
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{TEST_DB}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{TEST_DB}"')
    conn.close()
    env = {
        **os.environ,
        "POSTGRES_URL": _url_for(admin_target, TEST_DB),
        "POSTGRES_PASSWORD": admin_target.password,
    }
    seeded = run_seed(env)
    assert seeded.returncode == 0, seeded.stderr
    return env


@pytest.fixture(scope="session")
def test_target(test_db_env: dict[str, str]) -> PostgresTarget:
    return target_from_env(test_db_env)


@pytest.fixture()
def pg(test_target: PostgresTarget) -> Iterator[psycopg2.extensions.connection]:
    conn = psycopg2.connect(**test_target.psycopg2_kwargs())
    yield conn
    conn.close()


@pytest.fixture(scope="session")
def s3() -> S3Settings:
    settings = s3_from_env(os.environ)
    try:
        s3_client(settings).list_buckets()
    except Exception as error:
        pytest.exit(
            f"object store at {settings.endpoint} is not reachable ({error}); run 'make up'", 2
        )
    return settings


@dataclass(frozen=True)
class ScratchBucket:
    name: str

    def path(self, table: str) -> str:
        return f"s3a://{self.name}/{table}"

    @property
    def tables(self) -> TablePaths:
        return TablePaths(
            raw=self.path("financial_data_delta"),
            curated=self.path("financial_data_curated_enriched"),
            quarantine=self.path("financial_data_quarantine"),
        )

    def env(self) -> dict[str, str]:
        return {
            "RAW_TABLE_PATH": self.tables.raw,
            "CURATED_TABLE_PATH": self.tables.curated,
            "QUARANTINE_TABLE_PATH": self.tables.quarantine,
        }


@pytest.fixture()
def bucket(s3: S3Settings) -> Iterator[ScratchBucket]:
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3_client(s3).create_bucket(Bucket=name)
    yield ScratchBucket(name)
    delete_bucket(s3, name)


@pytest.fixture()
def settings(test_db_env: dict[str, str], bucket: ScratchBucket) -> Settings:
    """Job settings for one test: the test database and this test's bucket."""
    return replace(load_settings({**test_db_env, **bucket.env()}), tables=bucket.tables)
