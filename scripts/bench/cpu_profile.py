"""Where a Spark run's CPU goes, from a Java Flight Recorder recording of its JVM: every
execution sample (a Java thread caught running, every 20 ms) attributed to the innermost
frame of its stack that belongs to a known part of the work (Parquet encoding, the in-memory
cache, a shuffle, the broadcast join, the window, generated expression code, ...).

Record a run (the JVM option through ENRICH_DRIVER_JVM_OPTS, so its command line is what
`make submit-batch` uses), then summarise the recording:

    ENRICH_DRIVER_JVM_OPTS="-XX:StartFlightRecording=filename=build/run.jfr" \\
        make submit-batch ARGS=--full
    .venv/bin/python -m scripts.bench.cpu_profile build/run.jfr

`make bench` records its headline full run this way and keeps the summary in its JSON. The
samples count CPU time on Java threads only: garbage collection, the JIT compiler and the
Python driver are not in them.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The part of the work a frame belongs to, by the start of its class name; the first pattern
# that matches a frame wins, and a sample goes to its innermost frame that matches any.
PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("compression codecs", ("org.xerial.snappy", "com.github.luben.zstd", "net.jpountz.lz4",
                            "io.airlift.compress", "org.apache.hadoop.io.compress")),
    ("Parquet encoding (write)", ("org.apache.parquet.column.values", "org.apache.parquet.column.impl",
                                  "org.apache.parquet.io.MessageColumnIO",
                                  "org.apache.parquet.hadoop.InternalParquetRecordWriter",
                                  "org.apache.parquet.hadoop.ColumnChunkPageWriteStore",
                                  "org.apache.parquet.bytes",
                                  "org.apache.parquet.column.statistics",
                                  "org.apache.parquet.io.api.Binary",
                                  "shaded.parquet.it.unimi.dsi.fastutil",
                                  "org.apache.spark.sql.execution.datasources.parquet.ParquetWriteSupport")),
    ("Parquet decoding (read)", ("org.apache.spark.sql.execution.datasources.parquet.Vectorized",
                                 "org.apache.spark.sql.execution.datasources.parquet.Parquet",
                                 "org.apache.parquet.hadoop.ParquetFileReader",
                                 "org.apache.spark.sql.execution.vectorized")),
    ("in-memory cache: build", ("org.apache.spark.sql.execution.columnar.BasicColumnBuilder",
                                "org.apache.spark.sql.execution.columnar.NativeColumnBuilder",
                                "org.apache.spark.sql.execution.columnar.NullableColumnBuilder",
                                "org.apache.spark.sql.execution.columnar.ComplexColumnBuilder",
                                "org.apache.spark.sql.execution.columnar.compression.CompressibleColumnBuilder",
                                "org.apache.spark.sql.execution.columnar.ColumnBuilder",
                                "org.apache.spark.sql.execution.columnar.StringColumnStats",
                                "org.apache.spark.sql.execution.columnar.ColumnStats",
                                "org.apache.spark.storage.memory.MemoryStore")),
    ("in-memory cache: read", ("org.apache.spark.sql.execution.columnar",
                               "GeneratedClass$SpecificColumnarIterator")),
    ("shuffle write", ("org.apache.spark.shuffle.sort", "org.apache.spark.storage.DiskBlockObjectWriter",
                       "org.apache.spark.sql.execution.UnsafeRowSerializer",
                       "org.apache.spark.shuffle.ShuffleWriteProcessor")),
    ("shuffle read", ("org.apache.spark.storage.ShuffleBlockFetcherIterator",
                      "org.apache.spark.shuffle.BlockStoreShuffleReader",
                      "org.apache.spark.sql.execution.ShuffledRowRDD")),
    ("sort", ("org.apache.spark.util.collection.unsafe.sort", "org.apache.spark.sql.execution.UnsafeExternalRowSorter",
              "org.apache.spark.sql.execution.SortExec", "GeneratedClass$SpecificOrdering")),
    ("window", ("org.apache.spark.sql.execution.window",
                "org.apache.spark.sql.execution.ExternalAppendOnlyUnsafeRowArray")),
    ("broadcast hash join (probe)", ("org.apache.spark.sql.execution.joins",)),
    ("hash aggregation", ("org.apache.spark.sql.execution.UnsafeFixedWidthAggregationMap",
                          "org.apache.spark.sql.execution.aggregate")),
    ("file writer: partition values, row hand-off", ("org.apache.spark.sql.execution.datasources",)),
    ("generated code: expressions, projections", ("org.apache.spark.sql.catalyst.expressions",
                                                 "org.apache.spark.sql.catalyst.util",
                                                 "org.apache.spark.sql.execution.WholeStageCodegen",
                                                 "org.apache.spark.sql.execution.BufferedRowIterator",
                                                 "GeneratedClass")),
    ("Delta log and commit", ("org.apache.spark.sql.delta", "io.delta")),
    ("object store I/O (S3A)", ("org.apache.hadoop.fs.s3a", "software.amazon.awssdk",
                                "org.apache.http", "sun.nio.ch", "java.net", "sun.security.ssl")),
    ("PostgreSQL (JDBC)", ("org.postgresql",)),
    ("query planning and code generation", ("org.apache.spark.sql.catalyst", "org.codehaus.janino",
                                            "org.codehaus.commons", "org.apache.spark.sql.execution")),
    ("Python bridge (py4j)", ("py4j",)),
)  # fmt: skip
OTHER = "other"
# Helpers every part calls (row writers, strings, memory copies, hash maps): a frame in them
# belongs to whichever part called it.
HELPERS = (
    "org.apache.spark.unsafe.",
    "org.apache.spark.sql.catalyst.expressions.codegen.UnsafeWriter",
    "org.apache.spark.sql.catalyst.expressions.codegen.UnsafeRowWriter",
    "org.apache.spark.sql.catalyst.expressions.codegen.UnsafeArrayWriter",
    "org.apache.spark.sql.catalyst.expressions.codegen.BufferHolder",
    "org.apache.spark.sql.catalyst.expressions.UnsafeRow",
    "org.apache.spark.sql.catalyst.expressions.UnsafeArrayData",
)

_FRAME = re.compile(r"^\s+([\w$.]+)\(")


@dataclass(frozen=True)
class Profile:
    samples: int
    parts: list[tuple[str, int]]  # by samples, most first
    hottest: list[tuple[str, int]]  # innermost methods, most first

    def as_json(self) -> dict[str, object]:
        def share(count: int) -> float:
            return round(count / self.samples, 3) if self.samples else 0.0

        return {
            "samples": self.samples,
            "parts": [{"part": p, "samples": c, "share": share(c)} for p, c in self.parts],
            "hottest_methods": [
                {"method": m, "samples": c, "share": share(c)} for m, c in self.hottest
            ],
        }


def part_of(frames: Sequence[str]) -> str:
    """The part of the work a stack (innermost frame first, ``class.method`` names) is in."""
    for frame in frames:
        if frame.startswith(HELPERS):
            continue
        for part, prefixes in PARTS:
            if any(_matches(frame, prefix) for prefix in prefixes):
                return part
    return OTHER


def _matches(frame: str, prefix: str) -> bool:
    if prefix.startswith("GeneratedClass"):
        return prefix in frame
    return frame.startswith(prefix)


def stacks(lines: Iterable[str]) -> Iterator[list[str]]:
    """The stacks of the ``jdk.ExecutionSample`` events in ``jfr print`` text output."""
    frames: list[str] | None = None
    for line in lines:
        if frames is None:
            if line.strip() == "stackTrace = [":
                frames = []
            continue
        if line.strip() == "]":
            yield frames
            frames = None
            continue
        found = _FRAME.match(line)
        if found:
            frames.append(found.group(1))


def summarize(all_stacks: Iterable[Sequence[str]], top: int = 12) -> Profile:
    parts: Counter[str] = Counter()
    hottest: Counter[str] = Counter()
    samples = 0
    for frames in all_stacks:
        if not frames:
            continue
        samples += 1
        parts[part_of(frames)] += 1
        hottest[frames[0]] += 1
    return Profile(samples, parts.most_common(), hottest.most_common(top))


def jfr_tool() -> str:
    """The JDK's ``jfr`` command: next to the ``java`` that runs the jobs."""
    java_home = os.environ.get("JAVA_HOME")
    candidates = [Path(java_home) / "bin" / "jfr"] if java_home else []
    java = shutil.which("java")
    if java:
        candidates.append(Path(os.path.realpath(java)).parent / "jfr")
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    found = shutil.which("jfr")
    if found:
        return found
    raise FileNotFoundError("no jfr command next to java (a JDK 11+ has one in its bin/)")


