"""One SparkSession for the whole test run: small, local, UI off, no cluster.

It is built by the same builder as the jobs, with conf/spark-defaults.conf (Delta, S3A, UTC)
and the cached JARs, so the integration tests use Delta on s3a:// exactly as the jobs do.
No credential is put in its configuration: S3A reads them from the environment. The session
checks what every test wrote, in buckets the jobs' own key may not read, so its JVM starts
with MinIO's root user in AWS_* (when MINIO_ROOT_* is set); the jobs under test keep theirs.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from jobs.adapters.session import session_builder
from jobs.config.secrets import secret_from_env
from jobs.config.settings import s3_from_env
from scripts.versions import value as pinned

ROOT = Path(__file__).resolve().parent.parent

# The real local stack's fixtures (databases, buckets, keys) and the fault suite's states, for
# the integration and system tests.
pytest_plugins = ["tests.stack", "tests.harness"]


def _jar_paths() -> str:
    jar_dir = pinned("jar-dir")
    jars = sorted(Path(jar_dir).glob("*.jar"))
    if not jars:
        pytest.exit(f"no JARs in {jar_dir}; run 'make setup'", returncode=2)
    return ":".join(str(jar) for jar in jars)


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    os.environ["SPARK_CONF_DIR"] = str(ROOT / "conf")
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    root_user = secret_from_env(os.environ, "MINIO_ROOT_USER")
    root_password = secret_from_env(os.environ, "MINIO_ROOT_PASSWORD")
    saved = {name: os.environ.get(name) for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    if root_user and root_password:
        os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"] = (
            root_user,
            root_password,
        )
    try:  # the JVM takes its environment when it starts
        session = (
            session_builder("enrich-tests", s3_from_env(os.environ))
            .master("local[2]")
            # on the class path, not spark.jars, which copies them into a temp folder per JVM
            .config("spark.driver.extraClassPath", _jar_paths())
            .config("spark.sql.shuffle.partitions", "2")
            .config("spark.default.parallelism", "2")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .getOrCreate()
        )
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    yield session
    session.stop()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Where the time went, per test file (set-up, call and tear-down of its tests added up),
    so that a change can see what its tests cost. pytest's --durations lists single tests."""
    per_file: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for reports in terminalreporter.stats.values():
        for report in reports:
            nodeid = getattr(report, "nodeid", "")
            duration = getattr(report, "duration", None)
            if not nodeid or duration is None:
                continue
            path = nodeid.split("::", 1)[0]
            per_file[path] += float(duration)
            if getattr(report, "when", "") == "call":
                counts[path] += 1
    if not per_file:
        return
    total = sum(per_file.values())
    terminalreporter.write_sep("=", "time per test file")
    for path, seconds in sorted(per_file.items(), key=lambda item: -item[1]):
        terminalreporter.write_line(
            f"{seconds / 60:7.1f} min {100 * seconds / total:5.1f}%  {counts[path]:4d} tests  {path}"
        )
    terminalreporter.write_line(
        f"{total / 60:7.1f} min in all (a shared fixture counts where it is first set up)"
    )
