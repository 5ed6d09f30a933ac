"""What `make bench` prints and saves: the results table, the line fit, the targets, the chart.

Pure functions over the measurements (unit-tested in tests/unit/test_bench_report.py), plus the
chart, drawn with matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

JOB = "job"
INCREMENTAL_CASES = ("one_percent", "small_run", "corrections")  # the incremental job runs


@dataclass(frozen=True)
class Measurement:
    # job, floor, peer, course, spark_start, noop, one_percent, small_run, corrections,
    # plain_join, stream_first, stream_latency, stream_burst, summary_copy, summary_row_by_row
    key: str
    label: str
    rows: int
    seconds: float
    peak_rss_mb: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)  # job, job_system, minio, postgres

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


def _target(
    name: str,
    wanted: str,
    value: float | None,
    met: Callable[[float], bool],
    shown: Callable[[float], str],
) -> Target:
    """One target and what was measured; "-" and no verdict when the measure was not taken."""
    if value is None:
        return Target(name, wanted, "-", None)
    return Target(name, wanted, shown(value), met(value))


def _at_least(least: float) -> Callable[[float], bool]:
    return lambda value: value >= least


def _at_most(most: float) -> Callable[[float], bool]:
    return lambda value: value <= most


def _in_seconds(value: float) -> str:
    return f"{value:.1f} s"


def targets(
    results: dict[str, Measurement], job_points: Sequence[tuple[int, float]]
) -> list[Target]:
    """The issue's targets for 2 cores, each with what this run measured."""
    job = results[JOB]

    def seconds(key: str) -> float | None:
        return results[key].seconds if key in results else None

    out = []
    for key, name, least in (
        ("floor", "job rows/s vs Spark floor", 0.6),
        ("peer", "job rows/s vs DuckDB + delta-rs peer", 0.3),
        ("course", "job rows/s vs pandas to_sql", 5.0),
    ):
        other = results[key].rows_per_second if key in results else None
        value = ratio(job.rows_per_second, other)
        out.append(_target(name, f">= {least:g}x", value, _at_least(least), _fmt_ratio))
    out += [
        _target(
            "run with no new data (wall, JVM start included)",
            "<= 10 s",
            seconds("noop"),
            _at_most(10),
            _in_seconds,
        ),
        _target(
            "run on 1% new data: marginal cost vs full run's",
            "<= 10%",
            marginal_share(results, "one_percent"),
            _at_most(0.10),
            lambda share: f"{share:.1%}",
        ),
        _target(
            "run on 1% new data (wall, JVM start included)",
            "<= 35 s",
            seconds("one_percent"),
            _at_most(35),
            _in_seconds,
        ),
        _target(
            "run on <= 1,000 new rows (wall, JVM start included)",
            "<= 15 s",
            seconds("small_run"),
            _at_most(15),
            _in_seconds,
        ),
        _target(
            "run on 0.1% corrections, every date (wall)",
            "<= 45 s",
            seconds("corrections"),
            _at_most(45),
            _in_seconds,
        ),
        _target(
            "curated bytes rewritten by the corrections",
            "<= 10%",
            rewritten_share(results.get("corrections")),
            _at_most(0.10),
            lambda share: f"{share:.1%}",
        ),
    ]
    out.append(
        _target(
            "point-in-time join's share of the full run (same size)",
            "<= 15%",
            temporal_share(results, job_points),
            _at_most(0.15),
            lambda share: f"{share:.1%}",
        )
    )
    out.append(
        _target(
            "stream: landing to curated + summary committed, p95",
            "<= 15 s",
            seconds("stream_latency"),
            _at_most(15),
            _in_seconds,
        )
    )
    # An incremental run's count is the most of the bench's three incremental runs.
    incremental = [spark_jobs(results.get(key)) for key in INCREMENTAL_CASES]
    counted = [n for n in incremental if n is not None]
    for name, jobs, most in (
        ("full", spark_jobs(results.get(JOB)), 15),
        ("incremental", max(counted) if counted else None, 12),
    ):
        out.append(
            _target(
                f"Spark jobs per {name} run",
                f"<= {most}",
                jobs,
                _at_most(most),
                lambda n: f"{n:.0f}",
            )
        )
    copy = results.get("summary_copy")
    out.append(
        _target(
            "summary write to Postgres",
            ">= 100,000 rows/s",
            None if copy is None else copy.rows_per_second,
            _at_least(100_000),
            lambda r: f"{r:,.0f} rows/s",
        )
    )
    if len({rows for rows, _ in job_points}) >= 2:
        out.append(
            _target(
                "growth with rows (time ~ rows^k)",
                "k <= 1",
                growth_exponent(job_points),
                _at_most(1.05),  # a 5% allowance for run-to-run noise
                lambda k: f"k = {k:.2f}",
            )
        )
    return out


