"""The object store seen from the driver, without Spark: the S3 client, the buckets' pre-flight
check, and a Delta table's latest version (delta-rs).

A batch run decides what it has to do before it starts Spark: with no new raw commits there is
nothing to do, and reading each table's version with delta-rs (a few tens of milliseconds)
instead of a SparkContext and three snapshot loads takes seconds instead of tens of seconds.
The pre-flight check turns a down server into one clear message in seconds instead of minutes
of S3A retries.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError
from deltalake import DeltaTable, QueryBuilder
from deltalake.exceptions import DeltaError, TableNotFoundError
from pyspark.sql.types import StructType

from jobs.config.settings import S3Settings
from jobs.core.errors import ServiceUnavailableError, SourceError, first_line
from jobs.core.planning import files_for_key_range

if TYPE_CHECKING:
    import pyarrow

# delta-kernel's message for a file the store does not have.
_NOT_FOUND = re.compile(r"File not found: (\S+)")
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


def ensure_prefix(s3: S3Settings, path: str) -> None:
    """A folder-like prefix exists on the store: an empty ``prefix/`` marker object if nothing
    is under it yet (a streaming file source refuses a path that does not exist)."""
    bucket, key = split_path(path)
    client = s3_client(s3)
    if client.list_objects_v2(Bucket=bucket, Prefix=f"{key}/", MaxKeys=1).get("KeyCount", 0):
        return
    client.put_object(Bucket=bucket, Key=f"{key}/", Body=b"")


def delta_storage_options(s3: S3Settings) -> dict[str, str]:
    """delta-rs's options for the store: path-style requests to the configured endpoint."""
    return {
        "AWS_ENDPOINT_URL": s3.endpoint,
        "AWS_ACCESS_KEY_ID": s3.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.secret_key,
        "AWS_REGION": s3.region,
        "AWS_ALLOW_HTTP": str(not s3.uses_ssl).lower(),
        "AWS_VIRTUAL_HOSTED_STYLE_REQUEST": "false",
    }


@dataclass(frozen=True)
class TableSnapshot:
    """A Delta table's latest version and what its log says about it."""

    path: str
    version: int
    schema: StructType
    properties: dict[str, str]


def _open_table(s3: S3Settings, path: str) -> DeltaTable | None:
    try:
        return DeltaTable(path, storage_options=delta_storage_options(s3))
    except TableNotFoundError:
        return None
    except (DeltaError, OSError) as error:
        raise _log_unreadable(s3, path, error) from None


def _log_unreadable(s3: S3Settings, path: str, error: BaseException) -> ServiceUnavailableError:
    """The error for a Delta log delta-rs could not read. Its message for a store that is down
    is a bare "Generic S3 error", so whether the endpoint takes a connection is asked here."""
    endpoint = urlsplit(s3.endpoint)
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((endpoint.hostname or "", port), timeout=2).close()
    except OSError:
        return ServiceUnavailableError(
            f"object store at {s3.endpoint} did not answer: could not read the Delta log of {path}"
        )
    return ServiceUnavailableError(
        f"object store at {s3.endpoint}: could not read the Delta log of {path}: "
        f"{first_line(error)}"
    )


def read_columns(
    s3: S3Settings, path: str, columns: Sequence[str], order_by: Sequence[str] = ()
) -> pyarrow.Table:
    """The live rows of the table's latest version, ``columns`` only (in ``order_by`` order),
    read with delta-rs's DataFusion engine, which applies deletion vectors (its PyArrow
    datasets refuse a table that may have them). Text comes back from it in Arrow's view
    types, which many pyarrow kernels lack (sort, take): it is cast to plain strings."""
    import pyarrow as pa  # here: a run's start (a no-op run) does not pay for importing it

    table = DeltaTable(path, storage_options=delta_storage_options(s3))

    def quoted(names: Sequence[str]) -> str:
        return ", ".join(_sql_name(name) for name in names)

    query = f"SELECT {quoted(columns)} FROM t" + (
        f" ORDER BY {quoted(order_by)}" if order_by else ""
    )
    rows = pa.table(QueryBuilder().register("t", table).execute(query).read_all())
    plain = {pa.string_view(): pa.string(), pa.binary_view(): pa.binary()}
    return rows.cast(
        pa.schema([field.with_type(plain.get(field.type, field.type)) for field in rows.schema])
    )


