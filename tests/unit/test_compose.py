"""docker-compose.yml checked by compose-go, the loader Docker Compose v2 uses (no engine here)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from scripts.versions import value as pinned

ROOT = Path(__file__).resolve().parents[2]


def composecheck(compose_file: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    binary = pinned("composecheck-bin")
    if not Path(binary).exists():
        pytest.fail(f"{binary} is missing; run 'make setup'")
    return subprocess.run(
        [binary, "-f", str(compose_file), "--env-file", str(ROOT / "conf" / "local.env"), *extra],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="module")
def project() -> dict[str, Any]:
    result = composecheck(ROOT / "docker-compose.yml", "--profile", "jobs")
    assert result.returncode == 0, result.stderr
    loaded: dict[str, Any] = json.loads(result.stdout)
    return loaded


def test_services_and_healthchecks(project: dict[str, Any]) -> None:
    services = project["services"]
    assert sorted(services) == ["minio", "minio-init", "postgres", "spark"]
    assert services["postgres"]["healthcheck"]["test"][0] == "CMD-SHELL"
    assert services["minio"]["healthcheck"]["test"] == ["CMD", "mc", "ready", "local"]
    assert services["spark"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert (
        services["spark"]["depends_on"]["minio-init"]["condition"]
        == "service_completed_successfully"
    )


def test_postgres_is_initialised_from_reference_sql(project: dict[str, Any]) -> None:
    mounts = {v["target"]: v for v in project["services"]["postgres"]["volumes"]}
    init = mounts["/docker-entrypoint-initdb.d"]
    assert Path(init["source"]) == ROOT / "reference_sql"
    assert init["read_only"] is True


def test_credentials_travel_as_secrets_not_environment(project: dict[str, Any]) -> None:
    env_file = dict(
        line.split("=", 1)
        for line in (ROOT / "conf" / "local.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    secrets = [env_file["POSTGRES_PASSWORD"], env_file["AWS_SECRET_ACCESS_KEY"]]
    for name, service in project["services"].items():
        text = json.dumps(service.get("environment", {})) + json.dumps(service.get("build", {}))
        for secret in secrets:
            assert secret not in text, f"service {name} carries a password in its environment"
    spark_env = project["services"]["spark"]["environment"]
    assert spark_env["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    assert spark_env["AWS_SECRET_ACCESS_KEY_FILE"] == "/run/secrets/minio_root_password"
    dockerfile = (ROOT / "docker" / "spark.Dockerfile").read_text()
    assert "PASSWORD" not in dockerfile and "SECRET" not in dockerfile


def test_the_checker_rejects_an_invalid_file(tmp_path: Path) -> None:
    broken = tmp_path / "compose.yml"
    broken.write_text(
        "services:\n  db:\n    image: postgres\n    healthcheck:\n      interval: often\n"
    )
    result = composecheck(broken)
    assert result.returncode != 0
    assert "interval" in result.stderr
