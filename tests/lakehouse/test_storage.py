"""Every storage operation through the Lakehouse interface, on both engines: the lakehouse contract.

``lakehouse`` is parametrized over delta-spark (Delta Lake's JVM jar, `make jars`) and delta-rs;
the few tests of delta-rs's own write path (staging folder, its commit call) take ``rs_lakehouse``."""
from __future__ import annotations

import os
import threading
from datetime import date, datetime, timezone

import pyarrow as pa
import pyspark.sql.functions as F
import pytest
from chispa import assert_df_equality
from deltalake import DeltaTable
from pyspark.errors import PythonException
from pyspark.sql import types as T

from customer360.config import LakehouseConfig
from customer360.errors import (
    DuplicateKeyError,
    PartitionMismatchError,
    SchemaMismatchError,
    TableNameError,
    TableNotFoundError,
)
from customer360.lakehouse import Lakehouse
from customer360.lakehouse.deltars import STAGING_DIR, DeltaRsEngine

SCHEMA = T.StructType(
    [
        T.StructField("customer_id", T.StringType(), True),
        T.StructField("amount", T.LongType(), True),
        T.StructField("seen_at", T.TimestampType(), True),
        T.StructField("region", T.StringType(), True),
    ]
)
UTC = timezone.utc
T0 = datetime(2026, 3, 1, 12, 30, 45, 123456, tzinfo=UTC)
T1 = datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


def frame(spark, rows, schema=SCHEMA):
    return spark.createDataFrame(rows, schema)


def run_together(*actions) -> None:
    """Start the actions at the same moment in threads; re-raise the first error any of them hit."""
    barrier = threading.Barrier(len(actions))
    errors: list[BaseException] = []

    def start(action) -> None:
        try:
            barrier.wait()
            action()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(a,)) for a in actions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


BASE_ROWS = [("c1", 10, T0, "us"), ("c2", 20, T1, "gb"), ("c3", None, None, "us"), ("c4", 40, T0, "de")]


ENGINES = ["delta-spark", "delta-rs"]


def engine_lakehouse(spark, tmp_path, engine: str) -> Lakehouse:
    from customer360.session import detect_capabilities

    if engine == "delta-spark" and not detect_capabilities(spark).delta_spark:
        pytest.skip("Delta Lake's jar is not loaded (run `make jars`)")
    return Lakehouse(spark, LakehouseConfig(root=str(tmp_path / "lakehouse"), engine=engine))


@pytest.fixture(params=ENGINES)
def lakehouse(request, spark, tmp_path) -> Lakehouse:
    return engine_lakehouse(spark, tmp_path, request.param)


@pytest.fixture
def rs_lakehouse(spark, tmp_path) -> Lakehouse:
    return engine_lakehouse(spark, tmp_path, "delta-rs")


def staging_is_empty(lakehouse: Lakehouse, table: str) -> bool:
    """delta-rs stages a write's files in the table's _staging/ first; delta-spark has no such folder."""
    folder = os.path.join(lakehouse.path(table), STAGING_DIR)
    return lakehouse.engine_name != "delta-rs" or not os.listdir(folder)


@pytest.fixture
def people(spark, lakehouse):
    # one file per region, so file counts below are exact
    lakehouse.write(frame(spark, BASE_ROWS).coalesce(1), "silver.people", partition_by=["region"])
    return "silver.people"


def test_engine_is_the_one_asked_for(request, lakehouse):
    assert lakehouse.engine_name == request.node.callspec.params["lakehouse"]


def test_round_trip_keeps_values_partition_column_and_exact_timestamps(spark, lakehouse, people):
    result = lakehouse.read(people)
    assert result.schema == SCHEMA  # column order and types as written; region comes back typed
    assert_df_equality(result, frame(spark, BASE_ROWS), ignore_row_order=True)
    stamps = {r.customer_id: r.seen_at for r in result.collect()}
    assert stamps["c1"] == T0.replace(tzinfo=None)  # session time zone is UTC: microseconds intact
    assert stamps["c2"] == T1.replace(tzinfo=None)
    assert lakehouse.partition_columns(people) == ["region"]
    staging = [STAGING_DIR] if lakehouse.engine_name == "delta-rs" else []
    assert sorted(os.listdir(lakehouse.path(people))) == ["_delta_log", *staging, "region=de", "region=gb", "region=us"]


