"""The spark-submit path (scripts/submit.sh, what `make ingest` and `make submit-batch` run) as a
user meets it: a run with nothing to do ends in seconds, and a failure is one clear line with
its own exit status, the outputs untouched and no secret in the output. Each case works on a
copy of the fault suite's state S0 (tests/harness.py); the flow itself, end to end, is
tests/integration/test_pipeline.py and, through spark-submit, the cluster test."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from jobs.adapters import object_store
from jobs.config.settings import Settings
from tests.harness import Ground, PipelineCopy, copy_pipeline, drop_pipeline, error_lines
from tests.stack import submit

pytestmark = pytest.mark.integration


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    # Under spark-submit (the stream, other masters) the driver's stderr comes out on stdout.
    [line] = error_lines(result.stdout + result.stderr)
    return line


def versions(settings: Settings) -> tuple[int | None, ...]:
    tables = settings.tables
    return tuple(
        object_store.table_version(settings.s3, path)
        for path in (tables.raw, tables.curated, tables.quarantine)
    )


def test_a_run_with_nothing_to_do_is_a_noop(ground: Ground) -> None:
    copy = copy_pipeline(ground.admin, ground.s3, ground.clean)
    try:
        before = versions(copy.settings)
        rerun = submit(copy.env, "batch_enrich")
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert "NOOP" in rerun.stdout and "no new raw data" in rerun.stdout
        assert versions(copy.settings) == before
    finally:
        drop_pipeline(ground.admin, ground.s3, copy)


def test_missing_setting_is_named(pipeline: PipelineCopy) -> None:
    env = {k: v for k, v in pipeline.env.items() if k != "POSTGRES_URL"}
    result = submit(env, "batch_enrich")
    assert result.returncode == 2
    assert "POSTGRES_URL is not set" in one_error_line(result)


def test_postgres_down_gives_one_clear_message(pipeline: PipelineCopy) -> None:
    before = versions(pipeline.settings)
    target = pipeline.settings.postgres
    closed_port_url = f"postgresql://{target.user}@{target.host}:1/{target.dbname}"
    result = submit({**pipeline.env, "POSTGRES_URL": closed_port_url}, "batch_enrich", "--full")
    assert result.returncode == 4
    assert f"cannot connect to PostgreSQL at {closed_port_url}" in one_error_line(result)
    assert pipeline.env["POSTGRES_PASSWORD"] not in result.stdout + result.stderr
    assert versions(pipeline.settings) == before


def test_wrong_object_store_secret_gives_one_clear_message(pipeline: PipelineCopy) -> None:
    before = versions(pipeline.settings)
    wrong = "wrong-secret-" + uuid.uuid4().hex
    result = submit({**pipeline.env, "AWS_SECRET_ACCESS_KEY": wrong}, "batch_enrich", "--full")
    assert result.returncode == 4
    assert "refused the credentials" in one_error_line(result)
    assert wrong not in result.stdout + result.stderr
    assert versions(pipeline.settings) == before


def test_csv_with_a_wrong_header_is_refused_whole(pipeline: PipelineCopy, tmp_path: Path) -> None:
    before = versions(pipeline.settings)
    bad = tmp_path / "swapped.csv"
    bad.write_text(
        "merchant_id,transaction_id,amount,currency,event_ts\nMER-ABC,T-1,1.00,USD,2026-11-01T00:00:00Z\n"
    )
    result = submit(pipeline.env, "ingest", str(bad))
    assert result.returncode == 3
    assert "swapped.csv: unexpected CSV header" in one_error_line(result)
    assert versions(pipeline.settings) == before
