"""Tools for tests of whole runs: copies of a pipeline's whole state (bucket and database), runs
called in-process on the shared session, jobs started by spark-submit in their own process
group that can be paused at a failpoint and killed with SIGKILL, and the outputs read back for
comparison. The fixtures at the end build the fault suite's states S0 and clean once per test
session; every test that damages a run starts from a copy of S0."""

from __future__ import annotations

import csv
import io
import logging
import os
import queue
import re
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extras
import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession

from jobs import batch_enrich, ingest, stream_enrich
from jobs.adapters.object_store import (
    delta_storage_options,
    read_columns,
    s3_client,
    split_path,
)
from jobs.config.postgres_url import PostgresTarget, env_for_database, target_from_env
from jobs.config.settings import S3Settings, Settings, load_settings
from jobs.core.models import RunResult
from jobs.core.report import format_run_summary
from jobs.core.transforms import daily_category_summary
from jobs.runs import batch, stream
from jobs.runs import ingest as ingest_run
from jobs.runs.ingest import IngestResult
from tests.stack import ROOT, TEST_DB, ScratchBucket, delete_bucket, generate, submit_env

# Columns that name the run that wrote a row; everything else must match a clean run exactly.
RUN_COLUMNS = frozenset({"_run_id", "_enriched_at"})


@dataclass(frozen=True)
class PipelineCopy:
    """One pipeline's state: its tables in a bucket of their own and its own database."""

    bucket: ScratchBucket
    dbname: str
    env: dict[str, str]

    @property
    def settings(self) -> Settings:
        return replace(load_settings(self.env), tables=self.bucket.tables)

    def connect(self) -> Any:
        """As the pipeline role, as the jobs connect."""
        return psycopg2.connect(**self.settings.postgres.psycopg2_kwargs())

    def connect_admin(self) -> Any:
        """As the admin role: for changing reference data."""
        return psycopg2.connect(**target_from_env(self.env, role="admin").psycopg2_kwargs())


def new_pipeline(
    admin: PostgresTarget, s3: S3Settings, base_env: dict[str, str], template: str
) -> PipelineCopy:
    """An empty bucket and a database copied from ``template`` (a seeded database)."""
    name = f"test-fault-{uuid.uuid4().hex[:10]}"
    s3_client(s3).create_bucket(Bucket=name)
    _create_database(admin, name.replace("-", "_"), template)
    return _pipeline(base_env, ScratchBucket(name), name.replace("-", "_"))


def copy_pipeline(admin: PostgresTarget, s3: S3Settings, source: PipelineCopy) -> PipelineCopy:
    """A copy of every object and every row of ``source``: the copy can be crashed freely."""
    copy = new_pipeline(admin, s3, source.env, source.dbname)
    # Run records name their tables by path: point the copied ones at the copied tables.
    with copy.connect() as conn, conn.cursor() as cur:
        for column in ("raw_table", "curated_table", "quarantine_table"):
            cur.execute(
                f"UPDATE pipeline.enrichment_runs SET {column} = replace({column}, %s, %s)",
                (f"s3a://{source.bucket.name}/", f"s3a://{copy.bucket.name}/"),
            )
    conn.close()
    client = s3_client(s3)
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=source.bucket.name):
        for item in page.get("Contents", []):
            client.copy_object(
                Bucket=copy.bucket.name,
                Key=item["Key"],
                CopySource={"Bucket": source.bucket.name, "Key": item["Key"]},
            )
    return copy


def drop_pipeline(admin: PostgresTarget, s3: S3Settings, pipeline: PipelineCopy) -> None:
    delete_bucket(s3, pipeline.bucket.name)
    conn = psycopg2.connect(**{**admin.psycopg2_kwargs(), "dbname": "postgres"})
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{pipeline.dbname}" WITH (FORCE)')
    conn.close()