def test_tables_are_readable_by_any_delta_reader(lakehouse, people):
    table = DeltaTable(lakehouse.path(people)).to_pyarrow_table()
    rows = sorted(table.to_pylist(), key=lambda r: r["customer_id"])
    assert rows == [
        {"customer_id": "c1", "amount": 10, "seen_at": T0, "region": "us"},
        {"customer_id": "c2", "amount": 20, "seen_at": T1, "region": "gb"},
        {"customer_id": "c3", "amount": None, "seen_at": None, "region": "us"},
        {"customer_id": "c4", "amount": 40, "seen_at": T0, "region": "de"},
    ]
    assert table.schema.field("seen_at").type == pa.timestamp("us", tz="UTC")
    stats = DeltaTable(lakehouse.path(people)).get_add_actions(flatten=True)
    assert sum(pa.table(stats).column("num_records").to_pylist()) == 4


def test_append_then_time_travel(spark, lakehouse, people):
    result = lakehouse.write(frame(spark, [("c5", 50, T0, "fr")]), people, mode="append")
    assert (result.version, result.operation, result.rows_written) == (1, "WRITE", 1)
    assert lakehouse.read(people).count() == 5
    assert_df_equality(lakehouse.read(people, version=0), frame(spark, BASE_ROWS), ignore_row_order=True)
    first_commit = lakehouse.history(people).where("version = 0").first().timestamp
    as_of = lakehouse.read(people, as_of=first_commit.replace(tzinfo=UTC))
    assert as_of.count() == 4


def test_overwrite_replaces_everything(spark, lakehouse, people):
    result = lakehouse.write(frame(spark, [("z", 1, T0, "us")]), people)
    assert result.files_removed == 3
    assert_df_equality(lakehouse.read(people), frame(spark, [("z", 1, T0, "us")]))


def test_overwrite_regions_replaces_only_those_partitions(spark, lakehouse, people):
    lakehouse.write(frame(spark, [("u1", 1, T0, "us")]), people, regions=["us"])
    expected = [("u1", 1, T0, "us"), ("c2", 20, T1, "gb"), ("c4", 40, T0, "de")]
    assert_df_equality(lakehouse.read(people), frame(spark, expected), ignore_row_order=True)
    # an empty frame for a region empties just that region
    lakehouse.write(frame(spark, []), people, regions=["gb"])
    assert sorted(r.customer_id for r in lakehouse.read(people).collect()) == ["c4", "u1"]


def test_overwrite_regions_rejects_rows_of_other_regions(spark, lakehouse, people):
    rows = [("u1", 1, T0, "us"), ("x", 2, T0, "fr")]
    with pytest.raises(PartitionMismatchError, match=r"replaces regions \['us'\] but the data also holds \['fr'\]"):
        lakehouse.write(frame(spark, rows), people, regions=["us"])
    assert lakehouse.version(people) == 0
    assert_df_equality(lakehouse.read(people), frame(spark, BASE_ROWS), ignore_row_order=True)
    assert staging_is_empty(lakehouse, people)
    assert not os.path.exists(os.path.join(lakehouse.path(people), "region=fr"))


def test_region_writes_need_a_region_partitioned_table(spark, lakehouse):
    lakehouse.write(frame(spark, BASE_ROWS), "gold.flat")
    with pytest.raises(SchemaMismatchError, match="not partitioned by 'region'"):
        lakehouse.write(frame(spark, BASE_ROWS[:1]), "gold.flat", regions=["us"])
    with pytest.raises(ValueError, match="use it with mode='overwrite'"):
        lakehouse.write(frame(spark, BASE_ROWS[:1]), "gold.flat", mode="append", regions=["us"])


