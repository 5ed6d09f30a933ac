"""The batch run's Spark work: classify the raw rows, then write curated, quarantine and the
summary rows' input, in the order that keeps every crash recoverable:
curated commit -> quarantine commit -> (the caller) summary + run record in one PostgreSQL
transaction. An incremental run that appends to curated makes its quarantine append at the
same time (either may commit first: both are redone idempotently by a recovery)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Generic, TypeVar

from pyspark import InheritableThread, StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.adapters import delta, jdbc, object_store
from jobs.adapters.object_store import AppendedFiles, TableSnapshot
from jobs.adapters.session import adaptive_execution
from jobs.config.settings import S3Settings, Settings
from jobs.core.contracts import CHANGE_FEED, check_curated_table
from jobs.core.currencies import ISO_4217_CODES
from jobs.core.errors import ServiceUnavailableError
from jobs.core.models import (
    FULL,
    INCREMENTAL,
    RANGE,
    LookupSpec,
    RunCounts,
    RunStart,
    SummaryRow,
    SyncedRun,
)
from jobs.core.planning import Plan, curated_properties_to_set
from jobs.core.schemas import CDF_COLUMNS, RAW_COLUMNS, SOURCE_VERSION
from jobs.core.summary import add_changes
from jobs.core.transforms import (
    COUNTS_ROW,
    CURATED_ID_HIGH,
    CURATED_ID_LOW,
    UNMATCHED_VALUE,
    Clock,
    EarlierClock,
    add_lineage,
    add_validity,
    appended_rows,
    as_inserts,
    curated_rows,
    daily_category_summary,
    event_date_between,
    flag_superseded_duplicates,
    join_lookup,
    key_in,
    raw_changes_as_rows,
    rejected_rows,
    run_counts,
    summary_changes,
    superseded_rows,
    valid_raw_text,
)
from jobs.runs import failpoints

log = logging.getLogger("enrich.batch")

# A Spark local property on every job a run starts, naming the run's phase: the event log and
# the UI carry it (Delta's own jobs too), and `make bench` adds up its jobs by phase.
PHASE_PROPERTY = "enrich.phase"


@dataclass(frozen=True)
class Written:
    """What a run committed to Delta, and the summary rows that go with it."""

    counts: RunCounts
    top_unmatched: list[tuple[str, int]]
    curated_version: int
    quarantine_version: int | None
    summary: list[SummaryRow]
    dates: list[date] | None  # the event dates whose summary rows are replaced; None: all


@dataclass(frozen=True)
class QuarantineSync:
    version: int | None
    replaced: int
    summary_changes: list[SummaryRow]  # what the curated changes since the synced run add up to

    @property
    def dates(self) -> list[date]:
        """The event dates the curated changes since the synced run touched."""
        return sorted({row.event_date for row in self.summary_changes})


def classify_rows(
    raw: DataFrame, lookups: Sequence[DataFrame], settings: Settings, as_of: datetime | Clock
) -> DataFrame:
    """Every raw row with its validity, duplicate flag and lookup columns; the reasons of the
    rows it quarantines come later (``quarantine_rows``), in the quarantine's own query. The run's
    lineage (``add_lineage``) is added by the caller after its cache: the same two values on
    every row, they cost the cache a copy per row (docs/performance.md)."""
    classified = raw.transform(
        add_validity(as_of, settings.max_future_minutes, ISO_4217_CODES)
    ).transform(flag_superseded_duplicates)
    for spec, lookup in zip(settings.lookups, lookups, strict=True):
        classified = classified.transform(join_lookup(lookup, spec))
    return classified


def quarantine_rows(
    classified: DataFrame, settings: Settings, as_of: datetime | Clock
) -> DataFrame:
    """The quarantine table's rows of ``classify_rows``' result, with their reasons (checked
    against the same clock, ``as_of``, as the classification)."""
    return classified.transform(rejected_rows(as_of, settings.max_future_minutes, ISO_4217_CODES))


def raw_rows(
    spark: SparkSession, path: str, first: int, last: int, appended: AppendedFiles | None = None
) -> DataFrame:
    """The raw records committed in versions ``first``..``last``, as the classification reads
    them (with the commit version each came in). With ``appended`` (the files those commits
    added, when they only appended: ``object_store.appended_files``), those files read as
    Parquet, each row given its file's commit: the change feed's rows and versions, read 2-3
    times as fast, and without Delta loading the table's log first (Delta serves the feed as
    rows, not column batches; docs/performance.md)."""
    if appended is not None:
        rows = (
            delta.read_data_files(spark, appended.uris, appended.schema)
            .transform(appended_rows(appended.versions))
            .select(*RAW_COLUMNS, SOURCE_VERSION)
        )
    else:
        changes = delta.read_changes(spark, path, first, last)
        rows = changes.select(*RAW_COLUMNS, *CDF_COLUMNS).transform(raw_changes_as_rows)
    return rows.transform(valid_raw_text)


# An incremental run of at most this many raw rows reads only the lookup rows of the keys its
# rows join on (a pushed-down IN list), not the whole tables: for 1,000 rows, a few hundred
# merchants' history instead of every merchant's (docs/performance.md). The keys are read
# from the run's raw files in the driver.
FEW_ROWS = 10_000


def join_keys(
    s3: S3Settings, appended: AppendedFiles, specs: Sequence[LookupSpec]
) -> dict[str, list[object]]:
    """The distinct values each lookup that joins on a raw column is joined on, by lookup
    name, read from the appended files in this process (no Spark job); {} if the store did not
    serve them, and the lookups are read whole."""
    joined = [spec for spec in specs if spec.join_on in appended.schema.fieldNames()]
    if not joined:
        return {}
    try:
        values = object_store.column_values(
            s3, appended.uris, sorted({spec.join_on for spec in joined})
        )
    except ServiceUnavailableError as error:
        log.warning("reading the lookups whole: %s", error)
        return {}
    return {spec.name: values[spec.join_on] for spec in joined}


def read_lookups(
    spark: SparkSession,
    settings: Settings,
    persist: bool,
    keys: Mapping[str, Sequence[object]] | None = None,
) -> list[DataFrame]:
    """Every configured lookup over JDBC; ``persist`` for lookups kept across runs (the caller
    unpersists them). One run needs no cache of its own: its classified rows are cached, so
    each lookup is read once, into its broadcast, and a cache would cost a Spark job each.
    ``keys``: by lookup name, the only key values to read (PostgreSQL filters them)."""
    fetchsize = settings.jdbc_fetchsize
    keys = keys or {}
    lookups = []
    for spec in settings.lookups:
        wanted = keys.get(spec.name)
        log.info(
            "reading lookup %s over JDBC (fetchsize %d%s)",
            spec.source_table,
            fetchsize,
            "" if wanted is None else f"; the {len(wanted):,} keys this run joins on",
        )
        lookup = jdbc.read_lookup(spark, settings.postgres, spec, fetchsize)
        if wanted is not None:
            lookup = lookup.filter(key_in(spec.key, wanted))
        lookups.append(lookup.persist() if persist else lookup)
    return lookups


def output_columns(settings: Settings) -> list[str]:
    """The columns the lookups add to a curated row, in the configured order."""
    return [output for spec in settings.lookups for output in spec.columns.values()]


def count_rows(
    classified: DataFrame, settings: Settings, id_range: bool = True
) -> tuple[RunCounts, list[tuple[str, int]], tuple[str, str] | None]:
    """The run's counts, its most frequent unmatched values of the first lookup, and the
    lowest and highest transaction id among its curated rows (None: it curates none, or
    ``id_range`` is false)."""
    counted = classified.transform(run_counts(settings.lookups[0], id_range=id_range))
    rows = [row.asDict() for row in counted.collect()]
    if not rows:
        return RunCounts(0, 0, 0, 0, 0), [], None
    values = rows[0]
    assert values.pop(COUNTS_ROW)  # it sorts first
    values.pop(UNMATCHED_VALUE)
    low, high = values.pop(CURATED_ID_LOW), values.pop(CURATED_ID_HIGH)
    top = [(str(row[UNMATCHED_VALUE]), int(row["rows_unmatched"])) for row in rows[1:]]
    return RunCounts(**values), top, None if low is None else (str(low), str(high))


def run_clock(start: RunStart) -> Clock:
    """The clock a run judges ``event_ts_in_future`` by: its own start, and for the raw versions
    an unfinished run it recovers read, that run's (docs/guarantees.md, never in both outputs)."""
    earlier = tuple(
        EarlierClock(run.raw_version_from, run.raw_version_to, run.started_at)
        for run in start.recovered
        if run.raw_version_from is not None and run.raw_version_to is not None
    )
    return Clock(start.started_at, earlier)


