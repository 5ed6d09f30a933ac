"""The summary brought up to date from changes (jobs/core/summary.py), on hand-made rows."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from jobs.core.errors import SourceError
from jobs.core.models import SummaryRow
from jobs.core.summary import add_changes

D1, D2 = date(2026, 11, 1), date(2026, 11, 2)


def row(day: date, category: str, count: int, total: str) -> SummaryRow:
    return SummaryRow(day, category, "USD", count, Decimal(total))


def test_changes_are_added_to_the_rows_they_name_and_new_keys_appear() -> None:
    current = [row(D1, "Groceries", 3, "30.00"), row(D1, "Travel", 1, "99.99")]
    changes = [
        row(D1, "Groceries", -1, "-10.00"),
        row(D1, "Groceries", 1, "12.50"),
        row(D2, "Dining", 2, "40.10"),
    ]
    assert sorted(add_changes(current, changes), key=repr) == sorted(
        [
            row(D1, "Groceries", 3, "32.50"),
            row(D1, "Travel", 1, "99.99"),  # untouched rows of a changed date stay
            row(D2, "Dining", 2, "40.10"),
        ],
        key=repr,
    )


def test_a_key_whose_transactions_all_went_is_left_out() -> None:
    current = [row(D1, "Groceries", 2, "5.00")]
    assert add_changes(current, [row(D1, "Groceries", -2, "-5.00")]) == []
    assert add_changes([], [row(D2, "Dining", 0, "0.00")]) == []  # a replay nets to zero


@pytest.mark.parametrize(
    "change", [row(D1, "Groceries", -3, "-5.00"), row(D1, "Groceries", -2, "-4.00")]
)
def test_a_summary_out_of_step_with_curated_is_refused(change: SummaryRow) -> None:
    with pytest.raises(SourceError, match=r"out of step .* rebuild both with --full"):
        add_changes([row(D1, "Groceries", 2, "5.00")], [change])
