"""`make bench`: the batch job against its Spark floor, a single-node peer and the course's
method, on the same generated data, in one run.

    python -m scripts.bench.run --rows 10000000 --merchants 100000 [--sizes 1000000,...]

Steps: a database of its own (``enrich_bench``: reference_sql/ seeded, MERCHANTS merchants) and
tables of its own under ``bench/`` in the project's buckets (emptied first); generated CSV in
build/bench/data; then, growing the raw table size by size, a full job run at each size (the
line fit); at the largest size the Spark floor, the peer, the course's pandas + to_sql method,
a rerun with no new data and a run on 1% new data; last the summary-write path, COPY against a
row-by-row INSERT loop. Every timed step is a separate process, timed from outside (JVM start
included) with its peak resident memory (the process and its children). Results go to
build/bench/bench-<time>.json and .png, and build/bench/latest.{json,png}.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg2
from psycopg2 import sql

from jobs.adapters import run_store
from jobs.adapters.object_store import s3_client, split_path
from jobs.config.postgres_url import env_for_database, target_from_env
from jobs.config.settings import s3_from_env
from jobs.core.models import RunStart, SummaryRow
from scripts.bench import stream
from scripts.bench.corrections import commit_rewrite, table_bytes, write_corrections
from scripts.bench.cpu_profile import describe_profile, flight_recording_option, profile_recording
from scripts.bench.events import describe_spark_jobs, event_log_options, read_event_log
from scripts.bench.processes import Timed, run_measured, server_pids
from scripts.bench.report import (
    JOB,
    Measurement,
    draw_chart,
    fit_line,
    format_table,
    format_targets,
    targets,
    to_json,
)
from scripts.versions import load_pyproject

ROOT = Path(__file__).resolve().parents[2]
PY = str(ROOT / ".venv" / "bin" / "python")
SUBMIT = str(ROOT / "scripts" / "submit.sh")
FILE_ROWS = 1_000_000  # the generator keeps a file's records in memory (for duplicates)
SEEDED_MERCHANTS = 10_000  # reference_sql/020_generated_merchants.sql


class BenchError(Exception):
    pass


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Timing a process and its children
# --------------------------------------------------------------------------------------------


def with_event_log(
    env: Mapping[str, str], log_dir: Path, label: str
) -> tuple[dict[str, str], Path]:
    """``env`` for a job run that writes its Spark event log to a folder of its own."""
    directory = log_dir / "events" / label.replace(" ", "_")
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    options = f"{env.get('ENRICH_DRIVER_JVM_OPTS', '')} {event_log_options(directory)}".strip()
    return {**env, "ENRICH_DRIVER_JVM_OPTS": options}, directory


STACK_DIR = Path(os.environ.get("STACK_DIR", ROOT / ".stack")).resolve()


def timed_job(
    label: str,
    args: Sequence[str],
    env: Mapping[str, str],
    log_dir: Path,
    recording: Path | None = None,
) -> tuple[Timed, dict[str, Any] | None]:
    """A batch_enrich spark-submit, timed; what it cost and its Spark jobs by phase (or None).
    With ``recording``, its JVM also keeps a Flight Recorder recording there (JFR's default
    settings: a sample every 20 ms, about 1% of the run's CPU), summarised in ``cpu_profile``."""
    job_env, events = with_event_log(env, log_dir, label)
    if recording is not None:
        recording.unlink(missing_ok=True)
        options = f"{job_env['ENRICH_DRIVER_JVM_OPTS']} {flight_recording_option(recording)}"
        job_env = {**job_env, "ENRICH_DRIVER_JVM_OPTS": options}
    run = timed(label, [SUBMIT, "batch_enrich", *args], job_env, log_dir)
    spark = read_event_log(events)
    if recording is not None and spark is not None:
        try:
            spark["cpu_profile"] = profile_recording(recording).as_json()
        except (OSError, RuntimeError) as error:
            say(f"  (no CPU profile: {error})")
    return run, spark


def timed(label: str, command: Sequence[str], env: Mapping[str, str], log_dir: Path) -> Timed:
    """Run ``command``: wall seconds, peak RSS of it and its children, CPU seconds, stdout."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / (label.replace(" ", "_").replace("/", "_") + ".log")
    code, run = run_measured(command, env, log_path, server_pids(STACK_DIR))
    if code != 0:
        tail = log_path.read_text()[-3000:]
        raise BenchError(f"{label} failed (exit {code}); log {log_path}:\n{tail}")
    return run


def measured(
    key: str, label: str, rows: int, run: Timed, detail: Mapping[str, Any] | None = None
) -> Measurement:
    return Measurement(
        key, label, rows, run.seconds, run.peak_rss_mb, dict(detail or {}), run.cpu_seconds
    )


# --------------------------------------------------------------------------------------------
# Set-up: database, tables, data
# --------------------------------------------------------------------------------------------


def prepare_database(env: dict[str, str], dbname: str, merchants: int) -> dict[str, str]:
    """A fresh database ``dbname`` seeded like the real one, with ``merchants`` merchants."""
    admin = target_from_env(env, role="admin")
    conn = psycopg2.connect(**{**admin.psycopg2_kwargs(), "dbname": "postgres"})
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
        )
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    conn.close()
    bench_env = env_for_database(env, dbname)
    seeded = subprocess.run(
        [str(ROOT / "scripts" / "seed.sh")], env=bench_env, capture_output=True, text=True
    )
    if seeded.returncode != 0:
        raise BenchError(f"seeding {dbname} failed: {seeded.stderr[-2000:]}")
    admin = target_from_env(bench_env, role="admin")
    with psycopg2.connect(**admin.psycopg2_kwargs()) as conn, conn.cursor() as cur:
        cur.execute("SET ROLE enrich_owner")
        cur.execute(
            """
            INSERT INTO reference.merchant_lookup (merchant_id, merchant_name, category)
            SELECT 'MER-' || lpad(n::text, greatest(6, length(n::text)), '0'),
                   'Bench merchant #' || n,
                   (ARRAY['Groceries', 'Electronics', 'Healthcare', 'Dining', 'Travel',
                          'Entertainment', 'Fuel', 'Home', 'Apparel'])[1 + n %% 9]
            FROM generate_series(%s, %s) AS n
            ON CONFLICT (merchant_id) DO NOTHING
            """,
            (SEEDED_MERCHANTS + 1, merchants),
        )
        # A few versions of every merchant for the point-in-time join: recategorised on 11-05
        # and again on 11-10 (the generated events span 11-01 .. 11-14), through the trigger.
        for effective, shift in (("2026-11-05 00:00+00", 1), ("2026-11-10 00:00+00", 2)):
            cur.execute("SET LOCAL enrich.effective_from = %s", (effective,))
            cur.execute(
                """
                UPDATE reference.merchant_lookup
                SET category = (ARRAY['Groceries', 'Electronics', 'Healthcare', 'Dining', 'Travel',
                                      'Entertainment', 'Fuel', 'Home', 'Apparel'])
                               [1 + (substr(merchant_id, 5)::int + %s) %% 9]
                WHERE merchant_id ~ '^MER-[0-9]+$' AND category IS NOT NULL
                """,
                (shift,),
            )
        cur.execute("RESET ROLE")
        cur.execute("CREATE SCHEMA IF NOT EXISTS bench_course")  # to_sql creates its table
        cur.execute("SELECT count(*) FROM reference.merchant_lookup")
        row = cur.fetchone()
    say(f"database {dbname}: seeded, {row[0] if row else 0:,} merchants, 3 versions each")
    return bench_env


def empty_prefix(env: Mapping[str, str], location: str) -> None:
    bucket, prefix = split_path(location)
    client = s3_client(s3_from_env(env))
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix.rstrip("/") + "/"
    )
    for page in pages:
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})


def generate(data_dir: Path, name: str, rows: int, merchants: int, first_seed: int) -> list[Path]:
    """``rows`` generated rows in files of at most FILE_ROWS, two generators at a time."""
    parts = [(i, min(FILE_ROWS, rows - start)) for i, start in enumerate(range(0, rows, FILE_ROWS))]
    paths = [data_dir / f"{name}-{i:03d}.csv" for i, _ in parts]

    def one(index: int, count: int) -> None:
        subprocess.run(
            [PY, "-m", "scripts.generate_transactions", "--rows", str(count), "--output",
             str(paths[index]), "--seed", str(first_seed + index), "--merchants", str(merchants)],
            check=True, capture_output=True, cwd=ROOT,
        )  # fmt: skip

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda part: one(*part), parts))
    return paths


# --------------------------------------------------------------------------------------------
# The measurements
# --------------------------------------------------------------------------------------------


def last_run(env: Mapping[str, str]) -> dict[str, Any]:
    with psycopg2.connect(**target_from_env(env).psycopg2_kwargs()) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT status, mode, rows_read, rows_curated, rows_quarantined, rows_duplicate, "
            "rows_unmatched, rows_replaced, summary_dates_rewritten, curated_version_written, "
            "quarantine_version_written FROM pipeline.enrichment_runs "
            "ORDER BY started_at DESC LIMIT 1"
        )
        row = cur.fetchone()
        assert cur.description is not None and row is not None
        names = [column.name for column in cur.description]
    return dict(zip(names, row, strict=True))


def summary_rows(env: Mapping[str, str]) -> set[tuple[Any, ...]]:
    with psycopg2.connect(**target_from_env(env).psycopg2_kwargs()) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT event_date, category, currency, transaction_count, total_amount "
            "FROM pipeline.category_daily_summary"
        )
        return set(cur.fetchall())


def synthetic_summary(count: int) -> list[SummaryRow]:
    categories = [f"category-{n:02d}" for n in range(40)]
    currencies = ["USD", "EUR", "GBP", "JPY", "CHF"]
    per_day = len(categories) * len(currencies)
    return [
        SummaryRow(
            event_date=date(2000, 1, 1) + timedelta(days=i // per_day),
            category=categories[(i // len(currencies)) % len(categories)],
            currency=currencies[i % len(currencies)],
            transaction_count=1 + i % 97,
            total_amount=Decimal(f"{i % 100_000}.25"),
        )
        for i in range(count)
    ]


SUMMARY_COLUMNS = "event_date, category, currency, transaction_count, total_amount, run_id"


def summary_write(env: Mapping[str, str], copy_rows: int, loop_rows: int) -> list[Measurement]:
    """The job's summary write (run_store.finish_run: COPY into a stage table, one transaction)
    against the course's row-by-row INSERT loop, as the pipeline role. Both write synthetic
    rows into the bench database's summary table, so the rows the bench's runs left there are
    put back afterwards: the bench's tables stay in step with their summary, and a run on them
    after the bench goes on from where the bench left them."""
    target = target_from_env(env)
    rows = synthetic_summary(copy_rows)
    with psycopg2.connect(**target.psycopg2_kwargs()) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT {SUMMARY_COLUMNS} FROM pipeline.category_daily_summary")
        kept = cur.fetchall()
    conn.close()
    now = datetime.now(UTC)
    start = RunStart(
        run_id=str(uuid.uuid4()), mode="full", started_at=now,
        raw_table="bench://summary-write", curated_table="bench://summary-write",
        quarantine_table="bench://summary-write", raw_version_from=None, raw_version_to=0,
    )  # fmt: skip
    conn = psycopg2.connect(**target.psycopg2_kwargs())
    try:
        run_store.start_run(conn, start, "bench-summary-write")
        started = time.perf_counter()
        run_store.finish_run(conn, start.finished("succeeded", now), "bench", rows, None)
        copy_seconds = time.perf_counter() - started
        with conn.cursor() as cur:
            cur.execute("DELETE FROM pipeline.category_daily_summary")
            conn.commit()
            started = time.perf_counter()
            for row in rows[:loop_rows]:
                cur.execute(
                    "INSERT INTO pipeline.category_daily_summary (event_date, category, currency, "
                    "transaction_count, total_amount, run_id) VALUES (%s, %s, %s, %s, %s, %s)",
                    (row.event_date, row.category, row.currency, row.transaction_count,
                     row.total_amount, start.run_id),
                )  # fmt: skip
            conn.commit()
            loop_seconds = time.perf_counter() - started
    finally:
        conn.rollback()
        with conn.cursor() as cur:
            cur.execute("DELETE FROM pipeline.category_daily_summary")
            cur.executemany(
                f"INSERT INTO pipeline.category_daily_summary ({SUMMARY_COLUMNS}) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                kept,
            )
        conn.commit()
        conn.close()
    return [
        Measurement(
            "summary_copy", "summary write: COPY (the job's path)", copy_rows, copy_seconds
        ),
        Measurement(
            "summary_row_by_row", "summary write: row-by-row INSERT loop", loop_rows, loop_seconds
        ),
    ]


def incremental_run(
    env: Mapping[str, str], log_dir: Path, key: str, files: Sequence[Path], rows: int, label: str
) -> Measurement:
    """``files`` ingested, then an incremental run, which must read just their ``rows``."""
    timed(f"ingest {key}", [SUBMIT, "ingest", *map(str, files)], env, log_dir)
    say(f"job on {label} ...")
    run, spark = timed_job(f"job {key}", [], env, log_dir)
    record = {**last_run(env), "spark": spark}
    if record["rows_read"] != rows or record["mode"] != "incremental":
        raise BenchError(f"the run on {label} did not read just the new rows: {record}")
    say(f"  {run.seconds:.1f} s" + describe_spark_jobs(spark))
    return measured(key, f"job: incremental run, {label}", rows, run, record)


def small_runs(
    env: Mapping[str, str], log_dir: Path, files: Sequence[Sequence[Path]], rows: int
) -> Measurement:
    """The small, frequent case, once per entry of ``files`` (each run after its own ingest):
    one run's time moves by a quarter from run to run on a small VM, so the median run is the
    measure (seconds, memory, CPU, Spark jobs; of an even number, the slower middle one), and
    every run's seconds and Spark jobs are kept beside it, with the Delta checkpoints written
    inside its commits (Delta writes one at every DELTA_CHECKPOINT_INTERVAL-th version of a
    table; a run that does pays 3-4 s for it, docs/performance.md)."""
    runs = []
    for index, run_files in enumerate(files):
        key = "small_run" if index == 0 else f"small_run_{index + 1}"
        label = f"{rows:,} new rows ({index + 1} of {len(files)})"
        runs.append(incremental_run(env, log_dir, key, run_files, rows, label))
    median = sorted(runs, key=lambda run: run.seconds)[len(runs) // 2]
    each = [
        {
            "seconds": round(run.seconds, 1),
            "spark_jobs": (run.detail.get("spark") or {}).get("spark_jobs"),
            "delta_checkpoints": checkpoints_in_commits(run.detail),
        }
        for run in runs
    ]
    if len(runs) > 1:
        say(f"  median of {len(runs)}: {median.seconds:.1f} s")
    return dataclasses.replace(
        median,
        key="small_run",
        label=f"job: incremental run, {rows:,} new rows (median of {len(runs)})",
        detail={**median.detail, "runs": each},
    )


DELTA_CHECKPOINT_INTERVAL = 10  # Delta's default delta.checkpointInterval, the jobs' tables' own


def checkpoints_in_commits(record: Mapping[str, Any]) -> int:
    """How many of a run's two output commits (its run record's versions) Delta followed with a
    checkpoint."""
    versions = (record.get("curated_version_written"), record.get("quarantine_version_written"))
    return sum(1 for version in versions if version and version % DELTA_CHECKPOINT_INTERVAL == 0)


SMALL_RUN_ROWS = 1_000  # the "a run on <= 1,000 new rows"
# The 1,000-row runs' inputs take seeds 98_000, 98_001, ...: their ids (TXN-<seed>-<n>) stay
# apart from each other's and below the 1% run's (seed 99_000), so each run's rows are all new.
SMALL_RUN_FIRST_SEED = 98_000
SMALL_RUN_SEEDS = 1_000
STREAM_SPACING_SECONDS = 3.0  # between two files landed for the stream's latency
STREAM_FIRST_SEED = 100_000  # above the batch measures' seeds (99_000 the highest)
CORRECTED_SHARE = 0.001  # of the curated transactions, re-sent with new amounts


def corrections_run(
    env: Mapping[str, str], data_dir: Path, log_dir: Path, curated_path: str
) -> Measurement:
    """0.1% of the curated transactions re-sent with new amounts, spread over every date, then an
    incremental run: its time, and the share of curated's bytes its MERGE rewrote."""
    s3 = s3_from_env(env)
    path = data_dir / "corrections.csv"
    count = write_corrections(s3, curated_path, path, CORRECTED_SHARE)
    bytes_before = table_bytes(s3, curated_path)
    run = incremental_run(env, log_dir, "corrections", [path], count, "0.1% corrections")
    if run.detail["rows_replaced"] != count:
        raise BenchError(f"the corrections run did not replace just the {count} rows: {run.detail}")
    rewrite = commit_rewrite(s3, curated_path, bytes_before)
    say(
        f"  rewrote {rewrite['bytes_removed']:,} of {bytes_before:,} bytes of curated "
        f"({(rewrite['rewritten_share'] or 0):.1%}), wrote {rewrite['bytes_added']:,} bytes "
        f"and {rewrite['deletion_vectors_added']:,} deletion vectors for {count:,} corrections"
    )
    return dataclasses.replace(run, detail={**run.detail, "curated_rewrite": rewrite})


