"""The adapters against the real local stack: JDBC lookups, Delta on s3a://, the object
store's view of a table's version, the run store's summary write, the writer lock, and seeding."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal

import psycopg2
import pytest
from chispa import assert_df_equality
from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession

from jobs.adapters import delta, jdbc, object_store, postgres, run_store, writer_lock
from jobs.adapters.session import (
    LONG_RUNNING_INPUT_STREAM,
    S3A_INPUT_STREAM,
    S3A_INPUT_STREAM_KEY,
    session_builder,
)
from jobs.config.postgres_url import PostgresTarget
from jobs.config.settings import S3Settings, Settings
from jobs.core.errors import ConcurrentRunError, ServiceUnavailableError, SourceError
from jobs.core.models import LookupSpec, RunCounts, RunStart, SummaryRow
from jobs.core.schemas import RAW_SCHEMA, SOURCE_VERSION
from jobs.runs.batch_writes import join_keys, raw_rows, read_lookups
from tests.stack import TEST_DB, ScratchBucket, run_seed

pytestmark = pytest.mark.integration


def lookup_snapshot(conn: psycopg2.extensions.connection) -> tuple[int, str, str]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT count(*), md5(string_agg(m::text, '|' ORDER BY merchant_id)) FROM merchant_lookup m"
        )
        merchants = cur.fetchone()
        cur.execute(
            "SELECT md5(string_agg(c::text, '|' ORDER BY category)) FROM category_group_lookup c"
        )
        groups = cur.fetchone()
    assert merchants is not None and groups is not None
    return int(merchants[0]), str(merchants[1]), str(groups[0])


def test_seeding_twice_is_harmless(
    test_db_env: dict[str, str], pg: psycopg2.extensions.connection
) -> None:
    before = lookup_snapshot(pg)
    assert before[0] == 10_003
    again = run_seed(test_db_env)
    assert again.returncode == 0, again.stderr
    assert lookup_snapshot(pg) == before  # same rows, same updated_at: nothing rewritten
    with pg.cursor() as cur:  # and no new versions in the lookup's history
        cur.execute("SELECT count(*), count(valid_to) FROM merchant_lookup_history")
        assert cur.fetchone() == (10_003, 0)
    with pg.cursor() as cur:
        cur.execute(
            "SELECT merchant_name, category FROM merchant_lookup "
            "WHERE merchant_id IN ('MER-ABC', 'MER-XYZ', 'MER-123') ORDER BY merchant_id"
        )
        assert cur.fetchall() == [
            ("HealthPlus Pharmacy", "Healthcare"),
            ("Alpha Mart", "Groceries"),
            ("Tech Gadgets Inc.", "Electronics"),
        ]


@pytest.mark.usefixtures("test_db_env")  # the test database exists
def test_the_lookups_fingerprint_follows_their_rows_not_their_order(
    admin_target: PostgresTarget,
) -> None:
    """Same rows in another order or layout: the same digest; a changed, swapped, added or
    removed row: another; the rows put back: the first digest again."""
    spec = LookupSpec(
        name="group",
        table="pg_temp.groups",
        key="category",
        join_on="enriched_category",
        columns={"category_group": "category_group"},
    )
    rows = [("Groceries", "Essentials"), ("Travel", "Leisure"), ("Books", None)]
    conn = psycopg2.connect(**{**admin_target.psycopg2_kwargs(), "dbname": TEST_DB})
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE TEMP TABLE groups (category text, category_group text, extra int)")
            cur.executemany("INSERT INTO groups VALUES (%s, %s, 1)", rows)
        conn.commit()

        def digest(*statements: str) -> str:
            with conn.cursor() as cur:
                for statement in statements:
                    cur.execute(statement)
            conn.commit()
            return run_store.lookup_fingerprint(conn, [spec])

        first = digest()
        assert digest() == first
        # An update that changes nothing moves the row to the table's end; a column the lookup
        # does not read is not part of it.
        assert (
            digest("UPDATE groups SET category_group = category_group WHERE category = 'Travel'")
            == first
        )
        assert digest("UPDATE groups SET extra = 2") == first
        changed = digest(
            "UPDATE groups SET category_group = 'Shopping' WHERE category = 'Groceries'"
        )
        assert changed != first
        assert (
            digest("UPDATE groups SET category_group = 'Essentials' WHERE category = 'Groceries'")
            == first
        )
        swapped = digest(
            "UPDATE groups SET category_group = CASE category WHEN 'Groceries' THEN 'Leisure' "
            "ELSE 'Essentials' END WHERE category IN ('Groceries', 'Travel')"
        )
        assert swapped not in (first, changed)
        digest(
            "UPDATE groups SET category_group = CASE category WHEN 'Groceries' THEN 'Essentials' "
            "ELSE 'Leisure' END WHERE category IN ('Groceries', 'Travel')"
        )
        added = digest("INSERT INTO groups VALUES ('Fuel', 'Transport', 1)")
        assert added not in (first, changed, swapped)
        assert digest("DELETE FROM groups WHERE category = 'Fuel'") == first
        assert digest("DELETE FROM groups WHERE category = 'Books'") != first
        assert digest("TRUNCATE groups") != first
    finally:
        conn.close()


def test_jdbc_lookup_read(spark: SparkSession, settings: Settings) -> None:
    spec = settings.lookups[0]
    lookup = jdbc.read_lookup(spark, settings.postgres, spec, settings.jdbc_fetchsize)
    assert lookup.columns == ["merchant_id", "merchant_name", "category", "valid_from", "valid_to"]
    assert dict(lookup.dtypes)["merchant_id"] == "string"
    assert lookup.count() == 10_003
    row = lookup.filter("merchant_id = 'MER-XYZ'").first()
    assert row is not None
    assert (row["merchant_name"], row["category"]) == ("Tech Gadgets Inc.", "Electronics")


def test_a_small_run_reads_only_the_lookup_rows_of_its_keys(
    spark: SparkSession, settings: Settings, bucket: ScratchBucket, s3: S3Settings
) -> None:
    """The keys of a few raw rows, read from their files in the driver, reach PostgreSQL as a
    filter (the scan's pushed filters), and the lookup read is those keys' rows, every version
    of them; a lookup joined on a column the raw rows do not have is read whole. A store that
    does not serve the files gives no keys: the lookups are read whole."""
    path = bucket.path("raw-keys")
    ids = ["MER-XYZ", "MER-ABC", "MER-XYZ", None, "MER-NONE'; --"]
    records: list[tuple[object, ...]] = [
        (f"t{i}", m, Decimal("1.00"), "EUR", dt.datetime(2026, 1, 1), f"r{i}", "f", "g",
         dt.datetime(2026, 1, 2), None, [])
        for i, m in enumerate(ids)
    ]  # fmt: skip
    delta.append(spark.createDataFrame(records, RAW_SCHEMA).repartition(2), path, "v0")
    appended = object_store.appended_files(s3, path, 0, 0)
    assert appended is not None and appended.rows == 5
    keys = join_keys(s3, appended, settings.lookups)
    assert keys == {settings.lookups[0].name: ["MER-ABC", "MER-NONE'; --", "MER-XYZ"]}
    merchant, category_group = read_lookups(spark, settings, persist=False, keys=keys)
    plan = merchant._jdf.queryExecution().executedPlan().toString()
    assert "PushedFilters: [*In(merchant_id" in plan, plan
    whole = jdbc.read_lookup(spark, settings.postgres, settings.lookups[0], 100)
    assert_df_equality(
        merchant,
        whole.filter("merchant_id IN ('MER-ABC', 'MER-XYZ')"),
        ignore_row_order=True,
    )
    assert category_group.count() > 0
    closed = replace(s3, endpoint="http://127.0.0.1:9")  # nothing listens on the discard port
    assert join_keys(closed, appended, settings.lookups) == {}


def test_jdbc_read_of_a_missing_table_fails(spark: SparkSession, settings: Settings) -> None:
    spec = replace(settings.lookups[0], table="reference.no_such_table")
    with pytest.raises(Exception, match="no_such_table"):
        jdbc.read_lookup(spark, settings.postgres, spec, 100).count()


def test_a_lookup_without_a_configured_column_is_refused_by_name(
    spark: SparkSession, settings: Settings
) -> None:
    spec = replace(settings.lookups[0], columns={"merchant_name": "merchant_name", "tier": "tier"})
    with pytest.raises(
        SourceError, match=r"reference\.merchant_lookup_history has no column 'tier'"
    ):
        jdbc.read_lookup(spark, settings.postgres, spec, 100)


def test_delta_write_read_and_versions_on_s3a(spark: SparkSession, bucket: ScratchBucket) -> None:
    path = bucket.path("roundtrip")
    assert not delta.table_exists(spark, path)
    first = spark.createDataFrame(
        [("a", Decimal("1.10"), dt.datetime(2026, 1, 1, 23, 30))],
        "id string, amount decimal(18,2), ts timestamp",
    )
    second = spark.createDataFrame(
        [("b", Decimal("2.20"), dt.datetime(2026, 1, 2, 0, 0))],
        "id string, amount decimal(18,2), ts timestamp",
    )
    assert delta.overwrite(first, path, "v0") == 0
    assert delta.overwrite(second, path, "v1") == 1
    assert delta.append(first, path, "v2") == 2
    assert sorted(r["id"] for r in delta.read_version(spark, path, 0).collect()) == ["a"]
    assert sorted(r["id"] for r in delta.read_version(spark, path, 1).collect()) == ["b"]
    latest = delta.read_version(spark, path, 2)
    assert sorted((r["id"], r["amount"]) for r in latest.collect()) == [
        ("a", Decimal("1.10")),
        ("b", Decimal("2.20")),
    ]


def test_tables_whose_logs_were_loaded_ahead_commit_as_before(
    spark: SparkSession, bucket: ScratchBucket
) -> None:
    """``delta.load_logs`` (a run loads its output tables' logs while it classifies): the next
    commits see the table's latest version, and a table that did not exist when its log was
    loaded is still created by its first write."""
    existing, missing = bucket.path("loaded-ahead"), bucket.path("loaded-ahead-missing")
    rows = spark.createDataFrame([("a", 1)], "id string, n int")
    assert delta.overwrite(rows, existing, "v0") == 0
    loading = delta.load_logs(spark, [existing, missing])
    loading.join(timeout=120)
    assert not loading.is_alive()
    assert delta.append(rows, existing, "v1") == 1
    assert delta.append(rows, missing, "v0", new_table_properties={}) == 0
    assert delta.read_version(spark, missing, 0).count() == 1
    assert delta.read_version(spark, existing, 1).count() == 2


def test_a_txn_append_after_the_state_was_loaded_ahead_is_one_spark_job(
    spark: SparkSession, bucket: ScratchBucket
) -> None:
    """``delta.load_transactions`` (the stream, after each raw commit): the next append with a
    txn finds the ids of idempotent writes already computed, so it is the write's one Spark
    job, not the write and three jobs rebuilding the table's state; and the txn still makes a
    replayed append a no-op."""
    path = bucket.path("txn-ahead")
    rows = spark.createDataFrame([("a", 1)], "id string, n int")
    store = spark.sparkContext._jsc.sc().statusStore()

    def spark_jobs(append: Callable[[], int]) -> tuple[int, int]:
        before = store.jobsList(None).size()
        version = append()
        return version, store.jobsList(None).size() - before

    assert delta.overwrite(rows, path, "v0") == 0
    assert spark_jobs(lambda: delta.append(rows, path, "v1", txn=("app", 1))) == (1, 4)
    loading = delta.load_transactions(spark, path)
    loading.join(timeout=120)
    assert not loading.is_alive()
    assert spark_jobs(lambda: delta.append(rows, path, "v2", txn=("app", 2))) == (2, 1)
    delta.load_transactions(spark, path).join(timeout=120)
    assert spark_jobs(lambda: delta.append(rows, path, "v2 again", txn=("app", 2))) == (2, 0)
    assert delta.read_version(spark, path, 2).count() == 3


def test_latest_version_read_without_spark_matches_spark(
    spark: SparkSession, bucket: ScratchBucket, s3: S3Settings
) -> None:
    """The batch job plans from versions read with delta-rs, not Spark; both must name the same
    version, before and after a checkpoint (written every 3 commits here)."""
    path = bucket.path("listed")
    assert object_store.table_version(s3, path) is None
    rows = spark.createDataFrame([("a", 1)], "id string, n int")
    seen = []
    for commit in range(8):
        writer = rows.write.format("delta").mode("append")
        if commit == 0:
            writer = writer.option("delta.checkpointInterval", "3")
        writer.save(path)
        history = DeltaTable.forPath(spark, path).history(1).first()
        assert history is not None
        seen.append((object_store.table_version(s3, path), history["version"]))
    assert seen == [(v, v) for v in range(8)]
    snapshot = object_store.table_snapshot(s3, path)
    assert snapshot is not None
    assert snapshot.version == 7
    assert snapshot.schema == spark.read.format("delta").load(path).schema
    assert snapshot.properties["delta.checkpointInterval"] == "3"
    assert object_store.table_snapshot(s3, bucket.path("none")) is None
    listing = object_store.s3_client(s3).list_objects_v2(
        Bucket=bucket.name, Prefix="listed/_delta_log/"
    )
    names = {item["Key"].rsplit("/", 1)[1] for item in listing["Contents"]}
    assert "_last_checkpoint" in names
    assert any(".checkpoint." in name for name in names)


def test_s3a_overwrite_deletes_objects_on_minio(spark: SparkSession, bucket: ScratchBucket) -> None:
    """An overwrite makes S3A delete the old files with DeleteObjects: the call that AWS SDK
    >= 2.30 broke against MinIO. hadoop-aws 3.5.0 keeps sending Content-MD5, so it works."""
    path = bucket.path("plain-parquet")
    spark.range(0, 50, numPartitions=5).write.mode("overwrite").parquet(path)
    spark.range(100, 103, numPartitions=1).write.mode("overwrite").parquet(path)
    assert sorted(r["id"] for r in spark.read.parquet(path).collect()) == [100, 101, 102]


def _s3a_stream_opened(spark: SparkSession, path: str, stream_type: str | None) -> str:
    """The class of the stream a new S3A filesystem (with ``stream_type``, else the default)
    opens ``path`` with."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    conf = jvm.org.apache.hadoop.conf.Configuration(spark.sparkContext._jsc.hadoopConfiguration())
    if stream_type is not None:
        conf.set(S3A_INPUT_STREAM_KEY, stream_type)
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    fs = jvm.org.apache.hadoop.fs.FileSystem.newInstance(hadoop_path.toUri(), conf)
    try:
        stream = fs.open(hadoop_path)
        try:
            return str(stream.getWrappedStream().getClass().getSimpleName())
        finally:
            stream.close()
    finally:
        fs.close()


def test_the_stream_reads_through_the_classic_s3a_stream_not_the_default_analytics_one(
    spark: SparkSession, bucket: ScratchBucket, s3: S3Settings
) -> None:
    """hadoop-aws 3.5.0's default stream keeps an entry per Parquet object read for the life of
    the filesystem (HADOOP-20058); the stream job, which lives for days, sets the classic one.
    If an upgrade changes the default or the name, this says so."""
    path = bucket.path("stream-type")
    spark.range(0, 10, numPartitions=1).write.mode("overwrite").parquet(path)
    [data_file] = spark.read.parquet(path).inputFiles()

    assert _s3a_stream_opened(spark, data_file, None) == "AnalyticsStream"
    assert _s3a_stream_opened(spark, data_file, LONG_RUNNING_INPUT_STREAM) == "S3AInputStream"
    stream_options = session_builder("enrich-stream", s3, long_running=True)._options
    assert stream_options[S3A_INPUT_STREAM] == LONG_RUNNING_INPUT_STREAM
    assert S3A_INPUT_STREAM not in session_builder("enrich-batch", s3)._options


def test_the_jobs_sessions_record_no_python_call_sites(spark: SparkSession) -> None:
    """conf/spark-defaults.conf turns PySpark's DataFrame debugging off: with it on, every
    DataFrame function call makes several py4j round trips to record its Python line, and
    building a run's DataFrames takes twice as long (docs/performance.md). The shared session is
    built from conf/ as the jobs' are. If an upgrade renames the setting, PySpark falls back to
    its default (on), and this says so."""
    from pyspark.errors.utils import is_debugging_enabled

    assert spark.conf.get("spark.python.sql.dataFrameDebugging.enabled") == "false"
    assert not is_debugging_enabled()


def test_an_upsert_given_its_key_range_reads_no_file_outside_it(
    spark: SparkSession, bucket: ScratchBucket, s3: S3Settings
) -> None:
    """The curated MERGE's file pruning: with the file of the ``A-`` ids deleted behind Delta's
    back, MERGEs given their source's key range still work (they never open that file), and
    one without the range fails on it."""
    path = bucket.path("ranged")
    schema = "id string, n int"
    delta.overwrite(spark.createDataFrame([("A-1", 1), ("A-2", 2)], schema).coalesce(1), path, "a")
    delta.append(spark.createDataFrame([("B-1", 3), ("B-2", 4)], schema).coalesce(1), path, "b")
    [a_file] = delta.read_version(spark, path, 0).inputFiles()
    client = object_store.s3_client(s3)
    client.delete_object(Bucket=bucket.name, Key=a_file.split(f"{bucket.name}/", 1)[1])

    def upsert(rows: list[tuple[str, int]], key_range: tuple[str, str] | None) -> int:
        return delta.upsert(spark.createDataFrame(rows, schema), path, "id", "u", key_range)

    assert upsert([("B-2", 40), ("C-1", 5)], ("B-2", "C-1")) == 2
    assert upsert([("C-2", 6)], ("C-2", "C-2")) == 3
    with pytest.raises(Exception, match="FILE_NOT_EXIST"):
        upsert([("C-3", 7)], None)
    rows = delta.read_version(spark, path, 3).where("id >= 'B'").collect()
    assert sorted((r["id"], r["n"]) for r in rows) == [
        ("B-1", 3), ("B-2", 40), ("C-1", 5), ("C-2", 6)
    ]  # fmt: skip
    # The files the run's append-or-MERGE choice finds by the log's bounds, with no Spark job;
    # a text maximum Delta may have cut short (32 characters) bounds nothing.
    long_id = "Z-" + "9" * 40
    delta.append(spark.createDataFrame([(long_id, 8)], schema).coalesce(1), path, "z")

    def files(low: str, high: str) -> object_store.KeyFiles:
        return object_store.files_for_keys(s3, path, 4, "id", (low, high))

    assert files("A-0", "A-3") == object_store.KeyFiles([a_file], plain=True)
    assert files("A-3", "A-9").uris == []  # between the A- file and the others
    assert len(files("B-0", "C-9").uris) >= 1
    [z_file] = files("Z-a", "Z-b").uris  # above the long id, which its cut maximum does not show
    assert z_file in delta.read_version(spark, path, 4).where(f"id = '{long_id}'").inputFiles()


def test_the_keys_a_table_holds_are_read_from_its_files_unless_rows_of_theirs_are_deleted(
    spark: SparkSession, bucket: ScratchBucket, s3: S3Settings
) -> None:
    """The count that chooses an incremental run's commit: read from the files the key range
    falls in as plain Parquet when every row of theirs is live, the same count Delta gives;
    a file a deletion vector marks rows of is read through Delta or, for a few ids, by
    delta-rs, because the plain read would count a deleted row's key (a MERGE that only
    replaces would then drop that id's new row)."""
    path = bucket.path("keys")
    schema = "id string, n int"
    rows = spark.createDataFrame([("K-1", 1), ("K-2", 2), ("K-3", 3)], schema).coalesce(1)
    delta.overwrite(rows, path, "k", new_table_properties={"delta.enableDeletionVectors": "true"})
    DeltaTable.forPath(spark, path).delete("id = 'K-2'")
    source = spark.createDataFrame([("K-2",), ("K-3",), ("K-4",)], "id string")
    key_range = ("K-2", "K-4")

    def count(version: int, uris: list[str] | None) -> int:
        return delta.keys_in_table(source, path, "id", version, key_range, 3, uris)

    before_delete = object_store.files_for_keys(s3, path, 0, "id", key_range)
    assert before_delete.plain and len(before_delete.uris) == 1
    assert count(0, before_delete.uris) == count(0, None) == 2
    after_delete = object_store.files_for_keys(s3, path, 1, "id", key_range)
    assert after_delete.uris == before_delete.uris and not after_delete.plain
    assert count(1, None) == 1  # K-3
    assert count(1, after_delete.uris) == 2  # what a plain read would have said
    # A small run's ids counted by delta-rs, which applies the deletion vector.
    ids = ["K-2", "K-3", "K-4", "K-'5"]
    assert object_store.keys_held(s3, path, 0, "id", ids) == 2
    assert object_store.keys_held(s3, path, 1, "id", ids) == 1
    assert object_store.keys_held(s3, path, 1, "id", []) == 0


def test_a_read_of_appended_commits_gives_the_change_feeds_rows_and_versions(
    spark: SparkSession, bucket: ScratchBucket, s3: S3Settings
) -> None:
    """A run reads the raw commits it covers plainly, each file given the commit that added
    it: the same rows and ``_source_version`` as the change feed, for a full read and for an
    incremental one (whose commits hold no schema: it comes from the snapshot of its last
    version). Commits that did more than append (OPTIMIZE rewrote files) get no map, and the
    run reads the change feed."""
    path = bucket.path("appended")
    raw = spark.createDataFrame([], RAW_SCHEMA)

    def rows(ids: list[str]) -> DataFrame:
        records: list[tuple[object, ...]] = [
            (i, "MER-1", Decimal("1.00"), "EUR", dt.datetime(2026, 1, 1), f"r-{i}", "f", "g",
             dt.datetime(2026, 1, 2), None, [])
            for i in ids
        ]  # fmt: skip
        return spark.createDataFrame(records, RAW_SCHEMA)

    delta.append(raw, path, "v0", new_table_properties=delta.RAW_TABLE_PROPERTIES)
    delta.append(rows(["a", "b"]).repartition(2), path, "v1")
    delta.append(rows(["a", "c"]).coalesce(1), path, "v2")
    appended = object_store.appended_files(s3, path, 0, 2)
    assert appended is not None
    versions = appended.versions
    assert {1, 2} <= set(versions.values()) <= {0, 1, 2}  # 0: an empty file, if Spark wrote one
    plain = raw_rows(spark, path, 0, 2, appended)
    plan = plain._jdf.queryExecution().toString()
    assert "DeltaCDFRelation" not in plan and "Parquet" in plan
    assert_df_equality(plain, raw_rows(spark, path, 0, 2), ignore_row_order=True)
    assert sorted((r["transaction_id"], r[SOURCE_VERSION]) for r in plain.collect()) == [
        ("a", 1), ("a", 2), ("b", 1), ("c", 2)
    ]  # fmt: skip
    first = object_store.appended_files(s3, path, 0, 1)
    assert first is not None
    assert first.versions == {name: v for name, v in versions.items() if v <= 1}

    latest = object_store.table_snapshot(s3, path)
    assert latest is not None and latest.version == 2
    assert object_store.appended_files(s3, path, 2, 2) is None  # no schema in commit 2 alone
    assert object_store.appended_files(s3, path, 1, 1, latest) is None  # latest is not 1
    increment = object_store.appended_files(s3, path, 2, 2, latest)
    assert increment is not None
    assert increment.versions == {name: v for name, v in versions.items() if v == 2}
    assert_df_equality(
        raw_rows(spark, path, 2, 2, increment), raw_rows(spark, path, 2, 2), ignore_row_order=True
    )

    DeltaTable.forPath(spark, path).optimize().executeCompaction()
    assert object_store.appended_files(s3, path, 0, 3) is None
    assert (
        object_store.appended_files(s3, path, 3, 3, object_store.table_snapshot(s3, path)) is None
    )


def _start(run_id: str) -> RunStart:
    return RunStart(
        run_id=run_id,
        mode="full",
        started_at=dt.datetime.now(dt.UTC),
        raw_table="s3a://b/raw",
        curated_table="s3a://b/cur",
        quarantine_table="s3a://b/q",
        raw_version_from=0,
        raw_version_to=4,
    )


def _write(
    conn: psycopg2.extensions.connection,
    counts: RunCounts,
    rows: list[SummaryRow],
    dates: list[dt.date] | None,
) -> str:
    start = _start(str(uuid.uuid4()))
    run_store.start_run(conn, start, "test")
    result = start.finished(
        "succeeded",
        dt.datetime.now(dt.UTC),
        counts=counts,
        curated_version=2,
        quarantine_version=2,
        summary_rows=len(rows),
        top_unmatched=[("MER-UNK-001", 3)],
    )
    run_store.finish_run(conn, result, "fp", rows, dates)
    return start.run_id


def test_summary_write_replaces_rows_with_the_run_record(
    test_target: PostgresTarget, pg: psycopg2.extensions.connection
) -> None:
    counts = RunCounts(
        rows_read=10, rows_curated=7, rows_quarantined=2, rows_duplicate=1, rows_unmatched=3
    )
    rows = [
        SummaryRow(dt.date(2026, 11, 1), "Groceries", "USD", 5, Decimal("100.25")),
        SummaryRow(dt.date(2026, 11, 1), "Tab\tCategory", "EUR", 2, Decimal("0.50")),
        SummaryRow(dt.date(2026, 11, 1), 'Quote", comma\nand line', "GBP", 1, Decimal("1.00")),
        SummaryRow(dt.date(2026, 11, 1), "", "JPY", 1, Decimal("7.00")),
        SummaryRow(dt.date(2026, 11, 1), "Back\\slash\r\\N", "CHF", 3, Decimal("-2.10")),
    ]
    for summary in (rows, rows[:1]):
        with postgres.connect(test_target) as conn:
            run_id = _write(conn, counts, summary, None)
        with pg.cursor() as cur:
            cur.execute(
                "SELECT event_date, category, currency, transaction_count, total_amount, run_id::text "
                "FROM category_daily_summary"
            )
            assert sorted(cur.fetchall()) == sorted(
                (r.event_date, r.category, r.currency, r.transaction_count, r.total_amount, run_id)
                for r in summary
            )
            cur.execute(
                "SELECT status, rows_read, rows_curated, rows_unmatched, details->'top_unmatched' "
                "FROM enrichment_runs WHERE run_id = %s",
                (run_id,),
            )
            assert cur.fetchone() == ("succeeded", 10, 7, 3, [["MER-UNK-001", 3]])
        pg.rollback()


def test_summary_write_for_some_dates_leaves_the_other_dates(
    test_target: PostgresTarget, pg: psycopg2.extensions.connection
) -> None:
    counts = RunCounts(1, 1, 0, 0, 0)
    day1, day2 = dt.date(2026, 11, 1), dt.date(2026, 11, 2)
    first = [
        SummaryRow(day1, "Groceries", "USD", 5, Decimal("100.25")),
        SummaryRow(day2, "Groceries", "USD", 1, Decimal("1.00")),
    ]
    with postgres.connect(test_target) as conn:
        _write(conn, counts, first, None)
        # day2 rewritten (its only row gone), day1 not named: untouched.
        _write(conn, counts, [], [day2])
    with pg.cursor() as cur:
        cur.execute("SELECT event_date, transaction_count FROM category_daily_summary")
        assert cur.fetchall() == [(day1, 5)]
    pg.rollback()


def test_second_writer_is_refused_naming_the_first(test_target: PostgresTarget) -> None:
    with writer_lock.hold(test_target, ["s3a://b/cur", "s3a://b/q"], "first run", 0):
        with (
            pytest.raises(ConcurrentRunError, match="first run") as refused,
            writer_lock.hold(test_target, ["s3a://b/q"], "second run", 0),
        ):
            pass
        assert "s3a://b/q" in str(refused.value)
    # Released with the first's connection: a third writer gets it at once.
    with writer_lock.hold(test_target, ["s3a://b/cur"], "third run", 0):
        pass


def test_a_waiting_writer_gets_the_lock_when_the_first_ends(test_target: PostgresTarget) -> None:
    import threading
    import time

    held = threading.Event()
    release = threading.Event()

    def first() -> None:
        with writer_lock.hold(test_target, ["s3a://b/wait"], "first run", 0):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=first)
    thread.start()
    assert held.wait(10)
    waits: list[str] = []
    threading.Timer(1.0, release.set).start()
    started = time.monotonic()
    with writer_lock.hold(test_target, ["s3a://b/wait"], "second run", 30, waits.append):
        waited = time.monotonic() - started
    thread.join()
    assert 0.9 < waited < 10
    assert len(waits) == 1 and "first run" in waits[0]


def test_a_table_version_from_a_store_that_is_down_is_one_clear_error(s3: S3Settings) -> None:
    down = replace(s3, endpoint="http://127.0.0.1:1")
    with pytest.raises(
        ServiceUnavailableError, match=r"object store at http://127\.0\.0\.1:1 did not answer"
    ):
        object_store.table_version(down, "s3a://raw-data-bucket/financial_data_delta")