def test_failed_write_leaves_previous_version_readable(spark, lakehouse, people):
    bad = frame(spark, [("b1", 1, T0, "us"), ("b2", 2, T0, "us")]).withColumn(
        "amount", F.when(F.col("customer_id") == "b2", F.raise_error(F.lit("boom"))).otherwise(F.col("amount"))
    )
    with pytest.raises(Exception, match="boom"):
        lakehouse.write(bad, people, mode="overwrite")
    assert lakehouse.version(people) == 0
    assert_df_equality(lakehouse.read(people), frame(spark, BASE_ROWS), ignore_row_order=True)
    assert staging_is_empty(lakehouse, people)


def test_failed_commit_removes_its_files_and_keeps_previous_version(spark, rs_lakehouse, monkeypatch):
    lakehouse = rs_lakehouse
    lakehouse.write(frame(spark, BASE_ROWS).coalesce(1), "silver.people", partition_by=["region"])
    people = "silver.people"

    def refuse(*args, **kwargs):
        raise RuntimeError("storage went away")

    monkeypatch.setattr(DeltaTable, "create_write_transaction", refuse)
    files_before = sorted(DeltaTable(lakehouse.path(people)).file_uris())
    with pytest.raises(RuntimeError, match="storage went away"):
        lakehouse.write(frame(spark, [("n", 1, T0, "us")]), people, mode="append")
    monkeypatch.undo()
    assert lakehouse.version(people) == 0
    data_files = sorted(
        os.path.join(d, f)
        for d, _, names in os.walk(lakehouse.path(people))
        for f in names
        if f.endswith(".parquet")
    )
    assert data_files == files_before  # nothing of the failed write is left behind
    assert lakehouse.read(people).count() == 4


def test_interrupted_write_leaves_orphans_that_vacuum_removes(spark, rs_lakehouse):
    lakehouse = rs_lakehouse
    people = "silver.people"
    lakehouse.write(frame(spark, BASE_ROWS).coalesce(1), people, partition_by=["region"])
    engine: DeltaRsEngine = lakehouse.engine
    path = lakehouse.path(people)
    # a write that died after Spark wrote its files and before the commit
    staging, _, staged = engine._stage(frame(spark, [("o", 1, T0, "us")]), path, ["region"])
    assert staged and lakehouse.read(people).count() == 4
    removed = lakehouse.vacuum(people, retention_hours=0, enforce_retention=False)
    assert {p for p in removed if p.endswith(".parquet")} == {s.staged_path for s in staged}
    assert not os.path.exists(staging)
    assert lakehouse.read(people).count() == 4


def test_concurrent_writers_to_different_regions_keep_both(spark, lakehouse, people):
    def replace(region: str, ids: list[str]):
        rows = frame(spark, [(i, 1, T0, region) for i in ids])
        return lambda: lakehouse.write(rows, people, regions=[region])

    run_together(replace("us", ["us-a", "us-b"]), replace("gb", ["gb-a"]))
    assert lakehouse.version(people) == 2
    got = sorted((r.region, r.customer_id) for r in lakehouse.read(people).collect())
    assert got == [("de", "c4"), ("gb", "gb-a"), ("us", "us-a"), ("us", "us-b")]


def test_concurrent_appends_both_land(spark, lakehouse, people):
    def append(i: int):
        rows = frame(spark, [(f"a{i}", i, T0, "fr")])
        return lambda: lakehouse.write(rows, people, mode="append")

    run_together(append(0), append(1))
    assert sorted(r.customer_id for r in lakehouse.read(people).where("region = 'fr'").collect()) == ["a0", "a1"]


def test_merge_updates_matches_and_inserts_the_rest(spark, lakehouse, people):
    source = frame(spark, [("c2", 21, T0, "gb"), ("c9", 90, T1, "fr")])
    result = lakehouse.merge(source, people, keys=["customer_id"])
    assert result.operation == "MERGE"
    assert result.files_removed == 1  # only the file holding c2 is rewritten
    expected = [("c1", 10, T0, "us"), ("c2", 21, T0, "gb"), ("c3", None, None, "us"), ("c4", 40, T0, "de"), ("c9", 90, T1, "fr")]
    assert_df_equality(lakehouse.read(people), frame(spark, expected), ignore_row_order=True)
    assert lakehouse.history(people, limit=1).first().operation == "MERGE"


