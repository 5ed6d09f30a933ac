"""docker-compose.yml checked by compose-go, the loader Docker Compose v2 uses (no engine here)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from scripts.versions import value as pinned

ROOT = Path(__file__).resolve().parents[2]


def composecheck(*args: str) -> subprocess.CompletedProcess[str]:
    binary = pinned("composecheck-bin")
    if not Path(binary).exists():
        pytest.fail(f"{binary} is missing; run 'make setup'")
    return subprocess.run([binary, *args], capture_output=True, text=True, check=False)


def load(compose_file: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return composecheck(
        "-f", str(compose_file), "--env-file", str(ROOT / "conf" / "local.env"), *extra
    )


@pytest.fixture(scope="module")
def project() -> dict[str, Any]:
    result = load(ROOT / "docker-compose.yml", "--profile", "jobs")
    assert result.returncode == 0, result.stderr
    loaded: dict[str, Any] = json.loads(result.stdout)
    return loaded


def test_services_and_healthchecks(project: dict[str, Any]) -> None:
    services = project["services"]
    assert sorted(services) == [
        "backup",
        "minio",
        "minio-init",
        "postgres",
        "restore",
        "spark",
        "spark-master",
        "spark-worker-1",
        "spark-worker-2",
    ]
    assert services["postgres"]["healthcheck"]["test"][0] == "CMD-SHELL"
    assert services["minio"]["healthcheck"]["test"] == ["CMD", "mc", "ready", "local"]
    assert "healthcheck" in services["spark-master"]
    depends = services["spark"]["depends_on"]
    assert depends["postgres"]["condition"] == "service_healthy"
    assert depends["minio-init"]["condition"] == "service_completed_successfully"


def test_jobs_run_on_the_compose_cluster(project: dict[str, Any]) -> None:
    services = project["services"]
    assert services["spark"]["environment"]["SPARK_MASTER"] == "spark://spark-master:7077"
    for worker in ("spark-worker-1", "spark-worker-2"):
        command = services[worker]["command"]
        assert command[:3] == [
            "scripts/with_secrets.sh",
            ".venv/bin/spark-class",
            "org.apache.spark.deploy.worker.Worker",
        ]
        assert "spark://spark-master:7077" in command
        assert services[worker]["depends_on"]["spark-master"]["condition"] == "service_healthy"
    images = {services[name]["image"] for name in ("spark", "spark-master", "spark-worker-1")}
    assert images == {"spark-enrich-job:local"}


def test_minio_init_gives_the_jobs_their_own_user_and_policy(project: dict[str, Any]) -> None:
    init = project["services"]["minio-init"]
    script = " ".join(init["command"])
    for step in ("mc mb", "mc admin policy create", "mc admin user add", "mc admin policy attach"):
        assert step in script
    mounts = {v["target"]: Path(v["source"]) for v in init["volumes"]}
    policy = json.loads((mounts["/policy"] / "enrich-jobs-policy.json").read_text())
    resources = {r for statement in policy["Statement"] for r in statement["Resource"]}
    assert resources == {
        "arn:aws:s3:::raw-data-bucket",
        "arn:aws:s3:::curated-data-bucket",
        "arn:aws:s3:::backup-bucket",
        "arn:aws:s3:::raw-data-bucket/*",
        "arn:aws:s3:::curated-data-bucket/*",
        "arn:aws:s3:::backup-bucket/*",
    }
    actions = {a for statement in policy["Statement"] for a in statement["Action"]}
    assert "s3:CreateBucket" not in actions and "s3:*" not in actions


def test_postgres_is_initialised_from_reference_sql_with_its_roles(
    project: dict[str, Any],
) -> None:
    postgres = project["services"]["postgres"]
    mounts = {v["target"]: v for v in postgres["volumes"]}
    init = mounts["/docker-entrypoint-initdb.d/postgres-init.sh"]
    assert Path(init["source"]) == ROOT / "docker" / "postgres-init.sh"
    assert Path(mounts["/reference_sql"]["source"]) == ROOT / "reference_sql"
    assert all(
        mounts[target]["read_only"] for target in mounts if target != "/var/lib/postgresql/data"
    )
    script = (ROOT / "docker" / "postgres-init.sh").read_text()
    assert "/reference_sql/*.sql" in script and "SET ROLE enrich_owner" in script
    # The admin is the image's superuser; the jobs log in as the pipeline role.
    assert postgres["environment"]["POSTGRES_USER"] == "enrich_admin"
    spark_url = project["services"]["spark"]["environment"]["POSTGRES_URL"]
    assert spark_url.startswith("postgresql://enrich_pipeline@")


def test_credentials_travel_as_secrets_not_environment(project: dict[str, Any]) -> None:
    env_file = dict(
        line.split("=", 1)
        for line in (ROOT / "conf" / "local.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    secrets = [
        env_file["POSTGRES_PASSWORD"],
        env_file["POSTGRES_ADMIN_PASSWORD"],
        env_file["POSTGRES_REPORTING_PASSWORD"],
        env_file["POSTGRES_MONITORING_PASSWORD"],
        env_file["AWS_SECRET_ACCESS_KEY"],
        env_file["MINIO_ROOT_PASSWORD"],
    ]
    for name, service in project["services"].items():
        text = json.dumps(service.get("environment", {})) + json.dumps(service.get("build", {}))
        for secret in secrets:
            assert secret not in text, f"service {name} carries a password in its environment"
    spark_env = project["services"]["spark"]["environment"]
    assert spark_env["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    assert spark_env["AWS_SECRET_ACCESS_KEY_FILE"] == "/run/secrets/s3_job_secret_key"


def test_the_checker_rejects_an_invalid_file(tmp_path: Path) -> None:
    broken = tmp_path / "compose.yml"
    broken.write_text(
        "services:\n  db:\n    image: postgres\n    healthcheck:\n      interval: often\n"
    )
    result = load(broken)
    assert result.returncode != 0
    assert "interval" in result.stderr


def dockerfile_stages() -> dict[str, list[str]]:
    """Base image -> instructions of each stage, as BuildKit's parser reads them."""
    result = composecheck("--dockerfile", str(ROOT / "docker" / "spark.Dockerfile"))
    assert result.returncode == 0, result.stderr
    stages: dict[str, list[str]] = {}
    current: list[str] = []
    for line in result.stdout.splitlines():
        if line.startswith("FROM "):
            current = stages.setdefault(line.removeprefix("FROM "), [])
        else:
            current.append(line)
    return stages


