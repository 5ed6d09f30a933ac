"""Which raw versions a batch run covers, and how it writes: decided from the run records alone.

Pure: no Spark, no I/O, so every branch is unit-tested (tests/unit/test_planning.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from jobs.core.contracts import STATS_COLUMN_COUNT, STATS_COLUMNS
from jobs.core.errors import ConfigError
from jobs.core.models import FULL, INCREMENTAL, RANGE, RESTORE_JOB, PipelineState


@dataclass(frozen=True)
class Plan:
    mode: str  # full | incremental | range
    raw_version_from: int | None  # first raw version read as new data (None: range runs)
    raw_version_to: int  # the watermark the run leaves
    date_range: tuple[date, date] | None = None
    noop: bool = False
    reason: str = ""


def plan_run(
    state: PipelineState,
    raw_latest: int,
    curated_latest: int | None,
    full: bool = False,
    date_range: tuple[date, date] | None = None,
) -> Plan:
    """Decide what a run does.

    - ``--full``, no earlier successful run, a missing curated table, a raw table that is
      older than the last watermark (recreated), or an unfinished full rebuild: rebuild from
      every raw version.
    - ``--from-date/--to-date``: re-enrich the curated rows of those event dates from the raw
      data already processed (the watermark does not move).
    - otherwise: the raw versions committed since the last successful run. None, and no
      curated commits since the summary was last brought in step: nothing to do.
    """
    unfinished_restores = [r for r in state.unfinished if r.job_name == RESTORE_JOB]
    if unfinished_restores:
        raise ConfigError(
            unfinished_restores[-1].error
            or "a restore did not finish: run make restore again before any job"
        )
    synced = state.synced
    unfinished_full = [r.run_id for r in state.unfinished if r.mode == FULL]
    if date_range is not None:
        assert not full and date_range[0] <= date_range[1], "refused by parse_args"
        if synced is None or curated_latest is None:
            raise ConfigError(
                "no successful run yet, so there is nothing to re-enrich: run without "
                "--from-date/--to-date first"
            )
        if unfinished_full:
            raise ConfigError(
                f"full rebuild {unfinished_full[-1]} did not finish; run with --full first"
            )
        if raw_latest > synced.raw_version_to:
            raise ConfigError(
                f"raw versions {synced.raw_version_to + 1}..{raw_latest} are not processed yet; "
                "run without --from-date/--to-date first, then re-enrich the dates"
            )
        return Plan(RANGE, None, synced.raw_version_to, date_range, reason="--from-date/--to-date")

    reason = ""
    if full:
        reason = "--full"
    elif synced is None:
        reason = "first run on these tables"
    elif curated_latest is None:
        reason = "the curated table is missing"
    elif raw_latest < synced.raw_version_to:
        reason = (
            f"the raw table is at version {raw_latest}, older than the last run's watermark "
            f"{synced.raw_version_to} (was it recreated?)"
        )
    elif unfinished_full:
        reason = f"completing full rebuild {unfinished_full[-1]}, which did not finish"
    if reason:
        return Plan(FULL, 0, raw_latest, reason=reason)

    assert synced is not None
    first = synced.raw_version_to + 1
    if first > raw_latest and curated_latest == synced.curated_version:
        return Plan(
            INCREMENTAL,
            first,
            synced.raw_version_to,
            noop=True,
            reason=f"no new raw data: nothing committed since run {synced.run_id} (raw version "
            f"{synced.raw_version_to})",
        )
    if first > raw_latest:
        return Plan(
            INCREMENTAL,
            first,
            synced.raw_version_to,
            reason="no new raw data; bringing the summary and quarantine in step with curated "
            "commits of a run that did not finish",
        )
    return Plan(INCREMENTAL, first, raw_latest, reason=f"raw versions {first}..{raw_latest}")


def files_for_key_range(
    file_ranges: Sequence[tuple[str | None, str | None]], key_range: tuple[str, str]
) -> list[int]:
    """The positions in ``file_ranges`` (each file's lowest and highest key) of the files that
    may hold a key in ``key_range`` (both ends included). A missing bound bounds nothing on
    its side. None of them means a MERGE of rows with keys in that range can match nothing:
    it is an append."""
    low, high = key_range
    return [
        position
        for position, (file_low, file_high) in enumerate(file_ranges)
        if (file_low is None or file_low <= high) and (file_high is None or low <= file_high)
    ]


def curated_properties_to_set(
    properties: Mapping[str, str], wanted: Mapping[str, str]
) -> dict[str, str]:
    """Of the curated table properties a run wants (``wanted``: deletion vectors, which
    columns get statistics), those a table made by an earlier version lacks. A table whose
    owner chose its statistics columns (either of Delta's two properties) keeps them."""
    missing = {}
    for name, value in wanted.items():
        if name in (STATS_COLUMNS, STATS_COLUMN_COUNT):
            if STATS_COLUMNS in properties or STATS_COLUMN_COUNT in properties:
                continue
        elif name in properties and properties[name].lower() == value.lower():
            continue
        missing[name] = value
    return missing
