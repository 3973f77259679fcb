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
    if not key:
        raise ValueError("the PII hashing key is empty")
    return hmac.new(key, kind.encode("utf-8") + _SEPARATOR + value.encode("utf-8"), hashlib.sha256).hexdigest()


def hmac_token(value: Column, *, key: bytes, kind: str) -> Column:
    """Hex HMAC-SHA256 of ``kind 0x1f value`` (UTF-8) as a Column; null stays null."""
    if not key:
        raise ValueError("the PII hashing key is empty")
    prefix = kind.encode("utf-8") + _SEPARATOR

    def tokens(values: pd.Series) -> pd.Series:
        # the state after the key and the kind, built once per batch and copied per value
        template = hmac.new(key, prefix, hashlib.sha256)
        out = []
        for v in values:
            if v is None or v is pd.NA or (isinstance(v, float) and v != v):
                out.append(None)
                continue
            h = template.copy()
            h.update(str(v).encode("utf-8"))
            out.append(h.hexdigest())
        return pd.Series(out, dtype=object)

    udf = F.pandas_udf(tokens, T.StringType())
    return udf(value.cast("string"))


def hmac_token_map(column: Column, *, key: bytes, kind: str) -> Column:
    """A ``map<string,string>`` of name -> value as name -> token of ``"name:value"`` (the other ids)."""
    if not key:
        raise ValueError("the PII hashing key is empty")
    prefix = kind.encode("utf-8") + _SEPARATOR

    def tokens(maps: pd.Series) -> pd.Series:
        template = hmac.new(key, prefix, hashlib.sha256)

        def one(name: str, value: str | None) -> str | None:
            if value is None:
                return None
            h = template.copy()
            h.update(f"{name}:{value}".encode("utf-8"))
            return h.hexdigest()

        out = []
        for entries in maps:
            if entries is None or (isinstance(entries, float) and entries != entries):
                out.append(None)
            else:
                items = entries.items() if isinstance(entries, dict) else entries
                out.append({name: one(name, value) for name, value in items})
        return pd.Series(out, dtype=object)

    udf = F.pandas_udf(tokens, T.MapType(T.StringType(), T.StringType()))
    return udf(column)
