"""TLS to PostgreSQL with sslmode=require and verify-full, for both clients the jobs use:
psycopg2 (run records, summary, lock) and pgjdbc (lookups, through Spark). The test makes a CA
and a server certificate for "localhost", turns TLS on for the local server, and turns it off
again afterwards; connections with sslmode=disable (the other tests) are not affected."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest
from pyspark.sql import SparkSession

from jobs.adapters.jdbc import read_lookup
from jobs.adapters.jvm_errors import describe_failure
from jobs.config.postgres_url import PostgresTarget, parse_postgres_url, target_from_env
from jobs.config.settings import Settings
from tests.stack import ROOT

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Certificates:
    ca: Path
    other_ca: Path
    server_cert: Path
    server_key: Path


def openssl(*args: str, cwd: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make the test certificates (Debian package openssl)")
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(folder: Path, name: str) -> None:
    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-keyout", f"{name}.key", "-out", f"{name}.pem", "-subj", f"/CN=spark-enrich {name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=folder,
    )  # fmt: skip


def make_certificates(folder: Path) -> Certificates:
    """A CA, a server certificate it signs for DNS name localhost only, and an unrelated CA."""
    make_ca(folder, "ca")
    make_ca(folder, "other-ca")
    (folder / "server.ext").write_text(
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
    )
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=localhost",
        cwd=folder,
    )  # fmt: skip
    openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "server.ext", "-out", "server.crt",
        cwd=folder,
    )  # fmt: skip
    return Certificates(
        folder / "ca.pem", folder / "other-ca.pem", folder / "server.crt", folder / "server.key"
    )


def _admin_connection(admin: PostgresTarget) -> psycopg2.extensions.connection:
    conn = psycopg2.connect(**admin.psycopg2_kwargs())
    conn.autocommit = True
    return conn


@pytest.fixture(scope="module")
def tls_server(admin_target: PostgresTarget) -> Iterator[Certificates]:
    """TLS on for the local server, with a certificate for localhost signed by a fresh CA."""
    stack = Path(os.environ.get("STACK_DIR", ".stack"))
    folder = (stack if stack.is_absolute() else ROOT / stack) / "postgres" / "tls-test"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    certificates = make_certificates(folder)
    certificates.server_key.chmod(0o600)
    if os.geteuid() == 0:  # the server runs as the 'postgres' user and must own its key
        shutil.chown(folder, "postgres")
        for path in (certificates.server_cert, certificates.server_key):
            shutil.chown(path, "postgres")
    conn = _admin_connection(admin_target)
    with conn.cursor() as cur:
        cur.execute("ALTER SYSTEM SET ssl_cert_file = %s", (str(certificates.server_cert),))
        cur.execute("ALTER SYSTEM SET ssl_key_file = %s", (str(certificates.server_key),))
        cur.execute("ALTER SYSTEM SET ssl = on")
        cur.execute("SELECT pg_reload_conf()")
    conn.close()
    check = _admin_connection(admin_target)
    with check.cursor() as cur:
        cur.execute("SHOW ssl")
        row = cur.fetchone()
    check.close()
    assert row == ("on",), "the server did not turn TLS on; see its log in .stack/postgres"
    try:
        yield certificates
    finally:
        conn = _admin_connection(admin_target)
        with conn.cursor() as cur:
            cur.execute("ALTER SYSTEM RESET ssl")
            cur.execute("ALTER SYSTEM RESET ssl_cert_file")
            cur.execute("ALTER SYSTEM RESET ssl_key_file")
            cur.execute("SELECT pg_reload_conf()")
        conn.close()
        shutil.rmtree(folder, ignore_errors=True)


def pipeline_target(env: dict[str, str], host: str, **params: str) -> PostgresTarget:
    """The jobs' own target (POSTGRES_URL of the test database) with other host and TLS options."""
    base = target_from_env(env)
    query = "&".join(f"{key}={value}" for key, value in params.items())
    return parse_postgres_url(
        f"postgresql://{base.user}@{host}:{base.port}/{base.dbname}?{query}", env
    )


def psycopg2_uses_tls(target: PostgresTarget) -> bool:
    conn = psycopg2.connect(**target.psycopg2_kwargs())
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            row = cur.fetchone()
        return bool(row and row[0])
    finally:
        conn.close()


def jdbc_reads(spark: SparkSession, settings: Settings, target: PostgresTarget) -> int:
    return read_lookup(spark, target, settings.lookups[0], 1000).count()


def test_psycopg2_verify_full_with_the_right_ca_and_host(
    tls_server: Certificates, test_db_env: dict[str, str]
) -> None:
    target = pipeline_target(
        test_db_env, "localhost", sslmode="verify-full", sslrootcert=str(tls_server.ca)
    )
    assert psycopg2_uses_tls(target)
    assert psycopg2_uses_tls(pipeline_target(test_db_env, "127.0.0.1", sslmode="require"))


@pytest.mark.parametrize(
    ("host", "ca", "expected"),
    [
        ("127.0.0.1", "ca", 'does not match host name "127.0.0.1"'),
        ("localhost", "other_ca", "certificate verify failed"),
    ],
    ids=["wrong-host", "wrong-ca"],
)
def test_psycopg2_verify_full_refuses_a_wrong_host_or_ca(
    tls_server: Certificates, test_db_env: dict[str, str], host: str, ca: str, expected: str
) -> None:
    root = getattr(tls_server, ca)
    target = pipeline_target(test_db_env, host, sslmode="verify-full", sslrootcert=str(root))
    with pytest.raises(psycopg2.OperationalError, match=expected):
        psycopg2_uses_tls(target)


def test_jdbc_verify_full_with_the_right_ca_and_host(
    tls_server: Certificates, test_db_env: dict[str, str], spark: SparkSession
) -> None:
    from jobs.config.settings import load_settings

    settings = load_settings(test_db_env)
    target = pipeline_target(
        test_db_env, "localhost", sslmode="verify-full", sslrootcert=str(tls_server.ca)
    )
    assert "sslmode=verify-full" in target.jdbc_url()
    assert jdbc_reads(spark, settings, target) > 0
    required = pipeline_target(test_db_env, "127.0.0.1", sslmode="require")
    assert jdbc_reads(spark, settings, required) > 0


@pytest.mark.parametrize(
    ("host", "ca", "expected"),
    [
        ("127.0.0.1", "ca", "hostname 127.0.0.1 could not be verified"),
        ("localhost", "other_ca", "unable to find valid certification path"),
    ],
    ids=["wrong-host", "wrong-ca"],
)
def test_jdbc_verify_full_refuses_a_wrong_host_or_ca(
    tls_server: Certificates,
    test_db_env: dict[str, str],
    spark: SparkSession,
    host: str,
    ca: str,
    expected: str,
) -> None:
    from jobs.config.settings import load_settings

    settings = load_settings(test_db_env)
    root = getattr(tls_server, ca)
    target = pipeline_target(test_db_env, host, sslmode="verify-full", sslrootcert=str(root))
    with pytest.raises(Exception) as caught:
        jdbc_reads(spark, settings, target)
    assert expected in describe_failure(caught.value)
