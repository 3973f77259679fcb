"""Delta Lake's own features through the Lakehouse: Change Data Feed, retention properties,
deletion vectors purged for erasure, Z-ordering, MERGE metrics; and tables handed from one engine
to the other (written by each, read, merged and time-travelled by the other), with delta-rs saying
clearly what it cannot do to a table delta-spark gave Change Data Feed or deletion vectors."""
from __future__ import annotations

import os
from datetime import datetime, timezone

import pyarrow.parquet as pq
import pytest
from chispa import assert_df_equality
from deltalake import DeltaTable
from pyspark.sql import types as T

from customer360.config import LakehouseConfig
from customer360.errors import ConstraintViolationError, SchemaMismatchError, UnsupportedTableError
from customer360.governance.lineage import merge_counts
from customer360.lakehouse import Constraints, Lakehouse
from customer360.session import detect_capabilities

SCHEMA = T.StructType([
    T.StructField("customer_id", T.StringType(), True),
    T.StructField("amount", T.LongType(), True),
    T.StructField("region", T.StringType(), True),
])
ROWS = [("c1", 10, "us"), ("c2", 20, "us"), ("c3", 30, "de")]


@pytest.fixture(autouse=True)
def _needs_delta_spark(spark):
    if not detect_capabilities(spark).delta_spark:
        pytest.skip("Delta Lake's jar is not loaded (run `make jars`)")


def lakehouse_at(spark, root, engine: str, **settings) -> Lakehouse:
    return Lakehouse(spark, LakehouseConfig(root=str(root), engine=engine, **settings))


@pytest.fixture
def spark_lh(spark, tmp_path) -> Lakehouse:
    return lakehouse_at(spark, tmp_path / "lh", "delta-spark")


@pytest.fixture
def rs_lh(spark, tmp_path) -> Lakehouse:
    return lakehouse_at(spark, tmp_path / "lh", "delta-rs")


def frame(spark, rows):
    return spark.createDataFrame(rows, SCHEMA)


def parquet_values(table_path: str, column: str) -> set:
    """Every value of ``column`` in every Parquet file under the table, referenced or not."""
    found = set()
    for folder, _, names in os.walk(table_path):
        for name in names:
            if name.endswith(".parquet") and "_delta_log" not in folder:
                table = pq.read_table(os.path.join(folder, name))
                if column in table.column_names:
                    found |= set(table.column(column).to_pylist())
    return found


def test_silver_and_gold_tables_record_change_data_feed(spark, spark_lh):
    spark_lh.write(frame(spark, ROWS), "silver.people", partition_by=["region"])
    spark_lh.merge(frame(spark, [("c1", 11, "us"), ("c4", 40, "de")]), "silver.people", keys=["customer_id"])
    spark_lh.delete("silver.people", "customer_id = 'c2'")
    assert spark_lh.properties("silver.people")["delta.enableChangeDataFeed"] == "true"
    changes = spark_lh.changes("silver.people", start_version=1).select("customer_id", "amount", "_change_type", "_commit_version")
    expected = spark.createDataFrame(
        [("c1", 10, "update_preimage", 1), ("c1", 11, "update_postimage", 1), ("c4", 40, "insert", 1), ("c2", 20, "delete", 2)],
        "customer_id string, amount long, _change_type string, _commit_version long",
    )
    assert_df_equality(changes, expected, ignore_row_order=True, ignore_nullable=True)
    only_v2 = spark_lh.changes("silver.people", start_version=2, end_version=2)
    assert [(r.customer_id, r._change_type) for r in only_v2.collect()] == [("c2", "delete")]


def test_other_layers_have_no_change_feed_and_say_so(spark, spark_lh):
    spark_lh.write(frame(spark, ROWS), "ops.people")
    assert "delta.enableChangeDataFeed" not in spark_lh.properties("ops.people")
    with pytest.raises(UnsupportedTableError, match="ops.people does not record Change Data Feed"):
        spark_lh.changes("ops.people", start_version=0)
    spark_lh.write(frame(spark, ROWS), "gold.people")
    with pytest.raises(ValueError, match="bad version range"):
        spark_lh.changes("gold.people", start_version=3, end_version=1)


@pytest.mark.parametrize("engine", ["delta-spark", "delta-rs"])
def test_retention_properties_come_from_config(spark, tmp_path, engine):
    lh = lakehouse_at(spark, tmp_path / engine, engine, log_retention_days=45, vacuum_retention_hours=72)
    lh.write(frame(spark, ROWS), "gold.people")
    props = lh.properties("gold.people")
    assert props["delta.logRetentionDuration"] == "interval 45 days"
    assert props["delta.deletedFileRetentionDuration"] == "interval 72 hours"
    # the other engine reads the same properties from the log
    assert DeltaTable(lh.path("gold.people")).metadata().configuration["delta.logRetentionDuration"] == "interval 45 days"
    # delta-rs cannot keep a change feed true, so it does not switch one on
    assert props.get("delta.enableChangeDataFeed") == ("true" if engine == "delta-spark" else None)


