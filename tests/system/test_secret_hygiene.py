"""Secrets stay in the environment: a batch run with a distinctive PostgreSQL password and a
distinctive MinIO key leaves them on no command line (the process table, read while the run
is paused mid-way), in no log line, in no Spark event log and not on the Spark UI's
environment page."""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from psycopg2 import sql

from jobs.adapters.object_store import s3_client
from jobs.config.postgres_url import PostgresTarget, target_from_env
from jobs.config.settings import S3Settings
from tests.harness import Job
from tests.stack import ROOT, ScratchBucket, delete_bucket, generate, make_job_key, submit

pytestmark = pytest.mark.integration

PROBE_ROLE = "enrich_secret_probe"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def command_lines() -> list[str]:
    lines = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                lines.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
            except OSError:
                continue
    return lines


@pytest.fixture()
def probe_env(
    test_db_env: dict[str, str], admin_target: PostgresTarget, s3: S3Settings
) -> Iterator[dict[str, str]]:
    """A login role with the pipeline role's rights and a MinIO user with the jobs' policy,
    each with a password nobody else uses."""
    password = f"pg-{secrets.token_hex(12)}-probe"
    access_key, secret_key = f"probe{secrets.token_hex(6)}", f"s3-{secrets.token_hex(16)}-probe"
    pipeline_role = target_from_env(test_db_env).user
    conn = psycopg2.connect(**admin_target.psycopg2_kwargs())
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(PROBE_ROLE)))
        cur.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s IN ROLE {}").format(
                sql.Identifier(PROBE_ROLE), sql.Identifier(pipeline_role)
            ),
            (password,),
        )
    url = target_from_env(test_db_env).redacted().replace(f"//{pipeline_role}@", f"//{PROBE_ROLE}@")
    env = {
        **test_db_env,
        **make_job_key(s3, access_key, secret_key),
        "POSTGRES_URL": url,
        "POSTGRES_PASSWORD": password,
    }
    yield env
    with conn.cursor() as cur:
        cur.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(PROBE_ROLE)))
        cur.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(PROBE_ROLE)))
    conn.close()


def test_no_secret_on_a_command_line_in_a_log_an_event_log_or_the_ui(
    probe_env: dict[str, str], s3: S3Settings, tmp_path: Path
) -> None:
    bucket = ScratchBucket(f"test-secrets-{secrets.token_hex(5)}")
    s3_client(s3).create_bucket(Bucket=bucket.name)
    try:
        _run_and_search(probe_env, bucket, tmp_path)
    finally:
        delete_bucket(s3, bucket.name)


def _run_and_search(probe_env: dict[str, str], bucket: ScratchBucket, tmp_path: Path) -> None:
    env = {**probe_env, **bucket.env()}
    wanted = {
        "the PostgreSQL password": env["POSTGRES_PASSWORD"],
        "the MinIO secret key": env["AWS_SECRET_ACCESS_KEY"],
    }
    generate(tmp_path / "batch.csv", 300, 5)
    landed = submit(env, "ingest", str(tmp_path / "batch.csv"))
    assert landed.returncode == 0, landed.stdout[-3000:] + landed.stderr[-3000:]

    # The project's Spark settings plus an event log and a UI on a known port.
    conf = tmp_path / "conf"
    shutil.copytree(ROOT / "conf", conf)
    events = tmp_path / "events"
    events.mkdir()
    ui_port = free_port()
    with (conf / "spark-defaults.conf").open("a") as handle:
        handle.write(
            # Uncompressed (Spark 4 writes zstd by default), so the test can read it.
            f"\nspark.eventLog.enabled true\nspark.eventLog.dir file://{events}\n"
            "spark.eventLog.compress false\n"
            f"spark.ui.enabled true\nspark.ui.port {ui_port}\n"
        )
    job = Job(
        {**env, "ENRICH_SPARK_CONF_DIR": str(conf)},
        ["batch_enrich"],
        tmp_path / "failpoints",
        ["batch-classified"],
    )
    job.pause_at("batch-classified")  # lookups read over JDBC, raw read from the store
    try:
        processes = command_lines()
        base = f"http://127.0.0.1:{ui_port}/api/v1/applications"
        with urllib.request.urlopen(base, timeout=10) as response:
            [app] = json.load(response)
        with urllib.request.urlopen(f"{base}/{app['id']}/environment", timeout=10) as response:
            ui_environment = response.read().decode()
    finally:
        job.release("batch-classified")
    assert job.finish() == 0, job.output[-4000:]
    assert "SUCCEEDED" in job.output
    assert any("org.apache.spark.deploy.SparkSubmit" in line for line in processes)
    assert "spark.eventLog.dir" in ui_environment  # the page was the real one
    event_logs = "".join(p.read_text(errors="replace") for p in events.rglob("*") if p.is_file())
    assert "SparkListenerSQLExecutionStart" in event_logs  # the event log has the run's plans
    places = {
        "the process table": "\n".join(processes),
        "the job's log": job.output + landed.stdout + landed.stderr,
        "the Spark event log": event_logs,
        "the Spark UI environment page": ui_environment,
    }
    leaks = [
        f"{secret} in {place}"
        for secret, value in wanted.items()
        for place, text in places.items()
        if value in text
    ]
    assert not leaks
