"""Standardization column functions, one column at a time, with each region's rules from conf/.

Every test builds ``(input, expected)`` rows with an explicit schema, applies the function to
``input`` and compares with chispa's ``assert_column_equality`` (null == null).
"""
from __future__ import annotations

from datetime import date, datetime

import phonenumbers
import pyspark.sql.functions as F
import pytest
from chispa import assert_column_equality
from pyspark.sql import types as T

from customer360.config import load_config
from customer360.identity import standardize as S

from tests.conftest import CONF_DIR

TODAY = date(2026, 1, 15)


@pytest.fixture(scope="module")
def config():
    return load_config("local", conf_dir=CONF_DIR)


def _check(spark, function, rows, *, input_type=T.StringType(), expected_type=T.StringType()):
    """``function(input)`` equals ``expected`` on every row."""
    schema = T.StructType([T.StructField("input", input_type, True), T.StructField("expected", expected_type, True)])
    df = spark.createDataFrame(rows, schema).withColumn("actual", function(F.col("input")))
    assert_column_equality(df, "actual", "expected")


# --- fold_accents ------------------------------------------------------------------------------


def test_fold_accents_lowers_and_strips_diacritics_and_ligatures(spark):
    _check(
        spark,
        S.fold_accents,
        [
            ("Müller", "muller"),
            ("Straße", "strasse"),
            ("ÆSIR", "aesir"),
            ("Œuvre", "oeuvre"),
            ("Ørsted", "orsted"),
            ("Łódź", "lodz"),
            ("Þór", "thor"),
            ("ĐORĐE", "dorde"),
            ("ÑANDÚ", "nandu"),
            ("Čapek Şahin", "capek sahin"),
            ("François-Noël", "francois-noel"),  # punctuation is not its business
            ("plain", "plain"),
            ("", ""),
            (None, None),
        ],
    )


# --- names -------------------------------------------------------------------------------------


def test_standardize_name(spark):
    _check(
        spark,
        S.standardize_name,
        [
            ("  Mary-Jane  ", "mary jane"),
            ("O'Neil", "o neil"),
            ("O Neil", "o neil"),
            ("JOSÉ  MÜLLER", "jose muller"),
            ("Groß", "gross"),
            ("van der Berg", "van der berg"),
            ("Anne-Marie 2nd", "anne marie nd"),
            ("12345", None),  # nothing of a name left
            ("  -'  ", None),
            ("", None),
            ("   ", None),
            (None, None),
        ],
    )


def test_standardize_first_name_replaces_nicknames_from_config(spark, config):
    nicknames = config.identity.nicknames
    # the cases below rely on these config entries: fail loudly if conf/ changes under them
    assert {k: nicknames[k] for k in ("bob", "billy", "kathi", "seb", "liz")} == {
        "bob": "robert",
        "billy": "william",
        "kathi": "katharina",
        "seb": "sebastien",
        "liz": "elizabeth",
    }
    _check(
        spark,
        lambda c: S.standardize_first_name(c, nicknames),
        [
            ("Bob", "robert"),
            ("  BILLY ", "william"),
            ("Kathi", "katharina"),  # de
            ("Séb", "sebastien"),  # fr: accents fold before the lookup
            ("Liz", "elizabeth"),
            ("Robert", "robert"),  # a formal name stays
            ("Zoë", "zoe"),  # not a nickname
            ("Bob-Smith", "bob smith"),  # only a whole name is a nickname
            ("", None),
            (None, None),
        ],
    )


def test_standardize_first_name_without_nicknames_is_standardize_name(spark):
    _check(
        spark,
        lambda c: S.standardize_first_name(c, {}),
        [("Bob", "bob"), ("  Zoë ", "zoe"), (None, None)],
    )


# --- email -------------------------------------------------------------------------------------


