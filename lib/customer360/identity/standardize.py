"""Standardization of personal attributes as pure column functions.

Every function takes and returns a ``Column`` (or builds one from several), so the same rules run
inside any ``select``/``withColumn`` and are tested one column at a time. Values that cannot be
an identifier (placeholders, malformed emails, numbers that no numbering plan has, dates of birth
in the future) become null: a null never links, a bad value might.

Phones go through Google's libphonenumber (the ``phonenumbers`` package) in a vectorized pandas
UDF; everything else is Spark built-ins.
"""
from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from datetime import date

import pandas as pd
import pyspark.sql.functions as F
from pyspark.sql import Column
from pyspark.sql import types as T

from customer360.config import PostcodeRule

# Latin letters with diacritics and their base letter; Spark has no Unicode normalization built in.
_ACCENTED = "àáâãäåāăąçćčďèéêëēėęěğìíîïīįñńňòóôõöōőŕřśšşșťţțùúûüūůűųýÿźżž"
_PLAIN = "".join(unicodedata.normalize("NFD", ch)[0] for ch in _ACCENTED)
#: letters without a decomposition, replaced before the one-to-one translation
_LIGATURES = (("ß", "ss"), ("æ", "ae"), ("œ", "oe"), ("ø", "o"), ("ł", "l"), ("đ", "d"), ("þ", "th"), ("ı", "i"))

EMAIL_PATTERN = r"^[a-z0-9!#$%&'*+/=?^_`{|}~.-]+@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}$"
DEFAULT_DATE_FORMATS = ("yyyy-MM-dd", "yyyy/MM/dd", "dd.MM.yyyy", "yyyyMMdd")
#: 1900-01-01 itself is the classic "unknown" placeholder, so the earliest plausible birth is the day after
EARLIEST_BIRTH = date(1900, 1, 2)
_ISO_DATE = r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([ T].*)?$"


def _blank_to_null(col: Column) -> Column:
    return F.when(F.length(col) > 0, col)


def fold_accents(col: Column) -> Column:
    """Lower-case and accent-free: ``'Müller'`` -> ``'muller'``, ``'Straße'`` -> ``'strasse'``."""
    out = F.lower(col)
    for ligature, plain in _LIGATURES:
        out = F.replace(out, F.lit(ligature), F.lit(plain))
    return F.translate(out, _ACCENTED, _PLAIN)


def standardize_name(col: Column) -> Column:
    """A personal name: lower-case, accent-free, letters with single spaces; hyphens and
    apostrophes become spaces (``"O'Neil"`` == ``"O Neil"``)."""
    letters = F.regexp_replace(fold_accents(F.trim(col)), r"[^a-z]+", " ")
    return _blank_to_null(F.trim(letters))


def standardize_first_name(col: Column, nicknames: Mapping[str, str]) -> Column:
    """A first name with nicknames replaced by the formal name (``'Bob'`` -> ``'robert'``)."""
    name = standardize_name(col)
    if not nicknames:
        return name
    lookup = F.create_map(*[F.lit(part) for pair in sorted(nicknames.items()) for part in pair])
    return F.coalesce(F.element_at(lookup, name), name)


def standardize_email_for(col: Column, identity) -> Column:
    """``standardize_email`` with the identity settings (``IdentityConfig``): the one spelling every
    email token must come from (identity records, erasure lookups, tombstone checks at ingest)."""
    return standardize_email(
        col,
        strip_plus_tags=identity.email_strip_plus_tags,
        dotless_domains=identity.email_dotless_domains,
        domain_aliases=identity.email_domain_aliases,
        placeholder_local_parts=identity.placeholder_email_local_parts,
    )


def standardize_email(
    col: Column,
    *,
    strip_plus_tags: bool = True,
    dotless_domains: Sequence[str] = (),
    domain_aliases: Mapping[str, str] | None = None,
    placeholder_local_parts: Sequence[str] = (),
) -> Column:
    """Trimmed, lower-case, syntactically valid addresses; sub-addresses (``+tag``) dropped and,
    for providers that ignore them, dots in the local part removed. Placeholders become null."""
    email = F.lower(F.trim(col))
    email = F.when(email.rlike(EMAIL_PATTERN), email)
    local = F.substring_index(email, "@", 1)
    domain = F.substring_index(email, "@", -1)
    if domain_aliases:
        aliases = F.create_map(*[F.lit(part) for pair in sorted(domain_aliases.items()) for part in pair])
        domain = F.coalesce(F.element_at(aliases, domain), domain)
    if strip_plus_tags:
        local = F.regexp_replace(local, r"\+.*$", "")
    if dotless_domains:
        local = F.when(domain.isin(*dotless_domains), F.replace(local, F.lit("."), F.lit(""))).otherwise(local)
    placeholder = local.isin(*placeholder_local_parts) if placeholder_local_parts else F.lit(False)
    return F.when(email.isNotNull() & (F.length(local) > 0) & ~placeholder, F.concat(local, F.lit("@"), domain))


def _is_placeholder_number(national: str) -> bool:
    """All one digit, or a run of consecutive digits (0000000, 1234567890): typed to get past a form."""
    digits = national.lstrip("0") or "0"
    if len(set(digits)) == 1:
        return True
    ascending = "01234567890123456789"
    return digits in ascending or digits in ascending[::-1]