def _create_database(admin: PostgresTarget, dbname: str, template: str) -> None:
    conn = psycopg2.connect(**{**admin.psycopg2_kwargs(), "dbname": "postgres"})
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{dbname}" TEMPLATE "{template}"')
    conn.close()


def _pipeline(base_env: dict[str, str], bucket: ScratchBucket, dbname: str) -> PipelineCopy:
    env = {**env_for_database(base_env, dbname), **bucket.env()}
    return PipelineCopy(bucket, dbname, env)


# --------------------------------------------------------------------------------------------
# Outputs, compared in full
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outputs:
    curated: tuple[tuple[Any, ...], ...]
    quarantine: tuple[tuple[Any, ...], ...]
    summary: tuple[tuple[Any, ...], ...]


def table_rows(
    s3: S3Settings, path: str, ignore: frozenset[str] = RUN_COLUMNS
) -> tuple[tuple[Any, ...], ...]:
    """Every row of a Delta table but the ``ignore`` columns, sorted, read with delta-rs: a second
    implementation of the Delta protocol checks what Spark wrote, in a fraction of a Spark read's
    time (0.3 s against 1.3 s for the fault suite's two tables)."""
    table = DeltaTable(path, storage_options=delta_storage_options(s3))
    columns = sorted(name for name in table.schema().to_arrow().names if name not in ignore)
    return tuple(
        sorted(
            (tuple(row[c] for c in columns) for row in read_columns(s3, path, columns).to_pylist()),
            key=repr,
        )
    )


def read_outputs(pipeline: PipelineCopy, ignore: frozenset[str] = RUN_COLUMNS) -> Outputs:
    tables = pipeline.bucket.tables
    with pipeline.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT event_date, category, currency, transaction_count, total_amount "
            "FROM pipeline.category_daily_summary ORDER BY 1, 2, 3"
        )
        summary = tuple(tuple(r) for r in cur.fetchall())
    conn.close()
    s3 = pipeline.settings.s3
    return Outputs(
        table_rows(s3, tables.curated, ignore), table_rows(s3, tables.quarantine, ignore), summary
    )


def curated_summary(spark: SparkSession, pipeline: PipelineCopy) -> tuple[tuple[Any, ...], ...]:
    """The GROUP BY of the pipeline's curated table that its summary must equal, sorted as
    ``read_outputs`` sorts the summary."""
    curated = spark.read.format("delta").load(pipeline.bucket.tables.curated)
    return tuple(sorted(tuple(r) for r in curated.transform(daily_category_summary).collect()))


CORRECTED_FROM = "2000-01-01 00:00+00"  # before every test's transactions


def reclassify_merchant(pipeline: PipelineCopy, merchant_id: str, category: str) -> None:
    """A correction of the reference data: ``merchant_id``'s category in merchant_lookup, in
    effect since CORRECTED_FROM (so for every transaction of the tests), as an admin corrects a
    wrong category back to a date (docs/reference-history.md)."""
    with pipeline.connect_admin() as conn, conn.cursor() as cur:
        cur.execute("SET LOCAL enrich.effective_from = %s", (CORRECTED_FROM,))
        cur.execute(
            "UPDATE reference.merchant_lookup SET category = %s WHERE merchant_id = %s",
            (category, merchant_id),
        )
    conn.close()


def runs(pipeline: PipelineCopy) -> list[dict[str, Any]]:
    psycopg2.extras.register_uuid()  # uuid[] columns as lists (recovered_runs)
    with pipeline.connect() as conn, conn.cursor() as cur:
        # The database was copied from one other tests write to: keep this pipeline's runs.
        cur.execute(
            "SELECT * FROM pipeline.enrichment_runs WHERE curated_table = %s ORDER BY started_at",
            (pipeline.bucket.tables.curated,),
        )
        assert cur.description is not None
        names = [c.name for c in cur.description]
        found = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    conn.close()
    return found


def delta_log_versions(s3: S3Settings, bucket: str, table: str) -> int:
    client = s3_client(s3)
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=f"{table}/_delta_log/"
    )
    return sum(
        1 for page in pages for item in page.get("Contents", []) if item["Key"].endswith(".json")
    )