def test_standardize_email_with_identity_config(spark, config):
    identity = config.identity
    assert identity.email_dotless_domains == ("gmail.com",)
    assert identity.email_domain_aliases == {"googlemail.com": "gmail.com"}

    def email(col):
        return S.standardize_email(
            col,
            strip_plus_tags=identity.email_strip_plus_tags,
            dotless_domains=identity.email_dotless_domains,
            domain_aliases=identity.email_domain_aliases,
            placeholder_local_parts=identity.placeholder_email_local_parts,
        )

    _check(
        spark,
        email,
        [
            # case and whitespace
            ("  Ann.Lee@Example.COM ", "ann.lee@example.com"),
            # plus tags dropped everywhere; dots kept outside dotless domains
            ("ann.lee+news@example.com", "ann.lee@example.com"),
            ("ann+a+b@example.co.uk", "ann@example.co.uk"),
            # gmail ignores dots; googlemail is gmail
            ("John.Doe@gmail.com", "johndoe@gmail.com"),
            ("j.o.h.n.doe+spam@GoogleMail.com", "johndoe@gmail.com"),
            ("johndoe@googlemail.com", "johndoe@gmail.com"),
            # placeholders (also behind a plus tag)
            ("test@example.com", None),
            ("TEST+1@shop.de", None),
            ("noreply@company.fr", None),
            ("n.a@example.com", None),
            ("asdf@gmail.com", None),
            # malformed
            ("no-at-sign.example.com", None),
            ("ann@localhost", None),
            ("ann@@example.com", None),
            ("ann lee@example.com", None),
            ("@example.com", None),
            ("ann@example.c", None),
            ("ann@exa_mple.com", None),
            ("+tag@example.com", None),  # nothing left of the local part
            ("", None),
            (None, None),
        ],
    )


def test_standardize_email_defaults_keep_dots_and_aliases(spark):
    _check(
        spark,
        S.standardize_email,
        [
            ("John.Doe+x@GMail.com", "john.doe@gmail.com"),
            ("john.doe@googlemail.com", "john.doe@googlemail.com"),
            ("test@example.com", "test@example.com"),  # no placeholder list given
        ],
    )


def test_standardize_email_can_keep_plus_tags(spark):
    _check(
        spark,
        lambda c: S.standardize_email(c, strip_plus_tags=False),
        [("ann+news@example.com", "ann+news@example.com")],
    )


# --- phone -------------------------------------------------------------------------------------

# (raw, default country, E.164 or None). Every number expected to survive is checked against
# libphonenumber itself below, so the table cannot drift into numbers no plan has.
PHONE_CASES = [
    # us
    ("(212) 555-0100", "US", "+12125550100"),
    ("212.555.0100", "US", "+12125550100"),
    ("+1 650 253 0000", "US", "+16502530000"),
    ("1-650-253-0000", "US", "+16502530000"),
    ("212 555 0100", "GB", None),  # a US national number is not a GB one
    # gb
    ("020 7946 0018", "GB", "+442079460018"),
    ("+44 20 7946 0018", "GB", "+442079460018"),
    ("0044 20 7946 0018", "GB", "+442079460018"),
    ("07911 123456", "GB", "+447911123456"),
    ("+44 20 7946 0018", "US", "+442079460018"),  # international form wins over the default
    # de
    ("030 12345678", "DE", "+493012345678"),
    ("+49 (0)30 12345678", "DE", "+493012345678"),
    ("0049 30 12345678", "DE", "+493012345678"),
    ("0151 23456789", "DE", "+4915123456789"),
    # fr
    ("01 42 68 53 00", "FR", "+33142685300"),
    ("+33 1 42 68 53 00", "FR", "+33142685300"),
    ("0033 1 42 68 53 00", "FR", "+33142685300"),
    ("0033142685300", "FR", "+33142685300"),
    ("06 12 34 56 78", "FR", "+33612345678"),
    # placeholders: valid in a numbering plan, typed to get past a form
    ("01 23 45 67 89", "FR", None),
    ("01 11 11 11 11", "FR", None),
    ("(234) 567-8901", "US", None),
    ("0000000000", "US", None),
    ("1234567890", "US", None),
    # garbage
    ("abc", "US", None),
    ("12", "DE", None),
    ("+99 1234", "FR", None),
    ("", "GB", None),
    ("   ", "GB", None),
    (None, "US", None),
    # a national number needs a country
    ("020 7946 0018", None, None),
    ("+44 20 7946 0018", None, "+442079460018"),
]


@pytest.mark.parametrize(
    "raw, country, expected",
    [c for c in PHONE_CASES if c[2] is not None],
)
def test_phone_cases_that_survive_are_valid_numbers(raw, country, expected):
    parsed = phonenumbers.parse(expected)
    assert phonenumbers.is_valid_number(parsed)


