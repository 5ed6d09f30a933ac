"""Run settings: non-secret configuration from conf/enrichment.toml, secrets from the environment.

Every missing or malformed setting raises ConfigError naming it, before any work starts.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jobs.config.postgres_url import PostgresTarget, parse_postgres_url
from jobs.config.secrets import secret_from_env
from jobs.core.errors import ConfigError
from jobs.core.models import LookupSpec
from jobs.core.schemas import RAW_COLUMNS

CONFIG_NAME = "enrichment.toml"
NEW_COLUMN_POLICIES = ("refuse", "ignore")
_QUALIFIED_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
_COLUMN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class S3Settings:
    endpoint: str
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    region: str = "us-east-1"

    @property
    def uses_ssl(self) -> bool:
        return urlsplit(self.endpoint).scheme == "https"


@dataclass(frozen=True)
class TablePaths:
    raw: str
    curated: str
    quarantine: str
    # Curated's MERGE marks replaced rows in deletion vectors instead of rewriting their files
    # (readers need deletion-vector support: Spark, delta-rs through DataFusion, Trino).
    curated_deletion_vectors: bool = True


@dataclass(frozen=True)
class StreamSettings:
    """The streaming job's: where files land, where the query keeps its progress, how much one
    micro-batch takes, and how often the lookups are checked for changes."""

    landing: str = "s3a://raw-data-bucket/landing/"
    checkpoint: str = "s3a://curated-data-bucket/_checkpoints/stream_enrich"
    trigger_seconds: float = 5.0
    max_files_per_trigger: int = 100
    lookup_check_seconds: float = 60.0
    # While PostgreSQL is unreachable a micro-batch waits for it, on the lookups it last read,
    # this long at most; then the stream stops.
    postgres_outage_seconds: float = 300.0


@dataclass(frozen=True)
class BackupSettings:
    """Where `make backup` keeps its backups (an s3a:// prefix or a local folder) and how many."""

    location: str = "s3a://backup-bucket/spark-enrich"
    keep: int = 7


@dataclass(frozen=True)
class MaintenanceSettings:
    """`make maintain`: how long VACUUM keeps old versions' files for time travel and for
    readers still on an older snapshot (Delta's own default is 7 days)."""

    time_travel_hours: float = 168.0


@dataclass(frozen=True)
class Settings:
    postgres: PostgresTarget
    s3: S3Settings
    tables: TablePaths
    lookups: tuple[LookupSpec, ...]
    stream: StreamSettings = StreamSettings()
    backup: BackupSettings = BackupSettings()
    maintenance: MaintenanceSettings = MaintenanceSettings()
    # Where runs push their metrics (PUSHGATEWAY_URL); None: nowhere.
    pushgateway_url: str | None = None
    jdbc_fetchsize: int = 10000
    max_future_minutes: int = 60
    # What a batch run does when the raw table has columns this version does not know.
    new_raw_columns: str = "refuse"


def _secret(environ: Mapping[str, str], name: str) -> str:
    value = secret_from_env(environ, name)
    if value is None:
        raise ConfigError(f"{name} is not set (set it, or {name}_FILE, in the environment)")
    return value


def s3_from_env(environ: Mapping[str, str]) -> S3Settings:
    endpoint = environ.get("S3_ENDPOINT", "")
    if not endpoint:
        raise ConfigError("S3_ENDPOINT is not set (for example http://127.0.0.1:59000)")
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"S3_ENDPOINT must be an http:// or https:// URL (got {endpoint!r})")
    return S3Settings(
        endpoint=endpoint.rstrip("/"),
        access_key=_secret(environ, "AWS_ACCESS_KEY_ID"),
        secret_key=_secret(environ, "AWS_SECRET_ACCESS_KEY"),
        region=environ.get("AWS_REGION", "us-east-1"),
    )