def data_objects(s3: S3Settings, bucket: str, table: str) -> set[str]:
    client = s3_client(s3)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{table}/")
    return {
        item["Key"]
        for page in pages
        for item in page.get("Contents", [])
        if "/_delta_log/" not in item["Key"]
    }


# --------------------------------------------------------------------------------------------
# Jobs that can be paused and killed
# --------------------------------------------------------------------------------------------


class Job:
    """scripts/submit.sh in a process group of its own, its output collected as it comes."""

    def __init__(
        self,
        env: dict[str, str],
        args: Sequence[str],
        failpoint_dir: Path,
        failpoints: Sequence[str] = (),
    ) -> None:
        self.failpoint_dir = failpoint_dir
        failpoint_dir.mkdir(parents=True, exist_ok=True)
        job_env = {**submit_env(env), "ENRICH_FAILPOINT_DIR": str(failpoint_dir)}
        if failpoints:
            job_env["ENRICH_FAILPOINTS"] = ",".join(failpoints)
        self.lines: list[str] = []
        self._new: queue.Queue[str | None] = queue.Queue()
        self.process = subprocess.Popen(
            [str(ROOT / "scripts" / "submit.sh"), *args],
            env=job_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            self._new.put(line)
        self._new.put(None)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        if any(text in line for line in self.lines):
            return
        while time.monotonic() < deadline:
            try:
                line = self._new.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"job ended before printing {text!r}:\n{self.output[-4000:]}")
            if text in line:
                return
        raise AssertionError(f"no {text!r} within {timeout}s:\n{self.output[-4000:]}")

    def pause_at(self, failpoint: str) -> None:
        self.wait_for(f"FAILPOINT {failpoint} reached")

    def release(self, failpoint: str) -> None:
        (self.failpoint_dir / failpoint).touch()

    def kill(self) -> None:
        """SIGKILL to every process of the job (the spark-submit JVM and the Python driver)."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=60)
        self._reader.join(timeout=10)

    def kill_jvm_only(self) -> None:
        for pid in _group_members(self.process.pid):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"org.apache.spark.deploy.SparkSubmit" in cmdline and b"java" in cmdline:
                os.kill(pid, signal.SIGKILL)
                return
        raise AssertionError("no spark-submit JVM found in the job's process group")

    def finish(self, timeout: float = 600) -> int:
        """The job's exit status, once it has exited. Its driver JVM must be gone by then: a
        JVM still shutting down would compete with the next command and outlast any time a
        caller measures (jobs/adapters/session.py, end_driver_jvm)."""
        code = self.process.wait(timeout=timeout)
        left = _live_group_members(self.process.pid)  # before the output's end: the JVM holds it
        self._reader.join(timeout=10)
        assert not left, f"the job exited before its processes {left}:\n{self.output[-2000:]}"
        return code


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) == pgid:
                members.append(int(entry.name))
        except ProcessLookupError:
            continue
    return members


def _live_group_members(pgid: int) -> list[str]:
    """The command lines of the processes of group ``pgid`` that have not exited (zombies,
    exited but not yet reaped, are left out)."""
    live = []
    for pid in _group_members(pgid):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if state != "Z":
            live.append(cmdline.replace(b"\0", b" ").decode(errors="replace")[:200])
    return live


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if " ERROR enrich: " in line]


def stack(action: str) -> None:
    """scripts/stack.sh postgres-up|postgres-down|minio-up|minio-down on the local stack."""
    subprocess.run(
        [str(ROOT / "scripts" / "stack.sh"), action],
        cwd=ROOT,
        env=os.environ,
        check=True,
        capture_output=True,
        timeout=120,
    )


# --------------------------------------------------------------------------------------------
# Runs called in-process, on the tests' shared SparkSession
# --------------------------------------------------------------------------------------------


@contextmanager
def captured_log() -> Iterator[io.StringIO]:
    """The jobs' log lines (logger ``enrich``) while the block runs, as a job would print them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("enrich")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@dataclass(frozen=True)
