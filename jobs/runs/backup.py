"""`make backup` and `make backups`: one consistent point of PostgreSQL and the Delta tables.

A backup needs no writer lock and no Spark, so it can be taken while a run or a stream is
writing: PostgreSQL is read in one exported snapshot, which both pg_dump and the query for the
last successful run use. That run's summary rows are in the dump, and the curated and quarantine
versions it wrote stay readable in Delta until VACUUM removes their files (checked here, and
again by the restore).
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from psycopg2.extensions import connection as Connection

from jobs.adapters import object_store, pg_dump
from jobs.adapters.backup_store import backup_store, sha256_of
from jobs.config.postgres_url import PostgresTarget
from jobs.config.settings import Settings
from jobs.core.backups import (
    DUMP_NAME,
    MANIFEST_NAME,
    SCHEMAS,
    Manifest,
    TableVersion,
    backup_id,
    to_delete,
)
from jobs.core.errors import BackupError, SourceError

JOB_NAME = "backup"
log = logging.getLogger("enrich.backup")


@dataclass(frozen=True)
class BackupResult:
    manifest: Manifest
    location: str
    deleted: list[str]
    seconds: float


@dataclass(frozen=True)
class _LastRun:
    run_id: str
    ended_at: datetime | None
    raw_version: int
    curated_version: int | None
    quarantine_version: int | None


def _last_successful_run(conn: Connection, curated_table: str) -> _LastRun | None:
    """In the snapshot's transaction (no commit or rollback here: that would end it)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT run_id::text, ended_at, raw_version_to, curated_version_written, "
            "quarantine_version_written FROM pipeline.enrichment_runs "
            "WHERE curated_table = %s AND status IN ('succeeded', 'noop') "
            "ORDER BY started_at DESC LIMIT 1",
            (curated_table,),
        )
        row = cur.fetchone()
    return None if row is None else _LastRun(*row)


def check_restorable(settings: Settings, table: TableVersion, what: str) -> None:
    """The files of ``table``'s version are all on the store, or BackupError saying so."""
    if table.version is None:
        return
    try:
        missing = object_store.missing_version_files(settings.s3, table.path, table.version)
    except SourceError as error:
        raise BackupError(f"{what} table: {error}") from None
    if missing:
        raise BackupError(
            f"{what} table {table.path}: {len(missing)} data file(s) of version {table.version} "
            f"are gone (removed by VACUUM?), e.g. {missing[0]}; this point cannot be restored"
        )


def take(settings: Settings, reader: PostgresTarget, now: datetime | None = None) -> BackupResult:
    """Dump PostgreSQL as ``reader`` (the read-only reporting role is enough), record the
    tables' versions, store both, then apply retention."""
    started = time.monotonic()
    at = now or datetime.now(UTC)
    ident = backup_id(at)
    tables = settings.tables
    store = backup_store(settings.backup.location, settings.s3)
    if ident in store.ids():
        raise BackupError(f"backup {ident} already exists in {store.location}; try again")
    with tempfile.TemporaryDirectory(prefix="enrich-backup-") as work:
        dump_file = Path(work) / DUMP_NAME
        with pg_dump.exported_snapshot(reader) as (conn, snapshot):
            last = _last_successful_run(conn, tables.curated)
            if last is None:
                raise BackupError(
                    f"no successful run of {tables.curated} yet: nothing to back up "
                    "(run make submit-batch first)"
                )
            log.info("dumping schemas %s of %s", ", ".join(SCHEMAS), reader.redacted())
            pg_dump.dump(reader, snapshot, SCHEMAS, dump_file)
        manifest = Manifest(
            backup_id=ident,
            created_at=at.isoformat(),
            database=reader.dbname,
            schemas=SCHEMAS,
            dump_sha256=sha256_of(dump_file),
            dump_bytes=dump_file.stat().st_size,
            run_id=last.run_id,
            run_ended_at=None if last.ended_at is None else last.ended_at.isoformat(),
            raw=TableVersion(tables.raw, last.raw_version),
            curated=TableVersion(tables.curated, last.curated_version),
            quarantine=TableVersion(tables.quarantine, last.quarantine_version),
        )
        check_restorable(settings, manifest.curated, "curated")
        check_restorable(settings, manifest.quarantine, "quarantine")
        log.info("storing backup %s in %s", ident, store.location)
        store.put_file(ident, DUMP_NAME, dump_file)
        store.put_text(ident, MANIFEST_NAME, manifest.to_json())  # last: the backup is complete
    deleted = to_delete(store.ids(), settings.backup.keep)
    for old in deleted:
        log.info("retention (keep %d): deleting backup %s", settings.backup.keep, old)
        store.delete(old)
    return BackupResult(manifest, store.location, deleted, time.monotonic() - started)


def manifests(settings: Settings) -> list[Manifest]:
    """Every complete backup at the configured location, oldest first."""
    store = backup_store(settings.backup.location, settings.s3)
    return [
        Manifest.from_json(store.get_text(ident, MANIFEST_NAME), f"backup {ident}")
        for ident in store.ids()
    ]
