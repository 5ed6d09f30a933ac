"""The readable run summary printed at the end of a batch run."""

from __future__ import annotations

from jobs.core.models import RANGE, RunResult


def _coverage(result: RunResult) -> str:
    if result.mode == RANGE and result.date_range is not None:
        first, last = result.date_range
        return f"event dates {first}..{last} re-enriched from raw up to version {result.raw_version_to}"
    if result.raw_version_from is None or result.raw_version_from > result.raw_version_to:
        return f"no new versions (watermark {result.raw_version_to})"
    return f"versions {result.raw_version_from}..{result.raw_version_to}"


def format_run_summary(result: RunResult) -> str:
    seconds = (result.ended_at - result.started_at).total_seconds()
    lines = [
        "",
        f"Enrichment run {result.run_id}: {result.status.upper()} ({result.mode}) in {seconds:.1f}s",
        f"  raw table        {result.raw_table}: {_coverage(result)}",
    ]
    if result.recovered:
        runs = ", ".join(
            f"{r.run_id} ({'died' if r.status in ('running', 'crashed') else 'failed'})"
            for r in result.recovered
        )
        lines.append(f"  recovered        {runs}")
    if result.message:
        lines.append(f"  why              {result.message}")
    if result.counts is not None:
        counts = result.counts
        lines += [
            f"  rows read        {counts.rows_read:>12,}",
            f"  curated          {counts.rows_curated:>12,}   (unmatched merchant -> UNKNOWN: {counts.rows_unmatched:,})",
            f"  rejected         {counts.rows_quarantined:>12,}   (failed validation, in quarantine with reasons)",
            f"  duplicates       {counts.rows_duplicate:>12,}   (superseded within this batch, in quarantine)",
            f"  replaced         {counts.rows_replaced:>12,}   (earlier curated rows replaced by a later record, in quarantine)",
        ]
    if result.top_unmatched:
        top = ", ".join(f"{value} ({count})" for value, count in result.top_unmatched)
        lines.append(f"  top unmatched    {top}")
    if result.curated_version is not None:
        dates = (
            "all dates"
            if result.summary_dates is None
            else f"{result.summary_dates} date(s) rewritten"
        )
        lines += [
            "Outputs",
            f"  curated Delta    {result.curated_table} (version {result.curated_version})",
            f"  quarantine Delta {result.quarantine_table} (version {result.quarantine_version})",
        ]
        if result.status != "noop":
            lines.append(
                f"  Postgres         pipeline.category_daily_summary ({result.summary_rows} rows, "
                f"{dates}), pipeline.enrichment_runs"
            )
    lines += [
        "Query them",
        '  make spark-sql SQL="SELECT enriched_category, count(*) FROM curated.transactions_enriched GROUP BY 1"',
        '  make spark-sql SQL="SELECT rejection_reasons, count(*) FROM curated.transactions_quarantine GROUP BY 1"',
        f"  make psql SQL=\"SELECT * FROM enrichment_runs WHERE run_id = '{result.run_id}'\"",
        "",
    ]
    return "\n".join(lines)
