"""PII tokens: HMAC-SHA256 of a standardized value under a secret key, as a Spark expression.

HMAC(K, m) = SHA256((K' xor opad) || SHA256((K' xor ipad) || m)) (RFC 2104) is built from Spark's
own ``sha2`` over binary, so tokenizing a column needs no Python worker and the key never
leaves the driver except inside the (constant) pads. The message is ``kind || 0x1f || value``,
so the same string as an email and as a name gives different tokens.
"""
from __future__ import annotations

import hashlib
import hmac

import pyspark.sql.functions as F
from pyspark.sql import Column

_BLOCK = 64  # SHA-256 block size in bytes
_SEPARATOR = b"\x1f"


def _pads(key: bytes) -> tuple[bytes, bytes]:
    if not key:
        raise ValueError("the PII hashing key is empty")
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\x00")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def hmac_token(value: Column, *, key: bytes, kind: str) -> Column:
    """Hex HMAC-SHA256 of ``kind 0x1f value`` (UTF-8); null stays null."""
    inner_pad, outer_pad = _pads(key)
    message = F.concat(F.lit(kind.encode("utf-8") + _SEPARATOR), value.cast("string").cast("binary"))
    inner = F.unhex(F.sha2(F.concat(F.lit(inner_pad), message), 256))
    token = F.sha2(F.concat(F.lit(outer_pad), inner), 256)
    return F.when(value.isNotNull(), token)


def python_token(value: str, *, key: bytes, kind: str) -> str:
    """The same token computed in Python (for lookups, tests, and the erasure tooling)."""
    if not key:
        raise ValueError("the PII hashing key is empty")
    return hmac.new(key, kind.encode("utf-8") + _SEPARATOR + value.encode("utf-8"), hashlib.sha256).hexdigest()
