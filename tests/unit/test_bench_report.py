"""The bench's arithmetic and verdicts (scripts/bench/report.py), on hand-made measurements."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.bench.events import NO_PHASE, describe_spark_jobs, summarize_events
from scripts.bench.report import (
    Measurement,
    draw_chart,
    fit_line,
    format_table,
    format_targets,
    growth_exponent,
    targets,
)


def test_the_line_fit_recovers_fixed_cost_and_slope() -> None:
    points = [(1_000_000, 30.0 + 12.0), (3_000_000, 30.0 + 36.0), (10_000_000, 30.0 + 120.0)]
    fit = fit_line(points)
    assert fit.fixed_seconds == pytest.approx(30.0)
    assert fit.seconds_per_million == pytest.approx(12.0)
    assert fit.r_squared == pytest.approx(1.0)
    assert fit.predict(5_000_000) == pytest.approx(90.0)


def test_the_line_fit_reports_a_poor_fit_and_refuses_one_size() -> None:
    fit = fit_line([(1, 10.0), (2, 30.0), (3, 10.0)])
    assert fit.r_squared == pytest.approx(0.0)
    with pytest.raises(ValueError, match="two different sizes"):
        fit_line([(5, 1.0), (5, 2.0)])


def test_growth_exponent_tells_linear_from_quadratic() -> None:
    assert growth_exponent([(1_000, 10.0), (10_000, 100.0)]) == pytest.approx(1.0)
    assert growth_exponent([(1_000, 1.0), (10_000, 100.0)]) == pytest.approx(2.0)


def _results(**seconds: float) -> dict[str, Measurement]:
    rows = {"job": 1_000_000, "floor": 1_000_000, "peer": 1_000_000, "course": 100_000}
    rows |= {"noop": 0, "one_percent": 10_000, "summary_copy": 200_000, "spark_start": 0}
    rows |= {"small_run": 1_000, "corrections": 1_000}
    # Spark jobs, as scripts/bench/events.py reads them
    jobs = {"job": 14, "one_percent": 11, "small_run": 12, "corrections": 13}
    return {
        key: Measurement(
            key,
            key,
            rows[key],
            value,
            detail={"spark": {"spark_jobs": jobs[key]}} if key in jobs else {},
            cpu_seconds={"job": 2 * value, "minio": 1.0},
        )
        for key, value in seconds.items()
    }


def test_targets_compare_rows_per_second_and_wall_times() -> None:
    results = _results(
        job=100.0, floor=80.0, peer=25.0, course=20.0, noop=6.0, one_percent=12.0, summary_copy=1.0,
        spark_start=4.0, small_run=16.0, corrections=40.0,
    )  # fmt: skip
    results["corrections"].detail["curated_rewrite"] = {"rewritten_share": 0.25}
    found = {t.name: t for t in targets(results, [(100_000, 20.0), (1_000_000, 100.0)])}
    floor = found["job rows/s vs Spark floor"]
    assert (floor.measured, floor.met) == ("0.80x", True)
    peer = found["job rows/s vs DuckDB + delta-rs peer"]
    assert (peer.measured, peer.met) == ("0.25x", False)
    # the course did 100k rows in 20 s (5k rows/s); the job 10k rows/s
    course = found["job rows/s vs pandas to_sql"]
    assert (course.measured, course.met) == ("2.00x", False)
    assert found["run with no new data (wall, JVM start included)"].met is True
    # above a 4 s Spark start: (12 - 4) / (100 - 4)
    marginal = found["run on 1% new data: marginal cost vs full run's"]
    assert (marginal.measured, marginal.met) == ("8.3%", True)
    assert found["run on <= 1,000 new rows (wall, JVM start included)"].met is False  # 16 > 15
    assert found["run on 0.1% corrections, every date (wall)"].met is True
    rewrite = found["curated bytes rewritten by the corrections"]
    assert (rewrite.measured, rewrite.met) == ("25.0%", False)
    assert found["run on 1% new data (wall, JVM start included)"].met is True
    assert (found["Spark jobs per full run"].measured, found["Spark jobs per full run"].met) == (
        "14",
        True,
    )
    incremental = found["Spark jobs per incremental run"]  # the most of the three: 13 > 12
    assert (incremental.measured, incremental.met) == ("13", False)
    assert found["summary write to Postgres"].met is True
    growth = found["growth with rows (time ~ rows^k)"]
    assert growth.met is True and growth.measured == "k = 0.70"


def test_targets_not_measured_are_said_to_be() -> None:
    found = targets({"job": Measurement("job", "job", 1_000_000, 10.0)}, [(1, 10.0)])
    assert {t.met for t in found} == {None}
    assert "not measured" in format_targets(found)


def test_the_table_shows_speeds_and_the_job_s_ratio_to_each(tmp_path: Path) -> None:
    results = _results(job=100.0, floor=50.0, noop=5.0)
    table = format_table(results).splitlines()
    assert table[2].split()[-3:-1] == ["10,000", "-"]  # job: rows/s, no ratio to itself
    assert "0.50x" in table[3]  # the job does half the floor's rows per second
    assert table[4].split()[1:4] == ["0", "5.0", "-"]  # no rows: no speed
    assert table[2].split()[-1] == "200/1/-"  # CPU s of the run, MinIO, PostgreSQL (none read)
    chart = tmp_path / "chart.png"
    draw_chart(chart, results, [results["job"]], fit_line([(1, 1.0), (2, 2.0)]), "title")
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_event_log_gives_jobs_per_phase_with_overlaps_counted_once() -> None:
    def job(job_id: int, start: int, end: int, phase: str | None) -> list[dict[str, object]]:
        properties = {} if phase is None else {"enrich.phase": phase}
        return [
            {"Event": "SparkListenerJobStart", "Job ID": job_id, "Submission Time": start,
             "Properties": properties},
            {"Event": "SparkListenerJobEnd", "Job ID": job_id, "Completion Time": end},
        ]  # fmt: skip

    events = [
        {"Event": "SparkListenerApplicationStart", "Timestamp": 1_000},
        *job(0, 4_000, 5_000, "classify"),
        *job(1, 5_000, 6_500, "classify"),
        *job(2, 7_000, 9_000, "curated"),
        *job(3, 8_000, 10_000, "curated"),  # runs beside job 2 (Delta's parallel jobs)
        *job(4, 11_000, 11_500, None),
    ]
    summary = summarize_events(events)
    assert summary["spark_jobs"] == 5
    assert summary["seconds_before_first_job"] == 3.0
    assert summary["phases"]["classify"] == {"spark_jobs": 2, "busy_seconds": 2.5}
    assert summary["phases"]["curated"] == {"spark_jobs": 2, "busy_seconds": 3.0}
    assert summary["phases"][NO_PHASE]["spark_jobs"] == 1
    assert describe_spark_jobs(summary).startswith("; 5 Spark jobs (classify 2 in 2.5 s")
    assert describe_spark_jobs(None) == ""


def test_stream_latency_percentiles_are_nearest_rank() -> None:
    from scripts.bench.stream import percentile

    latencies = [float(s) for s in range(1, 21)]  # 20 files: 1 s .. 20 s
    assert percentile(latencies, 0.5) == 10.0
    assert percentile(latencies, 0.95) == 19.0
    assert percentile([7.0], 0.95) == 7.0
