"""`make maintain`: compact what was written since the last maintenance, then VACUUM keeping
every old file something still needs.

Under the writer lock, and only when the outputs are in step (the last run succeeded and
nothing was committed after it, so no run has a change feed to re-read):
1. the retention of each table: the longest of the time travel promised in conf/ and the age
   of the oldest backup's version of that table (jobs.core.maintenance); a --retain-hours
   shorter than that is refused, naming what needs the files;
2. OPTIMIZE the partitions of curated that commits since the last maintenance added files to
   (all of them the first time), and quarantine if anything was added to it;
3. VACUUM each with its retention (--dry-run: list what would go, change nothing);
4. a run record of the maintenance with the new versions: the next run plans from it, so an
   OPTIMIZE or VACUUM commit (which change no row) costs it nothing.
The raw table is never compacted or vacuumed: a --full rebuild reads every one of its versions.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pyspark.sql import SparkSession

from jobs.adapters import delta, object_store, postgres, run_store, writer_lock
from jobs.config.settings import Settings
from jobs.core.errors import ConfigError
from jobs.core.maintenance import (
    WHOLE_TABLE,
    Keep,
    Retention,
    chosen_retention,
    partition_filter,
    partitions_added,
    required_retention,
)
from jobs.core.models import MAINTAIN_JOB, SyncedRun
from jobs.runs import backup

log = logging.getLogger("enrich.maintain")


@dataclass(frozen=True)
class MaintainOptions:
    dry_run: bool = False
    retain_hours: float | None = None
    wait_for_lock: float = 0.0
    full_vacuum: bool = False  # list the whole table: also files no commit refers to


@dataclass(frozen=True)
class TableMaintenance:
    name: str
    path: str
    partitions: list[str] | None  # None: the whole table
    files_removed: int
    files_added: int
    retention: Retention
    deleted: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class MaintainResult:
    run_id: str
    dry_run: bool
    tables: list[TableMaintenance]
    seconds: float


def _keeps(settings: Settings, now: datetime) -> dict[str, list[Keep]]:
    hours = settings.maintenance.time_travel_hours
    promised = Keep(f"[maintenance] time_travel_hours = {hours:g}", now - timedelta(hours=hours))
    keeps = {"curated": [promised], "quarantine": [promised]}
    for manifest in backup.manifests(settings):
        for name, table in (("curated", manifest.curated), ("quarantine", manifest.quarantine)):
            if table.version is None or table.path != getattr(settings.tables, name):
                continue
            made = object_store.commit_time(settings.s3, table.path, table.version)
            if made is None:
                log.warning(
                    "backup %s: version %d of the %s table is no longer in its log; that "
                    "backup cannot be restored",
                    manifest.backup_id,
                    table.version,
                    name,
                )
                continue
            keeps[name].append(
                Keep(f"backup {manifest.backup_id} ({name} version {table.version})", made)
            )
    return keeps


def _written_since(
    settings: Settings, path: str, since: int | None, latest: int
) -> list[str] | None:
    """Partition values with files added after version ``since`` (the last maintenance); None
    for the whole table (never maintained, no partitions, or the log no longer has a commit)."""
    columns = object_store.partition_columns(settings.s3, path)
    column = columns[0] if len(columns) == 1 else None
    if since is None:
        return None
    commits = []
    for version in range(since + 1, latest + 1):
        text = object_store.commit_json(settings.s3, path, version)
        if text is None:
            return None
        commits.append(text)
    found = partitions_added(commits, column)
    if column is None:
        return None if found else []
    return sorted(found - {WHOLE_TABLE})


def _in_step(settings: Settings, synced: SyncedRun | None, unfinished: int) -> SyncedRun:
    tables = settings.tables
    if synced is None:
        raise ConfigError(f"no successful run of {tables.curated} yet: nothing to maintain")
    if unfinished:
        raise ConfigError(
            "a run after the last successful one did not finish; run make submit-batch first "
            "(it completes that run's work), then maintain"
        )
    for name, path, version in (
        ("curated", tables.curated, synced.curated_version),
        ("quarantine", tables.quarantine, synced.quarantine_version),
    ):
        latest = object_store.table_version(settings.s3, path)
        if latest != version:
            raise ConfigError(
                f"the {name} table is at version {latest}, the last successful run left "
                f"{version}; run make submit-batch first, then maintain"
            )
    return synced


def run(
    spark_factory: Callable[[], SparkSession], settings: Settings, options: MaintainOptions
) -> MaintainResult:
    started = time.monotonic()
    started_at = datetime.now(UTC)
    run_id = str(uuid.uuid4())
    tables = settings.tables
    note = f"run_id={run_id} maintenance"
    with writer_lock.hold(
        settings.postgres,
        [tables.curated, tables.quarantine],
        f"{MAINTAIN_JOB} run {run_id}",
        options.wait_for_lock,
        on_wait=log.info,
    ) as lock:
        with postgres.connect(settings.postgres) as conn:
            state = run_store.pipeline_state(conn, tables.curated)
            last = run_store.last_job_record(conn, tables.curated, MAINTAIN_JOB)
        synced = _in_step(settings, state.synced, len(state.unfinished))
        keeps = _keeps(settings, started_at)
        retentions = {
            name: chosen_retention(
                required_retention(started_at, keeps[name]), options.retain_hours
            )
            for name in ("curated", "quarantine")
        }
        spark = spark_factory()
        done = []
        for name, path, since in (
            ("curated", tables.curated, None if last is None else last.curated_version),
            ("quarantine", tables.quarantine, None if last is None else last.quarantine_version),
        ):
            latest = object_store.table_version(settings.s3, path)
            assert latest is not None  # in step with a successful run
            partitions = _written_since(settings, path, since, latest)
            compacted = {"files_removed": 0, "files_added": 0}
            if partitions == []:
                log.info("%s: nothing written since the last maintenance", path)
            elif options.dry_run:
                log.info("%s: would compact %s", path, _what(partitions))
            else:
                log.info("%s: compacting %s", path, _what(partitions))
                writer_lock.check_held(lock, settings.postgres)
                column = object_store.partition_columns(settings.s3, path)
                where = None if partitions is None else partition_filter(column[0], partitions)
                compacted = delta.optimize(spark, path, where, note)
            retention = retentions[name]
            log.info(
                "%s: VACUUM keeping %d hours (%s)%s",
                path,
                retention.hours,
                retention.reason,
                ", dry run" if options.dry_run else "",
            )
            if not options.dry_run:
                writer_lock.check_held(lock, settings.postgres)
            deleted = delta.vacuum(
                spark, path, retention.hours, options.dry_run, options.full_vacuum
            )
            done.append(
                TableMaintenance(
                    name,
                    path,
                    partitions,
                    compacted["files_removed"],
                    compacted["files_added"],
                    retention,
                    deleted,
                )
            )
        if not options.dry_run:
            with postgres.connect(settings.postgres) as conn:
                run_store.record_after(
                    conn,
                    run_id,
                    MAINTAIN_JOB,
                    started_at,
                    synced.run_id,
                    object_store.table_version(settings.s3, tables.curated),
                    object_store.table_version(settings.s3, tables.quarantine),
                    {
                        t.name: {
                            "partitions_compacted": "all"
                            if t.partitions is None
                            else len(t.partitions),
                            "files_compacted": t.files_removed,
                            "files_written": t.files_added,
                            "retention_hours": t.retention.hours,
                            "retention_because": t.retention.reason,
                            "files_vacuumed": len(t.deleted),
                        }
                        for t in done
                    },
                )
    return MaintainResult(run_id, options.dry_run, done, time.monotonic() - started)


def _what(partitions: list[str] | None) -> str:
    if partitions is None:
        return "the whole table"
    shown = ", ".join(partitions[:5]) + (" ..." if len(partitions) > 5 else "")
    return f"{len(partitions)} partition(s): {shown}"
