"""Identity records: every source row that identifies a person, in canonical attributes.

``canonical_records`` maps one source's columns onto the canonical attributes (conf/sources.yaml),
``standardize_records`` applies the column standardizers with each row's region settings, and
``tokenize_records`` splits the result into what silver may hold (tokens) and the restricted PII
vault (token -> standardized value).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

import pyspark.sql.functions as F
from pyspark.sql import Column, DataFrame
from pyspark.sql import types as T

from customer360.config import CANONICAL_ATTRIBUTES, PII_ATTRIBUTES, IdentityConfig, RegionConfig, SourceMapping
from customer360.identity import standardize as S
from customer360.identity.tokenize import hmac_token, hmac_token_map, hmac_token_of_kind

#: standardized string attributes of a record (date_of_birth is a date, event_time a timestamp)
STRING_ATTRIBUTES = tuple(a for a in PII_ATTRIBUTES if a != "date_of_birth")
#: attributes describing the person (not the event or the transaction): records equal in all are
#: one profile, and hubs are counted in profiles (a customer's 300 order lines are one profile)
PROFILE_ATTRIBUTES = (
    "first_name", "last_name", "email", "phone", "date_of_birth", "street", "city", "postcode",
    "loyalty_id", "company_name",
)

#: the standardized, clear-text records the matching works on (never stored)
CLEAR_RECORDS_SCHEMA = T.StructType(
    [
        T.StructField("source", T.StringType(), False),
        T.StructField("source_record_id", T.StringType(), False),
        T.StructField("region", T.StringType(), False),
        *[T.StructField(a, T.DateType() if a == "date_of_birth" else T.StringType(), True) for a in PII_ATTRIBUTES],
        T.StructField("country", T.StringType(), True),
        T.StructField("event_time", T.TimestampType(), True),
        T.StructField("other_ids", T.MapType(T.StringType(), T.StringType(), True), True),
    ]
)

#: silver.identity_records: the same rows with every personal attribute replaced by its token
IDENTITY_RECORDS_SCHEMA = T.StructType(
    [
        T.StructField("source", T.StringType(), False),
        T.StructField("source_record_id", T.StringType(), False),
        *[T.StructField(a, T.StringType(), True) for a in PII_ATTRIBUTES],
        T.StructField("country", T.StringType(), True),
        T.StructField("event_time", T.TimestampType(), True),
        T.StructField("other_ids", T.MapType(T.StringType(), T.StringType(), True), True),
        T.StructField("run_id", T.StringType(), False),
        T.StructField("region", T.StringType(), False),
    ]
)

PII_VAULT_SCHEMA = T.StructType(
    [
        T.StructField("token", T.StringType(), False),
        T.StructField("kind", T.StringType(), False),
        T.StructField("value", T.StringType(), False),
        T.StructField("first_seen_run_id", T.StringType(), False),
        T.StructField("region", T.StringType(), False),
    ]
)


def canonical_records(df: DataFrame, *, source: str, mapping: SourceMapping, default_region: str | None = None) -> DataFrame:
    """One source's rows as canonical attributes (strings; unmapped attributes null).

    Rows outside ``mapping.identity_filter`` and rows without a record id are left out here; the
    caller counts them.
    """
    missing = sorted({c for c in (*mapping.attributes.values(), *mapping.other_ids.values()) if c not in df.columns})
    if missing:
        raise ValueError(f"source {source}: mapped column(s) {missing} not in the data (columns: {df.columns})")
    if mapping.identity_filter:
        df = df.where(F.expr(mapping.identity_filter))
    columns: list[Column] = [F.lit(source).alias("source")]
    for attribute in CANONICAL_ATTRIBUTES:
        column = mapping.attributes.get(attribute)
        if attribute == "region" and column is None:
            value = F.lit(default_region)
        elif column is None:
            value = F.lit(None)
        elif attribute in ("event_time", "date_of_birth"):
            value = F.col(column)  # parsed by the standardizer, which knows the formats
        else:
            value = F.col(column).cast("string")
        columns.append(value.alias(attribute))
    other = [item for kind, column in sorted(mapping.other_ids.items()) for item in (F.lit(kind), F.col(column).cast("string"))]
    columns.append(F.create_map(*other).alias("other_ids") if other else F.lit(None).cast("map<string,string>").alias("other_ids"))
    return df.select(*columns).where(F.col("source_record_id").isNotNull())


def _phone_regions() -> tuple[str, ...]:
    import phonenumbers

    return tuple(sorted(phonenumbers.SUPPORTED_REGIONS))


_PHONE_REGIONS = _phone_regions()


def _by_region(region: Column, regions: Mapping[str, RegionConfig], build) -> Column:
    """``build(region_config)`` for each row's region (null for a region without settings)."""
    expr = None
    for code, config in sorted(regions.items()):
        branch = build(config)
        expr = F.when(region == code, branch) if expr is None else expr.when(region == code, branch)
    return expr if expr is not None else F.lit(None)