def test_delta_rs_reads_and_appends_a_change_feed_table_but_refuses_rewrites(spark, spark_lh, rs_lh):
    spark_lh.write(frame(spark, ROWS), "silver.people", partition_by=["region"])
    assert_df_equality(rs_lh.read("silver.people"), frame(spark, ROWS), ignore_row_order=True)
    rs_lh.write(frame(spark, [("c9", 90, "us")]), "silver.people", mode="append")
    with pytest.raises(UnsupportedTableError, match=r"cannot merge into .* with the delta-rs engine: the table has delta.enableChangeDataFeed"):
        rs_lh.merge(frame(spark, [("c1", 1, "us")]), "silver.people", keys=["customer_id"])
    with pytest.raises(UnsupportedTableError, match="cannot delete from"):
        rs_lh.delete("silver.people", "customer_id = 'c1'")
    with pytest.raises(UnsupportedTableError, match="Change Data Feed needs the delta-spark engine"):
        rs_lh.changes("silver.people", start_version=0)
    # the append delta-rs made is in delta-spark's change feed as an insert
    inserted = spark_lh.changes("silver.people", start_version=1).select("customer_id", "_change_type").collect()
    assert [tuple(r) for r in inserted] == [("c9", "insert")]


def test_deletion_vectors_are_purged_so_no_file_keeps_a_deleted_row(spark, tmp_path, rs_lh):
    lh = lakehouse_at(spark, tmp_path / "lh", "delta-spark", deletion_vectors=True)
    lh.write(frame(spark, ROWS).coalesce(1), "silver.people")
    lh.delete("silver.people", "customer_id = 'c2'")
    path = lh.path("silver.people")
    assert "c2" in parquet_values(path, "customer_id")  # only marked in a deletion vector
    assert sorted(r.customer_id for r in lh.read("silver.people").collect()) == ["c1", "c3"]
    with pytest.raises(UnsupportedTableError, match="has deletion vectors"):
        rs_lh.read("silver.people")
    metrics = lh.purge_deleted_rows("silver.people")
    assert metrics["numFilesRemoved"] == 1 and metrics["numFilesAdded"] == 1
    lh.vacuum("silver.people", retention_hours=0, enforce_retention=False)
    assert "c2" not in parquet_values(path, "customer_id")
    assert sorted(r.customer_id for r in lh.read("silver.people").collect()) == ["c1", "c3"]
    assert lh.purge_deleted_rows("silver.people")["numFilesRemoved"] == 0  # nothing left to purge


def test_purge_is_a_no_op_without_deletion_vectors(spark, spark_lh):
    spark_lh.write(frame(spark, ROWS), "silver.people")
    assert spark_lh.purge_deleted_rows("silver.people") == {}
    assert spark_lh.version("silver.people") == 0


@pytest.mark.parametrize("engine", ["delta-spark", "delta-rs"])
def test_optimize_z_orders_by_the_configured_columns(spark, tmp_path, engine):
    lh = lakehouse_at(spark, tmp_path / engine, engine, zorder={"ops.people": ("customer_id",)}, change_data_feed_layers=())
    for i in range(4):
        lh.write(frame(spark, [(f"c{i}", i, "us")]).coalesce(1), "ops.people", mode="append", partition_by=["region"] if i == 0 else None)
    expected = lh.read("ops.people").collect()
    metrics = lh.optimize("ops.people")
    assert (metrics["numFilesRemoved"], metrics["numFilesAdded"]) == (4, 1)
    operation = lh.history("ops.people", limit=1).first()
    assert operation.operation == "OPTIMIZE"
    assert "customer_id" in operation.operation_parameters["zOrderBy"]
    assert sorted(lh.read("ops.people").collect()) == sorted(expected)
    with pytest.raises(SchemaMismatchError, match=r"cannot Z-order by \['region'\]"):
        lh.optimize("ops.people", zorder_by=["region"])  # a partition column
    with pytest.raises(SchemaMismatchError, match=r"cannot Z-order by \['nope'\]"):
        lh.optimize("ops.people", zorder_by=["nope"])


def test_merge_metrics_reach_the_job_record(spark, spark_lh):
    spark_lh.write(frame(spark, ROWS), "ops.people")
    result = spark_lh.merge(frame(spark, [("c1", 11, "us"), ("c4", 40, "de")]), "ops.people", keys=["customer_id"])
    assert (result.operation, result.metrics["numTargetRowsInserted"], result.metrics["numTargetRowsUpdated"]) == ("MERGE", "1", "1")
    counts = merge_counts(spark_lh.lineage.writes)
    assert counts["merge.ops.people.rows_inserted"] == 1
    assert counts["merge.ops.people.rows_updated"] == 1
    assert counts["merge.ops.people.source_rows"] == 2


