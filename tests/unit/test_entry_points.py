"""What every entry point shares (jobs/runs/cli.py) and the stack scripts' settings helper
(scripts/stack_env.py): one line per failure with its exit status, secrets kept off argv."""

from __future__ import annotations

import logging
import shlex
import subprocess
from pathlib import Path

import pytest

from jobs.core.errors import ConcurrentRunError, SourceError
from jobs.runs.cli import run_main
from scripts import stack_env, versions

LOCAL = {
    "POSTGRES_URL": "postgresql://enrich_pipeline@127.0.0.1:55432/enrichment?sslmode=disable",
    "POSTGRES_PASSWORD": "pipeline pass'word",
    "POSTGRES_ADMIN_URL": "postgresql://enrich_admin@127.0.0.1:55432/enrichment",
    "POSTGRES_ADMIN_PASSWORD": "admin-secret",
    "POSTGRES_REPORTING_URL": "postgresql://enrich_reporting@127.0.0.1:55432/enrichment",
    "POSTGRES_REPORTING_PASSWORD": "reporting-secret",
}


def error_records(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize(
    ("error", "code", "line"),
    [
        (
            SourceError("a.csv: unexpected CSV header"),
            3,
            "ingest failed: a.csv: unexpected CSV header",
        ),
        (ConcurrentRunError("another run is writing s3a://x"), 5, "another run is writing s3a://x"),
        (
            RuntimeError("java.net.ConnectException: Connection refused"),
            4,
            "a server did not answer",
        ),
        (RuntimeError("row 14030 failed a check"), 1, "unexpected failure: row 14030"),
    ],
)
def test_a_failure_is_one_error_line_and_its_exit_status(
    caplog: pytest.LogCaptureFixture, error: Exception, code: int, line: str
) -> None:
    def body() -> int:
        raise error

    assert run_main("ingest", body) == code
    [message] = error_records(caplog)
    assert line in message


def test_success_passes_the_status_through(caplog: pytest.LogCaptureFixture) -> None:
    assert run_main("batch_enrich", lambda: 0) == 0
    assert error_records(caplog) == []


@pytest.fixture()
def local_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in LOCAL.items():
        monkeypatch.setenv(name, value)


@pytest.mark.usefixtures("local_env")
def test_stack_env_fields_and_passwords() -> None:
    assert stack_env.output(["field", "admin", "port"]) == "55432"
    assert stack_env.output(["field", "pipeline", "user"]) == "enrich_pipeline"
    assert stack_env.output(["password", "admin"]) == "admin-secret"
    redacted = stack_env.output(["field", "pipeline", "redacted"])
    assert "pass" not in redacted and redacted.endswith("?sslmode=disable")


@pytest.mark.usefixtures("local_env")
def test_stack_env_prints_shell_that_eval_can_run() -> None:
    exports = stack_env.output(["libpq", "pipeline"]).splitlines()
    assert "export PGPASSWORD='pipeline pass'\"'\"'word'" in exports
    assert "export PGSSLMODE=disable" in exports
    seed = stack_env.output(["seed"]).splitlines()
    assert seed[:2] == ["pipeline_role=enrich_pipeline", "reporting_role=enrich_reporting"]
    assert "export ENRICH_REPORTING_PASSWORD=reporting-secret" in seed
    assert "monitoring_role=enrich_monitoring" in seed  # no POSTGRES_MONITORING_URL: the default


@pytest.mark.usefixtures("local_env")
def test_stack_env_refusals_stop_the_script(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def evaluated(printed: str) -> subprocess.CompletedProcess[str]:
        """What a script doing ``eval "$(python3 -m scripts.stack_env ...)"`` goes through."""
        script = f"eval {shlex.quote(printed)}\necho went-on"
        return subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=False)

    assert stack_env.main(["libpq", "superuser"]) == 2
    stopped = evaluated(capsys.readouterr().out)
    assert stopped.returncode == 2 and "went-on" not in stopped.stdout
    assert stopped.stderr.strip() == (
        "error: unknown role 'superuser'; use one of pipeline, admin, reporting, monitoring"
    )
    monkeypatch.setenv("POSTGRES_ADMIN_URL", LOCAL["POSTGRES_URL"])
    assert stack_env.main(["seed"]) == 2
    stopped = evaluated(capsys.readouterr().out)
    assert stopped.returncode == 2 and "went-on" not in stopped.stdout
    assert stopped.stderr.startswith("seed: error: the admin role 'enrich_pipeline' must not be")
    monkeypatch.delenv("POSTGRES_URL")
    assert stack_env.main(["field", "pipeline", "host"]) == 2
    assert "POSTGRES_URL is not set" in capsys.readouterr().err


def test_the_class_archive_is_keyed_by_what_it_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENRICH_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    jars = ["io.delta:delta-spark_4.2_2.13:4.4.0"]
    archive = versions.jvm_archive("py311-abc", jars)
    assert archive.parent == tmp_path and archive.suffix == ".jsa"
    assert versions.jvm_archive("py311-abc", jars) == archive  # stable across calls and clones
    assert versions.jvm_archive("py311-def", jars) != archive  # another pyspark
    assert versions.jvm_archive("py311-abc", [*jars, "org.postgresql:postgresql:42"]) != archive
    workload = tmp_path / "clone" / "scripts" / "jvm_training.py"  # another training workload
    workload.parent.mkdir(parents=True)
    workload.write_text((versions.ROOT / "scripts" / "jvm_training.py").read_text() + "\n# x\n")
    monkeypatch.setattr(versions, "ROOT", tmp_path / "clone")
    assert versions.jvm_archive("py311-abc", jars) != archive
    monkeypatch.undo()
    monkeypatch.setenv("ENRICH_CACHE_DIR", str(tmp_path))
    other_jdk = tmp_path / "jdk-other"  # spark-submit runs $JAVA_HOME/bin/java when it is set
    other_jdk.mkdir()
    (other_jdk / "release").write_text('JAVA_VERSION="25.0.3"\n')
    monkeypatch.setenv("JAVA_HOME", str(other_jdk))
    assert versions.jvm_archive("py311-abc", jars) != archive
    assert versions.value("launcher-conf-dir") == str(tmp_path / "spark-launcher-conf")