def _sql_name(name: str) -> str:
    """A column name quoted for the SQL of delta-rs's DataFusion engine."""
    return '"' + name.replace('"', '""') + '"'


# Delta keeps the first 32 characters of a text column's min and max in its file statistics
# (delta.dataSkippingStringPrefixLength): a longer value's prefix still bounds it from below,
# but a cut maximum is no upper bound this code may rely on.
STATS_STRING_PREFIX = 32


@dataclass(frozen=True)
class KeyFiles:
    """The data files of a table's version that may hold keys in a range (their key bounds
    overlap it), and whether Spark may read them as plain Parquet, without the table's
    snapshot: no deletion vector marks rows of theirs and columns are stored by name."""

    uris: list[str]
    plain: bool


def files_for_keys(
    s3: S3Settings, path: str, version: int, column: str, key_range: tuple[str, str]
) -> KeyFiles:
    """The files of the table's ``version`` whose lowest and highest ``column`` value, as the
    log's file statistics give them, overlap ``key_range``. A bound a file lacks, and a
    highest value Delta may have cut short (STATS_STRING_PREFIX characters or more), bounds
    nothing on its side. The bounds include the rows a deletion vector has marked: a file's
    values lie within them."""
    import pyarrow as pa  # here, as in read_columns

    try:
        table = DeltaTable(path, version=version, storage_options=delta_storage_options(s3))
        actions = pa.table(table.get_add_actions(flatten=True))
    except (DeltaError, OSError) as error:
        raise _log_unreadable(s3, path, error) from None

    def values(name: str) -> list[str | None]:
        if name not in actions.schema.names:
            return [None] * actions.num_rows
        return [None if v is None else str(v) for v in actions.column(name).to_pylist()]

    highest = [
        None if v is None or len(v) >= STATS_STRING_PREFIX else v for v in values(f"max.{column}")
    ]
    ranges = list(zip(values(f"min.{column}"), highest, strict=True))
    names = [str(name) for name in actions.column("path").to_pylist()]
    uris = [f"{path.rstrip('/')}/{names[i]}" for i in files_for_key_range(ranges, key_range)]
    if not uris:
        return KeyFiles([], plain=True)
    by_name = _columns_by_name(table.metadata().configuration)
    return KeyFiles(uris, plain=by_name and not _have_deletion_vectors(table, uris))


def _columns_by_name(properties: Mapping[str, str]) -> bool:
    """Whether the table stores its columns under their own names (no column mapping), so
    that its Parquet files can be read with the table's schema."""
    return properties.get("delta.columnMapping.mode", "none") == "none"


def _may_have_deletion_vectors(table: DeltaTable) -> bool:
    return "deletionVectors" in (table.protocol().reader_features or [])


def _have_deletion_vectors(table: DeltaTable, uris: Sequence[str]) -> bool:
    """Whether a deletion vector marks rows of any of the table's files ``uris``."""
    if not _may_have_deletion_vectors(table):
        return False
    import pyarrow as pa  # here, as in read_columns

    def key(uri: str) -> str:
        return unquote(split_path(uri)[1])

    wanted = {key(uri) for uri in uris}
    marked = pa.table(table.deletion_vectors()).column("filepath").to_pylist()
    return any(key(str(uri)) in wanted for uri in marked)


def keys_held(s3: S3Settings, path: str, version: int, column: str, keys: Sequence[str]) -> int:
    """How many of ``keys`` the table's ``version`` holds in ``column`` (text), counted by
    delta-rs's DataFusion engine in this process, which applies deletion vectors and skips
    the files and row groups whose statistics lie outside the keys' range: no Spark job,
    for a few thousand keys at most (they are written into the query)."""
    import pyarrow as pa  # here, as in read_columns

    if not keys:
        return 0

    def literal(value: str) -> str:
        return "'" + value.replace("'", "''") + "'"

    name = _sql_name(column)
    query = (
        f"SELECT count(DISTINCT {name}) AS n FROM t WHERE {name} BETWEEN "
        f"{literal(min(keys))} AND {literal(max(keys))} "
        f"AND {name} IN ({', '.join(literal(key) for key in keys)})"
    )
    try:
        table = DeltaTable(path, version=version, storage_options=delta_storage_options(s3))
        result = pa.table(QueryBuilder().register("t", table).execute(query).read_all())
    except (DeltaError, OSError) as error:
        raise _log_unreadable(s3, path, error) from None
    return int(result.column("n")[0].as_py())