def test_merge_on_composite_key_and_missing_columns(spark, lakehouse, people):
    partial = spark.createDataFrame([("c1", "us", 11)], "customer_id string, region string, amount long")
    lakehouse.merge(partial, people, keys=["customer_id", "region"])
    row = lakehouse.read(people).where("customer_id = 'c1'").first()
    assert (row.amount, row.seen_at, row.region) == (11, None, "us")  # columns absent from the source become null


def test_merge_with_schema_evolution(spark, lakehouse, people):
    source = frame(spark, [("c1", 11, T0, "us"), ("c7", 70, T0, "gb")]).withColumn("tier", F.lit("gold"))
    with pytest.raises(SchemaMismatchError, match=r"new column\(s\) \['tier'\]"):
        lakehouse.merge(source, people, keys=["customer_id"])
    lakehouse.merge(source, people, keys=["customer_id"], schema_mode="merge")
    got = {r.customer_id: (r.amount, r.tier) for r in lakehouse.read(people).collect()}
    assert got == {"c1": (11, "gold"), "c2": (20, None), "c3": (None, None), "c4": (40, None), "c7": (70, "gold")}


def test_overwriting_the_schema_keeps_partitioning_unless_told(spark, lakehouse, people):
    narrower = spark.createDataFrame([("c1", "us")], "customer_id string, region string")
    lakehouse.write(narrower, people, schema_mode="overwrite")
    assert lakehouse.partition_columns(people) == ["region"]
    assert lakehouse.schema(people).fieldNames() == ["customer_id", "region"]


def test_merge_creates_a_missing_table(spark, lakehouse):
    lakehouse.merge(frame(spark, BASE_ROWS), "silver.fresh", keys=["customer_id"], partition_by=["region"])
    assert lakehouse.partition_columns("silver.fresh") == ["region"]
    assert_df_equality(lakehouse.read("silver.fresh"), frame(spark, BASE_ROWS), ignore_row_order=True)


def test_merge_with_duplicate_source_keys_fails_clearly(spark, lakehouse, people):
    source = frame(spark, [("c1", 1, T0, "us"), ("c1", 2, T0, "us"), ("c7", 3, T0, "us")])
    with pytest.raises(DuplicateKeyError, match=r"duplicate keys on \['customer_id'\], e.g. customer_id='c1' \(2 rows\)"):
        lakehouse.merge(source, people, keys=["customer_id"])
    assert lakehouse.version(people) == 0


def test_merge_with_null_or_unknown_keys_fails(spark, lakehouse, people):
    with pytest.raises(DuplicateKeyError, match="null in key column"):
        lakehouse.merge(frame(spark, [(None, 1, T0, "us")]), people, keys=["customer_id"])
    with pytest.raises(SchemaMismatchError, match=r"key column\(s\) \['email'\] not in the source"):
        lakehouse.merge(frame(spark, BASE_ROWS), people, keys=["email"])


def test_delete_where(spark, lakehouse, people):
    result = lakehouse.delete(people, "region = 'us' AND amount IS NULL")
    assert (result.operation, result.rows_deleted) == ("DELETE", 1)
    assert sorted(r.customer_id for r in lakehouse.read(people).collect()) == ["c1", "c2", "c4"]
    with pytest.raises(ValueError, match="needs a predicate"):
        lakehouse.delete(people, " ")


