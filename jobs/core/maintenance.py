"""Table maintenance decided from facts (pure): which partitions to compact, and how long VACUUM
must keep the files of old versions.

VACUUM deletes a file once it has been out of the table (removed by a later commit) for longer
than the retention. Every file of version V was still in the table when V was committed, so a
retention of at least ``now - commit time of V`` keeps all of V's files. The retention a
maintenance run uses is the longest of what each reader of old versions needs (a ``Keep``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from jobs.core.errors import ConfigError


@dataclass(frozen=True)
class Keep:
    """Files of the table as of ``since`` must stay, because of ``reason``."""

    reason: str
    since: datetime


@dataclass(frozen=True)
class Retention:
    hours: int
    reason: str  # what needs it (the longest Keep), or why none is needed


def hours_needed(now: datetime, keep: Keep) -> int:
    return max(0, math.ceil((now - keep.since).total_seconds() / 3600))


def required_retention(now: datetime, keeps: Sequence[Keep]) -> Retention:
    if not keeps:
        return Retention(0, "nothing reads an old version")
    longest = max(keeps, key=lambda keep: hours_needed(now, keep))
    return Retention(hours_needed(now, longest), longest.reason)


def chosen_retention(required: Retention, requested_hours: float | None) -> Retention:
    """``requested_hours`` (--retain-hours) if it keeps everything needed; refused otherwise."""
    if requested_hours is None:
        return required
    if requested_hours < required.hours:
        raise ConfigError(
            f"--retain-hours {requested_hours:g} is shorter than the {required.hours} hours "
            f"needed by {required.reason}; VACUUM would delete files still needed"
        )
    return Retention(math.ceil(requested_hours), "--retain-hours")


WHOLE_TABLE = "*"


def partitions_added(commits: Iterable[str], column: str | None) -> set[str]:
    """The values of partition ``column`` of the files the commits (Delta log JSON lines) add
    with new data; for a table without partitions (``column`` None), WHOLE_TABLE if any."""
    found: set[str] = set()
    for commit in commits:
        for line in commit.splitlines():
            if not line.strip():
                continue
            add = json.loads(line).get("add")
            if add and add.get("dataChange", True):
                if column is None:
                    found.add(WHOLE_TABLE)
                    continue
                value = (add.get("partitionValues") or {}).get(column)
                if value is not None:
                    found.add(str(value))
    return found


def partition_filter(column: str, values: Iterable[str]) -> str:
    """A predicate on the partition column alone (OPTIMIZE accepts nothing else)."""
    quoted = ", ".join("'" + value.replace("'", "''") + "'" for value in sorted(values))
    return f"`{column}` IN ({quoted})"
