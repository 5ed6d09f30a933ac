"""Quick checks before any Spark work, so a down server gives one clear message in seconds
instead of minutes of S3A or JDBC retries."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from jobs.buckets import bucket_of, s3_client
from jobs.errors import ServiceUnavailableError, SourceError
from jobs.settings import S3Settings


def check_buckets(s3: S3Settings, paths: list[str]) -> None:
    client = s3_client(s3)
    for bucket in sorted({bucket_of(path) for path in paths}):
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
            if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise ServiceUnavailableError(
                    f"object store at {s3.endpoint} refused the credentials for bucket '{bucket}' "
                    "(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)"
                ) from None
            raise ServiceUnavailableError(f"object store at {s3.endpoint}: {error}") from None
        except BotoCoreError as error:
            raise ServiceUnavailableError(f"object store at {s3.endpoint}: {error}") from None