def marginal_share(results: dict[str, Measurement], key: str) -> float | None:
    """A run's cost above a Spark start with no work, as a share of the full run's."""
    if key not in results or "spark_start" not in results:
        return None
    start = results["spark_start"].seconds
    return ratio(results[key].seconds - start, results[JOB].seconds - start)


def rewritten_share(measurement: Measurement | None) -> float | None:
    """The share of curated's bytes the corrections' MERGE removed and wrote again."""
    rewrite = None if measurement is None else measurement.detail.get("curated_rewrite")
    return None if not rewrite else rewrite.get("rewritten_share")


def spark_jobs(measurement: Measurement | None) -> int | None:
    """The Spark jobs a job run started, from its event log (scripts/bench/events.py)."""
    spark = None if measurement is None else measurement.detail.get("spark")
    return None if not spark else int(spark["spark_jobs"])


def temporal_share(
    results: dict[str, Measurement], job_points: Sequence[tuple[int, float]]
) -> float | None:
    """(temporal - plain) / temporal: the job's full run with the point-in-time merchant join
    against the same run with the plain join, at the size both were measured."""
    plain = results.get("plain_join")
    same = [seconds for rows, seconds in job_points if plain is not None and rows == plain.rows]
    if plain is None or not same:
        return None
    return (same[0] - plain.seconds) / same[0]


def format_table(results: dict[str, Measurement]) -> str:
    job_speed = results[JOB].rows_per_second
    header = (
        f"{'measure':<44} {'rows':>12} {'wall s':>9} {'rows/s':>12} {'job is':>8} {'peak MB':>8}"
        f"  {'CPU s: run (sys)/MinIO/PG':<20}"
    )
    lines = [header, "-" * len(header)]
    for m in results.values():
        speed = m.rows_per_second
        versus = _fmt_ratio(ratio(job_speed, speed)) if m.key in _COMPARED_KEYS else ""
        lines.append(
            f"{m.label:<44} {m.rows:>12,} {m.seconds:>9.1f} "
            f"{'-' if speed is None else f'{speed:,.0f}':>12} {versus:>8} "
            f"{'-' if m.peak_rss_mb is None else f'{m.peak_rss_mb:,.0f}':>8}"
            f"  {format_cpu(m.cpu_seconds):<20}"
        )
    return "\n".join(lines)


def format_cpu(cpu: dict[str, float]) -> str:
    if not cpu:
        return "-"
    parts = [
        "-" if cpu.get(name) is None else f"{cpu[name]:.0f}"
        for name in ("job", "minio", "postgres")
    ]
    if cpu.get("job_system") is not None:
        parts[0] += f" ({cpu['job_system']:.0f})"
    return "/".join(parts)


def format_targets(found: Sequence[Target]) -> str:
    lines = []
    for t in found:
        verdict = {True: "met", False: "MISSED", None: "not measured"}[t.met]
        lines.append(f"  {t.name:<52} goal {t.goal:<18} measured {t.measured:<18} {verdict}")
    return "\n".join(lines)


def to_json(
    machine: dict[str, Any],
    settings: dict[str, Any],
    results: dict[str, Measurement],
    job_runs: Sequence[Measurement],
    fit: LineFit | None,
    found: Sequence[Target],
    floor_runs: Sequence[Measurement] = (),
    floor_fit: LineFit | None = None,
) -> dict[str, Any]:
    def measurement(m: Measurement) -> dict[str, Any]:
        return {**asdict(m), "rows_per_second": m.rows_per_second}

    return {
        "machine": machine,
        "settings": settings,
        "results": {key: measurement(m) for key, m in results.items()},
        "job_full_runs": [measurement(m) for m in job_runs],
        "fit": None if fit is None else asdict(fit),
        "floor_runs": [measurement(m) for m in floor_runs],
        "floor_fit": None if floor_fit is None else asdict(floor_fit),
        "targets": [asdict(t) for t in found],
    }


def draw_chart(
    path: Path,
    results: dict[str, Measurement],
    job_runs: Sequence[Measurement],
    fit: LineFit | None,
    title: str,
    floor_runs: Sequence[Measurement] = (),
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
    if floor_runs:
        right.plot(
            [m.rows / 1e6 for m in floor_runs], [m.seconds for m in floor_runs], "x-",
            label="Spark floor (raw Delta -> Delta copy)",
        )  # fmt: skip
    for key, marker in (
        ("noop", "s"), ("one_percent", "^"), ("small_run", "D"), ("corrections", "v"),
        ("spark_start", "."),
    ):  # fmt: skip
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