def _raw_versions(plan: Plan) -> tuple[int, int]:
    """The raw table's commits a run with new rows reads (a date range rebuilds from the first)."""
    first = plan.raw_version_from if plan.mode != RANGE else 0
    assert first is not None
    return first, plan.raw_version_to


def planned_raw_files(
    s3: S3Settings, raw_path: str, plan: Plan, raw: TableSnapshot | None
) -> AppendedFiles | None:
    """The files of the raw commits ``plan`` reads, with their rows, when those commits only
    appended (``object_store.appended_files``; ``raw``: the table as the plan saw it); None when
    the run reads none or they did more than append (the run then reads the change feed).
    Known before Spark starts, so the run's size can choose how the driver JVM starts."""
    first, last = _raw_versions(plan)
    if first > last:
        return None
    return object_store.appended_files(s3, raw_path, first, last, raw)


T = TypeVar("T")


class _Beside(Generic[T]):
    """``work`` run in a thread of its own that inherits the caller's Spark job properties
    (job group, so cancelling the run's jobs cancels its jobs too); ``result`` waits for it and
    returns its value or raises its error."""

    def __init__(self, work: Callable[[], T], name: str) -> None:
        self._value: T | None = None
        self._error: BaseException | None = None

        def run() -> None:
            try:
                self._value = work()
            except BaseException as error:
                self._error = error

        self._thread = InheritableThread(target=run, name=name, daemon=True)
        self._thread.start()

    def wait(self) -> None:
        self._thread.join()

    def result(self) -> T:
        self.wait()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