@pytest.mark.parametrize("raw", ["01 23 45 67 89", "01 11 11 11 11", "(234) 567-8901"])
def test_placeholder_cases_are_valid_numbers(raw):
    """The placeholder rule, not libphonenumber, is what removes these."""
    region = "US" if raw.startswith("(") else "FR"
    assert phonenumbers.is_valid_number(phonenumbers.parse(raw, region))


def test_standardize_phone_per_region(spark):
    schema = T.StructType(
        [
            T.StructField("raw", T.StringType(), True),
            T.StructField("country", T.StringType(), True),
            T.StructField("expected", T.StringType(), True),
        ]
    )
    df = spark.createDataFrame(PHONE_CASES, schema).withColumn(
        "actual", S.standardize_phone(F.col("raw"), F.col("country"))
    )
    assert_column_equality(df, "actual", "expected")


def test_standardize_phone_reads_numeric_columns(spark):
    schema = T.StructType(
        [
            T.StructField("raw", T.LongType(), True),
            T.StructField("expected", T.StringType(), True),
        ]
    )
    df = spark.createDataFrame([(2125550100, "+12125550100"), (None, None)], schema).withColumn(
        "actual", S.standardize_phone(F.col("raw"), F.lit("US"))
    )
    assert_column_equality(df, "actual", "expected")


# --- dates of birth ----------------------------------------------------------------------------


def test_standardize_birth_date_formats_and_range(spark):
    _check(
        spark,
        lambda c: S.standardize_birth_date(c, today=TODAY),
        [
            ("1980-02-03", date(1980, 2, 3)),
            ("1980/02/03", date(1980, 2, 3)),
            ("03.02.1980", date(1980, 2, 3)),
            ("19800203", date(1980, 2, 3)),
            ("  1980-02-03 ", date(1980, 2, 3)),
            ("1900-01-02", date(1900, 1, 2)),  # bounds are inclusive (1900-01-01 is the "unknown" placeholder)
            ("2026-01-15", TODAY),
            ("2026-01-16", None),  # tomorrow
            ("2031-01-01", None),
            ("1899-12-31", None),
            ("0001-01-01", None),
            ("1980-02-30", None),  # no such day
            ("02/03/1980", None),  # not a configured format
            ("not a date", None),
            ("", None),
            (None, None),
        ],
        expected_type=T.DateType(),
    )


def test_standardize_birth_date_custom_formats(spark):
    _check(
        spark,
        lambda c: S.standardize_birth_date(c, today=TODAY, formats=("MM/dd/yyyy",)),
        # an ISO date is unambiguous, so it is read whatever the column's declared format
        [("02/03/1980", date(1980, 2, 3)), ("1980-02-03", date(1980, 2, 3)), ("13/01/1980", None)],
        expected_type=T.DateType(),
    )


def test_standardize_birth_date_from_date_column_and_column_name(spark):
    schema = T.StructType([T.StructField("input", T.DateType(), True), T.StructField("expected", T.DateType(), True)])
    df = spark.createDataFrame(
        [(date(1980, 2, 3), date(1980, 2, 3)), (date(2030, 1, 1), None), (date(1850, 1, 1), None), (None, None)],
        schema,
    )
    df = df.withColumn("by_column", S.standardize_birth_date(F.col("input"), today=TODAY)).withColumn(
        "by_name", S.standardize_birth_date("input", today=TODAY)
    )
    assert_column_equality(df, "by_column", "expected")
    assert_column_equality(df, "by_name", "expected")


def test_standardize_birth_date_from_timestamp_column(spark):
    """``standardize_date`` documents dates, timestamps and strings; a Parquet source may well
    type a birth date as a timestamp."""
    _check(
        spark,
        lambda c: S.standardize_birth_date(c, today=TODAY),
        [
            (datetime(1980, 2, 3, 0, 0), date(1980, 2, 3)),
            (datetime(1980, 2, 3, 10, 30), date(1980, 2, 3)),
            (datetime(2030, 1, 1, 0, 0), None),
            (None, None),
        ],
        input_type=T.TimestampType(),
        expected_type=T.DateType(),
    )


# --- streets, per region -----------------------------------------------------------------------

