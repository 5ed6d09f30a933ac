"""`make restore BACKUP=<id>`: PostgreSQL back to a backup's dump and the curated and quarantine
tables back to the versions recorded with it, then a check that the two agree.

Holding the writer lock (no run or stream may be writing), in this order:
1. every data file of the recorded versions is still on the store (refused otherwise);
2. PostgreSQL: the dump's schemas replaced, in one transaction with a run record of the
   restore in status 'running', whose error says to run the restore again;
3. Delta RESTORE of curated and quarantine to the recorded versions (new commits);
4. the check: the summary equals the GROUP BY of curated, each transaction id once;
5. the restore's record 'succeeded', naming the new versions: the next run starts from them,
   and processes the raw versions after the backup's watermark, the way it would have then.
A restore stopped between 2 and 5 leaves its record 'running': every job refuses to start
until the restore is run again (it is rerunnable).
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.adapters import delta, object_store, pg_dump, writer_lock
from jobs.adapters.backup_store import backup_store, sha256_of
from jobs.adapters.postgres import connect
from jobs.config.postgres_url import PostgresTarget
from jobs.config.settings import Settings
from jobs.core.backups import DUMP_NAME, MANIFEST_NAME, Manifest, TableVersion, check_backup_id
from jobs.core.errors import BackupError
from jobs.core.models import RESTORE_JOB, SummaryRow
from jobs.core.transforms import daily_category_summary
from jobs.runs.backup import check_restorable

log = logging.getLogger("enrich.restore")


@dataclass(frozen=True)
class RestoreOptions:
    backup_id: str
    wait_for_lock: float = 0.0


@dataclass(frozen=True)
class RestoreResult:
    manifest: Manifest
    run_id: str
    curated_version: int | None
    quarantine_version: int | None
    curated_rows: int
    summary_rows: int
    seconds: float


def _restore_record_sql(run_id: str, manifest: Manifest, driver: str) -> str:
    """Appended to the dump's SQL (psql): the restore's record, copied from the backup's last
    successful run (its watermark and lookups), and earlier runs left 'running' marked dead."""
    return f"""
\\set restore_run_id '{run_id}'
\\set backup_id '{manifest.backup_id}'
\\set synced_run_id '{manifest.run_id}'
\\set driver '{driver}'
UPDATE pipeline.enrichment_runs SET status = 'crashed',
    error = coalesce(error, 'found running by the restore of backup ' || :'backup_id')
WHERE status = 'running';
INSERT INTO pipeline.enrichment_runs (run_id, job_name, status, mode, started_at, raw_table,
    curated_table, quarantine_table, raw_version_to, curated_version_written,
    quarantine_version_written, lookup_fingerprint, details, error, driver)
SELECT :'restore_run_id'::uuid, '{RESTORE_JOB}', 'running', NULL, clock_timestamp(), raw_table,
    curated_table, quarantine_table, raw_version_to, curated_version_written,
    quarantine_version_written, lookup_fingerprint,
    jsonb_build_object('backup', :'backup_id', 'restored_run', :'synced_run_id'),
    'restore of backup ' || :'backup_id' || ' did not finish: run make restore BACKUP='
        || :'backup_id' || ' again before any job',
    :'driver'