def table_version(s3: S3Settings, path: str) -> int | None:
    """The newest committed version of the Delta table at ``path``, or None if there is none."""
    table = _open_table(s3, path)
    return None if table is None else int(table.version())


def table_snapshot(s3: S3Settings, path: str) -> TableSnapshot | None:
    """The table's latest version, columns (as Spark types: Delta's schema is Spark's JSON) and
    properties, read from its log without Spark; None if there is no table."""
    table = _open_table(s3, path)
    if table is None:
        return None
    schema = StructType.fromJson(json.loads(table.schema().to_json()))
    properties = {str(k): str(v) for k, v in table.metadata().configuration.items()}
    return TableSnapshot(path, int(table.version()), schema, properties)


def missing_version_files(s3: S3Settings, path: str, version: int) -> list[str]:
    """The data files of version ``version`` that are no longer on the store (VACUUM removed
    them), or SourceError if the log no longer has that version. A deletion-vector file that
    is gone is named too (the first one found: the reader stops there)."""
    try:
        table = DeltaTable(path, version=version, storage_options=delta_storage_options(s3))
        files = table.file_uris()
    except TableNotFoundError:
        raise SourceError(f"no Delta table at {path}") from None
    except (DeltaError, OSError) as error:
        raise SourceError(
            f"version {version} of {path} cannot be read from its log: {first_line(error)}"
        ) from None
    bucket, prefix = split_path(path)
    client = s3_client(s3)
    present: set[str] = set()
    try:
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=f"{prefix}/"
        ):
            present.update(item["Key"] for item in page.get("Contents", []))
    except (BotoCoreError, ClientError) as error:
        raise ServiceUnavailableError(f"object store at {s3.endpoint}: {error}") from None
    missing = sorted(uri for uri in files if split_path(uri)[1] not in present)
    return missing + _missing_deletion_vector(table)


def _missing_deletion_vector(table: DeltaTable) -> list[str]:
    """[the path of a deletion-vector file of the table's version that cannot be read, or the
    reader's message], or []."""
    if not _may_have_deletion_vectors(table):
        return []
    try:
        table.deletion_vectors().read_all()
    except DeltaError as error:
        found = _NOT_FOUND.search(str(error))
        return [found.group(1) if found else f"(deletion vectors: {first_line(error)})"]
    return []


def commit_json(s3: S3Settings, path: str, version: int) -> str | None:
    """The JSON lines of commit ``version`` in the table's log; None if the log no longer has it."""
    return _commit_text(s3_client(s3), s3, path, version)


def _commit_text(client: Any, s3: S3Settings, path: str, version: int) -> str | None:
    bucket, prefix = split_path(path)
    try:
        body = client.get_object(Bucket=bucket, Key=f"{prefix}/_delta_log/{version:020d}.json")
    except ClientError as error:
        if str(error.response.get("Error", {}).get("Code", "")) in ("404", "NoSuchKey"):
            return None
        raise ServiceUnavailableError(f"object store at {s3.endpoint}: {error}") from None
    except BotoCoreError as error:
        raise ServiceUnavailableError(f"object store at {s3.endpoint}: {error}") from None
    return str(body["Body"].read().decode())


# Past this many data files a full read's file -> commit map (a literal in the plan) is left to
# the change feed.
MAX_MAPPED_FILES = 10_000


@dataclass(frozen=True)
class AppendedFiles:
    """The data files some commits of a table added, each as the commit that added it, where
    those commits only appended."""

    table: str
    versions: dict[str, int]  # file name -> the version of the commit that added it
    schema: StructType  # the table's columns at that version
    rows: int | None = None  # the files' rows, from the log's statistics (None: a file has none)

    @property
    def uris(self) -> list[str]:
        return [f"{self.table.rstrip('/')}/{name}" for name in self.versions]