STREET_CASES = {
    "us": [
        ("12 High Street", "12 high st"),
        ("350 Fifth Avenue North", "350 fifth ave n"),
        ("1600 Pennsylvania Avenue, N.W.", "1600 pennsylvania ave n w"),
        ("742 Evergreen Drive, Apartment 5", "742 evergreen dr apt 5"),
        ("9 Sunset Boulevard", "9 sunset blvd"),
        ("1 Streetside Court", "1 streetside ct"),  # whole words only
    ],
    "gb": [
        ("10 Downing Street", "10 downing st"),
        ("221B Baker Street", "221b baker st"),
        ("3 Abbey Road", "3 abbey rd"),
        ("Flat 2, 7 Royal Crescent", "flat 2 7 royal cres"),
        ("5 Streetly Close", "5 streetly cl"),
        ("1 Berkeley Square", "1 berkeley sq"),
    ],
    "de": [
        ("Hauptstraße 5", "hauptstr 5"),
        ("Berliner Strasse 10a", "berliner str 10a"),
        ("Platz der Republik 1", "pl der republik 1"),
        ("Marktplatz 3", "marktplatz 3"),  # platz only as a word
        ("Königsallee 12", "konigsallee 12"),
    ],
    "fr": [
        ("12 Avenue Victor Hugo", "12 av victor hugo"),
        ("5, Boulevard Saint-Germain", "5 bd st germain"),
        ("3 rue Sainte-Catherine", "3 rue ste catherine"),
        ("Place de l'Église", "pl de l eglise"),
        ("8 Chemin des Écoliers", "8 ch des ecoliers"),
        ("Route de Lyon", "rte de lyon"),
    ],
    "es": [
        ("Calle Mayor 5", "c mayor 5"),
        ("Avenida de América 10", "av de america 10"),
        ("Plaza de España", "pl de espana"),
        ("Paseo de la Castellana 100", "po de la castellana 100"),
    ],
    "nl": [
        ("Kalverstraat 1", "kalverstr 1"),
        ("Laan van Meerdervoort 5", "ln van meerdervoort 5"),
        ("Beethovenlaan 3", "beethovenlaan 3"),  # laan only as a word
        ("Plein 1944 2", "pln 1944 2"),
    ],
}


def test_every_region_has_street_cases(config):
    assert set(STREET_CASES) == set(config.regions)


@pytest.mark.parametrize("region", sorted(STREET_CASES))
def test_standardize_street_per_region(spark, config, region):
    abbreviations = config.regions[region].street_abbreviations
    rows = [*STREET_CASES[region], ("  ", None), (",.-", None), (None, None)]
    _check(spark, lambda c: S.standardize_street(c, abbreviations), rows)


def test_standardize_street_without_abbreviations(spark):
    _check(spark, lambda c: S.standardize_street(c, {}), [("12  High   Street!", "12 high street")])


# --- postcodes, per region ---------------------------------------------------------------------

POSTCODE_CASES = {
    "gb": [
        ("sw1a1aa", "SW1A 1AA"),
        ("SW1A 1AA", "SW1A 1AA"),
        (" ec1a-1bb ", "EC1A 1BB"),
        ("m11ae", "M1 1AE"),
        ("B33 8TH", "B33 8TH"),
        ("12345", None),
        ("1AA", None),
        ("SW1A", None),
    ],
    "us": [
        ("02134-1234", "02134"),
        ("021341234", "02134"),
        ("2134", "02134"),
        ("90210", "90210"),
        ("ABCDE", None),
        ("9021A", None),
    ],
    "nl": [
        ("1234ab", "1234 AB"),
        ("1234 AB", "1234 AB"),
        ("1234-ab", "1234 AB"),
        ("1234", None),
        ("123456", None),
        ("AB1234", None),
    ],
    "de": [
        ("10115", "10115"),
        ("1067", "01067"),
        ("D-10115", None),
    ],
    "fr": [
        ("75008", "75008"),
        ("1000", "01000"),
        ("75 008", "75008"),
        ("7500A", None),
    ],
    "es": [
        ("28013", "28013"),
        ("8001", "08001"),
        ("E-28013", None),
    ],
}


def test_every_region_has_postcode_cases(config):
    assert set(POSTCODE_CASES) == set(config.regions)


