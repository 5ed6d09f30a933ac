"""Backups of both stores at one consistent point: `make backup`, `make backups`.

    python -m jobs.backup            take a backup (pg_dump + the tables' versions), then retention
    python -m jobs.backup --list     list the backups at the configured location

No Spark and no writer lock: PostgreSQL is read in one snapshot, as the read-only reporting
role (POSTGRES_REPORTING_URL). Where backups go: conf/enrichment.toml [backup] or
BACKUP_LOCATION. Restoring one is jobs/restore.py (`make restore BACKUP=<id>`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from jobs.config.postgres_url import target_from_env
from jobs.config.settings import load_settings
from jobs.core.backups import describe
from jobs.runs import backup
from jobs.runs.cli import run_main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="backup", description=__doc__.split("\n")[0])
    parser.add_argument("--list", action="store_true", help="list the backups instead")
    args = parser.parse_args(argv)

    def body() -> int:
        settings = load_settings()
        if args.list:
            found = backup.manifests(settings)
            print(f"{len(found)} backup(s) in {settings.backup.location}, oldest first:")
            for manifest in found:
                print(f"  {describe(manifest)}")
            return 0
        result = backup.take(settings, target_from_env(role="reporting"))
        manifest = result.manifest
        print(
            f"\nBackup {manifest.backup_id} stored in {result.location} in {result.seconds:.1f} s: "
            f"PostgreSQL schemas {', '.join(manifest.schemas)} ({manifest.dump_bytes / 1e6:.1f} MB) "
            f"as of run {manifest.run_id}; curated version {manifest.curated.version}, "
            f"quarantine version {manifest.quarantine.version}, raw watermark "
            f"{manifest.raw.version}."
        )
        if result.deleted:
            print(f"Retention (keep {settings.backup.keep}): deleted {', '.join(result.deleted)}.")
        print(f"Restore it with: make restore BACKUP={manifest.backup_id}\n")
        return 0

    return run_main(backup.JOB_NAME, body)


if __name__ == "__main__":
    sys.exit(main())
