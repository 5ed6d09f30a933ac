"""Where backups are kept: an s3a:// prefix (boto3, the jobs' key) or a local folder.

Each backup is a folder named by its id holding the dump and, written last, its manifest: a
folder without a manifest is a backup that did not finish, and is neither listed nor restored.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from jobs.adapters.object_store import s3_client, split_path
from jobs.config.settings import S3Settings
from jobs.core.backups import MANIFEST_NAME
from jobs.core.errors import BackupError, ServiceUnavailableError


class BackupStore(Protocol):
    location: str

    def put_file(self, backup_id: str, name: str, source: Path) -> None: ...
    def get_file(self, backup_id: str, name: str, target: Path) -> None: ...
    def put_text(self, backup_id: str, name: str, text: str) -> None: ...
    def get_text(self, backup_id: str, name: str) -> str: ...
    def ids(self) -> list[str]:
        """Backups with a manifest, oldest first."""
        ...

    def delete(self, backup_id: str) -> None: ...


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class LocalBackupStore:
    def __init__(self, location: str) -> None:
        self.location = location
        self.root = Path(location)

    def put_file(self, backup_id: str, name: str, source: Path) -> None:
        folder = self.root / backup_id
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, folder / name)

    def get_file(self, backup_id: str, name: str, target: Path) -> None:
        source = self.root / backup_id / name
        if not source.is_file():
            raise BackupError(f"backup {backup_id} has no {name} in {self.location}")
        shutil.copyfile(source, target)

    def put_text(self, backup_id: str, name: str, text: str) -> None:
        folder = self.root / backup_id
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".{name}.partial"
        partial.write_text(text)
        partial.replace(folder / name)

    def get_text(self, backup_id: str, name: str) -> str:
        source = self.root / backup_id / name
        if not source.is_file():
            raise BackupError(f"no backup {backup_id} in {self.location} (make backups lists them)")
        return source.read_text()

    def ids(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.parent.name for p in self.root.glob(f"*/{MANIFEST_NAME}"))

    def delete(self, backup_id: str) -> None:
        shutil.rmtree(self.root / backup_id, ignore_errors=True)


class S3BackupStore:
    def __init__(self, location: str, s3: S3Settings) -> None:
        self.location = location
        self.endpoint = s3.endpoint
        self.bucket, self.prefix = split_path(location)
        self.client: Any = s3_client(s3)

    def _key(self, backup_id: str, name: str) -> str:
        return "/".join(part for part in (self.prefix, backup_id, name) if part)

    def _unavailable(self, error: Exception) -> Exception:
        if isinstance(error, EndpointConnectionError):
            return ServiceUnavailableError(
                f"object store at {self.endpoint} is not reachable (S3_ENDPOINT)"
            )
        if isinstance(error, ClientError):
            code = str(error.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchKey"):
                return BackupError(f"not found in {self.location}: {error}")
            if code == "NoSuchBucket":
                return BackupError(
                    f"bucket '{self.bucket}' of the backup location {self.location} does not "
                    "exist (make up creates it; BACKUP_LOCATION / conf [backup] location)"
                )
        return ServiceUnavailableError(f"object store at {self.endpoint}: {error}")

    def put_file(self, backup_id: str, name: str, source: Path) -> None:
        try:
            self.client.upload_file(str(source), self.bucket, self._key(backup_id, name))
        except (BotoCoreError, ClientError) as error:
            raise self._unavailable(error) from None

    def get_file(self, backup_id: str, name: str, target: Path) -> None:
        try:
            self.client.download_file(self.bucket, self._key(backup_id, name), str(target))
        except (BotoCoreError, ClientError) as error:
            raise self._unavailable(error) from None

    def put_text(self, backup_id: str, name: str, text: str) -> None:
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=self._key(backup_id, name), Body=text.encode()
            )
        except (BotoCoreError, ClientError) as error:
            raise self._unavailable(error) from None

    def get_text(self, backup_id: str, name: str) -> str:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(backup_id, name))
        except ClientError as error:
            if str(error.response.get("Error", {}).get("Code", "")) in ("404", "NoSuchKey"):
                raise BackupError(
                    f"no backup {backup_id} in {self.location} (make backups lists them)"
                ) from None
            raise self._unavailable(error) from None
        except BotoCoreError as error:
            raise self._unavailable(error) from None
        return str(body["Body"].read().decode())

    def _keys(self, prefix: str) -> list[str]:
        keys: list[str] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            for page in pages:
                keys.extend(item["Key"] for item in page.get("Contents", []))
        except (BotoCoreError, ClientError) as error:
            raise self._unavailable(error) from None
        return keys

    def ids(self) -> list[str]:
        base = f"{self.prefix}/" if self.prefix else ""
        found = []
        for key in self._keys(base):
            parts = key[len(base) :].split("/")
            if len(parts) == 2 and parts[1] == MANIFEST_NAME:
                found.append(parts[0])
        return sorted(found)

    def delete(self, backup_id: str) -> None:
        keys = self._keys(self._key(backup_id, "") + "/")
        try:
            for start in range(0, len(keys), 1000):
                self.client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": k} for k in keys[start : start + 1000]]},
                )
        except (BotoCoreError, ClientError) as error:
            raise self._unavailable(error) from None


def backup_store(location: str, s3: S3Settings) -> BackupStore:
    if location.startswith("s3a://"):
        return S3BackupStore(location, s3)
    return LocalBackupStore(location)