@pytest.mark.parametrize("region", sorted(POSTCODE_CASES))
def test_standardize_postcode_per_region(spark, config, region):
    rule = config.regions[region].postcode
    rows = [*POSTCODE_CASES[region], ("", None), ("   ", None), (None, None)]
    _check(spark, lambda c: S.standardize_postcode(c, rule), rows)


@pytest.mark.parametrize("region, too_long", [("de", "101150"), ("fr", "750080"), ("es", "2801300")])
def test_standardize_postcode_zero_pad_does_not_cut_long_codes(spark, config, region, too_long):
    """``zero_pad`` pads short all-digit codes; a code longer than that is invalid, not a prefix
    of a valid one (Spark's ``lpad`` also truncates to the length)."""
    rule = config.regions[region].postcode
    assert rule.zero_pad == 5 and rule.truncate is None
    _check(spark, lambda c: S.standardize_postcode(c, rule), [(too_long, None)])


def test_standardize_postcode_us_zip_read_as_a_number(spark, config):
    rule = config.regions["us"].postcode
    _check(
        spark,
        lambda c: S.standardize_postcode(c, rule),
        [(2134, "02134"), (90210, "90210"), (None, None)],
        input_type=T.IntegerType(),
    )


# --- identifiers and cities --------------------------------------------------------------------


def test_standardize_identifier(spark):
    _check(
        spark,
        S.standardize_identifier,
        [
            (" ab-12.34/5 ", "AB12345"),
            ("L 001", "L001"),
            ("loy-00042", "LOY00042"),
            ("000", None),  # placeholder
            ("0-0.0", None),
            ("", None),
            ("  ", None),
            (None, None),
        ],
    )


def test_standardize_identifier_from_numbers(spark):
    _check(
        spark,
        S.standardize_identifier,
        [(12345, "12345"), (0, None), (None, None)],
        input_type=T.LongType(),
    )


def test_standardize_city(spark):
    _check(
        spark,
        S.standardize_city,
        [
            (" São Paulo ", "sao paulo"),
            ("Saint-Étienne", "saint etienne"),
            ("München", "munchen"),
            ("Frankfurt am Main", "frankfurt am main"),
            ("'s-Hertogenbosch", "s hertogenbosch"),
            ("LONDON", "london"),
            ("Washington, D.C.", "washington d c"),
            ("--", None),
            ("", None),
            (None, None),
        ],
    )


# --- placeholders and partial values that must not become identifiers (review findings) --------


def test_partial_and_placeholder_birth_dates_are_null(spark):
    _check(
        spark,
        lambda c: S.standardize_birth_date(c, today=TODAY),
        [("1980", None), ("1980-05", None), ("1900-01-01", None), ("1900-01-02", date(1900, 1, 2)),
         ("1980-05-17", date(1980, 5, 17))],
        expected_type=T.DateType(),
    )


def test_postcodes_pad_only_one_lost_zero_and_reject_zeros(spark, config):
    rule = config.regions["de"].postcode
    _check(spark, lambda c: S.standardize_postcode(c, rule), [("1067", "01067"), ("123", None), ("0", None), ("00000", None)])


def test_more_latin_letters_fold(spark):
    _check(spark, S.standardize_name, [("Ștefan Țurcanu", "stefan turcanu"), ("Ilkay Gündoğan", "ilkay gundogan"), ("Yıldız", "yildiz")])


def test_record_country_uk_reads_gb_numbers(spark, config):
    from customer360.identity.records import standardize_records

    rows = [("crm", "1", "gb", "UK", "020 7946 0018"), ("crm", "2", "gb", "ZZ", "020 7946 0018"), ("crm", "3", "us", "XX", "(415) 555-2671")]
    df = spark.createDataFrame(rows, "source string, source_record_id string, region string, country string, phone string")
    for column in ("first_name", "last_name", "email", "date_of_birth", "street", "city", "postcode", "loyalty_id",
                   "device_id", "cookie_id", "company_name", "event_time"):
        df = df.withColumn(column, F.lit(None).cast("string"))
    df = df.withColumn("other_ids", F.lit(None).cast("map<string,string>"))
    got = standardize_records(df, regions=config.regions, identity=config.identity, today=TODAY)
    assert {r.source_record_id: r.phone for r in got.collect()} == {"1": "+442079460018", "2": "+442079460018", "3": "+14155552671"}