@pytest.mark.parametrize("writer, other", [("delta-spark", "delta-rs"), ("delta-rs", "delta-spark")])
def test_a_table_written_by_one_engine_is_read_merged_and_time_travelled_by_the_other(spark, tmp_path, writer, other):
    root = tmp_path / "shared"
    first = lakehouse_at(spark, root, writer, change_data_feed_layers=())
    second = lakehouse_at(spark, root, other, change_data_feed_layers=())
    first.write(frame(spark, ROWS), "silver.people", partition_by=["region"])
    first.merge(frame(spark, [("c2", 21, "us")]), "silver.people", keys=["customer_id"])
    # the other engine reads the latest version and the first one
    assert_df_equality(second.read("silver.people"), frame(spark, [("c1", 10, "us"), ("c2", 21, "us"), ("c3", 30, "de")]), ignore_row_order=True)
    assert_df_equality(second.read("silver.people", version=0), frame(spark, ROWS), ignore_row_order=True)
    # ... merges into it, and the first engine sees the result and the history
    second.merge(frame(spark, [("c3", 31, "de"), ("c5", 50, "de")]), "silver.people", keys=["customer_id"])
    after = [("c1", 10, "us"), ("c2", 21, "us"), ("c3", 31, "de"), ("c5", 50, "de")]
    assert_df_equality(first.read("silver.people"), frame(spark, after), ignore_row_order=True)
    assert_df_equality(first.read("silver.people", version=1), frame(spark, [("c1", 10, "us"), ("c2", 21, "us"), ("c3", 30, "de")]), ignore_row_order=True)
    # delta-rs commits its copy-on-write merge as a WRITE and marks it MERGE in its own commit
    # metadata, which only delta-rs's history reads
    other_merge = "WRITE" if (writer, other) == ("delta-spark", "delta-rs") else "MERGE"
    assert [r.operation for r in first.history("silver.people").collect()] == [other_merge, "MERGE", "WRITE"]
    # as of half-way between versions 1 and 2 (a read apart): each engine dates a commit its own
    # way (delta-rs by the commit info, delta-spark by the file's time), a few ms apart, so a
    # commit's own timestamp can fall just before it in the other engine's eyes
    stamps = {r.version: r.timestamp for r in first.history("silver.people").collect()}
    assert all(isinstance(t, datetime) for t in stamps.values())
    between = stamps[1] + (stamps[2] - stamps[1]) / 2
    assert second.read("silver.people", as_of=between.replace(tzinfo=timezone.utc)).count() == 3


# --------------------------------------------------------------------------- constraints

CONTRACT = Constraints(not_null=("customer_id", "region"), checks=(("amount_positive", "amount IS NULL OR amount > 0"),))


@pytest.mark.parametrize("engine", ["delta-spark", "delta-rs"])
def test_constraints_guard_the_first_rows_and_every_later_write(spark, tmp_path, engine):
    lh = lakehouse_at(spark, tmp_path / "lh", engine)
    # the first write already meets the constraints: the table is created empty with them
    with pytest.raises(ConstraintViolationError, match="silver.sales: rows break") as caught:
        lh.write(frame(spark, ROWS + [("c9", -5, "us")]), "silver.sales", partition_by=["region"], constraints=CONTRACT)
    assert "-5" not in str(caught.value) and "c9" not in str(caught.value)  # values are never echoed
    assert lh.read("silver.sales").count() == 0
    assert lh.constraints("silver.sales") == {
        "customer_id_not_null": "customer_id IS NOT NULL",
        "region_not_null": "region IS NOT NULL",
        "amount_positive": "amount IS NULL OR amount > 0",
    }
    lh.write(frame(spark, ROWS), "silver.sales", partition_by=["region"], constraints=CONTRACT)
    for bad, broken in (([(None, 5, "us")], "customer_id_not_null"), ([("c4", 0, "de")], "amount_positive")):
        with pytest.raises(ConstraintViolationError) as caught:
            lh.write(frame(spark, bad), "silver.sales", mode="append")  # enforced without being passed again
        if engine == "delta-spark":  # Delta names the constraint; delta-rs says only that a check failed
            assert f"CHECK constraint {broken}" in str(caught.value)
        else:
            assert broken in str(caught.value)
    with pytest.raises(ConstraintViolationError, match="rows break"):
        lh.merge(frame(spark, [("c1", -1, "us")]), "silver.sales", keys=["customer_id"])
    assert_df_equality(lh.read("silver.sales"), frame(spark, ROWS), ignore_row_order=True, ignore_nullable=True)