def test_history_lists_operations_newest_first(spark, lakehouse, people):
    lakehouse.write(frame(spark, [("c5", 50, T0, "fr")]), people, mode="append")
    lakehouse.delete(people, "customer_id = 'c5'")
    history = lakehouse.history(people).select("version", "operation")
    expected = spark.createDataFrame([(2, "DELETE"), (1, "WRITE"), (0, "WRITE")], "version long, operation string")
    assert_df_equality(history, expected, ignore_nullable=True)
    params = {r.version: r.operation_parameters for r in lakehouse.history(people).collect()}
    # delta-rs records the predicate as given, delta-spark as its resolved expression
    expected_predicate = "customer_id = 'c5'" if lakehouse.engine_name == "delta-rs" else "(customer_id = c5)"
    assert params[2]["predicate"] == expected_predicate
    assert params[1]["mode"] == "Append"


def test_vacuum_removes_unreferenced_files_only(spark, lakehouse, people):
    lakehouse.write(frame(spark, [("z", 1, T0, "us")]), people)  # v1 makes v0's 3 files unreferenced
    with pytest.raises(Exception, match="(?i)retention"):
        lakehouse.vacuum(people, retention_hours=0)  # the 7-day safety check holds by default
    removed = lakehouse.vacuum(people, retention_hours=0, enforce_retention=False)
    assert len(removed) == 3
    assert_df_equality(lakehouse.read(people), frame(spark, [("z", 1, T0, "us")]))


def test_optimize_compacts_small_files(spark, lakehouse, people):
    for i in range(4):
        lakehouse.write(frame(spark, [(f"n{i}", i, T0, "us")]).coalesce(1), people, mode="append")
    before = lakehouse.read(people)
    expected = before.collect()
    files_before = len(DeltaTable(lakehouse.path(people)).file_uris([("region", "=", "us")]))
    metrics = lakehouse.optimize(people, regions=["us"])
    files_after = len(DeltaTable(lakehouse.path(people)).file_uris([("region", "=", "us")]))
    assert (files_before, files_after) == (5, 1)
    assert metrics["numFilesRemoved"] == 5
    assert sorted(lakehouse.read(people).collect()) == sorted(expected)


def test_schema_evolution_on_append(spark, lakehouse, people):
    wider = frame(spark, [("c8", 80, T0, "us")]).withColumn("tier", F.lit("gold"))
    with pytest.raises(SchemaMismatchError, match=r"new column\(s\) \['tier'\].*schema_mode='merge'"):
        lakehouse.write(wider, people, mode="append")
    lakehouse.write(wider, people, mode="append", schema_mode="merge")
    assert lakehouse.schema(people).fieldNames() == ["customer_id", "amount", "seen_at", "region", "tier"]
    tiers = {r.customer_id: r.tier for r in lakehouse.read(people).collect()}
    assert tiers == {"c1": None, "c2": None, "c3": None, "c4": None, "c8": "gold"}
    # a later append without the new column fills it with null
    lakehouse.write(frame(spark, [("c9", 9, T0, "us")]), people, mode="append")
    assert lakehouse.read(people).where("customer_id = 'c9'").first().tier is None


def test_type_change_is_refused_unless_schema_is_replaced(spark, lakehouse, people):
    changed = spark.createDataFrame([("c1", "ten", T0, "us")], "customer_id string, amount string, seen_at timestamp, region string")
    with pytest.raises(SchemaMismatchError, match=r"amount \(bigint -> string\)"):
        lakehouse.write(changed, people, mode="append")
    lakehouse.write(changed, people, schema_mode="overwrite", partition_by=["region"])
    assert lakehouse.schema(people)["amount"].dataType == T.StringType()
    assert lakehouse.read(people).first().amount == "ten"


def test_partitioning_cannot_change_silently(spark, lakehouse, people):
    with pytest.raises(SchemaMismatchError, match=r"partitioned by \[.region.\], not \[.customer_id.\]; re-partitioning"):
        lakehouse.write(frame(spark, BASE_ROWS), people, partition_by=["customer_id"])


def test_partition_column_rules(spark, lakehouse):
    with pytest.raises(SchemaMismatchError, match="partition column 'nope' is not in the data"):
        lakehouse.write(frame(spark, BASE_ROWS), "gold.x", partition_by=["nope"])
    with pytest.raises(SchemaMismatchError, match="partition column 'seen_at' has type timestamp"):
        lakehouse.write(frame(spark, BASE_ROWS), "gold.x", partition_by=["seen_at"])