class InProcessRun:
    result: RunResult
    output: str  # the log lines and the run summary, as spark-submit would have printed them


def run_batch_here(spark: SparkSession, env: dict[str, str], *args: str) -> InProcessRun:
    """jobs/batch_enrich.py's ``run`` with the arguments ``args`` and the settings ``env`` gives,
    on ``spark``: what `make submit-batch` does, without a JVM of its own."""
    settings = load_settings(env)
    options = batch_enrich.parse_args(list(args))
    with captured_log() as log:
        result = batch.run(lambda: spark, settings, options)
    return InProcessRun(result, log.getvalue() + format_run_summary(result))


def ingest_here(spark: SparkSession, env: dict[str, str], *args: str) -> IngestResult:
    """jobs/ingest.py's ``run`` with the arguments ``args``, on ``spark``."""
    return ingest_run.run(spark, load_settings(env), ingest.parse_args(list(args)))


# --------------------------------------------------------------------------------------------
# The streaming job: files landed, the stream run in-process, its micro-batch records
# --------------------------------------------------------------------------------------------

# What differs between the same rows taken in by the stream and by `ingest`: the ingest ids
# (and so the record ids), when, and the file's path (another bucket, the landing prefix).
INGEST_COLUMNS = RUN_COLUMNS | {"_record_id", "_ingest_id", "_ingested_at", "_source_file"}


def land(pipeline: PipelineCopy, *files: Path) -> None:
    """Upload ``files`` to the pipeline's landing prefix, one after another: the stream takes
    them in the order they landed (their modification times)."""
    bucket, prefix = split_path(pipeline.settings.stream.landing)
    client = s3_client(pipeline.settings.s3)
    for file in files:
        client.upload_file(str(file), bucket, f"{prefix}/{file.name}")
        time.sleep(0.05)


def config_with(work: Path, **settings: float) -> Path:
    """A copy of conf/enrichment.toml with other values for the settings named (in any section;
    for ENRICH_CONFIG)."""
    lines = (ROOT / "conf" / "enrichment.toml").read_text().splitlines()
    changed = [
        f"{line.split('=')[0].strip()} = {settings[line.split('=')[0].strip()]}"
        if "=" in line and line.split("=")[0].strip() in settings
        else line
        for line in lines
    ]
    path = work / "enrichment.toml"
    path.write_text("\n".join(changed) + "\n")
    return path


def stream_here(
    spark: SparkSession, env: dict[str, str], *args: str, stop: threading.Event | None = None
) -> stream.StreamTotals:
    """jobs/stream_enrich.py's ``run`` with the arguments ``args``, on ``spark``."""
    options, tables = stream_enrich.parse_args(list(args))
    assert not tables
    return stream.run(spark, load_settings(env), options, stop)


def stream_batches(pipeline: PipelineCopy) -> list[dict[str, Any]]:
    with pipeline.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT * FROM pipeline.stream_batches ORDER BY committed_at")
        assert cur.description is not None
        names = [c.name for c in cur.description]
        found = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    conn.close()
    return found


@pytest.fixture()
def empty_pipeline(
    admin_target: PostgresTarget, s3: S3Settings, test_db_env: dict[str, str]
) -> Iterator[PipelineCopy]:
    """A pipeline of its own with nothing in it: the seeded test database, an empty bucket."""
    pipeline = new_pipeline(admin_target, s3, test_db_env, TEST_DB)
    yield pipeline
    drop_pipeline(admin_target, s3, pipeline)