def profile_recording(recording: Path, top: int = 12) -> Profile:
    """Summarise a JFR recording's execution samples."""
    command = [jfr_tool(), "print", "--events", "jdk.ExecutionSample", "--stack-depth", "96"]
    with subprocess.Popen([*command, str(recording)], stdout=subprocess.PIPE, text=True) as printed:
        assert printed.stdout is not None
        profile = summarize(stacks(printed.stdout), top)
    if printed.returncode != 0:
        raise RuntimeError(f"jfr print failed on {recording} (exit {printed.returncode})")
    return profile


def flight_recording_option(recording: Path) -> str:
    """The JVM option that records the run to ``recording`` (JFR's default settings)."""
    return f"-XX:StartFlightRecording=filename={recording.resolve()}"


def describe_profile(spark: Mapping[str, Any] | None, parts: int = 6) -> str:
    """``; CPU: 35% generated code, 21% Parquet encoding, ...`` from a run's ``cpu_profile``."""
    profile = (spark or {}).get("cpu_profile")
    if not profile or not profile["samples"]:
        return ""
    shares = [f"{round(100 * p['share'])}% {p['part']}" for p in profile["parts"][:parts]]
    return "\n  CPU on Java threads: " + ", ".join(shares)


def format_profile(profile: Profile) -> str:
    lines = [f"CPU samples on Java threads: {profile.samples:,}"]
    for part, count in profile.parts:
        lines.append(f"  {100 * count / profile.samples:5.1f}%  {part}")
    lines.append("Hottest methods (innermost frame):")
    for method, count in profile.hottest:
        lines.append(f"  {100 * count / profile.samples:5.1f}%  {method}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="profile", description=__doc__.split("\n")[0])
    parser.add_argument("recording", type=Path, help="a .jfr file")
    parser.add_argument("--top", type=int, default=12, help="hottest methods to list")
    args = parser.parse_args(argv)
    if not args.recording.is_file():
        print(f"profile: no recording at {args.recording}", file=sys.stderr)
        return 2
    print(format_profile(profile_recording(args.recording, args.top)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
