"""The object store client, and the project's buckets created when missing (make up)."""

from __future__ import annotations

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from jobs.errors import ServiceUnavailableError
from jobs.settings import S3Settings


def s3_client(s3: S3Settings):  # type: ignore[no-untyped-def]
    return boto3.client(
        "s3",
        endpoint_url=s3.endpoint,
        aws_access_key_id=s3.access_key,
        aws_secret_access_key=s3.secret_key,
        region_name=s3.region,
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 2},
            connect_timeout=5,
            read_timeout=30,
        ),
    )


def bucket_of(path: str) -> str:
    """``s3a://bucket/key`` -> ``bucket``."""
    return path.split("://", 1)[1].split("/", 1)[0]


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
