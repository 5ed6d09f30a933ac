"""The object store seen directly, without Spark: the S3 client, the buckets' pre-flight check,
and a Delta table's latest version read from its ``_delta_log/`` listing.

A batch run decides what it has to do before it starts Spark: with no new raw commits there is
nothing to do, and one LIST per table instead of a SparkContext and three snapshot loads takes
seconds instead of tens of seconds. The version is the newest ``<version>.json`` commit (or
checkpoint) in the log, which is what Delta itself reads; the ``_last_checkpoint`` hint lets a
long log be listed from its last checkpoint on. The pre-flight check turns a down server into
one clear message in seconds instead of minutes of S3A retries.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from jobs.config.settings import S3Settings
from jobs.core.errors import ServiceUnavailableError, SourceError

# 00000000000000000012.json, 00000000000000000010.checkpoint.parquet,
# 00000000000000000010.checkpoint.0000000001.0000000002.parquet, ...checkpoint.<uuid>.json
_LOG_ENTRY = re.compile(r"^(\d{20})\.(?:json|checkpoint\..+)$")
_REFUSED_CODES = ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch")


def s3_client(s3: S3Settings) -> Any:
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


def split_path(path: str) -> tuple[str, str]:
    """``s3a://bucket/a/b/`` -> (``bucket``, ``a/b``)."""
    bucket, _, key = path.split("://", 1)[-1].partition("/")
    return bucket, key.strip("/")


def check_buckets(s3: S3Settings, paths: Sequence[str]) -> None:
    """Every bucket of ``paths`` exists and the credentials may use it, or one clear error."""
    client = s3_client(s3)
    for bucket in sorted({split_path(path)[0] for path in paths}):
        try:
            client.head_bucket(Bucket=bucket)
        except EndpointConnectionError:
            raise ServiceUnavailableError(
                f"object store at {s3.endpoint} is not reachable (S3_ENDPOINT)"
            ) from None
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchBucket"):
                raise SourceError(
                    f"bucket '{bucket}' does not exist on {s3.endpoint} (make up creates it)"
                ) from None
            if code in _REFUSED_CODES:
                raise ServiceUnavailableError(
                    f"object store at {s3.endpoint} refused the credentials for bucket '{bucket}' "
                    "(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)"
                ) from None
            raise ServiceUnavailableError(f"object store at {s3.endpoint}: {error}") from None
        except BotoCoreError as error:
            raise ServiceUnavailableError(f"object store at {s3.endpoint}: {error}") from None


def newest_version(names: Iterable[str]) -> int | None:
    """The highest version among ``_delta_log`` file names (temp files, CRCs and others ignored)."""
    versions = [int(m.group(1)) for name in names if (m := _LOG_ENTRY.match(name))]
    return max(versions, default=None)


def _list_names(client: Any, bucket: str, prefix: str, start_after: str) -> list[str]:
    names: list[str] = []
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix, StartAfter=start_after
    )
    for page in pages:
        names.extend(item["Key"][len(prefix) :] for item in page.get("Contents", []))
    return names


def table_version(s3: S3Settings, path: str) -> int | None:
    """The newest committed version of the Delta table at ``path``, or None if there is none."""
    bucket, key = split_path(path)
    log_prefix = f"{key}/_delta_log/" if key else "_delta_log/"
    client = s3_client(s3)
    try:
        start_after = ""
        try:
            hint = client.get_object(Bucket=bucket, Key=log_prefix + "_last_checkpoint")
            checkpoint = int(json.loads(hint["Body"].read())["version"])
            start_after = f"{log_prefix}{checkpoint:020d}"
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
                raise
        except (ValueError, KeyError):
            pass  # an unreadable hint: list the whole log
        version = newest_version(_list_names(client, bucket, log_prefix, start_after))
        if version is None and start_after:  # a hint ahead of the log: trust the log
            version = newest_version(_list_names(client, bucket, log_prefix, ""))
    except (BotoCoreError, ClientError) as error:
        raise ServiceUnavailableError(
            f"object store at {s3.endpoint}: could not list {path}/_delta_log: {error}"
        ) from None
    return version
