"""The streaming job: files landed under a prefix are ingested and enriched in micro-batches,
exactly once, by the same code as `ingest` and the batch job.

One Structured Streaming query lists the landing prefix (the binaryFile source, its content
never read: the query only hands out new file paths, at most ``max_files_per_trigger`` per
micro-batch, and its checkpoint remembers which files each batch had). For each micro-batch:

1. if PostgreSQL already holds the micro-batch's record (query id, batch id), it is a replay
   after a crash that came after its commit: nothing is done;
2. its files are parsed as `ingest` parses them (a CSV file with a wrong header, or a file
   that is neither CSV nor JSON lines, is refused whole and reported; bad rows are kept) and
   appended to the raw table as one idempotent Delta write keyed by (query id, batch id):
   a replay does not append again;
3. an incremental enrichment run (jobs/runs/batch.py, under the lock the stream holds) reads
   the raw commits since the last synced run, so a replay also completes the work of a
   micro-batch that died half-way, and commits the summary rows, the run record and the
   micro-batch's record in one PostgreSQL transaction.

The stream holds the writer lock of the raw, curated and quarantine tables while it runs.
SIGTERM or Ctrl-C stops it after the micro-batch in progress.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType

import psycopg2
from psycopg2.extensions import connection as Connection
from pyspark.errors import StreamingQueryException
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql.streaming.query import StreamingQuery
from pyspark.sql.types import (
    BinaryType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from jobs.adapters import delta, metrics, object_store, postgres, run_store, writer_lock
from jobs.adapters.jvm_errors import describe_failure
from jobs.config.settings import Settings
from jobs.core.contracts import check_csv_header
from jobs.core.errors import EnrichmentError, PostgresUnavailableError, SourceError
from jobs.core.models import RunResult, StreamBatch
from jobs.runs import batch, failpoints
from jobs.runs.batch import BatchOptions, HeldLock
from jobs.runs.batch_writes import read_lookups
from jobs.runs.ingest import append_records, first_lines, format_of, read_files

JOB_NAME = "stream_enrich"
QUERY_NAME = "stream_enrich"
log = logging.getLogger("enrich.stream")

# The binaryFile source's columns. Only path, modificationTime and length are selected, so no
# file's content is read by the source (the micro-batch reads the files itself, as text).
LANDED_FILES_SCHEMA = StructType(
    [
        StructField("path", StringType()),
        StructField("modificationTime", TimestampType()),
        StructField("length", LongType()),
        StructField("content", BinaryType()),
    ]
)


@dataclass(frozen=True)
class StreamOptions:
    trigger_seconds: float | None = None  # None: [stream] trigger_seconds
    available_now: bool = False  # process what has landed, then stop
    wait_for_lock: float = 0.0


@dataclass
class StreamTotals:
    """What a stream did while it ran, for its closing summary."""

    batches: int = 0
    replays_skipped: int = 0
    files: int = 0
    files_refused: int = 0
    rows_ingested: int = 0
    rows_curated: int = 0
    rows_quarantined: int = 0
    last_raw_version: int | None = None
    stopped_by: str = ""
    results: list[RunResult] = field(default_factory=list)


class StopRequested(Exception):
    """Raised in a micro-batch that began after a stop was asked for: it does no work and is
    replayed from the checkpoint by the next start."""


class StreamConnections:
    """The stream's two PostgreSQL connections, run records and the writer lock (on its own
    connection, as for a batch run), opened again after PostgreSQL went away."""

    def __init__(self, settings: Settings, holder: str) -> None:
        self.settings = settings
        self.holder = holder
        self._open = ExitStack()

    def open(self, wait_for_lock: float) -> tuple[Connection, Connection]:
        settings, tables = self.settings, self.settings.tables
        conn = self._open.enter_context(postgres.connect(settings.postgres))
        run_store.check_pipeline_tables(conn)
        lock = self._open.enter_context(
            writer_lock.hold(
                settings.postgres,
                [tables.raw, tables.curated, tables.quarantine],
                self.holder,
                wait_for_lock,
                on_wait=log.info,
            )
        )
        return conn, lock

    def reopen(self) -> tuple[Connection, Connection]:
        """New connections and the lock taken again, at once (a writer that took the tables
        while PostgreSQL was away and the stream was not holding them: ConcurrentRunError)."""
        self.close()
        return self.open(wait_for_lock=0.0)

    def close(self) -> None:
        self._open.close()
        self._open = ExitStack()


class LookupSnapshot:
    """The lookups the micro-batches join: their digest is checked at most every
    ``lookup_check_seconds``, and they are read again over JDBC only when it changed."""

    def __init__(self, settings: Settings) -> None:
        self.conn: Connection | None = None  # set by the stream, and again after an outage
        self.settings = settings
        self.interval = settings.stream.lookup_check_seconds
        self.digest: str | None = None
        self.checked_at = 0.0
        self.frames: list[DataFrame] = []
        self.frames_digest: str | None = None

    def fingerprint(self) -> str:
        now = time.monotonic()
        if self.digest is None or now - self.checked_at >= self.interval:
            assert self.conn is not None
            digest = run_store.lookup_fingerprint(self.conn, self.settings.lookups)
            if self.digest is not None and digest != self.digest:
                log.info("the lookups changed: rows from now on are enriched with the new ones")
            self.digest, self.checked_at = digest, now
        return self.digest

    def dataframes(self, spark: SparkSession) -> list[DataFrame]:
        if self.frames_digest != self.digest or not self.frames:
            self.release()
            try:
                self.frames = read_lookups(spark, self.settings, persist=True)
            except Exception:
                # A JDBC failure comes as a JVM error: if PostgreSQL itself is not there, say
                # so (the micro-batch then waits for it), otherwise it is another problem.
                postgres.open_connection(self.settings.postgres).close()
                raise
            self.frames_digest = self.digest
        return self.frames

    def release(self) -> None:
        for frame in self.frames:
            frame.unpersist()
        self.frames = []


@dataclass(frozen=True)
class Landed:
    """A micro-batch's files, sorted, with their landing times."""

    files: list[str]
    oldest: datetime | None

    @staticmethod
    def from_rows(rows: Sequence[Row]) -> Landed:
        times = [row["modificationTime"] for row in rows if row["modificationTime"] is not None]
        oldest = min(times) if times else None
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)  # the session's time zone is UTC
        return Landed(sorted(str(row["path"]) for row in rows), oldest)


