"""The streaming job in-process (jobs.runs.stream.run on the shared SparkSession): what it makes
of landed files equals what `ingest` + the batch job make of the same files; bad files are
refused whole and reported while the stream goes on; a lookup changed while it runs is used
for the rows after the change; a batch run is refused while it holds the lock. The process
level (kill -9, SIGTERM, spark-submit) is tests/system/test_stream_faults.py."""

from __future__ import annotations

import csv
import json
import threading
from collections import Counter
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from jobs.adapters.object_store import read_columns
from jobs.config.postgres_url import PostgresTarget
from jobs.config.settings import S3Settings
from jobs.core.errors import ConcurrentRunError
from tests.harness import (
    INGEST_COLUMNS,
    PipelineCopy,
    config_with,
    drop_pipeline,
    ingest_here,
    land,
    new_pipeline,
    read_outputs,
    reclassify_merchant,
    run_batch_here,
    stream_batches,
    stream_here,
    wait_for_stream_batches,
    write_corrections,
)
from tests.stack import TEST_DB, generate

pytestmark = pytest.mark.integration


def to_jsonl(source: Path, out: Path) -> Path:
    with source.open() as handle, out.open("w") as target:
        for row in csv.DictReader(handle):
            target.write(json.dumps(row) + "\n")
    return out


@pytest.fixture(scope="module")
def landings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three good landings (CSV, JSON lines, CSV re-sending some ids of the first with new
    amounts, its last line cut short) and two that are refused whole."""
    work = tmp_path_factory.mktemp("stream")
    generate(work / "first.csv", 300, 41)
    generate(work / "second.csv", 200, 42)
    generate(work / "fresh.csv", 100, 43)
    write_corrections(work / "first.csv", work / "third.csv", work / "fresh.csv")
    with (work / "third.csv").open("a") as handle:
        handle.write("TXN-TRUNCATED,MER-000001,12.")  # a line cut short, no newline
    (work / "wrong_header.csv").write_text("id,merchant,amount\nX-1,MER-000001,1.00\n")
    (work / "notes.txt").write_text("not data\n")
    return {
        "first": work / "first.csv",
        "second": to_jsonl(work / "second.csv", work / "second.jsonl"),
        "third": work / "third.csv",
        "wrong_header": work / "wrong_header.csv",
        "notes": work / "notes.txt",
        "work": work,
    }


def test_available_now_equals_ingest_and_batch_on_the_same_files(
    spark: SparkSession,
    admin_target: PostgresTarget,
    s3: S3Settings,
    test_db_env: dict[str, str],
    landings: dict[str, Path],
    empty_pipeline: PipelineCopy,
    tmp_path: Path,
) -> None:
    streamed = empty_pipeline
    env = {**streamed.env, "ENRICH_CONFIG": str(config_with(tmp_path, max_files_per_trigger=1))}
    good = [landings["first"], landings["second"], landings["third"]]
    land(streamed, good[0], landings["wrong_header"], good[1], landings["notes"], good[2])

    totals = stream_here(spark, env, "--available-now")

    assert (totals.batches, totals.files, totals.files_refused) == (5, 5, 2)
    batches = stream_batches(streamed)
    assert [b["batch_id"] for b in batches] == [0, 1, 2, 3, 4]
    refused = {
        Path(file).name: why for b in batches for file, why in b["details"]["refused"].items()
    }
    assert refused.keys() == {"wrong_header.csv", "notes.txt"}
    assert "unexpected CSV header" in refused["wrong_header.csv"]
    assert all(b["run_id"] is None for b in batches if b["files_refused"])
    assert all(
        b["run_id"] is not None and b["lag_s"] >= 0 for b in batches if not b["files_refused"]
    )

    batched = new_pipeline(admin_target, s3, test_db_env, TEST_DB)
    try:
        for file in good:  # one ingest and one incremental run per landing, in the same order
            ingest_here(spark, batched.env, str(file))
            run_batch_here(spark, batched.env)
        assert read_outputs(streamed, INGEST_COLUMNS) == read_outputs(batched, INGEST_COLUMNS)
    finally:
        drop_pipeline(admin_target, s3, batched)

    quarantine = read_columns(
        s3, streamed.bucket.tables.quarantine, ["_source_file", "_raw_record", "rejection_reasons"]
    )
    [cut_short] = [r for r in quarantine.to_pylist() if "TXN-TRUNCATED" in (r["_raw_record"] or "")]
    assert cut_short["_source_file"].endswith("/landing/third.csv")
    assert cut_short["rejection_reasons"]

    again = stream_here(spark, env, "--available-now")  # nothing new landed: nothing changes
    assert again.batches == 0
    assert len(stream_batches(streamed)) == 5


def test_a_lookup_changed_while_running_is_used_for_later_rows_and_batch_is_refused(
    spark: SparkSession, landings: dict[str, Path], empty_pipeline: PipelineCopy, tmp_path: Path
) -> None:
    pipeline = empty_pipeline
    config = config_with(tmp_path, lookup_check_seconds=1)
    env = {**pipeline.env, "ENRICH_CONFIG": str(config)}
    first, second = landings["first"], landings["work"] / "second.csv"
    with first.open() as a, second.open() as b:
        in_first = Counter(r["merchant_id"] for r in csv.DictReader(a))
        in_second = {r["merchant_id"] for r in csv.DictReader(b)}
    merchant = next(
        m for m, _ in in_first.most_common() if m in in_second and m.startswith("MER-0")
    )

    stop = threading.Event()
    failures: list[BaseException] = []

    def run_stream() -> None:
        try:
            stream_here(spark, env, "--trigger", "1s", stop=stop)
        except BaseException as error:  # reported by the test thread
            failures.append(error)

    thread = threading.Thread(target=run_stream, daemon=True)
    thread.start()
    try:
        land(pipeline, first)
        wait_for_stream_batches(pipeline, 1)

        with pytest.raises(ConcurrentRunError, match="stream_enrich"):
            run_batch_here(spark, pipeline.env)

        reclassify_merchant(pipeline, merchant, "Reclassified")
        threading.Event().wait(1.5)  # longer than lookup_check_seconds
        land(pipeline, second)
        wait_for_stream_batches(pipeline, 2)
    finally:
        stop.set()
        thread.join(timeout=180)
    assert not failures, failures
    assert not thread.is_alive()

    curated = read_columns(
        pipeline.settings.s3,
        pipeline.bucket.tables.curated,
        ["merchant_id", "enriched_category", "_source_file"],
    )
    categories = {
        (Path(r["_source_file"]).name, r["enriched_category"])
        for r in curated.to_pylist()
        if r["merchant_id"] == merchant
    }
    assert ("second.csv", "Reclassified") in categories
    assert not any(name == "second.csv" and c != "Reclassified" for name, c in categories)
    assert all(c != "Reclassified" for name, c in categories if name == "first.csv")
