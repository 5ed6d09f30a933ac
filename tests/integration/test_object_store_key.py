"""Least privilege in the object store: the jobs' own MinIO key (AWS_*, made by make up with
conf/minio/enrich-jobs-policy.json) works in the project's buckets and nowhere else."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError

from jobs.adapters.object_store import s3_client
from jobs.config.settings import S3Settings, s3_from_env
from tests.stack import delete_bucket

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def jobs_key() -> S3Settings:
    return s3_from_env(os.environ)


@pytest.fixture()
def other_bucket(s3: S3Settings) -> Iterator[str]:
    name = f"other-{uuid.uuid4().hex[:10]}"
    client = s3_client(s3)
    client.create_bucket(Bucket=name)
    client.put_object(Bucket=name, Key="private.txt", Body=b"not for the jobs")
    yield name
    delete_bucket(s3, name)


def denied(call) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ClientError) as caught:
        call()
    assert caught.value.response["Error"]["Code"] == "AccessDenied", caught.value.response


def test_the_jobs_key_is_not_the_root_user(jobs_key: S3Settings, s3: S3Settings) -> None:
    assert jobs_key.access_key != s3.access_key


@pytest.mark.parametrize("bucket", ["raw-data-bucket", "curated-data-bucket"])
def test_the_jobs_key_reads_and_writes_the_project_buckets(
    jobs_key: S3Settings, bucket: str
) -> None:
    client = s3_client(jobs_key)
    key = f"_policy_probe/{uuid.uuid4().hex}"
    client.put_object(Bucket=bucket, Key=key, Body=b"probe")
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == b"probe"
    listed = client.list_objects_v2(Bucket=bucket, Prefix="_policy_probe/")
    assert key in {item["Key"] for item in listed.get("Contents", [])}
    client.delete_object(Bucket=bucket, Key=key)


def test_the_jobs_key_cannot_create_a_bucket(jobs_key: S3Settings, s3: S3Settings) -> None:
    name = f"made-by-jobs-{uuid.uuid4().hex[:8]}"
    denied(lambda: s3_client(jobs_key).create_bucket(Bucket=name))
    existing = {b["Name"] for b in s3_client(s3).list_buckets()["Buckets"]}
    assert name not in existing


def test_the_jobs_key_cannot_read_or_write_another_bucket(
    jobs_key: S3Settings, other_bucket: str
) -> None:
    client = s3_client(jobs_key)
    denied(lambda: client.get_object(Bucket=other_bucket, Key="private.txt"))
    denied(lambda: client.list_objects_v2(Bucket=other_bucket))
    denied(lambda: client.put_object(Bucket=other_bucket, Key="x", Body=b"x"))
    denied(lambda: client.delete_object(Bucket=other_bucket, Key="private.txt"))


def test_the_jobs_key_cannot_delete_a_project_bucket(jobs_key: S3Settings) -> None:
    denied(lambda: s3_client(jobs_key).delete_bucket(Bucket="raw-data-bucket"))