@pytest.mark.parametrize("engine", ["delta-spark", "delta-rs"])
def test_a_new_table_gets_all_its_constraints_in_one_commit(spark, tmp_path, engine):
    lh = lakehouse_at(spark, tmp_path / "lh", engine)
    lh.write(frame(spark, ROWS), "silver.sales", partition_by=["region"], constraints=CONTRACT)
    operations = [r.operation for r in lh.history("silver.sales").orderBy("version").collect()]
    if engine == "delta-spark":  # the creating commit carries them
        assert operations == ["WRITE", "WRITE"]
    else:  # delta-rs refuses them in a new table's configuration: one ADD CONSTRAINT commit for all
        assert operations == ["WRITE", "ADD CONSTRAINT", "WRITE"]
    assert set(lh.constraints("silver.sales")) == {"customer_id_not_null", "region_not_null", "amount_positive"}


@pytest.mark.parametrize("engine", ["delta-spark", "delta-rs"])
def test_a_constraint_that_is_no_condition_on_the_columns_is_refused_before_the_table_exists(spark, tmp_path, engine):
    lh = lakehouse_at(spark, tmp_path / "lh", engine)
    for checks, message in (
        ((("known", "discount > 0"),), r"constraint known \(discount > 0\) does not apply to its columns: .*discount"),
        ((("sum", "amount + 1"),), r"constraint sum \(amount \+ 1\) is not a condition: it gives bigint"),
    ):
        with pytest.raises(SchemaMismatchError, match=message):
            lh.write(frame(spark, ROWS), "silver.sales", partition_by=["region"], constraints=Constraints(checks=checks))
        assert not lh.exists("silver.sales")


@pytest.mark.parametrize("engine", ["delta-spark", "delta-rs"])
def test_a_new_constraint_checks_the_rows_already_there(spark, tmp_path, engine):
    lh = lakehouse_at(spark, tmp_path / "lh", engine)
    lh.write(frame(spark, ROWS + [("c4", None, "de")]), "silver.sales", partition_by=["region"])
    strict = Constraints(checks=(("amount_known", "amount IS NOT NULL"),))
    with pytest.raises(ConstraintViolationError, match="silver.sales: rows already in the table break"):
        lh.write(frame(spark, ROWS[:1]), "silver.sales", mode="append", constraints=strict)
    assert lh.constraints("silver.sales") == {}
    # a changed expression replaces the constraint of that name
    lh.write(frame(spark, ROWS[:1]), "silver.sales", mode="append", constraints=Constraints(checks=(("amount_known", "amount > 0 OR amount IS NULL"),)))
    assert lh.constraints("silver.sales") == {"amount_known": "amount > 0 OR amount IS NULL"}


def test_a_constraint_set_by_one_engine_is_enforced_by_the_other(spark, tmp_path):
    root = tmp_path / "lh"
    lakehouse_at(spark, root, "delta-rs").write(frame(spark, ROWS), "silver.sales", partition_by=["region"], constraints=CONTRACT)
    with pytest.raises(ConstraintViolationError, match="CHECK constraint amount_positive"):
        lakehouse_at(spark, root, "delta-spark").write(frame(spark, [("c5", -1, "us")]), "silver.sales", mode="append")
    lakehouse_at(spark, root / "other", "delta-spark").write(frame(spark, ROWS), "silver.sales", partition_by=["region"], constraints=CONTRACT)
    with pytest.raises(ConstraintViolationError, match="amount_positive"):
        lakehouse_at(spark, root / "other", "delta-rs").write(frame(spark, [("c5", -1, "us")]), "silver.sales", mode="append")


def test_constraints_refuse_names_and_expressions_that_are_not_one_clause():
    with pytest.raises(ValueError, match="NOT NULL column 'Bad Name'"):
        Constraints(not_null=("Bad Name",))
    with pytest.raises(ValueError, match="constraint name 'x-y'"):
        Constraints(checks=(("x-y", "a > 0"),))
    with pytest.raises(ValueError, match="is not one SQL expression"):
        Constraints(checks=(("ok", "a > 0; DROP TABLE t"),))
    assert not Constraints() and Constraints(not_null=("a",)).expressions() == {"a_not_null": "a IS NOT NULL"}


def test_a_table_committed_elsewhere_after_a_killed_creation_is_seen(spark, spark_lh, rs_lh, tmp_path):
    """A writer killed while creating a table leaves a log folder with no commit. Delta caches the
    empty log when this session first looks; the table another process commits later must still
    be found (found by the crash benchmark: a reader's session kept saying "no Delta table")."""
    (tmp_path / "lh" / "ops" / "late" / "_delta_log").mkdir(parents=True)
    assert not spark_lh.exists("ops.late")
    rs_lh.write(frame(spark, ROWS), "ops.late")  # delta-rs: another writer, outside this JVM's cache
    assert spark_lh.exists("ops.late")
    assert sorted(tuple(r) for r in spark_lh.read("ops.late").collect()) == sorted(ROWS)
