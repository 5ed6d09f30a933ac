"""One SparkSession for the whole test run: small, local, UI off, no cluster.

It is built by the same builder as the jobs, with conf/spark-defaults.conf (Delta, S3A, UTC)
and the cached JARs, so the integration tests use Delta on s3a:// exactly as the jobs do.
No credential is put in its configuration: S3A reads them from the environment. The session
checks what every test wrote, in buckets the jobs' own key may not read, so its JVM starts
with MinIO's root user in AWS_* (when MINIO_ROOT_* is set); the jobs under test keep theirs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from jobs.adapters.session import session_builder
from jobs.config.secrets import secret_from_env
from jobs.config.settings import s3_from_env
from scripts.versions import value as pinned

ROOT = Path(__file__).resolve().parent.parent


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