class BatchWrites:
    """One run's Spark reads and Delta writes. ``before_commit`` is called before every commit
    (the caller checks there that it still holds the writer lock); ``synced_summary`` gives the
    summary rows PostgreSQL holds for some dates (those of the synced run)."""

    def __init__(
        self,
        spark: SparkSession,
        settings: Settings,
        plan: Plan,
        synced: SyncedRun | None,
        start: RunStart,
        before_commit: Callable[[], None],
        synced_summary: Callable[[Sequence[date]], list[SummaryRow]],
        shared_lookups: Callable[[], list[DataFrame]] | None = None,
        raw_files: AppendedFiles | None = None,
    ) -> None:
        self.spark = spark
        self.settings = settings
        self.tables = settings.tables
        self.plan = plan
        self.synced = synced
        self.start = start
        self.before_commit = before_commit
        self.synced_summary = synced_summary
        self.shared_lookups = shared_lookups
        self.raw_files = raw_files  # ``planned_raw_files``: None reads raw's change feed
        self.note = f"run_id={start.run_id} mode={plan.mode}"
        # The quarantine append made beside curated's append, if any (_write_curated).
        self._quarantine_beside: _Beside[int | None] | None = None

    def execute(self, curated: TableSnapshot | None) -> Written:
        """``curated``: the curated table as the plan saw it (None: there is none yet).

        A run that rewrites (full, date range) runs without adaptive execution: its shuffles'
        partitions are set and its lookups broadcast by hint, and with AQE each of its query
        stages, Delta's snapshot builds among them, was a Spark job (19 against 10 for the same
        work and time; docs/performance.md). An incremental run keeps it: its MERGE's join
        sides are sized at run time."""
        with adaptive_execution(self.spark, enabled=self.plan.mode == INCREMENTAL):
            return self._execute(curated)

    def _execute(self, curated: TableSnapshot | None) -> Written:
        plan = self.plan
        counts, top = RunCounts(0, 0, 0, 0, 0), list[tuple[str, int]]()
        id_range: tuple[str, str] | None = None
        curated_version = None if curated is None else curated.version
        quarantine_version = None
        has_new_rows = plan.raw_version_from is None or plan.raw_version_from <= plan.raw_version_to
        lookups: list[DataFrame] = []
        cached: DataFrame | None = None
        classified: DataFrame | None = None
        dates: list[date] | None = None
        changes: list[SummaryRow] | None = None  # of the summary, for an incremental run
        own_append: DataFrame | None = None  # curated's only commit since synced: this append
        rows: DataFrame | None = None  # the rows to curate
        try:
            if has_new_rows:
                self._phase("classify")
                raw, raw_files = self._raw()
                if self._few_rows(raw_files) and curated is not None:
                    # The first load of the output tables' logs, with the code it warms up,
                    # then uses the core a small run's classification leaves idle; in a larger
                    # run it slowed the classification more than it saved (docs/performance.md).
                    delta.load_logs(self.spark, [self.tables.curated, self.tables.quarantine])
                shared = self.shared_lookups
                lookups = shared() if shared else self._lookups(raw_files)
                cached = self._classified(raw, lookups).persist(StorageLevel.MEMORY_AND_DISK)
                classified = cached.transform(add_lineage(self.start.run_id, self.start.started_at))
                if plan.mode == RANGE:
                    assert plan.date_range is not None
                    classified = classified.transform(event_date_between(*plan.date_range))
                log.info("validating, de-duplicating and joining %d lookups", len(lookups))
                counts, top, id_range = self._counts(classified)
                failpoints.reached("batch-classified")
                rows = classified.transform(curated_rows(output_columns(self.settings)))
                self._phase("curated")
                self._bring_curated_properties(curated)
                if plan.mode == FULL:
                    curated_version, quarantine_version = self._write_full(classified, rows)
                else:
                    assert curated is not None  # the plan is a full rebuild where it is missing
                    check_curated_table(curated.path, curated.schema, rows.schema)
                    curated_version, appended = self._write_curated(
                        rows, id_range, counts.rows_curated, curated.version, classified
                    )
                    if appended and self._only_commit_since_synced(curated_version):
                        own_append = rows
            if plan.mode != FULL:
                assert curated_version is not None
                self._phase("quarantine")
                synced = self._sync_quarantine_and_dates(classified, curated_version, own_append)
                quarantine_version, dates = synced.version, synced.dates
                if plan.mode == INCREMENTAL:
                    changes = synced.summary_changes
                counts = dataclasses.replace(counts, rows_replaced=synced.replaced)
            assert curated_version is not None
            self._phase("summary")
            # A full rebuild's curated table holds exactly its rows: their GROUP BY is the
            # table's, taken from the cache instead of a read of the table written.
            rebuilt = rows if plan.mode == FULL else None
            summary = self._summary(curated_version, dates, changes, rebuilt)
        finally:
            self._phase(None)
            if cached is not None:
                cached.unpersist()
        return Written(counts, top, curated_version, quarantine_version, summary, dates)

    def _few_rows(self, raw_files: AppendedFiles | None) -> bool:
        """True for an incremental run of at most FEW_ROWS raw rows, read as appended files."""
        return (
            self.plan.mode == INCREMENTAL
            and raw_files is not None
            and raw_files.rows is not None
            and raw_files.rows <= FEW_ROWS
        )

    def _phase(self, name: str | None) -> None:
        self.spark.sparkContext.setLocalProperty(PHASE_PROPERTY, name)  # type: ignore[arg-type]

    def _lookups(self, appended: AppendedFiles | None) -> list[DataFrame]:
        """The lookups; for an incremental run of at most FEW_ROWS rows read as appended
        files, only their rows for the keys the run's rows join on."""
        keys = None
        if appended is not None and self._few_rows(appended):
            keys = join_keys(self.settings.s3, appended, self.settings.lookups)
        return read_lookups(self.spark, self.settings, persist=False, keys=keys)

    def _raw(self) -> tuple[DataFrame, AppendedFiles | None]:
        """The raw rows this run reads, and the files they are in when read as appended."""
        plan, raw_path, appended = self.plan, self.tables.raw, self.raw_files
        first, last = _raw_versions(plan)
        log.info(
            "reading raw table %s, versions %d..%d%s",
            raw_path,
            first,
            last,
            f" ({len(appended.versions)} files as appended)" if appended else "",
        )
        return raw_rows(self.spark, raw_path, first, last, appended), appended

    def _classified(self, raw: DataFrame, lookups: list[DataFrame]) -> DataFrame:
        return classify_rows(raw, lookups, self.settings, run_clock(self.start)).transform(
            failpoints.fail_first_task_attempts
        )

    def _quarantine_rows(self, classified: DataFrame) -> DataFrame:
        return quarantine_rows(classified, self.settings, run_clock(self.start))

    def _counts(
        self, classified: DataFrame
    ) -> tuple[RunCounts, list[tuple[str, int]], tuple[str, str] | None]:
        # Only an incremental run's MERGE or append uses the id range; the others rewrite.
        counts, top, id_range = count_rows(
            classified, self.settings, id_range=self.plan.mode == INCREMENTAL
        )
        log.info(
            "rows read %d: curated %d (unmatched %d), quarantined %d, duplicates %d",
            counts.rows_read,
            counts.rows_curated,
            counts.rows_unmatched,
            counts.rows_quarantined,
            counts.rows_duplicate,
        )
        return counts, top, id_range

    def _curated_properties(self) -> dict[str, str]:
        if self.tables.curated_deletion_vectors:
            return delta.CURATED_TABLE_PROPERTIES
        return {**delta.OUTPUT_TABLE_PROPERTIES, **delta.CURATED_STATS_PROPERTIES}

    def _bring_curated_properties(self, curated: TableSnapshot | None) -> None:
        """A curated table made by an earlier version gets the properties a new one is made
        with (deletion vectors, statistics of transaction_id only), in a metadata-only commit
        before this run's first write (it holds no rows, so the change feed and a recovery
        read past it)."""
        if curated is None:
            return
        wanted = {
            name: value
            for name, value in self._curated_properties().items()
            if name != CHANGE_FEED  # checked before the run: a table without it is refused
        }
        missing = curated_properties_to_set(curated.properties, wanted)
        if not missing:
            return
        self.before_commit()
        log.info(
            "setting properties of curated table %s: %s",
            curated.path,
            ", ".join(f"{name} = {value}" for name, value in sorted(missing.items())),
        )
        delta.set_properties(self.spark, curated.path, missing, self.note)

    def _by_date(self, rows: DataFrame) -> DataFrame:
        """Rows shuffled by date for a partitioned rewrite: each date's rows in one task, so one
        file per date, not one per task. Given the number of partitions, AQE does not coalesce
        them: coalesced, 15 dates came to 3 tasks on 2 cores (docs/performance.md)."""
        partitions = int(self.spark.conf.get("spark.sql.shuffle.partitions") or 8)
        return rows.repartition(partitions, "event_date")

    def _write_full(self, classified: DataFrame, curated: DataFrame) -> tuple[int, int]:
        """Both tables replaced; their new versions (curated, quarantine)."""
        self.before_commit()
        failpoints.reached("before-curated-commit")
        log.info("replacing curated table %s", self.tables.curated)
        version = delta.overwrite(
            self._by_date(curated),
            self.tables.curated,
            self.note,
            ["event_date"],
            new_table_properties=self._curated_properties(),
        )
        failpoints.reached("curated-committed")
        self._phase("quarantine")
        self.before_commit()
        log.info("replacing quarantine table %s", self.tables.quarantine)
        quarantine_version = delta.overwrite(
            self._quarantine_rows(classified), self.tables.quarantine, self.note
        )
        failpoints.reached("quarantine-committed")
        return version, quarantine_version

    def _write_curated(
        self,
        curated: DataFrame,
        id_range: tuple[str, str] | None,
        curated_rows: int,
        seen_version: int,
        classified: DataFrame,
    ) -> tuple[int, bool]:
        """The version written, and whether it is a plain append of ``curated``.
        ``id_range``: the lowest and highest transaction id of ``curated`` (None: no rows);
        ``curated_rows``: its row count; ``seen_version``: the curated table's version the plan
        saw (its files are this run's to compare ids with: the writer lock keeps other writers
        out, so what is found in them holds until this run commits); ``classified``: the run's
        rows, whose rejects an incremental append quarantines beside it.

        An incremental run that appends to curated appends its quarantine rows at the same time,
        in a thread of its own: an append replaces no curated row, so those rows (the run's
        rejects) do not depend on it, and the two tables' Spark jobs and commits overlap
        (docs/performance.md). Either commit may land first; a run killed between them is
        recovered like any other (the recovery's insert-only quarantine MERGE adds the rows
        missing, whichever they are)."""
        commit, appends = self._curated_commit(curated, id_range, curated_rows, seen_version)
        if appends and self.plan.mode == INCREMENTAL:
            quarantine = self._quarantine_rows(classified)

            def insert() -> int | None:
                self._phase("quarantine")
                return self._insert_quarantine(quarantine)

            self._quarantine_beside = _Beside(insert, "quarantine-append")
        try:
            self.before_commit()
            failpoints.reached("before-curated-commit")
            version = commit()
        finally:
            if self._quarantine_beside is not None:
                self._quarantine_beside.wait()
        failpoints.reached("curated-committed")
        return version, appends

    def _curated_commit(
        self,
        curated: DataFrame,
        id_range: tuple[str, str] | None,
        curated_rows: int,
        seen_version: int,
    ) -> tuple[Callable[[], int], bool]:
        """``_write_curated``'s commit, the cheapest of those with the same result (a call that
        makes it and returns the version written), and whether it is a plain append."""
        plan, path, key = self.plan, self.tables.curated, "transaction_id"
        if plan.mode == RANGE:
            assert plan.date_range is not None
            first, last = plan.date_range

            def replace_dates() -> int:
                log.info("replacing event dates %s..%s of curated table %s", first, last, path)
                return delta.overwrite(
                    self._by_date(curated),
                    path,
                    self.note,
                    ["event_date"],
                    replace_where=f"event_date >= '{first}' AND event_date <= '{last}'",
                )

            return replace_dates, False
        if id_range is None:
            log.info("merging into curated table %s by %s", path, key)
            return lambda: delta.upsert(curated, path, key, self.note), False
        files = object_store.files_for_keys(self.settings.s3, path, seen_version, key, id_range)
        if not files.uris:
            # No file's ids overlap the new rows' (new ids sort after the old ones): the MERGE
            # would insert every row, and an append does that in one Spark job instead of ten.
            # A replay of this run finds its own rows in the table and replaces them.
            log.info(
                "appending to curated table %s: no file holds a %s in %s..%s", path, key, *id_range
            )
            existing = 0
        else:
            # Which of the ids the table holds decides the cheapest commit with the same result.
            existing = self._ids_held(curated, files, id_range, curated_rows, seen_version)
            if existing == 0:
                log.info("appending to curated table %s: it holds no %s of the run", path, key)
        if existing == 0:
            by_date = curated.repartition("event_date")
            return lambda: delta.append(by_date, path, self.note), True
        if existing == curated_rows:
            log.info(
                "replacing %d rows of curated table %s: the table holds every %s of the run",
                existing,
                path,
                key,
            )
            return lambda: delta.replace_matching(
                curated, path, key, self.note, id_range, curated_rows
            ), False
        log.info(
            "merging into curated table %s by %s: %d of %d rows replace rows it holds",
            path,
            key,
            existing,
            curated_rows,
        )
        return lambda: delta.upsert(curated, path, key, self.note, id_range, curated_rows), False

    def _ids_held(
        self,
        curated: DataFrame,
        files: object_store.KeyFiles,
        id_range: tuple[str, str],
        curated_rows: int,
        seen_version: int,
    ) -> int:
        """How many of ``curated``'s transaction ids the curated table's ``seen_version``
        holds; ``files``: its files that may hold them. Files whose rows are all live are read
        by Spark as Parquet; where deletion vectors mark rows (after a MERGE of corrections),
        a run of at most FEW_ROWS rows asks delta-rs, which applies them, for its ids, and a
        larger one reads the table through Delta (its snapshot costs about ten Spark jobs)."""
        path, key = self.tables.curated, "transaction_id"
        if not files.plain and curated_rows <= FEW_ROWS:
            log.info(
                "deletion vectors mark rows of curated's files in the run's %s range: "
                "counting its %d ids there with delta-rs",
                key,
                curated_rows,
            )
            ids = [str(row[0]) for row in curated.select(key).collect()]
            return object_store.keys_held(self.settings.s3, path, seen_version, key, ids)
        plain_files = files.uris if files.plain else None
        return delta.keys_in_table(
            curated, path, key, seen_version, id_range, curated_rows, plain_files
        )

    def _only_commit_since_synced(self, curated_version: int) -> bool:
        """True when ``curated_version``, this run's commit, is the first after the synced
        run's: then curated's change feed since the synced run is that commit alone."""
        synced = self.synced
        return (
            synced is not None
            and synced.curated_version is not None
            and curated_version == synced.curated_version + 1
        )

    def _sync_quarantine_and_dates(
        self, classified: DataFrame | None, curated_version: int, own_append: DataFrame | None
    ) -> QuarantineSync:
        """Quarantine the batch's rejects and every curated row replaced since the summary was
        last in step, and list the event dates whose summary rows must be rewritten.

        Working from the curated change feed since the last synced version, not from this
        run's own commit, is what lets a run finish the work of one that died after its
        curated commit: that commit's replaced rows and dates are in the feed too. When the
        feed is this run's append alone (``own_append``: the rows appended), it holds those
        rows as inserts and replaces nothing, so it is not read back."""
        assert self.synced is not None and self.synced.curated_version is not None
        since = self.synced.curated_version
        beside = self._quarantine_beside  # the rejects, appended beside curated's append
        quarantine = None
        if classified is not None and beside is None:
            quarantine = self._quarantine_rows(classified)
        if curated_version <= since:
            return QuarantineSync(self._insert_quarantine(quarantine), 0, [])
        if own_append is not None:
            version = beside.result() if beside else self._insert_quarantine(quarantine)
            self._phase("summary")
            return QuarantineSync(version, 0, self._summary_changes(as_inserts(own_append)))
        path = self.tables.curated  # its change feed was checked before the run started
        changes = delta.read_changes(self.spark, path, since + 1, curated_version).persist()
        try:
            superseded = changes.transform(
                superseded_rows(self.start.run_id, self.start.started_at)
            ).persist()
            replaced = superseded.count()
            if replaced:
                quarantine = (
                    superseded if quarantine is None else quarantine.unionByName(superseded)
                )
            version = beside.result() if beside else None
            if quarantine is not None or beside is None:
                version = self._insert_quarantine(quarantine)
            superseded.unpersist()
            self._phase("summary")
            added = self._summary_changes(changes)
        finally:
            changes.unpersist()
        return QuarantineSync(version, replaced, added)

    @staticmethod
    def _summary_changes(changes: DataFrame) -> list[SummaryRow]:
        return [SummaryRow(**row.asDict()) for row in changes.transform(summary_changes).collect()]

    def _insert_quarantine(self, quarantine: DataFrame | None) -> int | None:
        path = self.tables.quarantine
        latest = object_store.table_version(self.settings.s3, path)
        if quarantine is None:
            version = latest
        else:
            self.before_commit()
            if self._quarantine_untouched_since_synced(latest):
                log.info("adding rejected and replaced rows to quarantine table %s", path)
                version = delta.append(quarantine, path, self.note)
            else:
                log.info("adding rejected and replaced rows missing from quarantine table %s", path)
                version = delta.insert_missing(quarantine, path, "_record_id", self.note)
        failpoints.reached("quarantine-committed")
        return version

    def _quarantine_untouched_since_synced(self, latest: int | None) -> bool:
        """True when a plain append cannot duplicate a row: an incremental run's rows are new raw
        records and curated rows replaced since the last synced run, none of which can be in
        quarantine unless a run that died since then put it there, which would have committed
        a quarantine version after the synced one. Otherwise (a date range re-read, a recovery)
        the insert-only MERGE skips the rows already there."""
        synced = self.synced
        return (
            self.plan.mode == INCREMENTAL
            and latest is not None
            and synced is not None
            and synced.quarantine_version == latest
        )

    def _summary(
        self,
        curated_version: int,
        dates: list[date] | None,
        changes: list[SummaryRow] | None,
        rebuilt: DataFrame | None,
    ) -> list[SummaryRow]:
        """The summary rows of ``dates`` (None: every date) at ``curated_version``: for an
        incremental run the synced rows of those dates plus ``changes``, the curated change
        feed's since the synced run (no read of the curated table); for a full rebuild the
        GROUP BY of ``rebuilt``, the rows it replaced the table with; otherwise the GROUP BY
        of the curated table at that version."""
        log.info(
            "computing the daily summary for %s",
            "every date" if dates is None else f"{len(dates)} changed date(s)",
        )
        if changes is not None:
            assert dates is not None
            summary = add_changes(self.synced_summary(dates), changes)
        else:
            if rebuilt is not None:
                committed = rebuilt
            else:
                committed = delta.read_version(self.spark, self.tables.curated, curated_version)
            if dates is not None:
                committed = committed.filter(F.col("event_date").isin(dates))
            summary = [
                SummaryRow(**row.asDict())
                for row in committed.transform(daily_category_summary).collect()
            ]
        failpoints.reached("summary-computed")
        return summary