def test_date_partitions_and_null_partition_values(spark, lakehouse):
    schema = "id string, day date, region string"
    rows = [("a", date(2026, 1, 1), "us"), ("b", date(2026, 1, 2), None)]
    lakehouse.write(spark.createDataFrame(rows, schema), "gold.daily", partition_by=["day", "region"])
    assert_df_equality(lakehouse.read("gold.daily"), spark.createDataFrame(rows, schema), ignore_row_order=True)
    assert {r["region"] for r in DeltaTable(lakehouse.path("gold.daily")).to_pyarrow_table().to_pylist()} == {"us", None}


def test_empty_table_reads_with_schema(spark, lakehouse):
    lakehouse.write(frame(spark, []), "ops.empty", partition_by=["region"])
    df = lakehouse.read("ops.empty")
    assert df.schema == SCHEMA and df.count() == 0


def test_names_and_missing_tables(spark, lakehouse):
    assert lakehouse.path("gold.customer_360").endswith("/gold/customer_360")
    assert lakehouse.path("bronze._quarantine").endswith("/bronze/_quarantine")
    for bad in ("customer_360", "platinum.x", "gold.Customer", "gold.a-b", "gold."):
        with pytest.raises(TableNameError, match="must be <layer>.<table>"):
            lakehouse.path(bad)
    with pytest.raises(TableNotFoundError, match="table gold.nothing does not exist"):
        lakehouse.read("gold.nothing")
    assert not lakehouse.exists("gold.nothing")


def test_tables_lists_delta_tables(spark, lakehouse, people):
    lakehouse.write(frame(spark, BASE_ROWS), "bronze.crm_customers")
    os.makedirs(os.path.join(lakehouse.root, "gold", "not_a_table"))
    # a creation killed before its first commit: a log folder with no version in it
    os.makedirs(os.path.join(lakehouse.root, "gold", "never_committed", "_delta_log", "_staged_commits"))
    with open(os.path.join(lakehouse.root, "gold", "never_committed", "_delta_log", ".00000000000000000000.json.crc"), "w") as f:
        f.write("x")
    assert lakehouse.tables() == ["bronze.crm_customers", "silver.people"]
    assert not lakehouse.exists("gold.never_committed")


def test_bad_arguments(spark, lakehouse, people):
    with pytest.raises(ValueError, match="mode must be"):
        lakehouse.write(frame(spark, BASE_ROWS), people, mode="upsert")
    with pytest.raises(ValueError, match="version or as_of"):
        lakehouse.read(people, version=0, as_of=T0)
    with pytest.raises(Exception, match="(?i)version"):
        lakehouse.read(people, version=7)


def test_python_errors_in_the_data_surface(spark, lakehouse):
    @F.udf("long")
    def explode(_):
        raise ValueError("bad row")

    df = frame(spark, BASE_ROWS).withColumn("amount", explode("amount"))
    with pytest.raises(PythonException, match="bad row"):
        lakehouse.write(df, "gold.never")
    assert not lakehouse.exists("gold.never")


# --------------------------------------------------------------------------- edge cases found in review


def test_engine_starts_on_a_session_without_the_timestamp_setting(spark, lakehouse_config):
    spark.conf.unset("spark.sql.parquet.outputTimestampType")
    Lakehouse(spark, lakehouse_config)
    assert spark.conf.get("spark.sql.parquet.outputTimestampType") == "TIMESTAMP_MICROS"


