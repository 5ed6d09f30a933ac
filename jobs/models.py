"""Plain records passed between the batch job, the Postgres store and the run summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal


@dataclass(frozen=True)
class RunCounts:
    rows_read: int
    rows_curated: int
    rows_quarantined: int
    rows_duplicate: int
    rows_unmatched: int


@dataclass(frozen=True)
class SummaryRow:
    event_date: date
    category: str
    currency: str
    transaction_count: int
    total_amount: Decimal


@dataclass(frozen=True)
class RunResult:
    run_id: str
    status: str  # running | succeeded | noop
    started_at: datetime
    ended_at: datetime
    raw_table: str
    curated_table: str
    quarantine_table: str
    raw_version: int
    counts: RunCounts | None = None
    curated_version: int | None = None
    quarantine_version: int | None = None
    summary_rows: int = 0
    top_unmatched: list[tuple[str, int]] = field(default_factory=list)
    message: str = ""
