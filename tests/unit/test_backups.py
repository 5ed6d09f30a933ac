"""What a backup is (jobs.core.backups): ids, the manifest, retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from jobs.core.backups import (
    Manifest,
    TableVersion,
    backup_id,
    check_backup_id,
    describe,
    to_delete,
)
from jobs.core.errors import BackupError

MANIFEST = Manifest(
    backup_id="20261202T224500Z",
    created_at="2026-12-02T22:45:00+00:00",
    database="enrichment",
    schemas=("reference", "pipeline"),
    dump_sha256="ab" * 32,
    dump_bytes=2_500_000,
    run_id="1a00254c-fe1b-47fd-978b-f72ac08c0243",
    run_ended_at=None,
    raw=TableVersion("s3a://raw/t", 4),
    curated=TableVersion("s3a://curated/t", 9),
    quarantine=TableVersion("s3a://curated/q", None),
)


def test_ids_are_utc_and_sort_in_time_order() -> None:
    paris = timezone(timedelta(hours=1))
    assert backup_id(datetime(2026, 12, 2, 23, 45, tzinfo=paris)) == "20261202T224500Z"
    assert check_backup_id("20261202T224500Z") == "20261202T224500Z"
    for bad in ("2026-12-02", "20261202T224500", "../20261202T224500Z", ""):
        with pytest.raises(BackupError, match="is not a backup id"):
            check_backup_id(bad)
    ids = [backup_id(datetime(2026, 12, d, tzinfo=UTC)) for d in (9, 10, 1)]
    assert sorted(ids) == [ids[2], ids[0], ids[1]]


def test_retention_keeps_the_newest() -> None:
    ids = ["20261201T000000Z", "20261203T000000Z", "20261202T000000Z", "20261204T000000Z"]
    assert to_delete(ids, keep=2) == ["20261201T000000Z", "20261202T000000Z"]
    assert to_delete(ids, keep=4) == []
    assert to_delete(ids[:1], keep=1) == []


def test_the_manifest_round_trips_and_a_damaged_one_is_refused() -> None:
    assert Manifest.from_json(MANIFEST.to_json(), "here") == MANIFEST
    assert "curated v9" in describe(MANIFEST) and "2.5 MB" in describe(MANIFEST)
    for text, message in (
        ("{not json", "not a readable backup manifest"),
        (MANIFEST.to_json().replace('"format": 1', '"format": 2'), "manifest format 2"),
        ('{"format": 1}', "not a readable backup manifest"),
    ):
        with pytest.raises(BackupError, match=message):
            Manifest.from_json(text, "backup X")