def appended_files(
    s3: S3Settings, path: str, first: int, last: int, latest: TableSnapshot | None = None
) -> AppendedFiles | None:
    """The data files the log's commits ``first``..``last`` added, each with the commit that
    added it, when those files hold exactly the rows as appended and can be read as plain
    Parquet. None otherwise, and the caller reads the change feed: a commit that did more than
    append (a remove, a change-data file, an add that changes no data, as OPTIMIZE's), one the
    log no longer has, deletion vectors, column mapping, files in folders, or more than
    MAX_MAPPED_FILES files. The columns are those of the last schema the range commits; a
    range that commits none (from ``first`` > 0) takes them from ``latest``, the table as
    ``table_snapshot`` read it, if that is version ``last``."""
    client = s3_client(s3)

    def read(version: int) -> tuple[dict[str, int | None], dict[str, Any] | None] | None:
        """The commit's added files with their rows (None: no statistics), and its metadata."""
        text = _commit_text(client, s3, path, version)
        if text is None:
            return None
        added: dict[str, int | None] = {}
        metadata = None
        for line in text.splitlines():
            action = json.loads(line) if line.strip() else {}
            if "remove" in action or "cdc" in action:
                return None
            metadata = action.get("metaData", metadata)
            add = action.get("add")
            if add is not None:
                name = unquote(str(add["path"]))
                if not add.get("dataChange", True) or add.get("deletionVector") or "/" in name:
                    return None
                if name in added:  # added twice: not a plain append
                    return None
                records = json.loads(add.get("stats") or "{}").get("numRecords")
                added[name] = None if records is None else int(records)
        return added, metadata

    with ThreadPoolExecutor(max_workers=16) as pool:
        commits = list(pool.map(read, range(first, last + 1)))
    versions: dict[str, int] = {}
    records: list[int | None] = []
    metadata: dict[str, Any] | None = None
    for version, commit in enumerate(commits, start=first):
        if commit is None:
            return None
        added, metadata = commit[0], commit[1] or metadata
        for name in added:
            if name in versions:
                return None
            versions[name] = version
        records.extend(added.values())
    if not 0 < len(versions) <= MAX_MAPPED_FILES:
        return None
    if metadata is not None:
        schema = StructType.fromJson(json.loads(metadata["schemaString"]))
        properties = {str(k): str(v) for k, v in (metadata.get("configuration") or {}).items()}
    elif latest is not None and latest.version == last:
        schema, properties = latest.schema, latest.properties
    else:
        return None
    if not _columns_by_name(properties):
        return None
    rows = None if None in records else sum(n for n in records if n is not None)
    return AppendedFiles(path, versions, schema, rows)


def column_values(
    s3: S3Settings, uris: Sequence[str], columns: Sequence[str]
) -> dict[str, list[Any]]:
    """The distinct values (nulls left out) of ``columns`` in the Parquet files ``uris``
    (``s3a://`` paths), read by pyarrow in this process: a few files' keys without a Spark job.
    ServiceUnavailableError if the store does not serve them."""
    import pyarrow.fs as pafs  # here, as in read_columns
    import pyarrow.parquet as pq

    endpoint = urlsplit(s3.endpoint)
    store = pafs.S3FileSystem(
        access_key=s3.access_key,
        secret_key=s3.secret_key,
        region=s3.region,
        endpoint_override=endpoint.netloc,
        scheme=endpoint.scheme or "http",
        connect_timeout=5,
        request_timeout=15,
    )
    keys = [uri.split("://", 1)[-1] for uri in uris]
    try:
        tables = [pq.read_table(key, columns=list(columns), filesystem=store) for key in keys]
    except (OSError, ValueError) as error:  # pyarrow's errors for a store or a file
        raise ServiceUnavailableError(
            f"object store at {s3.endpoint}: could not read {', '.join(columns)} of "
            f"{len(uris)} file(s): {first_line(error)}"
        ) from None
    values: dict[str, set[Any]] = {column: set() for column in columns}
    for table in tables:
        for column in columns:
            values[column].update(v for v in table.column(column).to_pylist() if v is not None)
    return {column: sorted(found) for column, found in values.items()}


def commit_time(s3: S3Settings, path: str, version: int) -> datetime | None:
    """When commit ``version`` was made (its commitInfo), or None if the log no longer has it."""
    text = commit_json(s3, path, version)
    if text is None:
        return None
    for line in text.splitlines():
        info = json.loads(line).get("commitInfo") if line.strip() else None
        if info and "timestamp" in info:
            return datetime.fromtimestamp(int(info["timestamp"]) / 1000, tz=UTC)
    return None


def partition_columns(s3: S3Settings, path: str) -> list[str]:
    table = _open_table(s3, path)
    return [] if table is None else list(table.metadata().partition_columns)
