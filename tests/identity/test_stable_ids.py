"""Stable customer ids: reproducible on unchanged input, oldest id wins a merge, splits and
retirements audited, registry rows for every new and retired id."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime

import pytest
from chispa import assert_df_equality

from customer360.identity.stable_ids import AUDIT_SCHEMA, REGISTRY_SCHEMA, assign_customer_ids

COMPONENTS_SCHEMA = "region string, source string, source_record_id string, component long"
XREF_SCHEMA = "region string, source string, source_record_id string, customer_id string"
NOW = datetime(2026, 3, 1, 12, 0)
EARLIER = datetime(2026, 2, 1, 12, 0)
SEP = "\u001f"


def expected_id(region: str, source: str, record_id: str, salt: str | None = None) -> str:
    """The documented rule, computed independently: C + 16 hex of SHA-256(region, smallest record key)."""
    parts = [region, f"{source}{SEP}{record_id}"] + ([salt] if salt is not None else [])
    return "C" + hashlib.sha256(SEP.join(parts).encode()).hexdigest()[:16]


def components(spark, rows):
    return spark.createDataFrame(rows, COMPONENTS_SCHEMA)


def xref(spark, rows):
    return spark.createDataFrame(rows, XREF_SCHEMA)


def registry(spark, rows):
    """rows: (customer_id, created_at, region), all live."""
    return spark.createDataFrame(
        [(cid, created, "run-0", None, None, None, region) for cid, created, region in rows], REGISTRY_SCHEMA
    )


def ids_of(assignment) -> dict[tuple[str, str, str], str]:
    return {(r.region, r.source, r.source_record_id): r.customer_id for r in assignment.ids.collect()}


def audit_rows(assignment) -> list[tuple]:
    return sorted(
        (r.run_id, r.event, tuple(r.old_ids), r.new_id, r.records, r.recorded_at, r.region)
        for r in assignment.audit.collect()
    )


def registry_rows(assignment) -> dict[str, tuple]:
    return {
        r.customer_id: (r.created_at, r.created_run_id, r.retired_at, r.retired_run_id, r.retired_reason, r.region)
        for r in assignment.registry.collect()
    }


FIRST_RUN = [
    ("us", "crm", "1", 10),
    ("us", "orders", "7", 10),
    ("us", "crm", "2", 20),
    ("us", "orders", "3", 30),
    ("eu", "crm", "1", 10),  # same record key and component number, other region
]


@dataclass(frozen=True)
class Collected:
    ids: dict
    audit: list
    registry: dict
    audit_schema: object


def collect(assignment) -> Collected:
    return Collected(ids_of(assignment), audit_rows(assignment), registry_rows(assignment), assignment.audit.schema)


@pytest.fixture(scope="module")
def first_run(spark) -> Collected:
    return collect(assign_customer_ids(components(spark, FIRST_RUN), previous=None, registry=None, run_id="run-1", now=EARLIER))


def test_first_run_issues_hash_ids_per_component(first_run):
    got = first_run.ids
    assert all(re.fullmatch(r"C[0-9a-f]{16}", cid) for cid in got.values())
    assert got == {
        ("us", "crm", "1"): expected_id("us", "crm", "1"),
        ("us", "orders", "7"): expected_id("us", "crm", "1"),  # smallest key of the component
        ("us", "crm", "2"): expected_id("us", "crm", "2"),
        ("us", "orders", "3"): expected_id("us", "orders", "3"),
        ("eu", "crm", "1"): expected_id("eu", "crm", "1"),
    }
    assert len(set(got.values())) == 4
    assert first_run.audit == []
    assert first_run.audit_schema.simpleString() == AUDIT_SCHEMA.simpleString()
    assert first_run.registry == {cid: (EARLIER, "run-1", None, None, None, region) for (region, _, _), cid in got.items()}


def test_first_run_ids_are_deterministic_and_ignore_component_numbering(spark, first_run):
    relabelled = [(region, source, rid, 1000 - component) for region, source, rid, component in reversed(FIRST_RUN)]
    again = assign_customer_ids(components(spark, relabelled), previous=None, registry=None, run_id="run-9", now=NOW)
    assert ids_of(again) == first_run.ids


def test_unchanged_input_keeps_ids_and_writes_no_audit(spark, first_run):
    # the first run's outputs read back as a later run would
    previous = xref(spark, [(*key, cid) for key, cid in first_run.ids.items()])
    issued = spark.createDataFrame(
        [(cid, *row[:5], row[5]) for cid, row in first_run.registry.items()], REGISTRY_SCHEMA
    )
    second = assign_customer_ids(components(spark, FIRST_RUN), previous=previous, registry=issued, run_id="run-2", now=NOW)
    assert_df_equality(second.ids, previous, ignore_row_order=True, ignore_nullable=True)
    assert audit_rows(second) == []
    assert registry_rows(second) == {}  # nothing new, nothing retired


# One second run over hand-written history exercising every rule at once (each action on this
# pipeline is a dozen shuffles, so the scenario is computed once and asserted piece by piece).
SALTED_SOURCE_ID = expected_id("us", "crm", "p1")  # an id that is the hash of its own smallest key
HISTORY = [
    # (region, source, record id, customer id, created_at)
    ("us", "crm", "j1", "C-JOIN", datetime(2025, 1, 1)),  # gains a record
    ("us", "crm", "j2", "C-JOIN", datetime(2025, 1, 1)),
    ("us", "crm", "m1", "C-AAA", datetime(2025, 6, 1)),  # merged into the older C-ZZZ
    ("us", "crm", "m2", "C-AAA", datetime(2025, 6, 1)),
    ("us", "orders", "m1", "C-ZZZ", datetime(2024, 1, 1)),
    ("us", "crm", "t1", "C-B", datetime(2025, 3, 1)),  # merge tie on created_at: smaller id wins
    ("us", "crm", "t2", "C-A", datetime(2025, 3, 1)),
    ("us", "crm", "s1", "C-X", datetime(2024, 1, 1)),  # split; one piece joins intact C-Y
    ("us", "crm", "s2", "C-X", datetime(2024, 1, 1)),
    ("us", "crm", "s3", "C-X", datetime(2024, 1, 1)),
    ("us", "orders", "s1", "C-Y", datetime(2025, 1, 1)),
    ("us", "crm", "p1", SALTED_SOURCE_ID, datetime(2024, 1, 1)),  # split into two new ids
    ("us", "crm", "p2", SALTED_SOURCE_ID, datetime(2024, 1, 1)),
    ("us", "crm", "g8", "C-GONE", datetime(2024, 1, 1)),  # every record disappears
    ("us", "crm", "g9", "C-GONE", datetime(2024, 1, 1)),
    ("us", "crm", "k1", "C-SHRINK", datetime(2024, 1, 1)),  # loses a record, stays intact
    ("us", "crm", "k2", "C-SHRINK", datetime(2024, 1, 1)),
    ("eu", "crm", "j1", "C-EU", datetime(2024, 1, 1)),  # same key and component number, other region
]
CHANGES = [
    ("us", "crm", "j0", 1), ("us", "crm", "j1", 1), ("us", "crm", "j2", 1),
    ("us", "crm", "m1", 2), ("us", "crm", "m2", 2), ("us", "orders", "m1", 2), ("us", "web", "m5", 2),
    ("us", "crm", "t1", 3), ("us", "crm", "t2", 3),
    ("us", "crm", "s1", 4), ("us", "crm", "s2", 4), ("us", "crm", "s3", 5), ("us", "orders", "s1", 5),
    ("us", "crm", "p1", 6), ("us", "crm", "p2", 7),
    ("us", "crm", "k2", 8),
    ("us", "web", "n9", 9),
    ("eu", "crm", "j1", 1),
]
PIECE_S = expected_id("us", "crm", "s1")
PIECE_P1 = expected_id("us", "crm", "p1", salt="run-2")  # unsalted it would reuse the split id
PIECE_P2 = expected_id("us", "crm", "p2")
NEW_N9 = expected_id("us", "web", "n9")
CREATED = {cid: created for _, _, _, cid, created in HISTORY}


@pytest.fixture(scope="module")
def second_run(spark):
    previous = xref(spark, [row[:4] for row in HISTORY])
    issued = registry(spark, sorted({(cid, created, region) for region, _, _, cid, created in HISTORY}))
    result = assign_customer_ids(components(spark, CHANGES), previous=previous, registry=issued, run_id="run-2", now=NOW)
    return ids_of(result), audit_rows(result), registry_rows(result)


def test_second_run_ids(second_run):
    ids, _, _ = second_run
    assert ids == {
        ("us", "crm", "j0"): "C-JOIN",  # new record joins an existing customer: its id stays
        ("us", "crm", "j1"): "C-JOIN",
        ("us", "crm", "j2"): "C-JOIN",
        ("us", "crm", "m1"): "C-ZZZ",  # oldest by created_at, although C-AAA sorts first
        ("us", "crm", "m2"): "C-ZZZ",
        ("us", "orders", "m1"): "C-ZZZ",
        ("us", "web", "m5"): "C-ZZZ",
        ("us", "crm", "t1"): "C-A",
        ("us", "crm", "t2"): "C-A",
        ("us", "crm", "s1"): PIECE_S,  # C-X is split, so it is not intact anywhere
        ("us", "crm", "s2"): PIECE_S,
        ("us", "crm", "s3"): "C-Y",  # the piece joining intact C-Y takes its id
        ("us", "orders", "s1"): "C-Y",
        ("us", "crm", "p1"): PIECE_P1,
        ("us", "crm", "p2"): PIECE_P2,
        ("us", "crm", "k2"): "C-SHRINK",
        ("us", "web", "n9"): NEW_N9,
        ("eu", "crm", "j1"): "C-EU",
    }
    assert len({PIECE_S, PIECE_P1, PIECE_P2, NEW_N9, SALTED_SOURCE_ID}) == 5


def test_second_run_audits_merges(second_run):
    _, audit, _ = second_run
    merges = [row for row in audit if row[1] == "merge"]
    # records: the old customers' records merged (the new web record is not counted); old_ids sorted
    assert merges == [
        ("run-2", "merge", ("C-A", "C-B"), "C-A", 2, NOW, "us"),
        ("run-2", "merge", ("C-AAA", "C-ZZZ"), "C-ZZZ", 3, NOW, "us"),
    ]


def test_second_run_audits_splits(second_run):
    _, audit, _ = second_run
    splits = sorted(row for row in audit if row[1] == "split")
    assert splits == sorted(
        [
            ("run-2", "split", ("C-X",), PIECE_S, 2, NOW, "us"),
            ("run-2", "split", ("C-X",), "C-Y", 1, NOW, "us"),
            ("run-2", "split", (SALTED_SOURCE_ID,), PIECE_P1, 1, NOW, "us"),
            ("run-2", "split", (SALTED_SOURCE_ID,), PIECE_P2, 1, NOW, "us"),
        ]
    )


def test_second_run_audits_retirements_only_for_vanished_customers(second_run):
    _, audit, _ = second_run
    assert [row for row in audit if row[1] == "retire"] == [("run-2", "retire", ("C-GONE",), None, 2, NOW, "us")]
    assert {row[1] for row in audit} == {"merge", "split", "retire"}  # nothing for join, shrink or eu


def test_second_run_registry_rows(second_run):
    _, _, rows = second_run
    def retired(cid, reason):
        return (CREATED[cid], "run-0", NOW, "run-2", reason, "us")
    new = (NOW, "run-2", None, None, None, "us")
    assert rows == {
        PIECE_S: new,
        PIECE_P1: new,
        PIECE_P2: new,
        NEW_N9: new,
        "C-AAA": retired("C-AAA", "merge"),
        "C-B": retired("C-B", "merge"),
        "C-X": retired("C-X", "split"),
        SALTED_SOURCE_ID: retired(SALTED_SOURCE_ID, "split"),
        "C-GONE": retired("C-GONE", "retire"),
    }


def test_first_run_shortcut_gives_what_the_general_path_gives(spark):
    """No previous xref and no registry takes one aggregation instead of the joins; the ids, the
    registry rows and the (empty) audit are those of the general path on empty tables."""
    comp = components(spark, [
        ("us", "crm", "2", 7), ("us", "crm", "1", 7), ("us", "web", "0", 7),
        ("us", "crm", "9", 8),
        ("gb", "crm", "1", 7),  # same component number, other region: another customer
    ])
    quick = assign_customer_ids(comp, previous=None, registry=None, run_id="run-1", now=NOW)
    general = assign_customer_ids(comp, previous=xref(spark, []), registry=registry(spark, []), run_id="run-1", now=NOW)
    assert ids_of(quick) == ids_of(general) == {
        ("us", "crm", "2"): expected_id("us", "crm", "1"),
        ("us", "crm", "1"): expected_id("us", "crm", "1"),
        ("us", "web", "0"): expected_id("us", "crm", "1"),
        ("us", "crm", "9"): expected_id("us", "crm", "9"),
        ("gb", "crm", "1"): expected_id("gb", "crm", "1"),
    }
    assert registry_rows(quick) == registry_rows(general)
    assert len(registry_rows(quick)) == 3
    assert audit_rows(quick) == audit_rows(general) == []
    assert_df_equality(quick.audit, general.audit, ignore_nullable=True)
