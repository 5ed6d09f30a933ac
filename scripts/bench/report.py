"""What `make bench` prints and saves: the results table, the line fit, the targets, the chart.

Pure functions over the measurements (unit-tested in tests/unit/test_bench_report.py), plus the
chart, drawn with matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

JOB = "job"


@dataclass(frozen=True)
class Measurement:
    key: str  # job, floor, peer, course, noop, one_percent, summary_copy, summary_row_by_row
    label: str
    rows: int
    seconds: float
    peak_rss_mb: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def rows_per_second(self) -> float | None:
        return self.rows / self.seconds if self.rows and self.seconds > 0 else None


@dataclass(frozen=True)
class LineFit:
    fixed_seconds: float  # a: the cost of a run with no rows
    seconds_per_million: float  # b, per million rows
    r_squared: float

    def predict(self, rows: int) -> float:
        return self.fixed_seconds + self.seconds_per_million * rows / 1e6


def fit_line(points: Sequence[tuple[int, float]]) -> LineFit:
    """Least-squares time = a + b * rows over (rows, seconds) points (at least two sizes)."""
    if len({rows for rows, _ in points}) < 2:
        raise ValueError("a line fit needs at least two different sizes")
    n = len(points)
    xs = [rows / 1e6 for rows, _ in points]
    ys = [seconds for _, seconds in points]
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    slope = sxy / sxx
    intercept = mean_y - slope * mean_x
    total = sum((y - mean_y) ** 2 for y in ys)
    residual = sum((y - (intercept + slope * x)) ** 2 for x, y in zip(xs, ys, strict=True))
    return LineFit(intercept, slope, 1.0 - residual / total if total > 0 else 1.0)


def growth_exponent(points: Sequence[tuple[int, float]]) -> float:
    """k in time ~ rows^k between the smallest and largest size: 1 is linear, >1 faster."""
    (small_rows, small_s), (large_rows, large_s) = min(points), max(points)
    return math.log(large_s / small_s) / math.log(large_rows / small_rows)


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


@dataclass(frozen=True)
class Target:
    name: str
    goal: str
    measured: str
    met: bool | None  # None: not measured in this run


def _fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def targets(
    results: dict[str, Measurement], job_points: Sequence[tuple[int, float]]
) -> list[Target]:
    """The issue's targets for 2 cores, each with what this run measured."""
    job = results[JOB].rows_per_second
    out: list[Target] = []

    def speed_target(key: str, name: str, minimum: float) -> None:
        other = results.get(key)
        value = ratio(job, other.rows_per_second if other else None)
        out.append(
            Target(
                name,
                f">= {minimum:g}x",
                _fmt_ratio(value),
                None if value is None else value >= minimum,
            )
        )

    speed_target("floor", "job rows/s vs Spark floor", 0.6)
    speed_target("peer", "job rows/s vs DuckDB + delta-rs peer", 0.3)
    speed_target("course", "job rows/s vs pandas to_sql", 5)
    noop = results.get("noop")
    out.append(
        Target(
            "run with no new data (wall, JVM start included)",
            "<= 10 s",
            "-" if noop is None else f"{noop.seconds:.1f} s",
            None if noop is None else noop.seconds <= 10,
        )
    )
    one_percent = results.get("one_percent")
    share = ratio(one_percent.seconds if one_percent else None, results[JOB].seconds)
    out.append(
        Target(
            "run on 1% new data vs full run",
            "<= 10%",
            "-" if share is None else f"{share:.1%}",
            None if share is None else share <= 0.10,
        )
    )
    out.append(
        Target(
            "run on 1% new data (wall, JVM start included)",
            "<= 35 s",
            "-" if one_percent is None else f"{one_percent.seconds:.1f} s",
            None if one_percent is None else one_percent.seconds <= 35,
        )
    )
    for key, name, most in ((JOB, "full", 15), ("one_percent", "incremental", 12)):
        jobs = spark_jobs(results.get(key))
        out.append(
            Target(
                f"Spark jobs per {name} run",
                f"<= {most}",
                "-" if jobs is None else str(jobs),
                None if jobs is None else jobs <= most,
            )
        )
    copy = results.get("summary_copy")
    copy_speed = copy.rows_per_second if copy else None
    out.append(
        Target(
            "summary write to Postgres",
            ">= 100,000 rows/s",
            "-" if copy_speed is None else f"{copy_speed:,.0f} rows/s",
            None if copy_speed is None else copy_speed >= 100_000,
        )
    )
    if len({rows for rows, _ in job_points}) >= 2:
        exponent = growth_exponent(job_points)
        out.append(
            Target(
                "growth with rows (time ~ rows^k)",
                "k <= 1",
                f"k = {exponent:.2f}",
                exponent <= 1.05,  # a 5% allowance for run-to-run noise
            )
        )
    return out