@pytest.mark.parametrize("region", ["a b", "x/y", "ü-ß", "50%"])
def test_merge_with_partition_values_that_need_encoding(spark, lakehouse, region):
    rows = [("c1", 1, T0, region), ("c2", 2, T0, "us")]
    lakehouse.write(frame(spark, rows).coalesce(1), "silver.odd", partition_by=["region"])
    assert_df_equality(lakehouse.read("silver.odd"), frame(spark, rows), ignore_row_order=True)
    lakehouse.merge(frame(spark, [("c1", 10, T0, region)]), "silver.odd", keys=["customer_id"])
    expected = [("c1", 10, T0, region), ("c2", 2, T0, "us")]
    assert_df_equality(lakehouse.read("silver.odd"), frame(spark, expected), ignore_row_order=True)
    lakehouse.optimize("silver.odd")
    lakehouse.delete("silver.odd", "customer_id = 'c2'")
    assert_df_equality(lakehouse.read("silver.odd"), frame(spark, expected[:1]))


@pytest.mark.parametrize(
    "ddl, value",
    [("part date", date(2026, 1, 2)), ("part int", 7), ("part boolean", True), ("part string", None)],
)
def test_merge_on_typed_partition_columns(spark, lakehouse, ddl, value):
    schema = f"id string, n long, {ddl}"
    lakehouse.write(spark.createDataFrame([("a", 1, value), ("b", 2, value)], schema), "gold.typed", partition_by=["part"])
    lakehouse.merge(spark.createDataFrame([("a", 5, value)], schema), "gold.typed", keys=["id"])
    expected = spark.createDataFrame([("a", 5, value), ("b", 2, value)], schema)
    assert_df_equality(lakehouse.read("gold.typed"), expected, ignore_row_order=True)


@pytest.mark.parametrize("folder", ["my lake", "läke"])
def test_lakehouse_root_with_space_or_non_ascii(spark, tmp_path, folder):
    from customer360.config import LakehouseConfig

    lakehouse = Lakehouse(spark, LakehouseConfig(root=str(tmp_path / folder)))
    lakehouse.write(frame(spark, BASE_ROWS), "silver.people", partition_by=["region"])
    lakehouse.merge(frame(spark, [("c1", 11, T0, "us")]), "silver.people", keys=["customer_id"])
    assert lakehouse.read("silver.people").where("customer_id = 'c1'").first().amount == 11
    assert lakehouse.read("silver.people").count() == 4


def test_timestamp_ntz_round_trips(spark, lakehouse):
    schema = "id string, local_at timestamp_ntz"
    rows = [("a", datetime(2026, 1, 2, 10, 0, 0, 654321))]
    lakehouse.write(spark.createDataFrame(rows, schema), "silver.ntz")
    assert_df_equality(lakehouse.read("silver.ntz"), spark.createDataFrame(rows, schema), ignore_nullable=True)
    lakehouse.write(spark.createDataFrame(rows, schema), "silver.ntz", mode="append")
    assert lakehouse.read("silver.ntz").count() == 2


def test_table_columns_are_nullable_whatever_the_frame_says(spark, lakehouse):
    strict = T.StructType([T.StructField("id", T.StringType(), False), T.StructField("n", T.LongType(), False)])
    lakehouse.write(spark.createDataFrame([("a", 1)], strict), "gold.strict")
    assert all(f.nullable for f in lakehouse.schema("gold.strict").fields)
    lakehouse.write(spark.createDataFrame([("b",)], "id string"), "gold.strict", mode="append")
    assert sorted((r.id, r.n) for r in lakehouse.read("gold.strict").collect()) == [("a", 1), ("b", None)]


def test_concurrent_merges_of_the_same_new_key_do_not_duplicate_it(spark, lakehouse, people):
    def upsert(amount: int):
        source = frame(spark, [("k", amount, T0, "us")])
        return lambda: lakehouse.merge(source, people, keys=["customer_id"])

    run_together(upsert(1), upsert(99))
    assert [r.amount for r in lakehouse.read(people).where("customer_id = 'k'").collect()] in ([1], [99])
    assert lakehouse.read(people).count() == 5


def test_schema_overwrite_needs_overwrite_mode_and_partitioning_is_fixed(spark, lakehouse, people):
    with pytest.raises(ValueError, match="use it with mode='overwrite'"):
        lakehouse.write(frame(spark, BASE_ROWS), people, mode="append", schema_mode="overwrite")
    with pytest.raises(SchemaMismatchError, match="re-partitioning a table is not supported"):
        lakehouse.write(frame(spark, BASE_ROWS), people, schema_mode="overwrite", partition_by=["customer_id"])


