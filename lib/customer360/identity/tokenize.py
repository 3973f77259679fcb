"""PII tokens: HMAC-SHA256 of a standardized value under a secret key.

The token of ``value`` of kind ``kind`` is ``HMAC-SHA256(key, kind || 0x1f || value)`` in hex, so
the same string as an email and as a name gives different tokens. Spark computes it in a vectorized
pandas UDF that holds the key in its closure: the key never appears as a literal in a query plan,
so ``explain()``, the Spark UI, event logs and error messages cannot show it.
"""
from __future__ import annotations

import hashlib
import hmac

import pandas as pd
import pyspark.sql.functions as F
from pyspark.sql import Column
from pyspark.sql import types as T

_SEPARATOR = b"\x1f"


def python_token(value: str, *, key: bytes, kind: str) -> str:
    """The token of one value (for lookups, tests, and the erasure tooling)."""
    return _tokenizer(key, kind)(value)


def _tokenizer(key: bytes, kind: str):
    """A function value -> token, from one HMAC state of key and kind copied per value."""
    if not key:
        raise ValueError("the PII hashing key is empty")
    template = hmac.new(key, kind.encode("utf-8") + _SEPARATOR, hashlib.sha256)

    def token(value: str) -> str:
        h = template.copy()
        h.update(value.encode("utf-8"))
        return h.hexdigest()

    return token


def _missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def hmac_token(value: Column, *, key: bytes, kind: str) -> Column:
    """Hex HMAC-SHA256 of ``kind 0x1f value`` (UTF-8) as a Column; null stays null."""
    _tokenizer(key, kind)  # an empty key fails here, on the driver

    def tokens(values: pd.Series) -> pd.Series:
        token = _tokenizer(key, kind)  # built per batch: HMAC state does not pickle
        return pd.Series([None if _missing(v) else token(str(v)) for v in values], dtype=object)

    return F.pandas_udf(tokens, T.StringType())(value.cast("string"))


def hmac_token_of_kind(kind: Column, value: Column, *, key: bytes) -> Column:
    """``hmac_token`` with the kind taken from a column: one UDF for rows of many kinds."""
    _tokenizer(key, "kind")

    def tokens(kinds: pd.Series, values: pd.Series) -> pd.Series:
        by_kind: dict[str, object] = {}
        out = []
        for k, v in zip(kinds, values):
            if _missing(v) or _missing(k):
                out.append(None)
                continue
            token = by_kind.get(k)
            if token is None:
                token = by_kind[k] = _tokenizer(key, k)
            out.append(token(str(v)))
        return pd.Series(out, dtype=object)

    return F.pandas_udf(tokens, T.StringType())(kind.cast("string"), value.cast("string"))


def hmac_token_map(column: Column, *, key: bytes, kind: str) -> Column:
    """A ``map<string,string>`` of name -> value as name -> token of ``"name:value"`` (the other ids)."""
    _tokenizer(key, kind)

    def tokens(maps: pd.Series) -> pd.Series:
        token = _tokenizer(key, kind)
        out = []
        for entries in maps:
            if _missing(entries):
                out.append(None)
                continue
            items = entries.items() if isinstance(entries, dict) else entries
            out.append({name: None if value is None else token(f"{name}:{value}") for name, value in items})
        return pd.Series(out, dtype=object)

    return F.pandas_udf(tokens, T.MapType(T.StringType(), T.StringType()))(column)
