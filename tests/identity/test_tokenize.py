"""HMAC-SHA256 tokens built from Spark's sha2 must equal the standard library's HMAC, byte for byte."""
from __future__ import annotations

import hashlib
import hmac

import pyspark.sql.functions as F
import pytest
from chispa import assert_column_equality
from pyspark.sql import types as T

from customer360.identity.tokenize import hmac_token, hmac_token_of_kind, python_token

KEY = b"dev-only-pii-key"
LONG_KEY = bytes(range(256)) * 2  # 512 bytes: hashed down to 32 first (RFC 2104)
BLOCK_KEY = b"k" * 64  # exactly one block: used as is
HIGH_BYTES_KEY = b"\xff\x00\x80\x7f" * 5

VALUES = [
    "ann.lee@example.com",
    "+442079460018",
    "José Müller",
    "straße",
    "日本語の名前",
    "emoji 😀",
    "",  # empty but not null
    " leading and trailing ",
]


def reference(value: str, *, key: bytes, kind: str) -> str:
    return hmac.new(key, kind.encode("utf-8") + b"\x1f" + value.encode("utf-8"), hashlib.sha256).hexdigest()


def _token_frame(spark, values, *, key, kind):
    schema = T.StructType([T.StructField("value", T.StringType(), True), T.StructField("expected", T.StringType(), True)])
    rows = [(v, None if v is None else reference(v, key=key, kind=kind)) for v in values]
    return spark.createDataFrame(rows, schema).withColumn("actual", hmac_token(F.col("value"), key=key, kind=kind))


@pytest.mark.parametrize(
    "key",
    [KEY, LONG_KEY, BLOCK_KEY, b"k" * 65, HIGH_BYTES_KEY, b"x"],
    ids=["short", "longer-than-block", "exactly-one-block", "one-over-block", "non-ascii-bytes", "one-byte"],
)
def test_hmac_token_equals_python_hmac(spark, key):
    df = _token_frame(spark, VALUES, key=key, kind="email")
    assert_column_equality(df, "actual", "expected")


def test_hmac_token_with_unicode_kind(spark):
    df = _token_frame(spark, ["Zoë"], key=KEY, kind="prénom")
    assert_column_equality(df, "actual", "expected")


def test_known_answer():
    """A fixed vector so a change in the message layout (kind, 0x1f, value) is caught even if
    both implementations change together."""
    assert python_token("ann@example.com", key=b"key", kind="email") == (
        hmac.new(b"key", b"email\x1fann@example.com", hashlib.sha256).hexdigest()
    )
    assert python_token("ann@example.com", key=b"key", kind="email") != hmac.new(
        b"key", b"emailann@example.com", hashlib.sha256
    ).hexdigest()


def test_null_stays_null(spark):
    df = _token_frame(spark, ["a", None], key=KEY, kind="email")
    assert_column_equality(df, "actual", "expected")
    assert [r.actual for r in df.collect()][1] is None


def test_kinds_separate_tokens(spark):
    schema = T.StructType([T.StructField("value", T.StringType(), True)])
    row = (
        spark.createDataFrame([("ann",)], schema)
        .select(
            hmac_token(F.col("value"), key=KEY, kind="first_name").alias("first_name"),
            hmac_token(F.col("value"), key=KEY, kind="last_name").alias("last_name"),
            hmac_token(F.col("value"), key=b"another key", kind="first_name").alias("other_key"),
        )
        .collect()[0]
    )
    assert row.first_name == reference("ann", key=KEY, kind="first_name")
    assert row.last_name == reference("ann", key=KEY, kind="last_name")
    assert len({row.first_name, row.last_name, row.other_key}) == 3
    assert all(len(t) == 64 and set(t) <= set("0123456789abcdef") for t in row)


def test_separator_keeps_kind_and_value_apart(spark):
    """``kind='ab', value='c'`` and ``kind='a', value='bc'`` must not collide."""
    schema = T.StructType([T.StructField("value", T.StringType(), True)])
    df = spark.createDataFrame([("c",), ("bc",)], schema)
    ab_c = df.where(F.col("value") == "c").select(hmac_token(F.col("value"), key=KEY, kind="ab")).first()[0]
    a_bc = df.where(F.col("value") == "bc").select(hmac_token(F.col("value"), key=KEY, kind="a")).first()[0]
    assert ab_c != a_bc
    assert ab_c == reference("c", key=KEY, kind="ab")
    assert a_bc == reference("bc", key=KEY, kind="a")


def test_non_string_values_are_tokenized_as_their_string(spark):
    schema = T.StructType([T.StructField("value", T.LongType(), True), T.StructField("expected", T.StringType(), True)])
    df = spark.createDataFrame(
        [(12345, reference("12345", key=KEY, kind="loyalty_id")), (None, None)], schema
    ).withColumn("actual", hmac_token(F.col("value"), key=KEY, kind="loyalty_id"))
    assert_column_equality(df, "actual", "expected")


@pytest.mark.parametrize("key", [KEY, LONG_KEY, BLOCK_KEY])
def test_python_token_equals_hmac_token(spark, key):
    schema = T.StructType([T.StructField("value", T.StringType(), True), T.StructField("expected", T.StringType(), True)])
    rows = [(v, python_token(v, key=key, kind="phone")) for v in VALUES]
    df = spark.createDataFrame(rows, schema).withColumn("actual", hmac_token(F.col("value"), key=key, kind="phone"))
    assert_column_equality(df, "actual", "expected")


def test_python_token_equals_reference():
    for value in VALUES:
        assert python_token(value, key=LONG_KEY, kind="email") == reference(value, key=LONG_KEY, kind="email")


def test_empty_key_is_refused():
    with pytest.raises(ValueError, match="key is empty"):
        hmac_token(F.col("value"), key=b"", kind="email")


def test_the_key_never_appears_in_the_query_plan(spark):
    key = b"a-secret-key-that-must-stay-secret"
    df = spark.createDataFrame([("x",)], "v string").select(hmac_token(F.col("v"), key=key, kind="email").alias("t"))
    plan = df._jdf.queryExecution().toString() + df._jdf.queryExecution().executedPlan().toString()
    pads = [bytes(b ^ p for b in key.ljust(64, b"\0")).hex() for p in (0x36, 0x5C)]
    assert key.hex() not in plan and key.decode() not in plan and not any(p in plan.lower() for p in pads)
    assert df.first().t == reference("x", key=key, kind="email")


def test_token_of_kind_column_equals_the_reference_per_row(spark):
    kinds = ["email", "first_name", "email", "other_id", None, "phone"]
    values = ["ann.lee@example.com", "José", "日本語", "crm:17", "x", None]
    rows = [(k, v, None if k is None or v is None else reference(v, key=KEY, kind=k)) for k, v in zip(kinds, values)]
    df = spark.createDataFrame(rows, "kind string, value string, expected string").withColumn(
        "actual", hmac_token_of_kind(F.col("kind"), F.col("value"), key=KEY)
    )
    assert_column_equality(df, "expected", "actual")
    # the same value under two kinds gives two tokens, as hmac_token does
    both = df.where("value = 'ann.lee@example.com'").select(hmac_token(F.col("value"), key=KEY, kind="email").alias("t"), "actual").first()
    assert both["t"] == both["actual"]
    with pytest.raises(ValueError, match="empty"):
        hmac_token_of_kind(F.col("kind"), F.col("value"), key=b"")
