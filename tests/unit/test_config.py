"""Settings, the POSTGRES_URL parser and argument parsing: clear errors naming the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.batch_enrich import parse_args as batch_args
from jobs.config.postgres_url import parse_postgres_url, target_from_env
from jobs.config.settings import load_settings
from jobs.core.errors import ConfigError
from jobs.ingest import parse_args as ingest_args
from jobs.runs.batch import BatchOptions
from jobs.runs.cli import with_tables
from jobs.runs.stream import StreamOptions
from jobs.stream_enrich import parse_args as stream_args

ROOT = Path(__file__).resolve().parents[2]
BASE_ENV = {
    "POSTGRES_URL": "postgresql://enrich:s3cret-pw@db.example:6543/enrichment?sslmode=verify-full&sslrootcert=/ca.pem",
    "S3_ENDPOINT": "https://s3.example:9000",
    "AWS_ACCESS_KEY_ID": "key",
    "AWS_SECRET_ACCESS_KEY": "secret",
    "SPARK_CONF_DIR": str(ROOT / "conf"),
}


def test_postgres_url_becomes_jdbc_without_credentials_and_keeps_sslmode() -> None:
    target = parse_postgres_url(BASE_ENV["POSTGRES_URL"], {})
    assert target.jdbc_url() == (
        "jdbc:postgresql://db.example:6543/enrichment?sslmode=verify-full&sslrootcert=/ca.pem"
    )
    assert target.redacted() == (
        "postgresql://enrich@db.example:6543/enrichment?sslmode=verify-full&sslrootcert=/ca.pem"
    )
    assert "s3cret-pw" not in repr(target)
    env = target.libpq_env()
    assert env["PGSSLMODE"] == "verify-full" and env["PGPASSWORD"] == "s3cret-pw"


def test_password_file_wins_over_the_url(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    target = parse_postgres_url(BASE_ENV["POSTGRES_URL"], {"POSTGRES_PASSWORD_FILE": str(secret)})
    assert target.password == "from-file"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "POSTGRES_URL is not set"),
        ("mysql://u@h/db", "must start with postgresql://"),
        ("postgresql://h:5432/db", "POSTGRES_URL has no user"),
        ("postgresql://u@h:notaport/db", "invalid port"),
    ],
)
def test_bad_postgres_url_is_named(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_postgres_url(url, {})


def test_each_role_has_its_own_url_and_password_variables() -> None:
    env = {
        "POSTGRES_URL": "postgresql://enrich_pipeline@db:5432/e",
        "POSTGRES_PASSWORD": "p1",
        "POSTGRES_ADMIN_URL": "postgresql://admin@db:5432/e",
        "POSTGRES_ADMIN_PASSWORD": "p2",
        "POSTGRES_REPORTING_URL": "postgresql://enrich_reporting@db:5432/e",
        "POSTGRES_REPORTING_PASSWORD": "p3",
    }
    found = {
        role: (target.user, target.password)
        for role in ("pipeline", "admin", "reporting")
        for target in [target_from_env(env, role=role)]
    }
    assert found == {
        "pipeline": ("enrich_pipeline", "p1"),
        "admin": ("admin", "p2"),
        "reporting": ("enrich_reporting", "p3"),
    }
    with pytest.raises(ConfigError, match="POSTGRES_ADMIN_URL is not set"):
        target_from_env({"POSTGRES_URL": env["POSTGRES_URL"]}, role="admin")


def test_settings_load_lookups_from_conf() -> None:
    settings = load_settings(BASE_ENV)
    assert [spec.table for spec in settings.lookups] == [
        "reference.merchant_lookup",
        "reference.category_group_lookup",
    ]
    assert settings.lookups[0].when_unmatched == {"enriched_category": "UNKNOWN"}
    assert settings.tables.curated == "s3a://curated-data-bucket/financial_data_curated_enriched"
    assert settings.s3.uses_ssl


@pytest.mark.parametrize(
    "missing", ["S3_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "POSTGRES_URL"]
)
def test_missing_setting_is_named(missing: str) -> None:
    env = {key: value for key, value in BASE_ENV.items() if key != missing}
    with pytest.raises(ConfigError, match=missing):
        load_settings(env)


def test_secret_file_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    env = {**BASE_ENV, "AWS_SECRET_ACCESS_KEY_FILE": str(tmp_path / "absent")}
    with pytest.raises(ConfigError, match="AWS_SECRET_ACCESS_KEY_FILE"):
        load_settings(env)


def env_with_config(tmp_path: Path, old: str, new: str) -> dict[str, str]:
    """BASE_ENV pointed at the shipped conf/enrichment.toml with ``old`` replaced by ``new``."""
    shipped = (ROOT / "conf" / "enrichment.toml").read_text()
    assert old in shipped  # the test changes the setting it means to
    path = tmp_path / "enrichment.toml"
    path.write_text(shipped.replace(old, new))
    return {**BASE_ENV, "ENRICH_CONFIG": str(path)}


def test_lookup_table_name_that_is_not_an_identifier_is_refused(tmp_path: Path) -> None:
    env = env_with_config(
        tmp_path, 'table = "reference.merchant_lookup"', 'table = "merchant_lookup; DROP TABLE x"'
    )
    with pytest.raises(ConfigError, match="is not a plain"):
        load_settings(env)


def test_a_lookup_output_named_like_a_column_of_the_rows_is_refused(tmp_path: Path) -> None:
    """The rules read the raw columns after the joins: an output called ``currency`` would
    replace the value they check (and curated would hold two columns of that name)."""
    env = env_with_config(tmp_path, 'category = "enriched_category"', 'category = "currency"')
    with pytest.raises(ConfigError, match="output column 'currency' is a column of the curated"):
        load_settings(env)


def test_parse_args() -> None:
    import datetime as dt

    assert batch_args([]) == BatchOptions()
    assert batch_args(["--full"]).full is True
    assert batch_args(["--from-date", "2026-11-02", "--to-date", "2026-11-03"]).date_range == (
        dt.date(2026, 11, 2),
        dt.date(2026, 11, 3),
    )
    assert batch_args(["--from-date", "2026-11-02"]).date_range == (
        dt.date(2026, 11, 2),
        dt.date(2026, 11, 2),
    )
    assert batch_args(["--wait-for-lock", "30"]).wait_for_lock == 30.0
    for bad in (
        ["--run-id", "not-a-uuid"],
        ["--full", "--from-date", "2026-11-02"],
        ["--force"],  # the old name of --full, gone
        ["--from-date", "2026-11-03", "--to-date", "2026-11-02"],
        ["--from-date", "2026-13-01"],
    ):
        with pytest.raises(SystemExit):
            batch_args(bad)
    assert ingest_args(["a.jsonl", "b.jsonl"]).file_format == "jsonl"
    assert ingest_args(["s3a://bucket/x.csv"]).file_format == "csv"
    assert ingest_args(["dir", "--format", "csv"]).paths == ("dir",)
    with pytest.raises(SystemExit):
        ingest_args(["folder-without-extension"])


def test_infrastructure_failures_seen_through_spark_are_classified() -> None:
    from jobs.core.errors import EnrichmentError, ServiceUnavailableError
    from jobs.runs.cli import classify_failure

    refused = classify_failure(RuntimeError("java.net.ConnectException: Connection refused"))
    assert isinstance(refused, ServiceUnavailableError)
    forbidden = classify_failure(RuntimeError("S3Exception: Forbidden (Status Code: 403)"))
    assert "refused the credentials" in str(forbidden)
    other = classify_failure(RuntimeError("row 14030 failed a check"))
    assert type(other) is EnrichmentError
    assert str(other) == "unexpected failure: row 14030 failed a check"


def test_table_paths_on_the_command_line_override_conf() -> None:
    # The platform guide's form: `spark-submit batch_enrich.py RAW CURATED`.
    raw, curated = "s3a://raw-data-bucket/financial_data_delta", "s3a://c/curated"
    options = batch_args(["--full", raw, curated])
    assert options.full and dict(options.table_paths) == {"raw": raw, "curated": curated}
    settings = with_tables(load_settings(BASE_ENV), options.table_paths)
    assert (settings.tables.raw, settings.tables.curated) == (raw, curated)
    assert settings.tables.quarantine == load_settings(BASE_ENV).tables.quarantine
    _, tables = stream_args(["--available-now", raw])
    assert tables == {"raw": raw}
    with pytest.raises(SystemExit):
        batch_args(["/local/folder"])


def test_stream_arguments_and_settings(tmp_path: Path) -> None:
    assert stream_args([])[0] == StreamOptions()
    assert stream_args(["--trigger", "5s"])[0].trigger_seconds == 5.0
    assert stream_args(["--trigger", "500ms"])[0].trigger_seconds == 0.5
    assert stream_args(["--trigger", "2m"])[0].trigger_seconds == 120.0
    assert stream_args(["--available-now"])[0].available_now
    for bad in (["--trigger", "soon"], ["--trigger", "0s"], ["--trigger", "5s", "--available-now"]):
        with pytest.raises(SystemExit):
            stream_args(bad)

    stream = load_settings(BASE_ENV).stream
    assert stream.landing == "s3a://raw-data-bucket/landing/"
    assert stream.checkpoint.startswith("s3a://curated-data-bucket/")
    moved = load_settings(
        {**BASE_ENV, "LANDING_PATH": "s3a://b/in", "STREAM_CHECKPOINT_PATH": "s3a://b/cp/"}
    )
    assert (moved.stream.landing, moved.stream.checkpoint) == ("s3a://b/in/", "s3a://b/cp")
    env = env_with_config(tmp_path, "max_files_per_trigger = 100", "max_files_per_trigger = 0")
    with pytest.raises(ConfigError, match="max_files_per_trigger must be a positive number"):
        load_settings(env)


def test_backup_settings(tmp_path: Path) -> None:
    shipped = load_settings(BASE_ENV).backup
    assert (shipped.location, shipped.keep) == ("s3a://backup-bucket/spark-enrich", 7)
    moved = load_settings({**BASE_ENV, "BACKUP_LOCATION": "/var/backups/enrich/"}).backup
    assert moved.location == "/var/backups/enrich"
    for bad, message in (
        ("keep = 0", "keep must be a whole number of backups, at least 1"),
        ('keep = "7"', "keep must be a whole number"),
        ('location = "s3://backup-bucket/x"', "must be an s3a:// path or a local folder"),
    ):
        setting = (
            "keep = 7"
            if bad.startswith("keep")
            else 'location = "s3a://backup-bucket/spark-enrich"'
        )
        with pytest.raises(ConfigError, match=message):
            load_settings(env_with_config(tmp_path, setting, bad))


def test_curated_deletion_vectors_are_on_unless_switched_off(tmp_path: Path) -> None:
    assert load_settings(BASE_ENV).tables.curated_deletion_vectors is True
    for value, expected in (("false", False), ('"no"', None)):
        env = env_with_config(
            tmp_path, "curated_deletion_vectors = true", f"curated_deletion_vectors = {value}"
        )
        if expected is None:
            with pytest.raises(ConfigError, match="curated_deletion_vectors must be true or false"):
                load_settings(env)
        else:
            settings = load_settings(env)
            assert settings.tables.curated_deletion_vectors is expected
            # a table path given on the command line keeps the setting
            moved = with_tables(settings, {"curated": "s3a://b/elsewhere"}).tables
            assert moved.curated == "s3a://b/elsewhere" and not moved.curated_deletion_vectors