FROM pipeline.enrichment_runs WHERE run_id = :'synced_run_id'::uuid;
SELECT 1 / count(*) FROM pipeline.enrichment_runs WHERE run_id = :'restore_run_id'::uuid;
"""


def _restore_table(
    spark: SparkSession, settings: Settings, table: TableVersion, note: str
) -> int | None:
    """The table as of ``table.version``, as a new commit (none if it is at that version)."""
    if table.version is None:
        return None
    latest = object_store.table_version(settings.s3, table.path)
    if latest == table.version:
        log.info("%s is at version %d already", table.path, table.version)
        return table.version
    log.info("restoring %s to version %d (now %s)", table.path, table.version, latest)
    return delta.restore(spark, table.path, table.version, note)


def _check_invariants(
    spark: SparkSession, settings: Settings, version: int | None
) -> tuple[int, int]:
    """The summary in PostgreSQL equals the GROUP BY of curated at ``version``, and no
    transaction id is in curated twice; (curated rows, summary rows)."""
    with connect(settings.postgres) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT event_date, category, currency, transaction_count, total_amount "
            "FROM pipeline.category_daily_summary"
        )
        stored = {SummaryRow(*row) for row in cur.fetchall()}
        conn.rollback()
    if version is None:
        if stored:
            raise BackupError("the restored summary has rows but the backup has no curated table")
        return 0, 0
    curated = delta.read_version(spark, settings.tables.curated, version)
    totals = curated.agg(
        F.count(F.lit(1)).alias("rows"), F.countDistinct("transaction_id").alias("ids")
    ).first()
    assert totals is not None
    if totals["rows"] != totals["ids"]:
        raise BackupError(
            f"after the restore, curated version {version} holds {totals['rows']} rows for "
            f"{totals['ids']} transaction ids"
        )
    computed = {
        SummaryRow(**row.asDict()) for row in curated.transform(daily_category_summary).collect()
    }
    if computed != stored:
        raise BackupError(
            f"after the restore, the summary in PostgreSQL ({len(stored)} rows) differs from the "
            f"GROUP BY of curated version {version} ({len(computed)} rows, "
            f"{len(stored ^ computed)} differing)"
        )
    return int(totals["rows"]), len(stored)


def run(
    spark_factory: Callable[[], SparkSession],
    settings: Settings,
    admin: PostgresTarget,
    options: RestoreOptions,
) -> RestoreResult:
    started = time.monotonic()
    ident = check_backup_id(options.backup_id)
    store = backup_store(settings.backup.location, settings.s3)
    manifest = Manifest.from_json(store.get_text(ident, MANIFEST_NAME), f"backup {ident}")
    tables = settings.tables
    for name, recorded, configured in (
        ("curated", manifest.curated.path, tables.curated),
        ("quarantine", manifest.quarantine.path, tables.quarantine),
    ):
        if recorded != configured:
            raise BackupError(
                f"backup {ident} is of the {name} table {recorded}, not of {configured} "
                "(conf/enrichment.toml, *_TABLE_PATH)"
            )
    run_id = str(uuid.uuid4())
    note = f"run_id={run_id} restore of backup {ident}"
    with writer_lock.hold(
        settings.postgres,
        [tables.curated, tables.quarantine],
        f"{RESTORE_JOB} of backup {ident}",
        options.wait_for_lock,
        on_wait=log.info,
    ) as lock:
        check_restorable(settings, manifest.curated, "curated")
        check_restorable(settings, manifest.quarantine, "quarantine")
        with tempfile.TemporaryDirectory(prefix="enrich-restore-") as work:
            dump_file = Path(work) / DUMP_NAME
            store.get_file(ident, DUMP_NAME, dump_file)
            if sha256_of(dump_file) != manifest.dump_sha256:
                raise BackupError(f"backup {ident}: {DUMP_NAME} does not match its manifest")
            log.info(
                "restoring PostgreSQL schemas %s from backup %s", ", ".join(manifest.schemas), ident
            )
            driver = f"{socket.gethostname()}:{os.getpid()}"
            writer_lock.check_held(lock, settings.postgres)
            pg_dump.restore(
                admin, dump_file, Path(work), _restore_record_sql(run_id, manifest, driver)
            )
        spark = spark_factory()
        writer_lock.check_held(lock, settings.postgres)
        curated_version = _restore_table(spark, settings, manifest.curated, note)
        quarantine_version = _restore_table(spark, settings, manifest.quarantine, note)
        curated_rows, summary_rows = _check_invariants(spark, settings, curated_version)
        with connect(settings.postgres) as conn, conn, conn.cursor() as cur:
            cur.execute(
                "UPDATE pipeline.enrichment_runs SET status = 'succeeded', ended_at = %s, "
                "curated_version_written = %s, quarantine_version_written = %s, error = NULL, "
                "rows_curated = %s WHERE run_id = %s",
                (datetime.now(UTC), curated_version, quarantine_version, curated_rows, run_id),
            )
    return RestoreResult(
        manifest,
        run_id,
        curated_version,
        quarantine_version,
        curated_rows,
        summary_rows,
        time.monotonic() - started,
    )
