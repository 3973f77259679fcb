"""Golden records: survivorship rule per attribute, address as one unit, households, B2B."""
from __future__ import annotations

import hashlib
from datetime import datetime

import pytest
from chispa import assert_df_equality
from pydantic import ValidationError

from customer360.config import SurvivorshipConfig
from customer360.identity.golden import GOLDEN_SCHEMA, golden_records

RECORDS_SCHEMA = (
    "customer_id string, source string, event_time timestamp, region string, first_name string, last_name string, "
    "email string, phone string, date_of_birth string, street string, city string, postcode string, "
    "loyalty_id string, company_name string, country string"
)
SURVIVORSHIP = SurvivorshipConfig(
    source_priority=("crm", "support", "orders"),  # "web" is unlisted: after all of them
    default="most_recent",
    rules={
        "first_name": "most_frequent",
        "last_name": "most_frequent",
        "date_of_birth": "most_frequent",
        "address": "most_recent",
        "loyalty_id": "source_priority",
        "company_name": "source_priority",
    },
)


def t(year: int, month: int, day: int = 1) -> datetime:
    return datetime(year, month, day)


RECORDS = [
    # customer, source, event_time, region, first, last, email, phone, dob, street, city, postcode, loyalty, company, country
    # K1: three records; the latest has a street only, so the golden address is that street alone
    ("K1", "crm", t(2025, 1), "us", "ann", "lee", "e-old", "p1", "1980-01-01", "1 main st", "boston", "02101", "L-CRM", None, "US"),
    ("K1", "orders", t(2025, 6), "us", "ann", "lee", "e-new", None, "1980-01-01", "9 elm rd", "cambridge", "02139", "L-ORD", None, "US"),
    ("K1", "web", t(2025, 9), "us", "anne", None, None, None, "1980-10-01", "5 oak av", None, None, "L-WEB", None, None),
    # K2: business (one record has a company); rob/bob tie broken by recency; crm beats orders at equal time
    ("K2", "orders", t(2025, 1), "us", "bob", "lee", "b-orders", None, None, "1 main st", "boston", "02101", None, "Acme", "US"),
    ("K2", "crm", t(2025, 5), "us", "rob", "lee", "b-crm", None, None, "1 main st", "boston", "02101", None, None, "US"),
    ("K2", "orders", t(2025, 5), "us", None, "lee", "b-orders2", None, None, "2 side st", "boston", "02101", None, None, "US"),
    # K3: same street, postcode and surname as K2's golden address: same household
    ("K3", "support", t(2025, 2), "us", "cat", "lee", None, None, None, "1 main st", "somerville", "02101", None, None, "US"),
    # K4: same address, other surname; a record without event time counts as the oldest;
    # loyalty from an unlisted source loses to a listed one even when newer
    ("K4", "web", None, "us", "dan", "kim", "k-undated", None, None, "1 main st", "boston", "02101", "L-W", None, "US"),
    ("K4", "web", t(2025, 3), "us", "dan", "kim", None, None, None, "1 main st", "boston", "02101", "L-W2", None, "US"),
    ("K4", "orders", t(2020, 3), "us", "dan", "kim", "k-2020", None, None, "1 main st", "boston", "02101", "L-O", None, "US"),
]


def household(region: str, street: str, postcode: str, last_name: str) -> str:
    """Independent computation of the documented household key."""
    return "H" + hashlib.sha256("\u001f".join([region, street, postcode, last_name]).encode()).hexdigest()[:16]


@pytest.fixture(scope="module")
def records(spark):
    return spark.createDataFrame(RECORDS, RECORDS_SCHEMA)


def test_golden_records_apply_each_rule(spark, records):
    got = golden_records(records, SURVIVORSHIP, run_id="run-1")
    lee_main = household("us", "1 main st", "02101", "lee")
    expected = spark.createDataFrame(
        [
            # customer, first, last, email, phone, dob, street, city, postcode, loyalty, company, country,
            # household, type, records, sources, first_seen, last_seen, run, region
            # K1's address: the most complete record (the order's), not the later street-only web record
            ("K1", "ann", "lee", "e-new", "p1", "1980-01-01", "9 elm rd", "cambridge", "02139", "L-CRM", None, "US",
             household("us", "9 elm rd", "02139", "lee"), "B2C", 3, ["crm", "orders", "web"], t(2025, 1), t(2025, 9), "run-1", "us"),
            ("K2", "rob", "lee", "b-crm", None, None, "1 main st", "boston", "02101", None, "Acme", "US",
             lee_main, "B2B", 3, ["crm", "orders"], t(2025, 1), t(2025, 5), "run-1", "us"),
            ("K3", "cat", "lee", None, None, None, "1 main st", "somerville", "02101", None, None, "US",
             lee_main, "B2C", 1, ["support"], t(2025, 2), t(2025, 2), "run-1", "us"),
            ("K4", "dan", "kim", "k-2020", None, None, "1 main st", "boston", "02101", "L-O", None, "US",
             household("us", "1 main st", "02101", "kim"), "B2C", 3, ["orders", "web"], t(2020, 3), t(2025, 3), "run-1", "us"),
        ],
        GOLDEN_SCHEMA,
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_address_by_source_priority_comes_whole_from_the_trusted_record(spark, records):
    survivorship = SurvivorshipConfig(source_priority=("crm", "orders"), default="source_priority")
    got = golden_records(records.where("customer_id = 'K1'"), survivorship, run_id="run-2")
    row = got.select("first_name", "email", "street", "city", "postcode", "household_id", "loyalty_id", "run_id").first()
    # every attribute from the crm record, the address included; now a household is complete
    assert row.asDict() == {
        "first_name": "ann",
        "email": "e-old",
        "street": "1 main st",
        "city": "boston",
        "postcode": "02101",
        "household_id": household("us", "1 main st", "02101", "lee"),
        "loyalty_id": "L-CRM",
        "run_id": "run-2",
    }


def test_address_comes_whole_from_the_most_complete_then_latest_record(spark):
    """A later partial address (a bare postcode on an order) does not wipe a complete one; among
    equally complete records the latest wins, and a partial address is used when nothing better exists."""
    rows = [
        ("K9", "crm", t(2024, 1), "us", "ann", "lee", None, None, None, "1 old st", "boston", "02101", None, None, None),
        ("K9", "crm", t(2025, 1), "us", "ann", "lee", None, None, None, None, "cambridge", "02139", None, None, None),
        ("K8", "crm", t(2024, 1), "us", "bo", "lee", None, None, None, "1 old st", "boston", "02101", None, None, None),
        ("K8", "crm", t(2025, 1), "us", "bo", "lee", None, None, None, "2 new st", "cambridge", "02139", None, None, None),
        ("K7", "orders", t(2025, 1), "us", "cy", "lee", None, None, None, None, None, "02139", None, None, None),
    ]
    got = golden_records(spark.createDataFrame(rows, RECORDS_SCHEMA), SURVIVORSHIP, run_id="run-1")
    addresses = {r.customer_id: (r.street, r.city, r.postcode) for r in got.collect()}
    assert addresses == {
        "K9": ("1 old st", "boston", "02101"),
        "K8": ("2 new st", "cambridge", "02139"),
        "K7": (None, None, "02139"),
    }


def test_unknown_survivorship_attribute_is_rejected():
    with pytest.raises(ValidationError, match="unknown attribute"):
        SurvivorshipConfig(source_priority=("crm",), rules={"shoe_size": "most_recent"})