DATED = T.StructType(
    [
        T.StructField("customer_id", T.StringType(), True),
        T.StructField("score", T.LongType(), True),
        T.StructField("as_of_date", T.DateType(), True),
        T.StructField("region", T.StringType(), True),
    ]
)
D1, D2 = date(2026, 5, 31), date(2026, 6, 30)


def test_partitions_narrow_a_region_replacement_to_other_partition_values(spark, lakehouse):
    table = "gold.dated"
    base = [("a", 1, D1, "us"), ("b", 2, D2, "us"), ("c", 3, D1, "de"), ("d", 4, D2, "de")]
    lakehouse.write(frame(spark, base, DATED), table, partition_by=["region", "as_of_date"])
    lakehouse.write(frame(spark, [("z", 9, D2, "us")], DATED), table, regions=["us"], partitions={"as_of_date": [D2]})
    expected = [("a", 1, D1, "us"), ("z", 9, D2, "us"), ("c", 3, D1, "de"), ("d", 4, D2, "de")]
    assert_df_equality(lakehouse.read(table), frame(spark, expected, DATED), ignore_row_order=True)


def test_partition_replacement_refuses_data_outside_it(spark, lakehouse):
    table = "gold.dated"
    lakehouse.write(frame(spark, [("a", 1, D1, "us")], DATED), table, partition_by=["region", "as_of_date"])
    with pytest.raises(PartitionMismatchError, match=r"replaces as_of_date values \['2026-06-30'\] but the data also holds \['2026-05-31'\]"):
        lakehouse.write(frame(spark, [("z", 9, D1, "us")], DATED), table, regions=["us"], partitions={"as_of_date": [D2]})
    with pytest.raises(ValueError, match="pass regions too"):
        lakehouse.write(frame(spark, [("z", 9, D1, "us")], DATED), table, partitions={"as_of_date": [D1]})
    with pytest.raises(SchemaMismatchError, match="'score' is not a partition column"):
        lakehouse.write(frame(spark, [("z", 9, D1, "us")], DATED), table, regions=["us"], partitions={"score": [9]})
    assert lakehouse.version(table) == 0


def test_column_descriptions_are_stored_in_the_delta_schema(spark, lakehouse):
    from customer360.lakehouse.core import with_comments

    comments = {"customer_id": "who", "amount": "how much", "seen_at": "when", "region": "where"}
    lakehouse.write(with_comments(frame(spark, BASE_ROWS), comments), "gold.described", partition_by=["region"])
    assert lakehouse.column_comments("gold.described") == comments
    # the Delta log itself holds them (any Delta reader sees them)
    fields = {f.name: f.metadata for f in DeltaTable(lakehouse.path("gold.described")).schema().fields}
    assert fields["amount"] == {"comment": "how much"}
    # a changed description replaces the old one when the schema is merged
    changed = {**comments, "amount": "net amount"}
    lakehouse.write(with_comments(frame(spark, BASE_ROWS), changed), "gold.described", regions=["us", "gb", "de"], schema_mode="merge")
    assert lakehouse.column_comments("gold.described")["amount"] == "net amount"
    # a frame read back carries no comments: rewriting it (overwrite with merge, merge) keeps them
    lakehouse.write(lakehouse.read("gold.described"), "gold.described", regions=["us", "gb", "de"], schema_mode="merge")
    assert lakehouse.column_comments("gold.described") == changed
    lakehouse.merge(lakehouse.read("gold.described"), "gold.described", keys=["customer_id"], schema_mode="merge")
    assert lakehouse.column_comments("gold.described") == changed
    with pytest.raises(SchemaMismatchError, match=r"column\(s\) \['seen_at'\] have no description"):
        with_comments(frame(spark, BASE_ROWS), {k: v for k, v in comments.items() if k != "seen_at"})
