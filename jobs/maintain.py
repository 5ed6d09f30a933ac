"""Table maintenance: compact curated and quarantine, then VACUUM what nothing needs any more.

    spark-submit ... jobs/maintain.py [--dry-run] [--retain-hours H] [--full-vacuum]
                                     [--wait-for-lock SECONDS]
    (or: make maintain ARGS="...")

The retention is computed from what still reads old versions (the oldest backup, the time travel
promised in conf/enrichment.toml [maintenance]); a shorter --retain-hours is refused. The raw
table is never touched. The steps are in jobs/runs/maintain.py.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from contextlib import ExitStack

from jobs.adapters.session import spark_session
from jobs.config.settings import load_settings
from jobs.core.models import MAINTAIN_JOB
from jobs.runs import maintain
from jobs.runs.cli import run_main


def parse_args(argv: Sequence[str] | None = None) -> maintain.MaintainOptions:
    parser = argparse.ArgumentParser(prog="maintain", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--dry-run", action="store_true", help="list what would be compacted and deleted"
    )
    parser.add_argument(
        "--retain-hours",
        type=float,
        metavar="H",
        help="keep old files this long (default: what backups and time travel need; shorter is refused)",
    )
    parser.add_argument(
        "--full-vacuum",
        action="store_true",
        help="list every object of the tables (slow on S3): also deletes files no commit refers "
        "to, left by writes that died",
    )
    parser.add_argument("--wait-for-lock", type=float, default=0.0, metavar="SECONDS")
    args = parser.parse_args(argv)
    if args.retain_hours is not None and args.retain_hours < 0:
        parser.error("--retain-hours must be >= 0")
    return maintain.MaintainOptions(
        args.dry_run, args.retain_hours, args.wait_for_lock, args.full_vacuum
    )


def format_result(result: maintain.MaintainResult) -> str:
    dry = result.dry_run
    lines = [
        f"\nMaintenance {result.run_id}{' (dry run)' if dry else ''} in {result.seconds:.1f} s:"
    ]
    for table in result.tables:
        if table.partitions == []:
            compacted = "nothing written since the last maintenance"
        else:
            what = (
                "the whole table"
                if table.partitions is None
                else f"{len(table.partitions)} partition(s)"
            )
            compacted = (
                f"would compact {what}"
                if dry
                else f"{what}: {table.files_removed} files compacted into {table.files_added}"
            )
        lines.append(
            f"  {table.name:<10} {compacted}; VACUUM keeps {table.retention.hours} h "
            f"({table.retention.reason}): {len(table.deleted)} file(s) "
            f"{'would go' if dry else 'deleted'}"
        )
        if dry:
            lines.extend(f"      {path}" for path in table.deleted[:50])
            if len(table.deleted) > 50:
                lines.append(f"      ... and {len(table.deleted) - 50} more")
    lines.append(
        "  raw        never compacted or vacuumed (a --full rebuild reads every version)\n"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    def body() -> int:
        options = parse_args(argv)
        settings = load_settings()
        with ExitStack() as stack:
            result = maintain.run(
                lambda: stack.enter_context(spark_session("enrich-maintain", settings.s3)),
                settings,
                options,
            )
        print(format_result(result))
        return 0

    return run_main(MAINTAIN_JOB, body)


if __name__ == "__main__":
    sys.exit(main())