def _to_timestamp(col: Column, formats: Sequence[str]) -> Column:
    if not formats:
        return col.try_cast("timestamp")
    return F.coalesce(col.try_cast("timestamp"), *[F.try_to_timestamp(col.cast("string"), F.lit(f)) for f in formats])


def standardize_records(
    df: DataFrame,
    *,
    regions: Mapping[str, RegionConfig],
    identity: IdentityConfig,
    today: date,
    date_formats: Sequence[str] = S.DEFAULT_DATE_FORMATS,
    timestamp_formats: Sequence[str] = (),
) -> DataFrame:
    """Canonical records -> standardized clear records (``CLEAR_RECORDS_SCHEMA``)."""
    region = F.lower(F.trim(F.col("region")))
    phone_country = F.create_map(
        *[F.lit(part) for code, cfg in sorted(regions.items()) for part in (code, cfg.default_phone_country)]
    )
    country = F.upper(F.trim(F.col("country")))
    # a record's own country reads its national phone numbers, if libphonenumber knows it
    # ("UK" is the common spelling of GB); otherwise the region's default country
    known = F.when(country == "UK", F.lit("GB")).when(country.isin(*_PHONE_REGIONS), country)
    dialling = F.coalesce(known, F.element_at(phone_country, region))
    other_ids = F.map_filter(
        F.transform_values("other_ids", lambda _, v: S.standardize_identifier(v)), lambda _, v: v.isNotNull()
    )
    return df.select(
        F.col("source"),
        F.trim(F.col("source_record_id").cast("string")).alias("source_record_id"),
        region.alias("region"),
        S.standardize_first_name(F.col("first_name"), identity.nicknames).alias("first_name"),
        S.standardize_name(F.col("last_name")).alias("last_name"),
        S.standardize_email_for(F.col("email"), identity).alias("email"),
        S.standardize_phone(F.col("phone"), dialling).alias("phone"),
        S.standardize_birth_date(F.col("date_of_birth"), today=today, formats=date_formats).alias("date_of_birth"),
        _by_region(region, regions, lambda c: S.standardize_street(F.col("street"), c.street_abbreviations)).alias("street"),
        S.standardize_city(F.col("city")).alias("city"),
        _by_region(region, regions, lambda c: S.standardize_postcode(F.col("postcode"), c.postcode)).alias("postcode"),
        S.standardize_identifier(F.col("loyalty_id")).alias("loyalty_id"),
        S.standardize_device(F.col("device_id")).alias("device_id"),
        S.standardize_device(F.col("cookie_id")).alias("cookie_id"),
        S.standardize_company(F.col("company_name")).alias("company_name"),
        F.when(country.rlike("^[A-Z]{2}$"), country).alias("country"),
        _to_timestamp(F.col("event_time"), timestamp_formats).alias("event_time"),
        F.when(F.size(other_ids) > 0, other_ids).alias("other_ids"),
    ).select(*[f.name for f in CLEAR_RECORDS_SCHEMA.fields])


def profile_key(df: DataFrame) -> Column:
    """A 64-bit hash of the person-describing attributes: records equal in all are one profile.

    Unkeyed, so reversible by guessing: used in memory only, never stored."""
    return F.xxhash64(*[F.col(a) for a in PROFILE_ATTRIBUTES])


def _value_string(attribute: str) -> Column:
    column = F.col(attribute)
    return F.date_format(column, "yyyy-MM-dd") if attribute == "date_of_birth" else column


def tokenize_records(clear: DataFrame, *, key: bytes, run_id: str) -> DataFrame:
    """Clear records -> ``IDENTITY_RECORDS_SCHEMA`` rows: each personal attribute as its token."""
    tokens = [hmac_token(_value_string(a), key=key, kind=a).alias(a) for a in PII_ATTRIBUTES]
    other = hmac_token_map(F.col("other_ids"), key=key, kind="other_id")
    return clear.select(
        "source",
        "source_record_id",
        *tokens,
        "country",
        "event_time",
        other.alias("other_ids"),
        F.lit(run_id).alias("run_id"),
        "region",
    )


def vault_entries(clear: DataFrame, *, key: bytes, run_id: str) -> DataFrame:
    """Distinct (token, kind, value) of every personal attribute in ``clear`` (``PII_VAULT_SCHEMA``).

    The distinct values are found first and each is hashed once (a token is a function of kind and
    value): far fewer HMACs than one per attribute of every record."""
    parts = [
        clear.where(F.col(attribute).isNotNull()).select(
            F.lit(attribute).alias("kind"), _value_string(attribute).alias("value"), "region"
        )
        for attribute in PII_ATTRIBUTES
    ]
    others = clear.select("region", F.explode("other_ids").alias("k", "v")).select(
        F.lit("other_id").alias("kind"), F.concat("k", F.lit(":"), "v").alias("value"), "region"
    )
    union = parts[0]
    for part in (*parts[1:], others):
        union = union.unionByName(part)
    return union.distinct().select(
        hmac_token_of_kind(F.col("kind"), F.col("value"), key=key).alias("token"),
        "kind", "value", F.lit(run_id).alias("first_seen_run_id"), "region",
    )
