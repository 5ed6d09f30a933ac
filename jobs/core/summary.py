"""The daily summary brought up to date by adding up the curated table's changes.

PostgreSQL's ``category_daily_summary`` is, after every synced run, exactly the GROUP BY of the
curated table at that run's version (both are written in one transaction with the run record).
So the summary at a later version is those rows plus what the change feed between the two
versions adds and takes away, without reading the curated table again."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from decimal import Decimal

from jobs.core.errors import SourceError
from jobs.core.models import SummaryRow


def add_changes(current: Iterable[SummaryRow], changes: Iterable[SummaryRow]) -> list[SummaryRow]:
    """``current`` (summary rows) with ``changes`` (differences per key, see
    transforms.summary_changes) added; a key whose transactions all went is left out."""
    totals: dict[tuple[date, str, str], tuple[int, Decimal]] = {}
    for row in (*current, *changes):
        key = (row.event_date, row.category, row.currency)
        count, amount = totals.get(key, (0, Decimal(0)))
        totals[key] = (count + row.transaction_count, amount + row.total_amount)
    rows = []
    for (event_date, category, currency), (count, amount) in totals.items():
        if count < 0 or (count == 0 and amount != 0):
            raise SourceError(
                f"the summary in PostgreSQL is out of step with the curated table ({event_date}, "
                f"{category}, {currency}: {count} transactions, total {amount} after this run's "
                "changes); rebuild both with --full"
            )
        if count:
            rows.append(SummaryRow(event_date, category, currency, count, amount))
    return rows
