"""The bench's corrections case: a share of the already-curated transactions re-sent with new
amounts, spread over every event date, and what the MERGE that takes them in rewrote.

The corrections are read from the curated table with delta-rs (every Nth row, in the table's
order, which is by date) and written as an input CSV; after the job's run, the curated commit's
metrics (Delta's ``operationMetrics``) tell how many bytes it rewrote, against the table's size
before it.
"""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path
from typing import Any

from deltalake import DeltaTable

from jobs.config.settings import S3Settings
from scripts.bench.peer import s3_uri, storage_options

INPUT_HEADER = ["transaction_id", "merchant_id", "amount", "currency", "event_ts"]


def _table(s3: S3Settings, path: str, version: int | None = None) -> DeltaTable:
    return DeltaTable(s3_uri(path), version=version, storage_options=storage_options(s3))


def write_corrections(s3: S3Settings, curated_path: str, out: Path, share: float) -> int:
    """Every (1/share)th curated row, its amount raised by 1.00, as an input CSV; how many."""
    step = max(1, round(1 / share))
    dataset = _table(s3, curated_path).to_pyarrow_dataset()
    written, index = 0, 0
    with out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(INPUT_HEADER)
        for batch in dataset.to_batches(columns=INPUT_HEADER):
            columns = batch.to_pydict()
            for position in range(batch.num_rows):
                if index % step == 0:
                    writer.writerow(
                        [
                            columns["transaction_id"][position],
                            columns["merchant_id"][position],
                            str(Decimal(columns["amount"][position]) + Decimal("1.00")),
                            columns["currency"][position],
                            columns["event_ts"][position].strftime("%Y-%m-%dT%H:%M:%SZ"),
                        ]
                    )
                    written += 1
                index += 1
    return written


def table_bytes(s3: S3Settings, path: str) -> tuple[int, int]:
    """The table's (version, bytes of its live data files)."""
    table = _table(s3, path)
    sizes = table.get_add_actions(flatten=True).column("size_bytes").to_pylist()
    return table.version(), sum(sizes)


def commit_rewrite(s3: S3Settings, path: str, version: int, bytes_before: int) -> dict[str, Any]:
    """What the commit at ``version`` (a MERGE) removed and added, and the share of the table's
    bytes (before it) that it rewrote."""
    [entry] = [e for e in _table(s3, path).history(5) if e.get("version") == version]
    metrics = {k: int(v) for k, v in (entry.get("operationMetrics") or {}).items()}
    removed = metrics.get("numTargetBytesRemoved", 0)
    return {
        "operation": entry.get("operation"),
        "files_removed": metrics.get("numTargetFilesRemoved"),
        "files_added": metrics.get("numTargetFilesAdded"),
        "bytes_removed": removed,
        "bytes_added": metrics.get("numTargetBytesAdded"),
        "table_bytes_before": bytes_before,
        "rewritten_share": removed / bytes_before if bytes_before else None,
    }
