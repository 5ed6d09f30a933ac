"""The transaction generator: deterministic, and it produces every kind of row the job handles."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

from scripts.generate_transactions import INVALID_KINDS, Mix, generate_rows, write_file

START = datetime(2026, 11, 1, tzinfo=UTC)


def test_same_seed_same_rows() -> None:
    first = list(generate_rows(500, 7, START, 3, Mix()))
    second = list(generate_rows(500, 7, START, 3, Mix()))
    assert first == second
    assert first != list(generate_rows(500, 8, START, 3, Mix()))


def test_mix_has_unknown_merchants_invalid_rows_and_duplicates(tmp_path: Path) -> None:
    rows = list(generate_rows(5000, 11, START, 3, Mix()))
    records = [row for row in rows if isinstance(row, dict)]
    malformed = [row for row in rows if isinstance(row, str)]
    ids = [row["transaction_id"] for row in records if row["transaction_id"]]
    assert malformed, "expected malformed lines"
    assert len(ids) > len(set(ids)), "expected repeated transaction ids"
    assert any(row["merchant_id"].startswith("MER-UNK-") for row in records)
    assert any(row["amount"].startswith("-") for row in records)
    assert any(row["currency"] == "XYZ" for row in records)
    assert len(INVALID_KINDS) == 9

    path = tmp_path / "t.csv"
    assert write_file(iter(rows), path) == 5000
    with path.open() as handle:
        lines = list(csv.reader(handle))
    assert lines[0] == ["transaction_id", "merchant_id", "amount", "currency", "event_ts"]
    assert len(lines) == 5001


def test_clean_mix_has_only_valid_rows() -> None:
    rows = list(generate_rows(2000, 3, START, 3, Mix(invalid_share=0.0, duplicate_share=0.0)))
    assert all(isinstance(row, dict) for row in rows)
    ids = [row["transaction_id"] for row in rows if isinstance(row, dict)]
    assert len(ids) == len(set(ids))
