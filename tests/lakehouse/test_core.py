"""Engine-independent pieces: engine choice, schema alignment, merge key checks."""
from __future__ import annotations

import dataclasses
import logging

import pytest
from chispa import assert_df_equality
from pyspark.sql import types as T

from customer360.config import LakehouseConfig
from customer360.errors import DuplicateKeyError, EngineUnavailableError, SchemaMismatchError
from customer360.lakehouse.core import align_to_table, check_merge_keys, choose_engine
from customer360.session import SessionCapabilities, detect_capabilities

TABLE = T.StructType(
    [
        T.StructField("id", T.StringType()),
        T.StructField("n", T.LongType()),
        T.StructField("region", T.StringType()),
    ]
)


def without_delta(spark) -> SessionCapabilities:
    """This session's capabilities as a session without Delta Lake's jar would have them."""
    return dataclasses.replace(detect_capabilities(spark), delta_spark=False, delta_version=None)


def test_auto_engine_is_delta_spark_when_its_classes_load(spark, tmp_path, caplog):
    if not detect_capabilities(spark).delta_spark:
        pytest.skip("Delta Lake's jar is not loaded (run `make jars`)")
    with caplog.at_level(logging.INFO, logger="customer360.lakehouse.core"):
        engine = choose_engine(spark, LakehouseConfig(root=str(tmp_path)))
    assert engine.name == "delta-spark"
    lines = [r.getMessage() for r in caplog.records if "lakehouse engine" in r.getMessage()]
    assert lines == ["lakehouse engine: delta-spark (Delta Lake JVM classes present)"]


def test_auto_engine_falls_back_to_delta_rs_with_one_log_line(spark, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="customer360.lakehouse.core"):
        engine = choose_engine(spark, LakehouseConfig(root=str(tmp_path)), capabilities=without_delta(spark))
    assert engine.name == "delta-rs"
    lines = [r.getMessage() for r in caplog.records if "lakehouse engine" in r.getMessage()]
    assert lines == ["lakehouse engine: delta-rs (io.delta.sql.DeltaSparkSessionExtension not loaded in this session)"]


def test_forcing_delta_spark_without_the_jar_fails_clearly(spark, tmp_path):
    with pytest.raises(EngineUnavailableError, match="no Delta Lake: start Spark with the io.delta:delta-spark jar"):
        choose_engine(spark, LakehouseConfig(root=str(tmp_path), engine="delta-spark"), capabilities=without_delta(spark))


def test_align_reorders_and_fills_missing_columns(spark):
    df = spark.createDataFrame([("us", "a")], "region string, id string")
    aligned = align_to_table(df, TABLE, schema_mode=None)
    expected = spark.createDataFrame([("a", None, "us")], TABLE)
    assert_df_equality(aligned, expected, ignore_nullable=True)


def test_align_appends_new_columns_only_when_merging(spark):
    df = spark.createDataFrame([("a", 1, "us", True)], "id string, n long, region string, vip boolean")
    with pytest.raises(SchemaMismatchError, match=r"new column\(s\) \['vip'\]"):
        align_to_table(df, TABLE, schema_mode=None)
    assert align_to_table(df, TABLE, schema_mode="merge").columns == ["id", "n", "region", "vip"]


def test_align_refuses_type_changes(spark):
    df = spark.createDataFrame([("a", 1, "us")], "id string, n int, region string")
    with pytest.raises(SchemaMismatchError, match=r"n \(bigint -> int\)"):
        align_to_table(df, TABLE, schema_mode="merge")
    assert align_to_table(df, TABLE, schema_mode="overwrite") is df


def test_merge_key_checks(spark):
    ok = spark.createDataFrame([("a", 1, "us"), ("a", 1, "gb")], TABLE)
    check_merge_keys(ok, ["id", "region"], table="t")  # unique on the pair
    with pytest.raises(DuplicateKeyError, match=r"e.g. id='a' \(2 rows\)"):
        check_merge_keys(ok, ["id"], table="t")
    nulls = spark.createDataFrame([("a", 1, None)], TABLE)
    with pytest.raises(DuplicateKeyError, match="null in key column"):
        check_merge_keys(nulls, ["id", "region"], table="t")
    with pytest.raises(DuplicateKeyError, match="at least one key"):
        check_merge_keys(ok, [], table="t")


def test_operations_that_lose_a_commit_race_are_redone_others_are_not():
    from customer360.lakehouse.core import is_commit_conflict, redo_on_conflict

    class ConcurrentAppendException(Exception):
        pass

    attempts = []

    def flaky():
        attempts.append(1)
        if len(attempts) < 3:
            raise ConcurrentAppendException("Files were added to partition [region=us] by a concurrent update")
        return "merged"

    assert redo_on_conflict(flaky, retries=5, what="t: merge") == "merged" and len(attempts) == 3
    # a conflict reported through the JVM: only the error class is in the message
    assert is_commit_conflict(RuntimeError("[DELTA_CONCURRENT_APPEND.WITHOUT_HINT] ConcurrentAppendException: ..."))
    assert not is_commit_conflict(ValueError("column x not found"))

    attempts.clear()
    with pytest.raises(ConcurrentAppendException):
        redo_on_conflict(lambda: flaky() if len(attempts) < 10 else None, retries=1, what="t: merge")
    assert len(attempts) == 2  # the first try and one redo

    calls = []

    def broken():
        calls.append(1)
        raise ValueError("column x not found")

    with pytest.raises(ValueError, match="column x"):
        redo_on_conflict(broken, retries=5, what="t: merge")
    assert calls == [1]
