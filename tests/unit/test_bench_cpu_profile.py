"""The bench's CPU profile (scripts/bench/cpu_profile.py): stacks read from ``jfr print`` text and
sorted into parts of the work, on hand-written samples."""

from __future__ import annotations

from scripts.bench.cpu_profile import OTHER, describe_profile, part_of, stacks, summarize

JFR_TEXT = """\
jdk.ExecutionSample {
  startTime = 02:53:20.325 (2026-12-06)
  sampledThread = "Executor task launch worker for task 3.0 in stage 4.0 (TID 57)" (javaThreadId = 77)
  state = "STATE_RUNNABLE"
  stackTrace = [
    org.apache.spark.unsafe.array.ByteArrayMethods.arrayEquals(Object, long, Object, long, long) line: 98
    org.apache.spark.unsafe.map.BytesToBytesMap.safeLookup(Object, long, int, BytesToBytesMap$Location, int) line: 547
    org.apache.spark.sql.execution.joins.UnsafeHashedRelation.get(InternalRow) line: 146
    org.apache.spark.sql.catalyst.expressions.GeneratedClass$GeneratedIteratorForCodegenStage6.processNext() line: 123
    org.apache.spark.sql.execution.BufferedRowIterator.hasNext() line: 43
    ...
  ]
}

jdk.ExecutionSample {
  startTime = 02:53:20.345 (2026-12-06)
  stackTrace = [
    org.apache.spark.unsafe.Platform.copyMemory(Object, long, Object, long, long) line: 216
    org.apache.spark.sql.catalyst.expressions.codegen.UnsafeWriter.writeUnalignedBytes(int, Object, long, int) line: 127
    org.apache.spark.sql.execution.columnar.DirectCopyColumnType.extract(ByteBuffer, InternalRow, int) line: 491
    org.apache.spark.sql.catalyst.expressions.GeneratedClass$SpecificColumnarIterator.next() line: 322
    org.apache.spark.sql.catalyst.expressions.GeneratedClass$GeneratedIteratorForCodegenStage1.processNext() line: 51
  ]
}

jdk.ExecutionSample {
  startTime = 02:53:20.365 (2026-12-06)
  stackTrace = [
    org.apache.parquet.column.values.dictionary.DictionaryValuesWriter.shouldFallBack() line: 180
    org.apache.parquet.column.values.fallback.FallbackValuesWriter.checkFallback() line: 174
    org.apache.spark.sql.execution.datasources.parquet.ParquetWriteSupport.write(InternalRow) line: 140
    org.apache.spark.sql.execution.datasources.FileFormatDataWriter.writeWithMetrics(InternalRow, long) line: 91
  ]
}
"""


def test_stacks_are_read_innermost_frame_first_as_class_and_method() -> None:
    read = list(stacks(JFR_TEXT.splitlines()))
    assert len(read) == 3
    assert read[0][:3] == [
        "org.apache.spark.unsafe.array.ByteArrayMethods.arrayEquals",
        "org.apache.spark.unsafe.map.BytesToBytesMap.safeLookup",
        "org.apache.spark.sql.execution.joins.UnsafeHashedRelation.get",
    ]
    assert len(read[0]) == 5  # the "..." of a cut stack is not a frame


def test_a_sample_goes_to_the_innermost_part_past_the_helpers_every_part_calls() -> None:
    join, cache_read, parquet = stacks(JFR_TEXT.splitlines())
    assert part_of(join) == "broadcast hash join (probe)"  # not the hash map it probes
    assert part_of(cache_read) == "in-memory cache: read"  # not the row writer it copies into
    assert part_of(parquet) == "Parquet encoding (write)"
    generated = [
        "org.apache.spark.sql.catalyst.expressions.GeneratedClass$SpecificUnsafeProjection.apply"
    ]
    assert part_of(generated) == "generated code: expressions, projections"
    assert part_of(["java.lang.Thread.run"]) == OTHER


def test_the_summary_counts_every_sample_once_and_names_the_hottest_methods() -> None:
    profile = summarize(stacks(JFR_TEXT.splitlines()), top=2)
    assert profile.samples == 3
    assert sum(count for _, count in profile.parts) == 3
    assert len(profile.hottest) == 2
    as_json = profile.as_json()
    assert as_json["samples"] == 3
    described = describe_profile({"cpu_profile": as_json})
    assert "33% broadcast hash join (probe)" in described
    assert describe_profile(None) == "" and describe_profile({}) == ""
