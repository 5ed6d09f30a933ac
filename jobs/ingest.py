"""Ingest job: append CSV or JSON-lines files (local paths or s3a://) to the raw Delta table.

    spark-submit ... jobs/ingest.py FILE [FILE ...] [--format csv|jsonl]   (or: make ingest FILES=...)

Rows that cannot be parsed are kept (with their text and the problems) for the batch job to
quarantine; a CSV file with an unexpected header is refused whole. The run is jobs/runs/ingest.py.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from jobs.adapters.session import spark_session
from jobs.config.settings import load_settings
from jobs.runs.cli import run_main
from jobs.runs.ingest import FORMATS, JOB_NAME, IngestOptions, format_of, run


def parse_args(argv: Sequence[str] | None = None) -> IngestOptions:
    parser = argparse.ArgumentParser(prog="ingest", description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="+", help="files or folders, local or s3a://")
    parser.add_argument(
        "--format",
        choices=(*FORMATS, "auto"),
        default="auto",
        help="input format (default: from the first file's extension)",
    )
    parser.add_argument(
        "--wait-for-lock",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="if another ingest is appending to the raw table, wait this long (default: refuse)",
    )
    args = parser.parse_args(argv)
    file_format = args.format
    if file_format == "auto":
        first = args.paths[0]
        file_format = format_of(first)
        if file_format is None:
            parser.error(f"cannot tell the format of {args.paths[0]!r}; pass --format csv|jsonl")
    return IngestOptions(
        paths=tuple(args.paths), file_format=file_format, wait_for_lock=args.wait_for_lock
    )


def main(argv: Sequence[str] | None = None) -> int:
    def body() -> int:
        options = parse_args(argv)
        settings = load_settings()
        with spark_session("enrich-ingest", settings.s3) as spark:
            result = run(spark, settings, options)
        print(
            f"\nIngest {result.ingest_id}: {result.rows_appended:,} rows appended to "
            f"{settings.tables.raw} (version {result.raw_version}); "
            f"{result.rows_unparsed:,} could not be parsed and will be quarantined by the batch job\n"
        )
        return 0

    return run_main(JOB_NAME, body)


if __name__ == "__main__":
    sys.exit(main())
