"""Fixtures on the real local stack (make up), for the integration and system tests: a fresh test database seeded from reference_sql/,
and one bucket per test so tests never see each other's tables or the demo's.

Roles as in production: jobs log in as the pipeline role and use a MinIO key of their own (the
jobs' policy, widened to the tests' own test-* buckets); the fixtures that make
databases and buckets use the admin role and MinIO's root user."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from jobs.adapters.object_store import s3_client
from jobs.adapters.session import FIRST_TIER_JIT
from jobs.config.postgres_url import PostgresTarget, env_for_database, target_from_env
from jobs.config.settings import S3Settings, Settings, TablePaths, load_settings, s3_from_env
from scripts.minio_init import POLICY_FILE, admin_client, grant_job_user, root_settings

ROOT = Path(__file__).resolve().parents[1]
# Under pytest-xdist every worker has its own database and MinIO user (gw0, gw1, ...).
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
TEST_DB = f"enrichment_test_{WORKER}" if WORKER else "enrichment_test"


# The tests' jobs are small, and their spark-submits pay for a cold JVM each time:
# - the JIT's first tier alone warms up sooner and spends a core less on compiling (the fault
#   suite's run: 65 s -> 51 s; a cluster ingest's executors: 67 s -> 51-59 s);
# - Spark's interpreted expressions instead of generated code for what the driver evaluates
#   outside tasks (`spark.sql.codegen.factoryMode`, a setting Spark keeps for tests; tasks still
#   run generated code): no Java compiler run for each of a cold run's plans (the fault suite's
#   run, cold, median of 6: 43 s -> 37.5 s). The in-process runs keep the default.
# Neither changes what a run computes or writes. The first tier alone also shrinks the JIT's
# code cache from 240 MB to 48 MB (JDK 17), and a stream's driver, running many plans for
# minutes, filled it (49,106 KB used) and died with "Out of space in CodeCache for adapters":
# the cache is kept at its usual size: the options a small batch run gives itself.
_FIRST_TIER_ONLY = " ".join(FIRST_TIER_JIT)
SMALL_RUN_JVM_OPTS = {
    "ENRICH_DRIVER_JVM_OPTS": f"{_FIRST_TIER_ONLY} -Dspark.sql.codegen.factoryMode=NO_CODEGEN",
    "ENRICH_EXECUTOR_JVM_OPTS": _FIRST_TIER_ONLY,
}


def submit_env(env: dict[str, str]) -> dict[str, str]:
    return {**SMALL_RUN_JVM_OPTS, **env}


def submit(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """scripts/submit.sh: the spark-submit path `make ingest` and `make submit-batch` use."""
    return subprocess.run(
        [str(ROOT / "scripts" / "submit.sh"), *args],
        env=submit_env(env),
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
            "scripts.generate_transactions",
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
    target = target_from_env(role="admin")
    try:
        psycopg2.connect(**target.psycopg2_kwargs()).close()
    except psycopg2.OperationalError as error:
        pytest.exit(
            f"PostgreSQL at {target.redacted()} is not reachable ({error}); run 'make up'", 2
        )
    return target


@pytest.fixture(scope="session")
def test_db_env(admin_target: PostgresTarget, job_key_env: dict[str, str]) -> dict[str, str]:
    """Environment for jobs and scripts pointed at a freshly created, seeded test database.

    Passwords travel in POSTGRES_*PASSWORD, not in the URLs."""
    conn = psycopg2.connect(**{**admin_target.psycopg2_kwargs(), "dbname": "postgres"})
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{TEST_DB}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{TEST_DB}"')
    conn.close()
    env = env_for_database({**os.environ, **job_key_env}, TEST_DB)
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
    """MinIO's root user: the fixtures make, copy and empty the tests' buckets with it."""
    settings = root_settings(s3_from_env(os.environ))
    try:
        s3_client(settings).list_buckets()
    except Exception as error:
        pytest.exit(
            f"object store at {settings.endpoint} is not reachable ({error}); run 'make up'", 2
        )
    return settings


TEST_JOBS_USER = f"enrich-test-jobs-{WORKER}" if WORKER else "enrich-test-jobs"


def tests_policy() -> dict[str, Any]:
    """The jobs' policy (conf/minio/enrich-jobs-policy.json), widened to the test-* buckets."""
    policy: dict[str, Any] = json.loads(POLICY_FILE.read_text())
    for statement in policy["Statement"]:
        project = [r for r in statement["Resource"] if r.startswith("arn:aws:s3:::raw-data-bucket")]
        statement["Resource"] += [r.replace("raw-data-bucket", "test-*") for r in project]
    return policy


def make_job_key(s3: S3Settings, access_key: str, secret_key: str) -> dict[str, str]:
    """A MinIO user with the tests' policy; its AWS_* variables."""
    key = replace(s3, access_key=access_key, secret_key=secret_key)
    grant_job_user(admin_client(s3), key, "enrich-jobs-tests", tests_policy())
    return {"AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key}


@pytest.fixture(scope="session")
def job_key_env(s3: S3Settings) -> dict[str, str]:
    """The key the jobs under test use: the jobs' policy, widened to the tests' own buckets."""
    return make_job_key(s3, TEST_JOBS_USER, secrets.token_hex(20))


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

    @property
    def landing(self) -> str:
        return self.path("landing/")

    def env(self) -> dict[str, str]:
        return {
            "RAW_TABLE_PATH": self.tables.raw,
            "CURATED_TABLE_PATH": self.tables.curated,
            "QUARANTINE_TABLE_PATH": self.tables.quarantine,
            "LANDING_PATH": self.landing,
            "STREAM_CHECKPOINT_PATH": self.path("_checkpoints/stream_enrich"),
            "BACKUP_LOCATION": self.path("_backups"),
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
