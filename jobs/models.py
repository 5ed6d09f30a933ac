"""Plain records passed between the batch job, the Postgres store and the run summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

FULL = "full"
INCREMENTAL = "incremental"
RANGE = "range"


@dataclass(frozen=True)
class RunCounts:
    """Counts that reconcile: rows_read = rows_curated + rows_quarantined + rows_duplicate."""

    rows_read: int
    rows_curated: int
    rows_quarantined: int
    rows_duplicate: int
    rows_unmatched: int
    rows_replaced: int = 0  # earlier curated rows replaced by a later record of their id


@dataclass(frozen=True)
class SummaryRow:
    event_date: date
    category: str
    currency: str
    transaction_count: int
    total_amount: Decimal


@dataclass(frozen=True)
class SyncedRun:
    """The latest run that left the outputs and the summary in step (succeeded or noop)."""

    run_id: str
    raw_version_to: int
    curated_version: int | None
    lookup_fingerprint: str
    raw_table: str = ""  # the raw table it read


@dataclass(frozen=True)
class UnfinishedRun:
    """A run after the last synced one that did not finish: it died, or it failed."""

    run_id: str
    status: str  # running (it died: nobody holds the lock) | crashed (found dead before) | failed
    mode: str | None
    started_at: datetime
    raw_version_from: int | None
    raw_version_to: int | None
    error: str | None


@dataclass(frozen=True)
class PipelineState:
    synced: SyncedRun | None
    unfinished: list[UnfinishedRun]


@dataclass(frozen=True)
class RunResult:
    run_id: str
    status: str  # running | succeeded | noop
    mode: str
    started_at: datetime
    ended_at: datetime
    raw_table: str
    curated_table: str
    quarantine_table: str
    raw_version_from: int | None
    raw_version_to: int
    date_range: tuple[date, date] | None = None
    counts: RunCounts | None = None
    curated_version: int | None = None
    quarantine_version: int | None = None
    summary_rows: int = 0
    summary_dates: int | None = None  # dates rewritten; None: the whole summary
    top_unmatched: list[tuple[str, int]] = field(default_factory=list)
    recovered: list[UnfinishedRun] = field(default_factory=list)
    message: str = ""
