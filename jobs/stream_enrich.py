"""Streaming enrichment job: files landed under a prefix -> raw, curated, quarantine, summary.

    spark-submit ... jobs/stream_enrich.py [--trigger 5s | --available-now]
                                           [--wait-for-lock SECONDS]
                                           [RAW_TABLE [CURATED_TABLE [QUARANTINE_TABLE]]]
    (or: make submit-stream ARGS="...")

CSV and JSON-lines files dropped under [stream] landing (conf/enrichment.toml, LANDING_PATH)
are ingested and enriched in micro-batches, exactly once, by the same code as `ingest` and the
batch job. Ctrl-C or SIGTERM stops it after the micro-batch in progress. The run itself is
jobs/runs/stream.py.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence

from jobs.adapters.session import spark_session
from jobs.config.settings import load_settings
from jobs.runs.cli import add_table_arguments, run_main, table_overrides, with_tables
from jobs.runs.stream import JOB_NAME, StreamOptions, StreamTotals, run

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}


def duration(text: str) -> float:
    """``5s``, ``500ms``, ``1m`` or plain seconds."""
    match = _DURATION.match(text)
    if not match or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 5s, 500ms or 1m")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def parse_args(argv: Sequence[str] | None = None) -> tuple[StreamOptions, dict[str, str]]:
    parser = argparse.ArgumentParser(prog="stream_enrich", description=__doc__.split("\n")[0])
    when = parser.add_mutually_exclusive_group()
    when.add_argument(
        "--trigger",
        type=duration,
        metavar="INTERVAL",
        help="start a micro-batch every INTERVAL, e.g. 5s (default: [stream] trigger_seconds)",
    )
    when.add_argument(
        "--available-now",
        action="store_true",
        help="process every file landed so far, then stop (for cron)",
    )
    parser.add_argument(
        "--wait-for-lock",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="if another run is writing the tables, wait this long for it (default: refuse)",
    )
    add_table_arguments(parser)
    args = parser.parse_args(argv)
    options = StreamOptions(
        trigger_seconds=args.trigger,
        available_now=args.available_now,
        wait_for_lock=args.wait_for_lock,
    )
    return options, table_overrides(parser, args)


def format_stream_summary(totals: StreamTotals) -> str:
    lines = [
        "",
        f"Stream stopped ({totals.stopped_by}) after {totals.batches} micro-batch(es)"
        + (f", {totals.replays_skipped} replay(s) skipped" if totals.replays_skipped else ""),
        f"  files            {totals.files:>12,}   ({totals.files_refused:,} refused whole)",
        f"  rows ingested    {totals.rows_ingested:>12,}",
        f"  curated          {totals.rows_curated:>12,}",
        f"  quarantined      {totals.rows_quarantined:>12,}   (rejected or superseded)",
    ]
    if totals.last_raw_version is not None:
        lines.append(f"  raw version      {totals.last_raw_version:>12}")
    lines.append("  micro-batch records: make psql SQL='TABLE pipeline.stream_batches'")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    def body() -> int:
        options, tables = parse_args(argv)
        settings = with_tables(load_settings(), tables)
        with spark_session("enrich-stream", settings.s3, long_running=True) as spark:
            totals = run(spark, settings, options)
        print(format_stream_summary(totals))
        return 0

    return run_main(JOB_NAME, body)


if __name__ == "__main__":
    sys.exit(main())
