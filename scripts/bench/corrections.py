"""The bench's corrections case: a share of the already-curated transactions re-sent with new
amounts, spread over every event date, and what the MERGE that takes them in rewrote.

The corrections are read from the curated table with delta-rs (every Nth row by event time,
so every date) and written as an input CSV; after the job's run, the curated commit's
metrics (Delta's ``operationMetrics``) tell how many bytes it rewrote, against the table's size
before it.
"""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable

from jobs.adapters.object_store import read_columns
from jobs.config.settings import S3Settings
from scripts.bench.peer import s3_uri, storage_options

INPUT_HEADER = ["transaction_id", "merchant_id", "amount", "currency", "event_ts"]


def _table(s3: S3Settings, path: str) -> DeltaTable:
    return DeltaTable(s3_uri(path), storage_options=storage_options(s3))


def write_corrections(s3: S3Settings, curated_path: str, out: Path, share: float) -> int:
    """Every (1/share)th curated row by event time, its amount raised by 1.00, as an input CSV;
    how many."""
    step = max(1, round(1 / share))
    rows = read_columns(
        s3, s3_uri(curated_path), INPUT_HEADER, order_by=["event_ts", "transaction_id"]
    )
    chosen = rows.take(pa.array(range(0, rows.num_rows, step), type=pa.int64()))
    with out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(INPUT_HEADER)
        for row in chosen.to_pylist():
            writer.writerow(
                [
                    row["transaction_id"],
                    row["merchant_id"],
                    str(Decimal(row["amount"]) + Decimal("1.00")),
                    row["currency"],
                    row["event_ts"].strftime("%Y-%m-%dT%H:%M:%SZ"),
                ]
            )
    return int(chosen.num_rows)


def table_bytes(s3: S3Settings, path: str) -> int:
    """The bytes of the table's live data files."""
    sizes = _table(s3, path).get_add_actions(flatten=True).column("size_bytes").to_pylist()
    return sum(sizes)


def commit_rewrite(s3: S3Settings, path: str, bytes_before: int) -> dict[str, Any]:
    """What the table's latest commit (the corrections' MERGE) removed and added, and the share
    of the table's bytes (before it) that it rewrote."""
    [entry] = _table(s3, path).history(1)
    metrics = {k: int(v) for k, v in (entry.get("operationMetrics") or {}).items()}
    removed = metrics.get("numTargetBytesRemoved", 0)
    added = metrics.get("numTargetBytesAdded", 0)
    return {
        "operation": entry.get("operation"),
        "files_removed": metrics.get("numTargetFilesRemoved"),
        "files_added": metrics.get("numTargetFilesAdded"),
        "deletion_vectors_added": metrics.get("numTargetDeletionVectorsAdded", 0),
        "bytes_removed": removed,
        "bytes_added": added,
        "table_bytes_before": bytes_before,
        # The bytes of files the MERGE wrote again; with deletion vectors none: it writes the
        # replaced rows (bytes_added) and marks the old ones in the vectors.
        "rewritten_share": removed / bytes_before if bytes_before else None,
        "written_share": added / bytes_before if bytes_before else None,
    }
