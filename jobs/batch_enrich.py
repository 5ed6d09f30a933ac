"""Batch enrichment job: raw Delta + Postgres lookups -> curated Delta, quarantine, summary.

    spark-submit ... jobs/batch_enrich.py [--full | --from-date D --to-date D]
                                          [--wait-for-lock SECONDS] [--run-id ID]
                                          [RAW_TABLE [CURATED_TABLE [QUARANTINE_TABLE]]]
    (or: make submit-batch ARGS="...")

Table paths given on the command line (s3a://...) override conf/enrichment.toml.

Incremental by default: only the raw commits since the last successful run are read. The run
itself is jobs/runs/batch.py; this entry point parses the command line, opens the session
when the run asks for one, and prints the run summary.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import date

from jobs.adapters.session import spark_session
from jobs.config.settings import load_settings
from jobs.core.report import format_run_summary
from jobs.runs.batch import JOB_NAME, BatchOptions, run
from jobs.runs.cli import add_table_arguments, run_main, table_overrides, with_tables


def parse_args(argv: Sequence[str] | None = None) -> BatchOptions:
    parser = argparse.ArgumentParser(prog="batch_enrich", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--full",
        action="store_true",
        help="rebuild curated, quarantine and summary from all raw data",
    )
    parser.add_argument(
        "--from-date", type=date.fromisoformat, help="re-enrich curated rows from this event date"
    )
    parser.add_argument(
        "--to-date", type=date.fromisoformat, help="... to this event date (inclusive)"
    )
    parser.add_argument(
        "--wait-for-lock",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="if another run is writing the same tables, wait this long for it (default: refuse)",
    )
    parser.add_argument("--run-id", help="use this run id (default: a new UUID)")
    add_table_arguments(parser)
    args = parser.parse_args(argv)
    tables = table_overrides(parser, args)
    if args.run_id is not None:
        try:
            uuid.UUID(args.run_id)
        except ValueError:
            parser.error(f"--run-id must be a UUID (got {args.run_id!r})")
    date_range = None
    if args.from_date or args.to_date:
        if args.full:
            parser.error("--full cannot be combined with --from-date/--to-date")
        first = args.from_date or args.to_date
        date_range = (first, args.to_date or first)
        if date_range[0] > date_range[1]:
            parser.error(f"--from-date {date_range[0]} is after --to-date {date_range[1]}")
    return BatchOptions(
        full=args.full,
        date_range=date_range,
        run_id=args.run_id,
        wait_for_lock=args.wait_for_lock,
        table_paths=tables,
    )


def main(argv: Sequence[str] | None = None) -> int:
    def body() -> int:
        options = parse_args(argv)
        settings = with_tables(load_settings(), options.table_paths)
        with ExitStack() as stack:
            result = run(
                lambda: stack.enter_context(spark_session("enrich-batch", settings.s3)),
                settings,
                options,
            )
        print(format_run_summary(result))
        return 0

    return run_main(JOB_NAME, body)


if __name__ == "__main__":
    sys.exit(main())
