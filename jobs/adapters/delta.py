"""Delta Lake reads and writes on the object store, through Spark.

Every write here is one atomic Delta commit and returns the version it committed. Callers hold
the writer lock (adapters.writer_lock): Delta on S3 is ACID only with a single writing driver
per table.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

from delta.tables import DeltaTable
from py4j.java_gateway import JavaObject
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from jobs.core.contracts import APPEND_ONLY, CHANGE_FEED, DELETION_VECTORS, STATS_COLUMNS

log = logging.getLogger("enrich.delta")

# The raw table only ever grows: appends are the only writes allowed, every commit's rows can
# be read back with the change feed (incremental runs), and the commit log is kept long enough
# for a full rebuild to read every commit's rows with their version.
RAW_TABLE_PROPERTIES = {
    APPEND_ONLY: "true",
    CHANGE_FEED: "true",
    "delta.logRetentionDuration": "interval 3650 days",
}
# Curated and quarantine keep a change feed: the summary is brought up to date from it.
OUTPUT_TABLE_PROPERTIES = {CHANGE_FEED: "true"}
# Delta keeps min/max statistics of a file's first 32 columns. Curated's useful ones are
# transaction_id's: its MERGE and the append choice skip files by them, and ids sort by batch.
# Every other column is spread over every file of its date, so its bounds skip nothing, and
# gathering them cost a fifth of the full run's curated write (docs/performance.md).
CURATED_STATS_PROPERTIES = {STATS_COLUMNS: "transaction_id"}
# Curated's MERGE replaces a few rows of many files (corrections over every date): with
# deletion vectors it writes those rows and a small vector per file instead of every file again.
CURATED_TABLE_PROPERTIES = {
    **OUTPUT_TABLE_PROPERTIES,
    **CURATED_STATS_PROPERTIES,
    DELETION_VECTORS: "true",
}


def table_exists(spark: SparkSession, path: str) -> bool:
    return bool(DeltaTable.isDeltaTable(spark, path))


def read_version(spark: SparkSession, path: str, version: int) -> DataFrame:
    """The table as of ``version``: later commits by other writers do not change what a run sees."""
    return spark.read.format("delta").option("versionAsOf", version).load(path)


def read_data_files(spark: SparkSession, uris: Sequence[str], schema: StructType) -> DataFrame:
    """Data files of a table read as plain Parquet with the table's columns, without building
    its snapshot (Delta's file listing costs four Spark jobs): only for files whose rows are all
    live and whose columns are stored by name (``object_store.appended_files`` checks both)."""
    return spark.read.schema(schema).parquet(*uris)


def read_changes(spark: SparkSession, path: str, first: int, last: int) -> DataFrame:
    """Rows committed in versions ``first``..``last`` (inclusive), with ``_change_type`` and
    ``_commit_version``, from the table's change data feed (contracts.check_change_feed)."""
    return (
        spark.read.format("delta")
        .option("readChangeFeed", "true")
        .option("startingVersion", first)
        .option("endingVersion", last)
        .load(path)
    )


@contextmanager
def _commit_note(spark: SparkSession, note: str) -> Iterator[None]:
    """Tag commits made by SQL-style operations (MERGE) with ``note`` in the table history."""
    key = "spark.databricks.delta.commitInfo.userMetadata"
    spark.conf.set(key, note)
    try:
        yield
    finally:
        spark.conf.unset(key)


def _version_written(spark: SparkSession, path: str) -> int:
    """The version the caller's commit just wrote: the table's snapshot as its DeltaLog holds it
    after that commit, with no Spark job and no read of the store (``history(1)`` costs a Spark
    job and about 0.3 s). Right only while no other driver commits, which the writer lock
    ensures."""
    return int(_delta_log(spark, path).unsafeVolatileSnapshot().version())


def _delta_log(spark: SparkSession, path: str) -> JavaObject:
    """The session's DeltaLog of the table at ``path`` (Delta caches one per table)."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    return jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, path)


def _ahead(
    name: str, what: str, steps: Sequence[tuple[str, Callable[[], object]]]
) -> threading.Thread:
    """Run ``steps`` (a table's path, a read of its log) in a daemon thread named ``name``, each
    on its own: a step that fails is logged at debug (``what``: what it loads) and left to the
    commit that needs that table to report."""

    def run() -> None:
        for path, step in steps:
            try:
                step()
            except Exception as error:
                log.debug("loading the %s of %s ahead: %s", what, path, error)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread


def load_logs(spark: SparkSession, paths: Sequence[str]) -> threading.Thread:
    """Load the Delta logs of ``paths`` (their latest snapshots) into the session's cache, in a
    thread of its own: a run that will commit to them pays the first load, with the code it
    warms up, beside its other work instead of inside its first commit. Read-only; a table
    that cannot be loaded is left to the commit that needs it to report."""

    def snapshot(path: str) -> Callable[[], object]:
        return lambda: _delta_log(spark, path).unsafeVolatileSnapshot().metadata()

    return _ahead("delta-log-load", "Delta log", [(path, snapshot(path)) for path in paths])


def load_transactions(spark: SparkSession, path: str) -> threading.Thread:
    """Compute, in a thread of its own, the state of the table at ``path`` as its log lists now,
    whose idempotent-write ids (``txn``) the session's next ``append`` with a txn looks up.
    Delta 4.4 reads them only from that state, a reconstruction of the whole log in three Spark
    jobs, even where the commit's checksum file lists them; a writer that computes it ahead,
    beside other work, takes it off its next commit (the stream, after each raw commit:
    docs/performance.md). Read-only; a failure is left to that commit to report. Measured on
    MinIO: a txn append 1.6-2.0 s and 4 Spark jobs, after this 0.4 s and 1."""

    def transactions() -> object:
        jvm = spark.sparkContext._jvm
        assert jvm is not None
        none = jvm.scala.Option.apply(None)
        # The snapshot of the log as listed, not the one the commit left: on S3A the next
        # transaction lists the log, finds another segment (the files' store timestamps) than
        # the commit's, and makes a new snapshot, whose state is computed again.
        return _delta_log(spark, path).update(False, none, none).setTransactions()

    return _ahead("delta-state-load", "Delta state", [(path, transactions)])


def append(
    df: DataFrame,
    path: str,
    commit_note: str,
    new_table_properties: Mapping[str, str] | None = None,
    txn: tuple[str, int] | None = None,
) -> int:
    """Append in one commit. ``new_table_properties``: the table's properties if this append
    may create it (whether it exists is then asked of the store); None when the caller knows
    the table exists. ``txn``: (application id, version): Delta skips the append if the log
    already holds a commit with that application id and a version at least this one."""
    writer = df.write.format("delta").mode("append").option("userMetadata", commit_note)
    if txn is not None:
        writer = writer.option("txnAppId", txn[0]).option("txnVersion", txn[1])
    if new_table_properties is not None and not table_exists(df.sparkSession, path):
        writer = writer.options(**new_table_properties)
    writer.save(path)
    return _version_written(df.sparkSession, path)


def overwrite(
    df: DataFrame,
    path: str,
    commit_note: str,
    partition_by: Sequence[str] = (),
    replace_where: str | None = None,
    new_table_properties: Mapping[str, str] = OUTPUT_TABLE_PROPERTIES,
) -> int:
    """Replace the table's contents (or only the rows matching ``replace_where``) in one atomic
    Delta commit; returns the version written. ``new_table_properties`` apply only if this
    creates the table (an existing table keeps its own: ``set_properties`` changes them)."""
    writer = (
        df.write.format("delta")
        .mode("overwrite")
        .option("userMetadata", commit_note)
        .options(**new_table_properties)
    )
    if replace_where is None:
        writer = writer.option("overwriteSchema", "true")
    else:
        writer = writer.option("replaceWhere", replace_where)
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    writer.save(path)
    return _version_written(df.sparkSession, path)


def set_properties(
    spark: SparkSession, path: str, properties: Mapping[str, str], commit_note: str
) -> int:
    """Set table properties in one metadata-only commit (a feature such as deletion vectors
    upgrades the table's protocol); returns the version written."""
    assignments = ", ".join(f"'{key}' = '{value}'" for key, value in sorted(properties.items()))
    with _commit_note(spark, commit_note):
        spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ({assignments})")
    return _version_written(spark, path)


# A MERGE source of at most this many rows is small enough to hint its join: broadcast to every
# target file when all its keys match, hashed (not sorted) against the target's rows otherwise.
# Without a hint Spark sorts the touched files' full rows (a source read over JDBC has no size
# estimate): 0.1% corrections of a 10M-row table, 32-35 s against 11-12 s broadcast, 25.5 s
# hashed (docs/performance.md).
SMALL_MERGE_SOURCE_ROWS = 100_000


def _hint_if_small(source_rows: int | None, hint: str) -> str | None:
    """``hint`` for a source of at most SMALL_MERGE_SOURCE_ROWS rows (None: not known)."""
    return hint if source_rows is not None and source_rows <= SMALL_MERGE_SOURCE_ROWS else None


def _merge(
    df: DataFrame,
    path: str,
    key: str,
    commit_note: str,
    replace_matches: bool,
    insert_new: bool = True,
    key_range: tuple[str, str] | None = None,
    join_hint: str | None = None,
) -> int:
    spark = df.sparkSession
    target_key = F.col(f"t.`{key}`")
    condition = target_key == F.col(f"s.`{key}`")
    if key_range is not None:
        # Delta's MERGE skips files only by the conditions on the target alone: with the
        # source's key range among them, a file whose key statistics lie outside it is not read.
        condition = condition & target_key.between(F.lit(key_range[0]), F.lit(key_range[1]))
    # Delta keeps the source's hints when it materialises it.
    source = df.hint(join_hint) if join_hint else df
    merge = DeltaTable.forPath(spark, path).alias("t").merge(source.alias("s"), condition)
    if replace_matches:
        merge = merge.whenMatchedUpdateAll()
    if insert_new:
        merge = merge.whenNotMatchedInsertAll()
    with _commit_note(spark, commit_note):
        merge.execute()
    return _version_written(spark, path)


def keys_in_table(
    df: DataFrame,
    path: str,
    key: str,
    version: int,
    key_range: tuple[str, str],
    source_rows: int,
    files: Sequence[str] | None = None,
) -> int:
    """How many of ``df``'s keys (one row per key) the table holds at ``version``: one scan of
    the key column of the files whose key statistics overlap ``key_range`` (the lowest and
    highest key of ``df``). ``source_rows``: ``df``'s row count, to size the join. ``files``:
    those files, when every row of theirs is live and their columns are stored by name
    (``object_store.files_for_keys``): read as plain Parquet, without the table's snapshot,
    whose building and file filtering cost ten Spark jobs and 4-5 s on a 10M-row table;
    None: read through Delta."""
    keys = df.select(key)
    if _hint_if_small(source_rows, "broadcast"):
        keys = F.broadcast(keys)
    if files is None:
        table = read_version(df.sparkSession, path, version)
    else:
        table = read_data_files(df.sparkSession, files, StructType([df.schema[key]]))
    table_keys = table.select(key).where(
        F.col(key).between(F.lit(key_range[0]), F.lit(key_range[1]))
    )
    return table_keys.join(keys, key, "left_semi").count()


def upsert(
    df: DataFrame,
    path: str,
    key: str,
    commit_note: str,
    key_range: tuple[str, str] | None = None,
    source_rows: int | None = None,
) -> int:
    """MERGE ``df`` into the table on ``key``: matching rows are replaced, others inserted.

    ``df`` has at most one row per key. Replaying the same rows gives the same table, so a run
    that redoes the work of a crashed one cannot double anything. ``key_range``: the lowest and
    highest key of ``df`` (it must hold every key of ``df``); the files whose keys all lie
    outside it are then not scanned for matches, which is most of the table when new keys
    sort after the old ones (sequences, time-ordered ids). ``source_rows``: ``df``'s row
    count, when known (a small source is hash-joined)."""
    return _merge(
        df,
        path,
        key,
        commit_note,
        replace_matches=True,
        key_range=key_range,
        join_hint=_hint_if_small(source_rows, "shuffle_hash"),
    )


def replace_matching(
    df: DataFrame,
    path: str,
    key: str,
    commit_note: str,
    key_range: tuple[str, str],
    source_rows: int,
) -> int:
    """MERGE ``df`` into the table on ``key`` replacing matching rows only: for a ``df`` whose
    every key the table holds (``keys_in_table``), the same table as ``upsert`` gives, by an
    inner join, which a small ``df`` makes a broadcast one instead of a sort of every touched
    file's rows. A row of ``df`` whose key the table does not hold would be dropped."""
    return _merge(
        df,
        path,
        key,
        commit_note,
        replace_matches=True,
        insert_new=False,
        key_range=key_range,
        join_hint=_hint_if_small(source_rows, "broadcast"),
    )


def insert_missing(df: DataFrame, path: str, key: str, commit_note: str) -> int:
    """Insert the rows of ``df`` whose ``key`` is not in the table yet (insert-only MERGE)."""
    if not table_exists(df.sparkSession, path):
        return overwrite(df, path, commit_note)
    return _merge(df, path, key, commit_note, replace_matches=False)


def restore(spark: SparkSession, path: str, version: int, commit_note: str) -> int:
    """The table's contents as of ``version``, as a new commit (Delta's RESTORE); returns the
    version written. The files of ``version`` must still be there (not vacuumed)."""
    with _commit_note(spark, commit_note):
        DeltaTable.forPath(spark, path).restoreToVersion(version)
    return _version_written(spark, path)


def optimize(spark: SparkSession, path: str, where: str | None, commit_note: str) -> dict[str, int]:
    """Compact the small files of the table (of the partitions ``where`` selects): one commit
    that changes no row (no change-feed rows). Returns Delta's file counts."""
    builder = DeltaTable.forPath(spark, path).optimize()
    if where is not None:
        builder = builder.where(where)
    with _commit_note(spark, commit_note):
        row = builder.executeCompaction().first()
    metrics = row["metrics"] if row is not None else None
    if metrics is None:
        return {"files_removed": 0, "files_added": 0}
    return {
        "files_removed": int(metrics["numFilesRemoved"]),
        "files_added": int(metrics["numFilesAdded"]),
    }


_RETENTION_CHECK = "spark.databricks.delta.retentionDurationCheck.enabled"
# Delta 4.4 ignores VACUUM's RETAIN argument unless it is 0 (it then uses the table property
# delta.deletedFileRetentionDuration); off, RETAIN means what it says.
_RETAIN_IGNORED = "spark.databricks.delta.vacuum.retentionWindowIgnore.enabled"


def _vacuum_sql(path: str, retain_hours: int, lite: bool, dry_run: bool) -> str:
    return f"VACUUM delta.`{path}`{' LITE' if lite else ''} RETAIN {int(retain_hours)} HOURS" + (
        " DRY RUN" if dry_run else ""
    )


def vacuum(
    spark: SparkSession, path: str, retain_hours: int, dry_run: bool, full: bool
) -> list[str]:
    """The files VACUUM deletes with this retention (deleted unless ``dry_run``).

    LITE (the files the log says were removed) unless ``full``: on S3 it is seconds instead of a
    listing of every object of the table (measured: 3 s against 40-75 s on the demo's curated
    table). FULL also deletes files no commit refers to (left by a write that died); it is used
    as well when the log no longer reaches back far enough for LITE. Delta refuses a retention
    under 7 days by default; the caller computed what readers need, so that check is off for
    this call only."""
    spark.conf.set(_RETENTION_CHECK, "false")
    spark.conf.set(_RETAIN_IGNORED, "false")
    try:
        lite = not full
        try:
            doomed = [
                str(r[0]) for r in spark.sql(_vacuum_sql(path, retain_hours, lite, True)).collect()
            ]
        except Exception as error:
            if not lite or "LITE" not in str(error).upper():
                raise
            lite = False
            doomed = [
                str(r[0]) for r in spark.sql(_vacuum_sql(path, retain_hours, lite, True)).collect()
            ]
        if doomed and not dry_run:
            spark.sql(_vacuum_sql(path, retain_hours, lite, False)).collect()
    finally:
        spark.conf.unset(_RETENTION_CHECK)
        spark.conf.unset(_RETAIN_IGNORED)
    return doomed