def plain_join_run(env: Mapping[str, str], out: Path, log_dir: Path, size: int) -> Measurement:
    """The same full run with the merchant lookup joined plainly (today's rows, not the version
    at each event): what the point-in-time join costs."""
    config = out / "plain-join.toml"
    text = (ROOT / "conf" / "enrichment.toml").read_text()
    config.write_text(text.replace("temporal = true\n", ""))
    say(f"job --full on {size:,} rows, plain merchant join ...")
    run = timed(
        "job full plain join",
        [SUBMIT, "batch_enrich", "--full"],
        {**env, "ENRICH_CONFIG": str(config)},
        log_dir,
    )
    say(f"  {run.seconds:.1f} s")
    return measured("plain_join", "job: full run, plain (not temporal) join", size, run)


def stream_measures(
    env: Mapping[str, str],
    args: argparse.Namespace,
    log_dir: Path,
    landing_files: Sequence[Path],
    burst_files: Sequence[Path],
    burst_rows: int,
) -> dict[str, Measurement]:
    """The streaming job on the bench's tables: latency per landed file, then a burst."""
    say(
        f"stream (--trigger {stream.TRIGGER}): a first file, then {len(landing_files) - 1} files "
        f"of {args.stream_file_rows:,} rows landed {STREAM_SPACING_SECONDS:g} s apart, then "
        f"{burst_rows:,} rows at once ..."
    )
    stream_env = {
        **env,
        "LANDING_PATH": f"{args.raw_location}/landing/",
        "STREAM_CHECKPOINT_PATH": f"{args.output_location}/_checkpoints/stream",
    }
    try:
        found = stream.measure(
            SUBMIT,
            stream_env,
            log_dir / "stream",
            landing_files[0],
            landing_files[1:],
            burst_files,
            burst_rows,
            STREAM_SPACING_SECONDS,
        )
    except stream.StreamBenchError as error:
        raise BenchError(f"stream: {error}") from None
    say(
        f"  first file after the start {found['first_file_latency_seconds']} s; then "
        f"latency p50 {found['latency_p50_seconds']} s, p95 {found['latency_p95_seconds']} s; "
        f"burst {found['rows_per_second']} rows/s over {found['burst_micro_batches']} micro-batch(es)"
    )
    files = found["files"]
    return {
        "stream_first": Measurement(
            "stream_first",
            "stream: first file after a start (cold JVM)",
            0,
            found["first_file_latency_seconds"],
            None,
            found,
        ),
        "stream_latency": Measurement(
            "stream_latency",
            f"stream: landing -> committed, p95 of {files}",
            0,  # a latency: no rows/s
            found["latency_p95_seconds"],
            None,
            found,
        ),
        "stream_burst": Measurement(
            "stream_burst",
            "stream: sustained, a burst of 1% new rows",
            burst_rows,
            found["burst_seconds"],
            None,
            found,
        ),
    }


