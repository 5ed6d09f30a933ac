"""The readable run summary printed at the end of a batch run."""

from __future__ import annotations

from jobs.models import RunResult


def format_run_summary(result: RunResult) -> str:
    seconds = (result.ended_at - result.started_at).total_seconds()
    lines = [
        "",
        f"Enrichment run {result.run_id}: {result.status.upper()} in {seconds:.1f}s",
        f"  raw table        {result.raw_table} (version {result.raw_version})",
    ]
    if result.status == "noop":
        lines.append(f"  {result.message}")
    if result.counts is not None:
        counts = result.counts
        lines += [
            f"  rows read        {counts.rows_read:>12,}",
            f"  curated          {counts.rows_curated:>12,}   (unmatched merchant -> UNKNOWN: {counts.rows_unmatched:,})",
            f"  rejected         {counts.rows_quarantined:>12,}   (failed validation, in quarantine with reasons)",
            f"  duplicates       {counts.rows_duplicate:>12,}   (superseded transaction ids, in quarantine)",
        ]
    if result.top_unmatched:
        top = ", ".join(f"{value} ({count})" for value, count in result.top_unmatched)
        lines.append(f"  top unmatched    {top}")
    if result.curated_version is not None:
        lines += [
            "Outputs",
            f"  curated Delta    {result.curated_table} (version {result.curated_version})",
            f"  quarantine Delta {result.quarantine_table} (version {result.quarantine_version})",
            f"  Postgres         pipeline.category_daily_summary ({result.summary_rows} rows), "
            "pipeline.enrichment_runs",
        ]
    lines += [
        "Query them",
        '  make spark-sql SQL="SELECT enriched_category, count(*) FROM curated.transactions_enriched GROUP BY 1"',
        '  make spark-sql SQL="SELECT rejection_reasons, count(*) FROM curated.transactions_quarantine GROUP BY 1"',
        f"  make psql SQL=\"SELECT * FROM enrichment_runs WHERE run_id = '{result.run_id}'\"",
        "",
    ]
    return "\n".join(lines)