def split_landed(
    spark: SparkSession, files: Sequence[str]
) -> tuple[dict[str, list[str]], dict[str, str]]:
    """The files ingest would accept, by format, and the others with the reason each is
    refused (not CSV or JSON lines by its name; a CSV header that is not the expected one)."""
    accepted: dict[str, list[str]] = {"csv": [], "jsonl": []}
    refused: dict[str, str] = {}
    for file in files:
        file_format = format_of(file)
        if file_format is None:
            refused[file] = "not a .csv, .jsonl, .json or .ndjson file"
        else:
            accepted[file_format].append(file)
    if accepted["csv"]:
        headers = dict(first_lines(spark, accepted["csv"]))
        for file in list(accepted["csv"]):
            try:
                check_csv_header(file, headers.get(file))
            except SourceError as error:
                refused[file] = str(error).removeprefix(f"{file}: ")
                accepted["csv"].remove(file)
    return accepted, refused


class MicroBatches:
    """The foreachBatch function: one micro-batch of landed files, ingested and enriched."""

    def __init__(
        self,
        spark: SparkSession,
        settings: Settings,
        connections: StreamConnections,
        lookups: LookupSnapshot,
        totals: StreamTotals,
        wait_for_lock: float,
    ) -> None:
        self.spark = spark
        self.settings = settings
        self.connections = connections
        self.lookups = lookups
        self.held = self._held(*connections.open(wait_for_lock))
        self.totals = totals
        self.query_id: str | None = None
        self.started = threading.Event()  # set once query_id is known
        self.failure: BaseException | None = None
        # The raw table's state, computed ahead of the next micro-batch's append (from the start
        # for the first: delta.load_transactions).
        self._raw_state_ahead = delta.load_transactions(spark, settings.tables.raw)
        self._state = threading.Condition()
        self._stopping = False
        self._running = False

    # -- stopping between micro-batches --------------------------------------------------

    def stop_after_current(self) -> None:
        """Let the micro-batch in progress finish; refuse to begin another."""
        with self._state:
            self._stopping = True
            while self._running:
                self._state.wait()

    @contextmanager
    def _one_at_a_time(self) -> Iterator[None]:
        with self._state:
            if self._stopping:
                raise StopRequested()
            self._running = True
        try:
            yield
        finally:
            with self._state:
                self._running = False
                self._state.notify_all()

    # -- one micro-batch ---------------------------------------------------------------------

    def _held(self, conn: Connection, lock: Connection) -> HeldLock:
        self.lookups.conn = conn
        return HeldLock(conn, lock, self.lookups.fingerprint, self.lookups.dataframes)

    def __call__(self, landed_files: DataFrame, batch_id: int) -> None:
        try:
            with self._one_at_a_time():
                self._process_until_postgres_commits(landed_files, batch_id)
        except StopRequested:
            raise
        except BaseException as error:
            self.failure = error  # the driver reports this one, not Spark's wrapping of it
            raise
        finally:
            # Its Spark jobs end before the micro-batch does (a stop then stops no job of it).
            self._raw_state_ahead.join()

    def _process_until_postgres_commits(self, landed_files: DataFrame, batch_id: int) -> None:
        """The micro-batch, run again while PostgreSQL is away (for at most
        ``postgres_outage_seconds``): the run after an outage completes what the interrupted
        one left, as a restart would. Nothing is written to Delta while the stream does not
        hold the writer lock: every commit checks it first."""
        limit = self.settings.stream.postgres_outage_seconds
        away_since: float | None = None
        while True:
            try:
                self._process(landed_files, batch_id)
                return
            except (psycopg2.Error, PostgresUnavailableError) as error:
                problem = describe_failure(error)
            now = time.monotonic()
            if away_since is None:
                away_since = now
                log.warning(
                    "PostgreSQL at %s is unreachable (%s): micro-batch %d waits for it, "
                    "on the lookups it last read, up to %g s ([stream] postgres_outage_seconds)",
                    self.settings.postgres.redacted(),
                    problem,
                    batch_id,
                    limit,
                )
            if now - away_since >= limit or self._stopping:
                raise PostgresUnavailableError(
                    f"PostgreSQL at {self.settings.postgres.redacted()} was unreachable for "
                    f"{now - away_since:.0f} s in micro-batch {batch_id} ({problem}); the stream "
                    "stopped with that micro-batch uncommitted: start it again once PostgreSQL "
                    "is back, and it completes it"
                ) from None
            time.sleep(2)
            try:
                self.held = self._held(*self.connections.reopen())
            except PostgresUnavailableError:
                continue
            log.info("PostgreSQL is back: micro-batch %d runs again", batch_id)

    def _query(self) -> str:
        if not self.started.wait(timeout=120):
            raise RuntimeError("the streaming query did not report its id")
        assert self.query_id is not None
        return self.query_id

    def _process(self, landed_files: DataFrame, batch_id: int) -> None:
        query_id = self._query()
        clock = time.monotonic()
        started = datetime.now(UTC)
        if run_store.stream_batch_committed(self.held.conn, query_id, batch_id):
            log.info(
                "micro-batch %d was committed before a restart; its replay is skipped", batch_id
            )
            self.totals.replays_skipped += 1
            return
        landed = Landed.from_rows(
            landed_files.select("path", "modificationTime", "length").collect()
        )
        accepted, refused = split_landed(self.spark, landed.files)
        for file, reason in sorted(refused.items()):
            log.warning("refused %s: %s (the stream goes on without it)", file, reason)
        # The ingest id, and so every record id, is the same when a micro-batch is replayed.
        ingest_id = str(uuid.uuid5(uuid.UUID(query_id), str(batch_id)))
        records = [read_files(self.spark, paths, fmt) for fmt, paths in accepted.items() if paths]
        rows, raw_version = (
            0,
            object_store.table_version(self.settings.s3, self.settings.tables.raw),
        )
        if records:
            union = records[0]
            for more in records[1:]:
                union = union.unionByName(more)
            writer_lock.check_held(self.held.lock, self.settings.postgres)
            appended = append_records(
                self.spark, self.settings, union, ingest_id, txn=(query_id, batch_id)
            )
            rows, raw_version = appended.rows_appended, appended.raw_version
            failpoints.reached("stream-raw-appended")
            # The next micro-batch's raw append (a write with a txn) needs the state of the
            # version just committed; computed now, it overlaps this micro-batch's run.
            self._raw_state_ahead = delta.load_transactions(self.spark, self.settings.tables.raw)
        record = StreamBatch(
            query_id=query_id,
            batch_id=batch_id,
            started_at=started,
            files=landed.files,
            refused=refused,
            rows_ingested=rows,
            raw_version=raw_version,
            oldest_landed_at=landed.oldest,
        )
        result = None
        if rows:
            result = batch.run_locked(
                self.held,
                lambda: self.spark,
                self.settings,
                BatchOptions(),
                job_name=JOB_NAME,
                stream_batch=record,
            )
        else:
            run_store.record_stream_batch(self.held.conn, record)
        self._report(record, result, time.monotonic() - clock)

    def _report(self, record: StreamBatch, result: RunResult | None, seconds: float) -> None:
        totals = self.totals
        totals.batches += 1
        totals.files += len(record.files)
        totals.files_refused += len(record.refused)
        totals.rows_ingested += record.rows_ingested
        totals.last_raw_version = record.raw_version
        curated = quarantined = 0
        lag_versions = 0
        if result is not None:
            totals.results.append(result)
            if result.counts is not None:
                curated = result.counts.rows_curated
                quarantined = result.counts.rows_quarantined + result.counts.rows_duplicate
            if record.raw_version is not None:
                lag_versions = record.raw_version - result.raw_version_to
        totals.rows_curated += curated
        totals.rows_quarantined += quarantined
        lag = (
            ""
            if record.oldest_landed_at is None
            else f", {(datetime.now(UTC) - record.oldest_landed_at).total_seconds():.1f} s after landing"
        )
        rate = record.rows_ingested / seconds if seconds > 0 else 0.0
        stream_values = {
            "lookups_age_seconds": max(0.0, time.monotonic() - self.lookups.checked_at)
            if self.lookups.digest is not None
            else 0.0
        }
        if record.oldest_landed_at is not None:
            stream_values["stream_lag_seconds"] = (
                datetime.now(UTC) - record.oldest_landed_at
            ).total_seconds()
        metrics.push(
            self.settings.pushgateway_url, JOB_NAME, self.settings.tables.curated, stream_values
        )
        log.info(
            "micro-batch %d: %d file(s) (%d refused), %d rows: %d curated, %d quarantined; "
            "raw version %s, lag %d version(s)%s; %.1f s, %.0f rows/s",
            record.batch_id,
            len(record.files),
            len(record.refused),
            record.rows_ingested,
            curated,
            quarantined,
            "-" if record.raw_version is None else record.raw_version,
            lag_versions,
            lag,
            seconds,
            rate,
        )