def test_dockerfile_parses_and_bakes_dependencies_without_secrets() -> None:
    stages = dockerfile_stages()
    job = stages["python:3.11-slim-bookworm"]
    setup = next(
        i for i, line in enumerate(job) if line.startswith("RUN scripts/setup.sh python jars")
    )
    assert setup < job.index("COPY jobs/ jobs/"), "JARs are resolved at build time"
    assert job[-2] == "USER enrich"
    for instructions in stages.values():
        for line in instructions:
            if line.startswith(("ENV", "ARG")):
                assert not any(word in line.upper() for word in ("PASSWORD", "SECRET", "KEY"))


def test_kubernetes_image_matches_the_pinned_spark() -> None:
    [k8s_base] = [base for base in dockerfile_stages() if base.startswith("apache/spark:")]
    pyspark = next(
        r for r in pinned("python-requirements").splitlines() if r.startswith("pyspark==")
    )
    assert k8s_base.startswith(f"apache/spark:{pyspark.removeprefix('pyspark==')}-scala2.13-java17")


def test_the_dockerfile_parser_rejects_an_invalid_file(tmp_path: Path) -> None:
    broken = tmp_path / "Dockerfile"
    broken.write_text("FROM python:3.11-slim\nCOPY\n")
    result = composecheck("--dockerfile", str(broken))
    assert result.returncode != 0
    assert "COPY" in result.stderr


def test_backups_read_as_the_reporting_role_and_restores_write_as_the_admin(
    project: dict[str, Any],
) -> None:
    services = project["services"]
    backup, restore = services["backup"], services["restore"]
    assert {s["source"] for s in backup["secrets"]} == {
        "postgres_reporting_password",
        "s3_job_access_key",
        "s3_job_secret_key",
    }
    assert "POSTGRES_ADMIN_URL" not in backup["environment"]
    assert "postgres_admin_password" in {s["source"] for s in restore["secrets"]}
    assert restore["entrypoint"] == ["scripts/submit.sh", "restore"]
    assert services["postgres"]["image"].startswith("postgres:15")


def test_monitoring_services_log_in_as_the_monitoring_role() -> None:
    result = load(ROOT / "docker-compose.yml", "--profile", "monitoring")
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert {"prometheus", "pushgateway", "postgres-exporter"} <= set(services)
    exporter = services["postgres-exporter"]
    assert exporter["environment"]["DATA_SOURCE_USER"] == "enrich_monitoring"
    assert (
        exporter["environment"]["DATA_SOURCE_PASS_FILE"]
        == "/run/secrets/postgres_monitoring_password"
    )
    assert "DATA_SOURCE_NAME" not in exporter["environment"]
    config = {v["target"]: Path(v["source"]) for v in services["prometheus"]["volumes"]}
    assert (config["/etc/prometheus"] / "prometheus-compose.yml").is_file()
