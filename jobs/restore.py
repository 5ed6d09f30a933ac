"""Restore a backup: PostgreSQL to its dump, curated and quarantine to their recorded versions.

    spark-submit ... jobs/restore.py BACKUP_ID [--wait-for-lock SECONDS]
    (or: make restore BACKUP=<id>; make backups lists the ids)

Refused, naming the problem, while a run or a stream holds the tables, or when the files of a
recorded version are gone. PostgreSQL is restored as the admin role (POSTGRES_ADMIN_URL). The
steps and what a restore stopped part-way leaves are in jobs/runs/restore.py.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from contextlib import ExitStack

from jobs.adapters.session import spark_session
from jobs.config.postgres_url import target_from_env
from jobs.config.settings import load_settings
from jobs.core.models import RESTORE_JOB
from jobs.runs import restore
from jobs.runs.cli import run_main


def parse_args(argv: Sequence[str] | None = None) -> restore.RestoreOptions:
    parser = argparse.ArgumentParser(prog="restore", description=__doc__.split("\n")[0])
    parser.add_argument("backup_id", help="the backup to restore (make backups lists them)")
    parser.add_argument(
        "--wait-for-lock",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="if a run holds the tables, wait this long for it (default: refuse at once)",
    )
    args = parser.parse_args(argv)
    return restore.RestoreOptions(args.backup_id, args.wait_for_lock)


def main(argv: Sequence[str] | None = None) -> int:
    def body() -> int:
        options = parse_args(argv)
        settings = load_settings()
        admin = target_from_env(role="admin")
        with ExitStack() as stack:
            result = restore.run(
                lambda: stack.enter_context(spark_session("enrich-restore", settings.s3)),
                settings,
                admin,
                options,
            )
        manifest = result.manifest
        print(
            f"\nRestored backup {manifest.backup_id} in {result.seconds:.1f} s: PostgreSQL "
            f"schemas {', '.join(manifest.schemas)} as of run {manifest.run_id}; curated as of "
            f"version {manifest.curated.version} (now version {result.curated_version}), "
            f"quarantine as of version {manifest.quarantine.version} (now version "
            f"{result.quarantine_version}). Checked: the summary ({result.summary_rows} rows) "
            f"equals the GROUP BY of curated ({result.curated_rows:,} rows, each id once).\n"
            f"The next run processes the raw versions after {manifest.raw.version} "
            f"(restore run {result.run_id}).\n"
        )
        return 0

    return run_main(RESTORE_JOB, body)


if __name__ == "__main__":
    sys.exit(main())
