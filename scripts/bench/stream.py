"""The streaming job in `make bench`: latency from a file landing to its rows being curated and
its summary rows committed in PostgreSQL, and sustained throughput.

The stream (scripts/submit.sh stream_enrich --trigger 5s) runs on the bench's tables, as they
are after the batch measures. One file lands first and is waited for: its latency is the first
micro-batch's after a start, in a cold JVM, reported on its own. Then files land one by one, a
few seconds apart, on the running stream; each file's latency is its micro-batch's commit time
in ``pipeline.stream_batches`` (the transaction that also holds its summary rows) minus the
time its upload finished. Then a burst of larger files lands at once, and the throughput is
their rows over the time from the first landing to the last commit.
The stream is stopped with SIGTERM and must exit 0.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg2

from jobs.adapters.object_store import s3_client, split_path
from jobs.config.postgres_url import target_from_env
from jobs.config.settings import s3_from_env

TRIGGER = "5s"


class StreamBenchError(Exception):
    pass


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile (``share`` in 0..1) of ``values``."""
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def _committed(env: Mapping[str, str]) -> dict[str, tuple[datetime, int]]:
    """Every file of a committed micro-batch: (commit time, batch id)."""
    target = target_from_env(env)
    with psycopg2.connect(**target.psycopg2_kwargs()) as conn, conn.cursor() as cur:
        cur.execute("SELECT batch_id, committed_at, details FROM pipeline.stream_batches")
        rows = cur.fetchall()
    conn.close()
    return {
        file: (committed, batch) for batch, committed, details in rows for file in details["files"]
    }


def _land(env: Mapping[str, str], file: Path) -> tuple[str, datetime]:
    s3 = s3_from_env(env)
    bucket, prefix = split_path(env["LANDING_PATH"])
    key = f"{prefix}/{file.name}"
    s3_client(s3).upload_file(str(file), bucket, key)
    return f"s3a://{bucket}/{key}", datetime.now(UTC)


def _wait_committed(
    env: Mapping[str, str], files: Sequence[str], stream: subprocess.Popen[bytes], timeout: float
) -> dict[str, tuple[datetime, int]]:
    deadline = time.monotonic() + timeout
    while True:
        done = _committed(env)
        if all(f in done for f in files):
            return done
        if stream.poll() is not None:
            raise StreamBenchError(f"the stream exited ({stream.returncode}) before committing")
        if time.monotonic() > deadline:
            missing = [f for f in files if f not in done]
            raise StreamBenchError(
                f"{len(missing)} landed file(s) not committed in {timeout:.0f} s"
            )
        time.sleep(0.5)


def _wait_started(log_path: Path, stream: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while " started (" not in log_path.read_text(errors="replace"):
        if stream.poll() is not None or time.monotonic() > deadline:
            raise StreamBenchError(f"the stream did not start; log {log_path}")
        time.sleep(0.5)


def measure(
    submit: str,
    env: Mapping[str, str],
    log_dir: Path,
    first_file: Path,
    latency_files: Sequence[Path],
    burst_files: Sequence[Path],
    burst_rows: int,
    spacing_seconds: float,
) -> dict[str, Any]:
    """Run the stream, land the files, and return what was measured."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / "stream.log"
    with log_path.open("wb") as log:
        stream = subprocess.Popen(
            [submit, "stream_enrich", "--trigger", TRIGGER],
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_started(log_path, stream, 300)
        path, at = _land(env, first_file)
        first_latency = (_wait_committed(env, [path], stream, 600)[path][0] - at).total_seconds()
        landed: dict[str, datetime] = {}
        for file in latency_files:
            path, at = _land(env, file)
            landed[path] = at
            time.sleep(spacing_seconds)
        done = _wait_committed(env, list(landed), stream, 900)
        latencies = [(done[path][0] - at).total_seconds() for path, at in landed.items()]

        burst_started = datetime.now(UTC)
        burst = [_land(env, file)[0] for file in burst_files]
        done = _wait_committed(env, burst, stream, 1800)
        burst_seconds = (max(done[path][0] for path in burst) - burst_started).total_seconds()
        batches = len({done[path][1] for path in burst})
    finally:
        if stream.poll() is None:
            os.killpg(stream.pid, signal.SIGTERM)
        code = stream.wait(timeout=600)
    if code != 0:
        raise StreamBenchError(f"the stream stopped with exit {code} on SIGTERM; log {log_path}")
    return {
        "trigger": TRIGGER,
        "first_file_latency_seconds": round(first_latency, 1),
        "files": len(latencies),
        "spacing_seconds": spacing_seconds,
        "latency_p50_seconds": round(percentile(latencies, 0.5), 1),
        "latency_p95_seconds": round(percentile(latencies, 0.95), 1),
        "latency_max_seconds": round(max(latencies), 1),
        "burst_files": len(burst),
        "burst_rows": burst_rows,
        "burst_seconds": round(burst_seconds, 1),
        "burst_micro_batches": batches,
        "rows_per_second": round(burst_rows / burst_seconds) if burst_seconds > 0 else None,
    }