def _e164(numbers: pd.Series, countries: pd.Series) -> pd.Series:
    import phonenumbers

    cache: dict[tuple[str, str], str | None] = {}

    def one(raw, country) -> str | None:
        if raw is None or not isinstance(raw, str) or not raw.strip():
            return None
        key = (raw, country)
        if key in cache:
            return cache[key]
        text = raw.strip()
        if text.startswith("00"):  # the international prefix most of the world dials
            text = "+" + text[2:]
        try:
            parsed = phonenumbers.parse(text, country if isinstance(country, str) else None)
        except phonenumbers.NumberParseException:
            result = None
        else:
            valid = phonenumbers.is_valid_number(parsed) and not _is_placeholder_number(str(parsed.national_number))
            result = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) if valid else None
        cache[key] = result
        return result

    return pd.Series([one(r, c) for r, c in zip(numbers, countries)], dtype=object)


@F.pandas_udf(T.StringType())
def _e164_udf(numbers: pd.Series, countries: pd.Series) -> pd.Series:
    return _e164(numbers, countries)


def standardize_phone(col: Column, default_country: Column) -> Column:
    """E.164 (``+14155552671``) via libphonenumber; national numbers are read in
    ``default_country`` (ISO 3166 alpha-2). Invalid and placeholder numbers become null."""
    return _e164_udf(col.cast("string"), default_country)


def standardize_date(col: Column, formats: Sequence[str] = DEFAULT_DATE_FORMATS) -> Column:
    """A date from a string in the first of ``formats`` that parses, else from a date, a timestamp
    or an ISO string (``1980-02-03``, ``1980-02-03 10:30:00``)."""
    text = F.trim(col.cast("string"))
    parsed = [F.try_to_timestamp(text, F.lit(fmt)).cast("date") for fmt in formats]
    # only a full year-month-day: a cast would also turn "1980" into 1980-01-01
    return F.coalesce(*parsed, F.when(text.rlike(_ISO_DATE), col.try_cast("date")))


def standardize_birth_date(col: Column, *, today: date, formats: Sequence[str] = DEFAULT_DATE_FORMATS) -> Column:
    """A plausible date of birth (after the 1900-01-01 placeholder, up to ``today``), else null."""
    value = col if isinstance(col, Column) else F.col(col)
    parsed = standardize_date(value, formats)
    return F.when(parsed.between(F.lit(EARLIEST_BIRTH), F.lit(today)), parsed)


def standardize_street(col: Column, abbreviations: Mapping[str, str]) -> Column:
    """Lower-case, accent-free, punctuation removed, then the region's abbreviations
    (``'12 High Street'`` -> ``'12 high st'``)."""
    street = F.regexp_replace(fold_accents(F.trim(col)), r"[^a-z0-9]+", " ")
    for pattern, replacement in abbreviations.items():
        street = F.regexp_replace(street, pattern, replacement)
    return _blank_to_null(F.trim(F.regexp_replace(street, r"\s+", " ")))


def standardize_city(col: Column) -> Column:
    return _blank_to_null(F.trim(F.regexp_replace(fold_accents(F.trim(col)), r"[^a-z0-9]+", " ")))


def standardize_postcode(col: Column, rule: PostcodeRule) -> Column:
    """Upper-case without spaces or punctuation, then the region's rule; null unless it matches
    the rule's pattern."""
    # a postcode column read as a decimal number ("2134.0") loses only its fraction
    text = F.regexp_replace(F.trim(col.cast("string")), r"^([0-9]+)\.0+$", "$1")
    code = F.regexp_replace(F.upper(text), r"[^A-Z0-9]", "")
    if rule.truncate:
        code = F.substring(code, 1, rule.truncate)
    if rule.zero_pad:
        # a number lost its one leading zero (01234 read as 1234); pad that and nothing shorter,
        # and lpad would also cut longer strings
        short = code.rlike(r"^[0-9]+$") & (F.length(code) == rule.zero_pad - 1)
        code = F.when(short, F.lpad(code, rule.zero_pad, "0")).otherwise(code)
    if rule.space_before_last:
        n = rule.space_before_last
        length = F.length(code)
        spaced = F.concat(F.substring(code, F.lit(1), length - n), F.lit(" "), F.substring(code, -n, n))
        code = F.when(length > n, spaced).otherwise(code)
    return F.when(code.rlike(rule.pattern) & ~code.rlike(r"^0+$"), code)


def standardize_identifier(col: Column) -> Column:
    """Loyalty numbers, customer numbers and other codes: trimmed, upper-case, without spaces,
    dashes or dots; a code of only zeros is a placeholder."""
    code = F.regexp_replace(F.upper(F.trim(col.cast("string"))), r"[\s.\-/]", "")
    return F.when((F.length(code) > 0) & ~code.rlike(r"^0+$"), code)


def standardize_device(col: Column) -> Column:
    """Device and cookie ids are opaque: trimmed, empty is null."""
    return _blank_to_null(F.trim(col.cast("string")))


def standardize_company(col: Column) -> Column:
    return _blank_to_null(F.trim(F.regexp_replace(fold_accents(F.trim(col)), r"[^a-z0-9&]+", " ")))
