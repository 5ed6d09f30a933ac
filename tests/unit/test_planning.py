"""What a batch run covers, decided from the run records alone (jobs.core.planning)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from jobs.core.errors import ConfigError
from jobs.core.models import FULL, INCREMENTAL, RANGE, PipelineState, SyncedRun, UnfinishedRun
from jobs.core.planning import curated_properties_to_set, files_for_key_range, plan_run

SYNCED = SyncedRun(run_id="r1", raw_version_to=4, curated_version=10, lookup_fingerprint="fp")
DAYS = (date(2026, 11, 2), date(2026, 11, 3))


def unfinished(mode: str, status: str = "running") -> UnfinishedRun:
    return UnfinishedRun("r2", status, mode, datetime(2026, 11, 21, tzinfo=UTC), 5, 6, None)


def state(*runs: UnfinishedRun, synced: SyncedRun | None = SYNCED) -> PipelineState:
    return PipelineState(synced, list(runs))


def test_new_raw_versions_are_read_from_the_watermark_on() -> None:
    plan = plan_run(state(), raw_latest=7, curated_latest=10)
    assert (plan.mode, plan.raw_version_from, plan.raw_version_to, plan.noop) == (
        INCREMENTAL,
        5,
        7,
        False,
    )


def test_nothing_new_is_a_noop() -> None:
    plan = plan_run(state(), raw_latest=4, curated_latest=10)
    assert plan.noop and plan.raw_version_to == 4
    assert "nothing committed since run r1" in plan.reason


def test_curated_commits_after_the_last_sync_are_completed_even_without_new_raw_data() -> None:
    plan = plan_run(state(unfinished(RANGE)), raw_latest=4, curated_latest=12)
    assert (plan.mode, plan.noop) == (INCREMENTAL, False)
    assert plan.raw_version_from == 5 and plan.raw_version_to == 4  # no raw rows to read


def test_a_crashed_incremental_run_is_redone_from_the_same_watermark() -> None:
    plan = plan_run(state(unfinished(INCREMENTAL)), raw_latest=8, curated_latest=11)
    assert (plan.mode, plan.raw_version_from, plan.raw_version_to) == (INCREMENTAL, 5, 8)


@pytest.mark.parametrize(
    ("current", "raw_latest", "curated_latest", "full", "why"),
    [
        (state(synced=None), 3, None, False, "first run"),
        (state(), 7, 10, True, "--full"),
        (state(), 7, None, False, "curated table is missing"),
        (state(), 2, 10, False, "older than the last run's watermark"),
        (state(unfinished(FULL)), 7, 11, False, "completing full rebuild r2"),
        (state(unfinished(FULL, "failed")), 7, 11, False, "completing full rebuild r2"),
        (state(unfinished(FULL, "crashed")), 7, 11, False, "completing full rebuild r2"),
    ],
)
def test_full_rebuilds(
    current: PipelineState, raw_latest: int, curated_latest: int | None, full: bool, why: str
) -> None:
    plan = plan_run(current, raw_latest, curated_latest, full=full)
    assert (plan.mode, plan.raw_version_from, plan.raw_version_to) == (FULL, 0, raw_latest)
    assert why in plan.reason


def test_a_date_range_is_re_enriched_from_processed_data_only() -> None:
    plan = plan_run(state(), raw_latest=4, curated_latest=10, date_range=DAYS)
    assert (plan.mode, plan.raw_version_from, plan.raw_version_to, plan.date_range) == (
        RANGE,
        None,
        4,
        DAYS,
    )


@pytest.mark.parametrize(
    ("current", "raw_latest", "full", "dates", "message"),
    [
        (state(), 6, False, DAYS, "raw versions 5..6 are not processed yet"),
        (state(synced=None), 4, False, DAYS, "no successful run yet"),
        (state(unfinished(FULL)), 4, False, DAYS, "run with --full first"),
    ],
)
def test_date_ranges_that_cannot_be_honoured_are_refused(
    current: PipelineState,
    raw_latest: int,
    full: bool,
    dates: tuple[date, date],
    message: str,
) -> None:
    with pytest.raises(ConfigError, match=message):
        plan_run(current, raw_latest, 10, full=full, date_range=dates)


def test_an_unfinished_restore_refuses_every_run_until_it_is_run_again() -> None:
    stopped = UnfinishedRun(
        "r3",
        "running",
        None,
        datetime(2026, 11, 22, tzinfo=UTC),
        None,
        4,
        "restore of backup 20261122T000000Z did not finish: run make restore "
        "BACKUP=20261122T000000Z again before any job",
        job_name="restore",
    )
    for options in ({}, {"full": True}, {"date_range": DAYS}):
        with pytest.raises(ConfigError, match="make restore BACKUP=20261122T000000Z again"):
            plan_run(state(stopped), raw_latest=7, curated_latest=12, **options)
    # A crashed batch run is no restore: it is redone.
    assert plan_run(state(unfinished(INCREMENTAL)), raw_latest=7, curated_latest=10).mode == (
        INCREMENTAL
    )


def test_keys_may_be_in_a_file_whose_bounds_overlap_their_range_or_that_has_none() -> None:
    files = [("TXN-a-000", "TXN-a-999"), ("TXN-b-000", "TXN-b-500")]
    assert files_for_key_range(files, ("TXN-c-000", "TXN-c-999")) == []  # after every file
    assert files_for_key_range(files, ("TXN-0", "TXN-9")) == []  # before every file
    assert files_for_key_range(files, ("TXN-b-501", "TXN-b-999")) == []  # after the last key
    assert files_for_key_range(files, ("TXN-b-500", "TXN-c")) == [1]  # ends are included
    assert files_for_key_range(files, ("TXN-0", "TXN-a-000")) == [0]
    assert files_for_key_range(files, ("TXN-a-5", "TXN-a-6")) == [0]  # inside one file
    assert files_for_key_range(files, ("TXN-0", "TXN-z")) == [0, 1]  # around both
    assert files_for_key_range([*files, (None, None)], ("TXN-c-000", "TXN-c-999")) == [2]
    assert files_for_key_range([("TXN-a", None)], ("TXN-c", "TXN-d")) == [0]
    assert files_for_key_range([("TXN-e", None), (None, "TXN-b")], ("TXN-c", "TXN-d")) == []
    assert files_for_key_range([], ("TXN-c", "TXN-d")) == []


WANTED = {"delta.enableDeletionVectors": "true", "delta.dataSkippingStatsColumns": "transaction_id"}


def test_an_older_curated_table_gets_the_properties_it_lacks() -> None:
    assert curated_properties_to_set({}, WANTED) == WANTED
    assert curated_properties_to_set({"delta.enableDeletionVectors": "false"}, WANTED) == WANTED
    current = {"delta.enableDeletionVectors": "TRUE", "delta.dataSkippingStatsColumns": "x"}
    assert curated_properties_to_set(current, WANTED) == {}


def test_statistics_columns_an_owner_chose_are_kept() -> None:
    for chosen in (
        {"delta.dataSkippingStatsColumns": "merchant_id"},
        {"delta.dataSkippingNumIndexedCols": "5"},
    ):
        current = {"delta.enableDeletionVectors": "true", **chosen}
        assert curated_properties_to_set(current, WANTED) == {}