def _require(section: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in section:
        raise ConfigError(f"{where}: missing '{key}'")
    return section[key]


def _flag(section: Mapping[str, Any], key: str, where: str, default: bool = False) -> bool:
    value = section.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: {key} must be true or false (got {value!r})")
    return value


def _lookup_spec(raw: Mapping[str, Any], index: int, source: Path) -> LookupSpec:
    where = f"{source} lookups[{index}]"
    spec = LookupSpec(
        name=str(_require(raw, "name", where)),
        table=str(_require(raw, "table", where)),
        key=str(_require(raw, "key", where)),
        join_on=str(_require(raw, "join_on", where)),
        columns=dict(_require(raw, "columns", where)),
        when_unmatched=dict(raw.get("when_unmatched", {})),
        when_null=dict(raw.get("when_null", {})),
        temporal=_flag(raw, "temporal", where),
    )
    if not _QUALIFIED_NAME.match(spec.table):
        raise ConfigError(f"{where}: table {spec.table!r} is not a plain [schema.]table name")
    names = [spec.key, spec.join_on, *spec.columns, *spec.columns.values()]
    for name in names:
        if not _COLUMN_NAME.match(name):
            raise ConfigError(f"{where}: column name {name!r} is not a plain identifier")
    outputs = set(spec.columns.values())
    lineage = {"event_date", "_run_id", "_enriched_at", "_source_version"}
    taken = sorted(outputs & {*RAW_COLUMNS, *lineage})
    if taken:
        raise ConfigError(
            f"{where}: output column {taken[0]!r} is a column of the curated rows already "
            "(the raw table's or the lineage's): name the lookup's column differently"
        )
    for setting in ("when_unmatched", "when_null"):
        for column in getattr(spec, setting):
            if column not in outputs:
                raise ConfigError(
                    f"{where}: {setting} names {column!r}, which is not an output column"
                )
    return spec


def _positive(section: Mapping[str, Any], key: str, default: float, where: str) -> float:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{where} {key} must be a positive number (got {value!r})")
    return float(value)


def _stream_settings(
    config: Mapping[str, Any], environ: Mapping[str, str], source: Path
) -> StreamSettings:
    section = config.get("stream", {})
    where = f"{source} [stream]"
    defaults = StreamSettings()
    landing = environ.get("LANDING_PATH") or str(section.get("landing", defaults.landing))
    checkpoint = environ.get("STREAM_CHECKPOINT_PATH") or str(
        section.get("checkpoint", defaults.checkpoint)
    )
    max_files = _positive(section, "max_files_per_trigger", defaults.max_files_per_trigger, where)
    if max_files != int(max_files):
        raise ConfigError(f"{where} max_files_per_trigger must be a whole number")
    return StreamSettings(
        landing=landing if landing.endswith("/") else landing + "/",
        checkpoint=checkpoint.rstrip("/"),
        trigger_seconds=_positive(section, "trigger_seconds", defaults.trigger_seconds, where),
        max_files_per_trigger=int(max_files),
        lookup_check_seconds=_positive(
            section, "lookup_check_seconds", defaults.lookup_check_seconds, where
        ),
        postgres_outage_seconds=_positive(
            section, "postgres_outage_seconds", defaults.postgres_outage_seconds, where
        ),
    )


def _backup_settings(
    config: Mapping[str, Any], environ: Mapping[str, str], source: Path
) -> BackupSettings:
    section = config.get("backup", {})
    where = f"{source} [backup]"
    defaults = BackupSettings()
    location = environ.get("BACKUP_LOCATION") or str(section.get("location", defaults.location))
    keep = section.get("keep", defaults.keep)
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise ConfigError(
            f"{where} keep must be a whole number of backups, at least 1 (got {keep!r})"
        )
    if location.startswith("s3://"):
        raise ConfigError(
            f"{where} location must be an s3a:// path or a local folder (got {location!r})"
        )
    return BackupSettings(location=location.rstrip("/"), keep=keep)


def _maintenance_settings(config: Mapping[str, Any], source: Path) -> MaintenanceSettings:
    section = config.get("maintenance", {})
    hours = section.get("time_travel_hours", MaintenanceSettings().time_travel_hours)
    if isinstance(hours, bool) or not isinstance(hours, int | float) or hours < 0:
        raise ConfigError(
            f"{source} [maintenance] time_travel_hours must be a number of hours >= 0 (got {hours!r})"
        )
    return MaintenanceSettings(time_travel_hours=float(hours))


def default_config_path(environ: Mapping[str, str]) -> Path:
    """conf/enrichment.toml: found through SPARK_CONF_DIR (the launchers set it), else the cwd."""
    conf_dir = environ.get("SPARK_CONF_DIR") or "conf"
    return Path(conf_dir) / CONFIG_NAME


def load_settings(
    environ: Mapping[str, str] | None = None, config_path: Path | None = None
) -> Settings:
    environ = os.environ if environ is None else environ
    source = Path(environ.get("ENRICH_CONFIG") or config_path or default_config_path(environ))
    try:
        with source.open("rb") as handle:
            config = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"configuration file {source} not found (ENRICH_CONFIG)") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"configuration file {source} is not valid TOML: {error}") from None

    tables = config.get("tables", {})
    paths = TablePaths(
        raw=environ.get("RAW_TABLE_PATH") or _require(tables, "raw", f"{source} [tables]"),
        curated=environ.get("CURATED_TABLE_PATH")
        or _require(tables, "curated", f"{source} [tables]"),
        quarantine=environ.get("QUARANTINE_TABLE_PATH")
        or _require(tables, "quarantine", f"{source} [tables]"),
        curated_deletion_vectors=_flag(
            tables, "curated_deletion_vectors", f"{source} [tables]", default=True
        ),
    )
    lookups = tuple(
        _lookup_spec(raw, index, source) for index, raw in enumerate(config.get("lookups", []))
    )
    if not lookups:
        raise ConfigError(f"{source}: no [[lookups]] configured")
    new_raw_columns = str(config.get("schema", {}).get("new_raw_columns", "refuse"))
    if new_raw_columns not in NEW_COLUMN_POLICIES:
        raise ConfigError(
            f"{source} [schema] new_raw_columns must be one of {', '.join(NEW_COLUMN_POLICIES)} "
            f"(got {new_raw_columns!r})"
        )
    return Settings(
        postgres=parse_postgres_url(environ.get("POSTGRES_URL", ""), environ),
        s3=s3_from_env(environ),
        tables=paths,
        lookups=lookups,
        jdbc_fetchsize=int(config.get("jdbc", {}).get("fetchsize", 10000)),
        max_future_minutes=int(config.get("validation", {}).get("max_future_minutes", 60)),
        new_raw_columns=new_raw_columns,
        stream=_stream_settings(config, environ, source),
        backup=_backup_settings(config, environ, source),
        maintenance=_maintenance_settings(config, source),
        pushgateway_url=environ.get("PUSHGATEWAY_URL") or None,
    )
