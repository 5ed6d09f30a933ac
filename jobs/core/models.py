"""Plain records passed between the jobs, their stores and the run summary."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from decimal import Decimal
from typing import Any

FULL = "full"
INCREMENTAL = "incremental"
RANGE = "range"
# The job name of a restore's record in pipeline.enrichment_runs (make restore).
RESTORE_JOB = "restore"
# ... and of a table maintenance's (make maintain): the versions it left, and the last one's.
MAINTAIN_JOB = "maintain"


VALID_FROM = "valid_from"  # a history row's version is valid from (NULL: always) ...
VALID_TO = "valid_to"  # ... up to, not including (NULL: still valid)


@dataclass(frozen=True)
class LookupSpec:
    """One lookup join, as configured."""

    name: str
    table: str
    key: str
    join_on: str
    columns: Mapping[str, str]
    when_unmatched: Mapping[str, str] = field(default_factory=dict)
    when_null: Mapping[str, str] = field(default_factory=dict)
    # Joined as of each transaction's event_ts, on the table's history (<table>_history, with
    # VALID_FROM / VALID_TO), instead of on its current rows.
    temporal: bool = False

    @property
    def source_table(self) -> str:
        """The table the lookup is read from: the history of a temporal lookup."""
        return f"{self.table}_history" if self.temporal else self.table

    @property
    def lookup_columns(self) -> list[str]:
        """The columns read: the key, the configured ones and, if temporal, the validity."""
        validity = [VALID_FROM, VALID_TO] if self.temporal else []
        return [self.key, *self.columns, *validity]


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
    quarantine_version: int | None = None  # the quarantine version it left


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
    job_name: str = ""


@dataclass(frozen=True)
class PipelineState:
    synced: SyncedRun | None
    unfinished: list[UnfinishedRun]


@dataclass(frozen=True, kw_only=True)
class RunStart:
    """What a run records when it starts: what it covers, and why."""

    run_id: str
    mode: str
    started_at: datetime
    raw_table: str
    curated_table: str
    quarantine_table: str
    raw_version_from: int | None
    raw_version_to: int
    date_range: tuple[date, date] | None = None
    recovered: list[UnfinishedRun] = field(default_factory=list)
    message: str = ""

    def finished(self, status: str, ended_at: datetime, **outcome: Any) -> RunResult:
        """This run's result: ``status`` succeeded or noop, ``outcome`` the other RunResult fields."""
        started = {f.name: getattr(self, f.name) for f in fields(RunStart)}
        return RunResult(**{**started, "status": status, "ended_at": ended_at, **outcome})


@dataclass(frozen=True, kw_only=True)
class RunResult(RunStart):
    """A run that finished its work."""

    status: str  # succeeded | noop
    ended_at: datetime
    counts: RunCounts | None = None
    curated_version: int | None = None
    quarantine_version: int | None = None
    summary_rows: int = 0
    summary_dates: int | None = None  # dates rewritten; None: the whole summary
    top_unmatched: list[tuple[str, int]] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class StreamBatch:
    """One micro-batch of the streaming job, as recorded in ``pipeline.stream_batches``."""

    query_id: str
    batch_id: int
    started_at: datetime
    files: list[str]
    refused: dict[str, str]  # file -> why it was refused whole
    rows_ingested: int
    raw_version: int | None
    oldest_landed_at: datetime | None  # the earliest modification time of its files
