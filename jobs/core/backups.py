"""What a backup is: its id, its manifest, which backups retention keeps (pure).

A backup is one consistent point of both stores: a pg_dump of the reference and pipeline
schemas taken in one snapshot, and the versions of the curated and quarantine Delta tables
that the last successful run in that snapshot wrote (with the raw table's watermark). Delta
keeps old versions until VACUUM, so a backup stores no Parquet: restoring a table is Delta's
RESTORE to the recorded version.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from jobs.core.errors import BackupError

MANIFEST_FORMAT = 1
DUMP_NAME = "postgres.dump"
MANIFEST_NAME = "manifest.json"
SCHEMAS = ("reference", "pipeline")
_ID = re.compile(r"^\d{8}T\d{6}Z$")


def backup_id(at: datetime) -> str:
    """Sortable and readable: 20261202T224500Z."""
    return at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def check_backup_id(value: str) -> str:
    if not _ID.match(value):
        raise BackupError(
            f"{value!r} is not a backup id (like 20261202T224500Z; make backups lists them)"
        )
    return value


@dataclass(frozen=True)
class TableVersion:
    path: str
    version: int | None  # None: the run wrote no version of it (no quarantine table yet)


@dataclass(frozen=True)
class Manifest:
    backup_id: str
    created_at: str  # ISO 8601, UTC
    database: str
    schemas: tuple[str, ...]
    dump_sha256: str
    dump_bytes: int
    run_id: str  # the last successful run in the dump: its versions are the tables'
    run_ended_at: str | None
    raw: TableVersion  # the watermark: raw versions up to this one are in curated
    curated: TableVersion
    quarantine: TableVersion
    format: int = MANIFEST_FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @staticmethod
    def from_json(text: str, where: str) -> Manifest:
        try:
            data: dict[str, Any] = json.loads(text)
            if data.get("format") != MANIFEST_FORMAT:
                raise BackupError(
                    f"{where}: manifest format {data.get('format')!r}, this version reads "
                    f"{MANIFEST_FORMAT}"
                )
            return Manifest(
                **{
                    **data,
                    "schemas": tuple(data["schemas"]),
                    "raw": TableVersion(**data["raw"]),
                    "curated": TableVersion(**data["curated"]),
                    "quarantine": TableVersion(**data["quarantine"]),
                }
            )
        except (ValueError, TypeError, KeyError) as error:
            raise BackupError(f"{where}: not a readable backup manifest ({error})") from None


def to_delete(ids: Sequence[str], keep: int) -> list[str]:
    """The backups retention removes after a new one: all but the newest ``keep``."""
    newest_first = sorted(ids, reverse=True)
    return sorted(newest_first[keep:])


def describe(manifest: Manifest) -> str:
    """One line of `make backups`."""
    size = manifest.dump_bytes / 1e6
    return (
        f"{manifest.backup_id}  run {manifest.run_id[:8]}  raw v{manifest.raw.version}  "
        f"curated v{manifest.curated.version}  quarantine v{manifest.quarantine.version}  "
        f"dump {size:.1f} MB"
    )