def landed_files(spark: SparkSession, settings: Settings) -> DataFrame:
    return (
        spark.readStream.format("binaryFile")
        .schema(LANDED_FILES_SCHEMA)
        .option("maxFilesPerTrigger", settings.stream.max_files_per_trigger)
        .option("recursiveFileLookup", "true")
        .load(settings.stream.landing)
    )


def _start_query(
    spark: SparkSession, settings: Settings, options: StreamOptions, handler: MicroBatches
) -> StreamingQuery:
    writer = (
        landed_files(spark, settings)
        .writeStream.queryName(QUERY_NAME)
        .option("checkpointLocation", settings.stream.checkpoint)
        .foreachBatch(handler)
    )
    if options.available_now:
        writer = writer.trigger(availableNow=True)
    else:
        seconds = options.trigger_seconds or settings.stream.trigger_seconds
        writer = writer.trigger(processingTime=f"{seconds:g} seconds")
    return writer.start()


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set ``stop`` (only the main thread can take signals: a stream run in
    another thread is stopped through ``stop`` alone)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if not stop.is_set():
            log.info("%s received: stopping after the micro-batch in progress", name)
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run(
    spark: SparkSession,
    settings: Settings,
    options: StreamOptions,
    stop: threading.Event | None = None,
) -> StreamTotals:
    """Run the stream until it is stopped (a signal, or ``stop`` set), it fails, or, with
    ``available_now``, everything landed so far is processed."""
    tables, stream = settings.tables, settings.stream
    object_store.check_buckets(
        settings.s3, [tables.raw, tables.curated, tables.quarantine, stream.landing]
    )
    object_store.ensure_prefix(settings.s3, stream.landing)
    totals = StreamTotals()
    holder = f"{JOB_NAME} on {socket.gethostname()}:{os.getpid()}"[:63]
    connections = StreamConnections(settings, holder)
    lookups = LookupSnapshot(settings)
    try:
        handler = MicroBatches(spark, settings, connections, lookups, totals, options.wait_for_lock)
        with _stop_on_signals(stop := stop or threading.Event()):
            _supervise(spark, settings, options, handler, stop)
    finally:
        lookups.release()
        connections.close()
    return totals


def _supervise(
    spark: SparkSession,
    settings: Settings,
    options: StreamOptions,
    handler: MicroBatches,
    stop: threading.Event,
) -> None:
    stream, totals = settings.stream, handler.totals
    query = _start_query(spark, settings, options, handler)
    handler.query_id = str(query.id)
    handler.started.set()
    trigger = options.trigger_seconds or stream.trigger_seconds
    log.info(
        "stream %s started (%s): landing %s, checkpoint %s",
        query.id,
        "available-now" if options.available_now else f"a micro-batch every {trigger:g} s",
        stream.landing,
        stream.checkpoint,
    )
    try:
        while not stop.is_set():
            if query.awaitTermination(1):
                break
    except StreamingQueryException as error:
        if handler.failure is not None and not isinstance(handler.failure, StopRequested):
            raise handler.failure from None
        if not stop.is_set():
            raise EnrichmentError(
                f"the streaming query failed: {describe_failure(error)}"
            ) from None
        # else: a micro-batch refused to begin because a stop was asked for
    if stop.is_set():
        handler.stop_after_current()
        query.stop()
        totals.stopped_by = "a stop signal"
    else:
        totals.stopped_by = "everything landed so far was processed"