def spark_jobs(measurement: Measurement | None) -> int | None:
    """The Spark jobs a job run started, from its event log (scripts/bench/events.py)."""
    spark = None if measurement is None else measurement.detail.get("spark")
    return None if not spark else int(spark["spark_jobs"])


def format_table(results: dict[str, Measurement]) -> str:
    job_speed = results[JOB].rows_per_second
    header = (
        f"{'measure':<44} {'rows':>12} {'wall s':>9} {'rows/s':>12} {'job is':>8} {'peak MB':>8}"
    )
    lines = [header, "-" * len(header)]
    for m in results.values():
        speed = m.rows_per_second
        versus = _fmt_ratio(ratio(job_speed, speed)) if m.key in _COMPARED_KEYS else ""
        lines.append(
            f"{m.label:<44} {m.rows:>12,} {m.seconds:>9.1f} "
            f"{'-' if speed is None else f'{speed:,.0f}':>12} {versus:>8} "
            f"{'-' if m.peak_rss_mb is None else f'{m.peak_rss_mb:,.0f}':>8}"
        )
    return "\n".join(lines)


def format_targets(found: Sequence[Target]) -> str:
    lines = []
    for t in found:
        verdict = {True: "met", False: "MISSED", None: "not measured"}[t.met]
        lines.append(f"  {t.name:<48} goal {t.goal:<18} measured {t.measured:<18} {verdict}")
    return "\n".join(lines)


def to_json(
    machine: dict[str, Any],
    settings: dict[str, Any],
    results: dict[str, Measurement],
    job_runs: Sequence[Measurement],
    fit: LineFit | None,
    found: Sequence[Target],
) -> dict[str, Any]:
    def measurement(m: Measurement) -> dict[str, Any]:
        return {**asdict(m), "rows_per_second": m.rows_per_second}

    return {
        "machine": machine,
        "settings": settings,
        "results": {key: measurement(m) for key, m in results.items()},
        "job_full_runs": [measurement(m) for m in job_runs],
        "fit": None if fit is None else asdict(fit),
        "targets": [asdict(t) for t in found],
    }


def draw_chart(
    path: Path,
    results: dict[str, Measurement],
    job_runs: Sequence[Measurement],
    fit: LineFit | None,
    title: str,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    speeds = [(m.label, m.rows_per_second) for m in results.values() if m.key in _SPEED_KEYS]
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    names = [label for label, _ in speeds]
    values = [speed or 0.0 for _, speed in speeds]
    bars = left.barh(
        names, values, color=["#1f77b4" if n.startswith("job") else "#999" for n in names]
    )
    left.bar_label(bars, labels=[f"{v:,.0f}" for v in values], padding=3, fontsize=8)
    left.set_xlabel("rows per second (higher is better)")
    left.invert_yaxis()
    left.set_title("Throughput on the same data")
    sizes = [m.rows / 1e6 for m in job_runs]
    right.plot(sizes, [m.seconds for m in job_runs], "o", label="job, full run")
    if fit is not None and sizes:
        xs = [0.0, max(sizes)]
        right.plot(
            xs,
            [fit.fixed_seconds + fit.seconds_per_million * x for x in xs],
            "-",
            label=f"fit: {fit.fixed_seconds:.1f} s + {fit.seconds_per_million:.1f} s/M rows",
        )
    for key, marker in (("noop", "s"), ("one_percent", "^")):
        if key in results:
            m = results[key]
            right.plot([m.rows / 1e6], [m.seconds], marker, label=m.label)
    right.set_xlabel("raw rows read (millions)")
    right.set_ylabel("wall seconds")
    right.set_title("Job wall time against rows")
    right.legend(fontsize=8)
    right.set_xlim(left=0)
    right.set_ylim(bottom=0)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


_SPEED_KEYS = ("job", "floor", "peer", "course")
_COMPARED_KEYS = ("floor", "peer", "course")  # the job's rows/s as a multiple of theirs
