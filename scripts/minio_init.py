"""The local stack's MinIO, set up as docker compose's minio-init sets up its own: the project's
buckets, the enrich-jobs policy (conf/minio/enrich-jobs-policy.json) and the jobs' own user
(AWS_ACCESS_KEY_ID) with that policy and nothing else. Runs with MinIO's root credentials
(MINIO_ROOT_USER / MINIO_ROOT_PASSWORD, or *_FILE), which the jobs never use. Rerunnable.

    .venv/bin/python -m scripts.minio_init      (make up runs it)
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError
from minio.credentials.providers import StaticProvider
from minio.error import MinioAdminException
from minio.minioadmin import MinioAdmin

from jobs.adapters.object_store import s3_client, split_path
from jobs.config.secrets import secret_from_env
from jobs.config.settings import S3Settings, load_settings
from jobs.core.errors import ConfigError, EnrichmentError, ServiceUnavailableError

POLICY_NAME = "enrich-jobs"
POLICY_FILE = Path(__file__).resolve().parents[1] / "conf" / "minio" / "enrich-jobs-policy.json"


def root_settings(jobs: S3Settings) -> S3Settings:
    user = secret_from_env(os.environ, "MINIO_ROOT_USER")
    password = secret_from_env(os.environ, "MINIO_ROOT_PASSWORD")
    if not user or not password:
        raise ConfigError("MINIO_ROOT_USER and MINIO_ROOT_PASSWORD (or *_FILE) must be set")
    if user == jobs.access_key:
        raise ConfigError(
            "AWS_ACCESS_KEY_ID is MinIO's root user; the jobs need a key of their own "
            "(set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY to another key)"
        )
    return replace(jobs, access_key=user, secret_key=password)


def admin_client(root: S3Settings) -> MinioAdmin:
    secure = root.endpoint.startswith("https://")
    return MinioAdmin(
        endpoint=root.endpoint.split("://", 1)[1],
        credentials=StaticProvider(root.access_key, root.secret_key),
        secure=secure,
    )


def policy_buckets(policy: dict[str, object]) -> set[str]:
    statements = policy.get("Statement", [])
    assert isinstance(statements, list)
    return {
        resource.removeprefix("arn:aws:s3:::").split("/", 1)[0]
        for statement in statements
        for resource in statement.get("Resource", [])
    }


def ensure_buckets(s3: S3Settings, buckets: list[str]) -> list[str]:
    """Create the missing buckets; returns the ones created."""
    client = s3_client(s3)
    created = []
    try:
        existing = {bucket["Name"] for bucket in client.list_buckets().get("Buckets", [])}
        for bucket in buckets:
            if bucket not in existing:
                client.create_bucket(Bucket=bucket)
                created.append(bucket)
    except (BotoCoreError, ClientError) as error:
        raise ServiceUnavailableError(f"object store at {s3.endpoint}: {error}") from None
    return created


def grant_job_user(admin: MinioAdmin, jobs: S3Settings, policy_name: str, policy: dict) -> None:  # type: ignore[type-arg]
    """Create or update the policy and the user, and give the user that policy alone."""
    admin.policy_add(policy_name, policy=policy)
    admin.user_add(jobs.access_key, jobs.secret_key)
    admin.policy_set(policy_name, user=jobs.access_key)


def main() -> int:
    try:
        settings = load_settings()
        root = root_settings(settings.s3)
        tables = settings.tables
        paths = [tables.raw, tables.curated, tables.quarantine]
        if settings.backup.location.startswith("s3a://"):
            paths.append(settings.backup.location)
        wanted = sorted({split_path(p)[0] for p in paths})
        created = ensure_buckets(root, wanted)
        policy = json.loads(POLICY_FILE.read_text())
        uncovered = sorted(set(wanted) - policy_buckets(policy))
        if uncovered:
            raise ConfigError(
                f"the tables and backups are in bucket(s) {', '.join(uncovered)}, which {POLICY_FILE.name} "
                "does not grant; add them to its Resource lists"
            )
        grant_job_user(admin_client(root), settings.s3, POLICY_NAME, policy)
    except EnrichmentError as error:
        print(f"stack: error: {error}", file=sys.stderr)
        return error.exit_code
    except MinioAdminException as error:
        print(f"stack: error: MinIO refused an admin request: {error}", file=sys.stderr)
        return 4
    for bucket in wanted:
        state = "created" if bucket in created else "exists"
        print(f"stack: bucket {bucket}: {state}", file=sys.stderr)
    print(
        f"stack: MinIO user {settings.s3.access_key} has policy {POLICY_NAME} "
        f"({', '.join(sorted(policy_buckets(policy)))} only)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
