"""A job run's Spark jobs, read from its event log: how many, and the time each phase of the run
(the ``enrich.phase`` local property the batch job sets) kept Spark busy.

The bench turns the event log on for the job's runs with JVM system properties
(``-Dspark.eventLog.*`` in ENRICH_DRIVER_JVM_OPTS: SparkConf reads ``spark.*`` properties), so
the job's command line and configuration stay what `make submit-batch` uses.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from jobs.runs.batch_writes import PHASE_PROPERTY

NO_PHASE = "outside the run's phases"
SKIPPED = ("appstatus", ".")  # rolling logs' status marker; Hadoop's .crc side files


def event_log_options(directory: Path) -> str:
    """JVM options that make a spark-submit write its event log, uncompressed, to ``directory``."""
    return (
        f"-Dspark.eventLog.enabled=true -Dspark.eventLog.dir=file://{directory.resolve()} "
        "-Dspark.eventLog.compress=false -Dspark.eventLog.rolling.enabled=false"
    )


def _busy_seconds(intervals: Iterable[tuple[int, int]]) -> float:
    """The time covered by the (start, end) millisecond intervals, overlaps counted once."""
    total, current_start, current_end = 0, None, None
    for start, end in sorted(intervals):
        if current_end is None or start > current_end:
            if current_end is not None and current_start is not None:
                total += current_end - current_start
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    if current_end is not None and current_start is not None:
        total += current_end - current_start
    return total / 1000


def summarize_events(events: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Spark jobs in all, seconds from the application's start to its first job, and per phase
    the jobs and the seconds they kept Spark busy."""
    app_start: int | None = None
    started: dict[int, tuple[int, str]] = {}
    ended: dict[int, int] = {}
    for event in events:
        kind = event.get("Event")
        if kind == "SparkListenerApplicationStart":
            app_start = int(event["Timestamp"])
        elif kind == "SparkListenerJobStart":
            phase = (event.get("Properties") or {}).get(PHASE_PROPERTY) or NO_PHASE
            started[int(event["Job ID"])] = (int(event["Submission Time"]), str(phase))
        elif kind == "SparkListenerJobEnd":
            ended[int(event["Job ID"])] = int(event["Completion Time"])
    phases: dict[str, list[tuple[int, int]]] = {}
    for job_id, (submitted, phase) in started.items():
        phases.setdefault(phase, []).append((submitted, ended.get(job_id, submitted)))
    first_job = min((submitted for submitted, _ in started.values()), default=None)
    return {
        "spark_jobs": len(started),
        "seconds_before_first_job": (
            None if app_start is None or first_job is None else (first_job - app_start) / 1000
        ),
        "phases": {
            phase: {"spark_jobs": len(spans), "busy_seconds": round(_busy_seconds(spans), 2)}
            for phase, spans in sorted(phases.items())
        },
    }


def read_event_log(directory: Path) -> dict[str, Any] | None:
    """The summary of the one application's event log in ``directory`` (None if the run
    started no Spark). Spark 4 writes a folder of rolled files (``eventlog_v2_<app>/events_N_*``)
    unless rolling is off; both are read, in order."""
    files = sorted(
        (p for p in directory.rglob("*") if p.is_file() and not p.name.startswith(SKIPPED)),
        key=lambda p: (len(p.name), p.name),
    )
    if not files:
        return None

    def events() -> Iterator[dict[str, Any]]:
        for path in files:
            with path.open() as handle:
                yield from (json.loads(line) for line in handle if line.strip())

    return summarize_events(events())


def describe_spark_jobs(summary: Mapping[str, Any] | None) -> str:
    """``; 14 Spark jobs (classify 8 in 2.1 s, curated 4 in 6.0 s, ...)`` for the bench's log."""
    if not summary:
        return ""
    phases = ", ".join(
        f"{name} {p['spark_jobs']} in {p['busy_seconds']:.1f} s"
        for name, p in summary["phases"].items()
    )
    return f"; {summary['spark_jobs']} Spark jobs ({phases})"