def machine() -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    project = load_pyproject()
    pins = [
        *project["project"]["dependencies"],
        *project["project"]["optional-dependencies"]["bench"],
    ]
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": pins,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def default_sizes(rows: int) -> list[int]:
    return sorted({max(1, rows // 10), max(1, rows // 3), rows})


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="largest size (default 10M)")
    parser.add_argument("--merchants", type=int, default=100_000, help="merchants in the lookup")
    parser.add_argument(
        "--sizes", help="comma-separated sizes for the line fit (default ROWS/10, ROWS/3, ROWS)"
    )
    parser.add_argument(
        "--course-rows", type=int, default=1_000_000, help="rows for pandas + to_sql (default 1M)"
    )
    parser.add_argument("--summary-rows", type=int, default=200_000, help="rows for the COPY path")
    parser.add_argument("--loop-rows", type=int, default=20_000, help="rows for the INSERT loop")
    parser.add_argument(
        "--stream-files", type=int, default=20, help="files landed one by one for the stream"
    )
    parser.add_argument(
        "--stream-file-rows", type=int, default=1000, help="rows in each of those files"
    )
    parser.add_argument(
        "--small-runs",
        type=int,
        default=3,
        help="1,000-row runs, each after its own ingest; the median one is reported (default 3)",
    )
    parser.add_argument("--database", default="enrich_bench", help="database to (re)create")
    parser.add_argument("--raw-location", default="s3a://raw-data-bucket/bench")
    parser.add_argument("--output-location", default="s3a://curated-data-bucket/bench")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench")
    args = parser.parse_args(argv)
    args.sizes = (
        sorted({int(s) for s in args.sizes.split(",")}) if args.sizes else default_sizes(args.rows)
    )
    if not 1 <= args.small_runs < SMALL_RUN_SEEDS:
        parser.error(f"--small-runs must be 1..{SMALL_RUN_SEEDS - 1}")
    if len(args.sizes) < 3 and not os.environ.get("BENCH_ALLOW_FEW_SIZES"):
        parser.error("the line fit needs at least three sizes")
    if args.sizes[-1] != args.rows:
        args.sizes = sorted({*args.sizes, args.rows})
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    out: Path = args.out
    data_dir, log_dir = out / "data", out / "logs"
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    base_env = dict(os.environ)
    tables = {
        "RAW_TABLE_PATH": f"{args.raw_location}/raw",
        "CURATED_TABLE_PATH": f"{args.output_location}/curated",
        "QUARANTINE_TABLE_PATH": f"{args.output_location}/quarantine",
    }
    floor_path = f"{args.output_location}/floor"
    peer_paths = (f"{args.output_location}/peer_curated", f"{args.output_location}/peer_quarantine")
    say(f"sizes {', '.join(f'{s:,}' for s in args.sizes)} rows, {args.merchants:,} merchants")
    env = {**prepare_database(base_env, args.database, args.merchants), **tables}
    for location in (args.raw_location, args.output_location):
        empty_prefix(env, location)

    started = time.perf_counter()
    increments, previous = [], 0
    for index, size in enumerate(args.sizes):
        increments.append(
            generate(data_dir, f"size{index}", size - previous, args.merchants, 1000 * (index + 1))
        )
        previous = size
    one_percent_rows = max(1, args.rows // 100)
    new_files = generate(data_dir, "new", one_percent_rows, args.merchants, 99_000)
    small_rows = min(SMALL_RUN_ROWS, one_percent_rows)
    small_files = [
        generate(data_dir, f"small{i}", small_rows, args.merchants, SMALL_RUN_FIRST_SEED + i)
        for i in range(args.small_runs)
    ]
    # The stream's files come after every batch measure's, and their ids sort after those
    # batches' (the generator's ids are TXN-<seed>-<n>), as time-ordered ids do.
    landing_files = [
        generate(data_dir, f"landing{i:02d}", args.stream_file_rows, args.merchants, seed)[0]
        for i, seed in enumerate(
            range(STREAM_FIRST_SEED, STREAM_FIRST_SEED + 1 + args.stream_files)
        )
    ]
    burst_files = generate(
        data_dir, "burst", one_percent_rows, args.merchants, STREAM_FIRST_SEED + 10_000
    )
    say(f"generated {args.rows + one_percent_rows:,} rows in {time.perf_counter() - started:.0f} s")

    results: dict[str, Measurement] = {}
    job_runs: list[Measurement] = []
    floor_runs: list[Measurement] = []
    ingests: list[dict[str, Any]] = []
    raw_path = tables["RAW_TABLE_PATH"]
    floor_script = str(ROOT / "scripts" / "bench" / "floor.py")

    say("Spark start-only: a session opened and closed ...")
    run = timed(
        "spark start", [SUBMIT, str(ROOT / "scripts" / "bench" / "start_only.py")], env, log_dir
    )
    results["spark_start"] = measured("spark_start", "Spark start-only (session, no work)", 0, run)
    say(f"  {run.seconds:.1f} s")

    for size, files in zip(args.sizes, increments, strict=True):
        run = timed(f"ingest to {size}", [SUBMIT, "ingest", *map(str, files)], env, log_dir)
        ingests.append({"rows_total": size, "seconds": round(run.seconds, 1)})
        say(f"ingested up to {size:,} rows in {run.seconds:.0f} s; job --full on {size:,} rows ...")
        # The headline run (the largest size) is the one profiled: where its CPU goes.
        recording = log_dir / "job_full.jfr" if size == args.sizes[-1] else None
        run, spark = timed_job(f"job full {size}", ["--full"], env, log_dir, recording)
        record = {**last_run(env), "spark": spark}
        if record["rows_read"] != size:
            raise BenchError(f"the job read {record['rows_read']} rows, expected {size}")
        job_runs.append(
            measured(JOB, "job: full run (make submit-batch --full)", size, run, record)
        )
        say(
            f"  {run.seconds:.1f} s, {size / run.seconds:,.0f} rows/s, peak {run.peak_rss_mb:,.0f} MB"
            + describe_spark_jobs(spark)
            + describe_profile(spark)
        )
        if size == args.sizes[0]:
            results["plain_join"] = plain_join_run(env, out, log_dir, size)
        say(f"Spark floor: Delta copy of {size:,} rows ...")
        run = timed(f"floor {size}", [SUBMIT, floor_script, raw_path, floor_path], env, log_dir)
        floor_runs.append(measured("floor", "Spark floor: raw Delta -> Delta copy", size, run))
        say(f"  {run.seconds:.1f} s, {size / run.seconds:,.0f} rows/s")
    results[JOB] = job_runs[-1]
    results["floor"] = floor_runs[-1]
    job_summary = summary_rows(env)

    say("peer: DuckDB + delta-rs ...")
    run = timed("peer", [PY, "-m", "scripts.bench.peer", raw_path, *peer_paths], env, log_dir)
    peer_counts = json.loads(run.stdout.strip().splitlines()[-1])
    job_counts = {k: results[JOB].detail[k] for k in peer_counts if k in results[JOB].detail}
    agrees = all(peer_counts[k] == v for k, v in job_counts.items()) and (
        summary_rows(env) == job_summary
    )
    results["peer"] = measured(
        "peer", "peer: DuckDB + delta-rs, same enrichment", args.rows, run,
        {**peer_counts, "same_counts_and_summary_as_job": agrees},
    )  # fmt: skip
    say(f"  {run.seconds:.1f} s; same counts and summary as the job: {agrees}")
    if not agrees:
        raise BenchError(f"the peer's result differs from the job's: {peer_counts} vs {job_counts}")

    course_rows = min(args.course_rows, args.rows)
    say(f"course's method: pandas + to_sql on {course_rows:,} rows ...")
    run = timed(
        "course", [PY, "-m", "scripts.bench.course", "bench_course", str(course_rows),
                   *map(str, [f for files in increments for f in files])],
        env, log_dir,
    )  # fmt: skip
    results["course"] = measured(
        "course", "course: pandas read + to_sql (50k chunks)", course_rows, run,
        json.loads(run.stdout.strip().splitlines()[-1]),
    )  # fmt: skip
    say(f"  {run.seconds:.1f} s")

    say("job with no new data ...")
    run = timed("job noop", [SUBMIT, "batch_enrich"], env, log_dir)
    record = last_run(env)
    if record["status"] != "noop":
        raise BenchError(f"the rerun with no new data was not a no-op: {record}")
    results["noop"] = measured("noop", "job: rerun, no new data", 0, run, record)
    say(f"  {run.seconds:.1f} s")

    results["one_percent"] = incremental_run(
        env, log_dir, "one_percent", new_files, one_percent_rows, "1% new data"
    )
    results["small_run"] = small_runs(env, log_dir, small_files, small_rows)

    results["corrections"] = corrections_run(env, data_dir, log_dir, tables["CURATED_TABLE_PATH"])

    results.update(
        stream_measures(env, args, log_dir, landing_files, burst_files, one_percent_rows)
    )

    say("summary write: COPY against a row-by-row loop ...")
    for m in summary_write(env, args.summary_rows, min(args.loop_rows, args.summary_rows)):
        results[m.key] = m

    points = [(m.rows, m.seconds) for m in job_runs]
    fit = fit_line(points)
    floor_fit = fit_line([(m.rows, m.seconds) for m in floor_runs])
    found = targets(results, points)
    info = machine()
    settings = {
        "rows": args.rows, "merchants": args.merchants, "sizes": args.sizes,
        "course_rows": course_rows, "spark_master": env.get("SPARK_MASTER", "local[2]"),
        "spark_driver_memory": env.get("SPARK_DRIVER_MEMORY", "4g"), "ingests": ingests,
    }  # fmt: skip
    report = to_json(info, settings, results, job_runs, fit, found, floor_runs, floor_fit)
    out.mkdir(parents=True, exist_ok=True)
    json_path, chart_path = out / f"bench-{stamp}.json", out / f"bench-{stamp}.png"
    json_path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    title = f"{info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB; {args.rows:,} rows"
    draw_chart(chart_path, results, job_runs, fit, title, floor_runs)
    shutil.copyfile(json_path, out / "latest.json")
    shutil.copyfile(chart_path, out / "latest.png")

    print(f"\nBench on {title}\n")
    print(format_table(results))
    print(
        f"\nJob full run time = {fit.fixed_seconds:.1f} s + {fit.seconds_per_million:.2f} s per "
        f"million rows (R^2 {fit.r_squared:.3f}; sizes {', '.join(f'{s:,}' for s in args.sizes)})"
    )
    print(
        f"Spark floor time   = {floor_fit.fixed_seconds:.1f} s + "
        f"{floor_fit.seconds_per_million:.2f} s per million rows (R^2 {floor_fit.r_squared:.3f})"
    )
    print("\nTargets (2 cores)\n" + format_targets(found))
    print(f"\nResults: {json_path}\nChart:   {chart_path}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as error:
        print(f"bench: error: {error}", file=sys.stderr)
        sys.exit(1)