def wait_for_stream_batches(pipeline: PipelineCopy, count: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while len(stream_batches(pipeline)) < count:
        assert time.monotonic() < deadline, f"fewer than {count} micro-batches in {timeout}s"
        time.sleep(0.5)


# --------------------------------------------------------------------------------------------
# The fault suite's ground: state S0 (batch 1 processed, batch 2 ingested, not processed) and
# the clean run from it, built once per test session
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ground:
    s0: PipelineCopy
    s0_outputs: Outputs
    clean: PipelineCopy
    clean_outputs: Outputs
    admin: PostgresTarget
    s3: S3Settings
    work: Path


def write_corrections(batch1: Path, out: Path, fresh: Path) -> None:
    """Batch 2: new rows plus 60 of batch 1's ids again, with a new amount, three days later."""
    with batch1.open() as handle:
        rows = [r for r in csv.DictReader(handle) if r["transaction_id"].startswith("TXN-")]
    corrected = []
    for row in rows[:300:5]:
        if not re.fullmatch(r"\d+\.\d\d", row["amount"]) or not row["event_ts"].endswith("Z"):
            continue
        day = int(row["event_ts"][8:10])
        corrected.append(
            {
                **row,
                "amount": f"{float(row['amount']) + 1:.2f}",
                "event_ts": f"{row['event_ts'][:8]}{day + 3:02d}{row['event_ts'][10:]}",
            }
        )
    with fresh.open() as handle:
        new = list(csv.DictReader(handle))
    with out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(new[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(new + corrected)


@pytest.fixture(scope="session")
def ground(
    spark: SparkSession,
    admin_target: PostgresTarget,
    s3: S3Settings,
    test_db_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Ground]:
    work = tmp_path_factory.mktemp("faults")
    generate(work / "batch1.csv", 600, 21)
    generate(work / "fresh.csv", 200, 22)
    write_corrections(work / "batch1.csv", work / "batch2.csv", work / "fresh.csv")
    s0 = new_pipeline(admin_target, s3, test_db_env, TEST_DB)
    ingest_here(spark, s0.env, str(work / "batch1.csv"))
    run_batch_here(spark, s0.env)
    ingest_here(spark, s0.env, str(work / "batch2.csv"))
    s0_outputs = read_outputs(s0)
    clean = copy_pipeline(admin_target, s3, s0)
    clean_run = run_batch_here(spark, clean.env)
    assert "SUCCEEDED (incremental)" in clean_run.output
    clean_outputs = read_outputs(clean)
    assert clean_outputs != s0_outputs
    yield Ground(s0, s0_outputs, clean, clean_outputs, admin_target, s3, work)
    drop_pipeline(admin_target, s3, clean)
    drop_pipeline(admin_target, s3, s0)


@pytest.fixture()
def pipeline(ground: Ground) -> Iterator[PipelineCopy]:
    """A copy of S0 for one test to damage."""
    copy = copy_pipeline(ground.admin, ground.s3, ground.s0)
    yield copy
    drop_pipeline(ground.admin, ground.s3, copy)


def assert_between_s0_and_clean(ground: Ground, pipeline: PipelineCopy) -> None:
    """After a fault: every output still readable, each one as S0 left it or as the clean run."""
    now = read_outputs(pipeline)
    assert now.curated in (ground.s0_outputs.curated, ground.clean_outputs.curated)
    assert now.quarantine in (ground.s0_outputs.quarantine, ground.clean_outputs.quarantine)
    assert now.summary in (ground.s0_outputs.summary, ground.clean_outputs.summary)


def assert_converges(
    spark: SparkSession, ground: Ground, pipeline: PipelineCopy, recovering: bool = True
) -> InProcessRun:
    """The next run (in-process: the recovery needs no process of its own) ends in exactly the
    clean run's outputs."""
    assert_between_s0_and_clean(ground, pipeline)
    after = run_batch_here(spark, pipeline.env)
    if recovering:
        assert "recovering: run" in after.output
    outputs = read_outputs(pipeline)
    assert outputs.curated == ground.clean_outputs.curated
    assert outputs.quarantine == ground.clean_outputs.quarantine
    assert outputs.summary == ground.clean_outputs.summary
    return after
