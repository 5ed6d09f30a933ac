"""A Delta table's latest version read straight from its ``_delta_log/`` on the object store.

The batch job decides what a run has to do before it starts Spark: with no new raw commits
there is nothing to do, and a run that finds that out with one LIST per table instead of a
SparkContext and three snapshot loads takes seconds instead of tens of seconds. The version is
the newest ``<version>.json`` commit (or checkpoint) in the log, which is what Delta itself
reads; the ``_last_checkpoint`` hint lets a long log be listed from its last checkpoint on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from botocore.exceptions import BotoCoreError, ClientError

from jobs.buckets import s3_client
from jobs.errors import ServiceUnavailableError
from jobs.settings import S3Settings

# 00000000000000000012.json, 00000000000000000010.checkpoint.parquet,
# 00000000000000000010.checkpoint.0000000001.0000000002.parquet, ...checkpoint.<uuid>.json
_LOG_ENTRY = re.compile(r"^(\d{20})\.(?:json|checkpoint\..+)$")


def newest_version(names: Iterable[str]) -> int | None:
    """The highest version among ``_delta_log`` file names (temp files, CRCs and others ignored)."""
    versions = [int(m.group(1)) for name in names if (m := _LOG_ENTRY.match(name))]
    return max(versions, default=None)


def _split(path: str) -> tuple[str, str]:
    """``s3a://bucket/a/b`` -> (``bucket``, ``a/b/_delta_log/``)."""
    bucket, _, key = path.split("://", 1)[1].partition("/")
    return bucket, f"{key.strip('/')}/_delta_log/" if key.strip("/") else "_delta_log/"


def _list_names(client, bucket: str, prefix: str, start_after: str) -> list[str]:  # type: ignore[no-untyped-def]
    names: list[str] = []
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix, StartAfter=start_after
    )
    for page in pages:
        names.extend(item["Key"][len(prefix) :] for item in page.get("Contents", []))
    return names


def latest_version(s3: S3Settings, path: str) -> int | None:
    """The newest committed version of the Delta table at ``path``, or None if there is none."""
    bucket, log_prefix = _split(path)
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
