"""Maintenance decided from facts (jobs.core.maintenance): retention, partitions to compact."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from jobs.core.errors import ConfigError
from jobs.core.maintenance import (
    WHOLE_TABLE,
    Keep,
    Retention,
    chosen_retention,
    partition_filter,
    partitions_added,
    required_retention,
)

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def test_the_retention_is_the_longest_need_rounded_up_to_hours() -> None:
    keeps = [
        Keep("time travel", NOW - timedelta(hours=24)),
        Keep("backup B", NOW - timedelta(hours=30, minutes=1)),
        Keep("a future-dated commit", NOW + timedelta(hours=1)),
    ]
    assert required_retention(NOW, keeps) == Retention(31, "backup B")
    assert required_retention(NOW, []).hours == 0
    assert required_retention(NOW, keeps[2:]).hours == 0


def test_a_shorter_retention_than_needed_is_refused_naming_what_needs_it() -> None:
    needed = Retention(31, "backup B (curated version 4)")
    assert chosen_retention(needed, None) == needed
    assert chosen_retention(needed, 40) == Retention(40, "--retain-hours")
    with pytest.raises(
        ConfigError, match=r"--retain-hours 2 is shorter than the 31 hours needed by backup B"
    ):
        chosen_retention(needed, 2)


def commit(*actions: dict[str, object]) -> str:
    return "\n".join(json.dumps(action) for action in actions) + "\n"


def test_partitions_written_are_those_of_added_files_with_new_data() -> None:
    merge = commit(
        {"commitInfo": {"operation": "MERGE"}},
        {"remove": {"path": "event_date=2026-11-01/a.parquet"}},
        {"add": {"path": "x", "partitionValues": {"event_date": "2026-11-02"}, "dataChange": True}},
        {"add": {"path": "y", "partitionValues": {"event_date": "2026-11-03"}}},
    )
    optimize = commit(
        {"add": {"path": "z", "partitionValues": {"event_date": "2026-11-09"}, "dataChange": False}}
    )
    assert partitions_added([merge, optimize], "event_date") == {"2026-11-02", "2026-11-03"}
    assert partitions_added([merge], None) == {WHOLE_TABLE}
    assert partitions_added([optimize], None) == set()
    assert partition_filter("event_date", ["2026-11-03", "it's"]) == (
        "`event_date` IN ('2026-11-03', 'it''s')"
    )
