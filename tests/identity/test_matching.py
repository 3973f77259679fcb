"""Fellegi-Sunter matching: comparison levels, fixed comparisons per rule, EM on synthetic counts
with known parameters, candidate pairs and blocks, and an end-to-end run on a tiny population."""
from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from chispa import assert_df_equality

from customer360.config import BlockingRule, MatchingConfig
from customer360.identity.matching import (
    COMPARISONS,
    candidate_pairs,
    distinct_pairs,
    expectation_maximisation,
    fixed_comparisons,
    initial_m,
    probabilistic_links,
    with_comparison_levels,
)

ATTRIBUTES = ("first_name", "last_name", "date_of_birth", "street", "postcode", "city", "email", "phone", "loyalty_id", "other_ids")
TYPES = {"date_of_birth": "date", "other_ids": "map<string,string>"}
RECORDS_SCHEMA = "vid long, region string, " + ", ".join(f"{a} {TYPES.get(a, 'string')}" for a in ATTRIBUTES)
PAIRS_SCHEMA = "l_vid long, r_vid long, rule string, " + ", ".join(
    f"{side}_{a} {TYPES.get(a, 'string')}" for side in ("l", "r") for a in ATTRIBUTES
)
GAMMAS = [f"gamma_{c.name}" for c in COMPARISONS]

BASE = {
    "first_name": "anna",
    "last_name": "smith",
    "date_of_birth": date(1980, 3, 4),
    "street": "12 high street",
    "postcode": "ab1 2cd",
    "city": "leeds",
    "email": "a@x.org",
    "phone": "+447700900001",
    "loyalty_id": "L1234567",
    "other_ids": {"passport": "P9876543"},
}

# case: (left overrides, right overrides, expected levels of the comparisons named)
LEVEL_CASES = {
    "identical": ({}, {}, {"first_name": 3, "last_name": 3, "date_of_birth": 2, "address": 4, "email": 2, "phone": 2,
                           "loyalty_id": 2, "other_ids": 2}),
    "names swapped": ({"first_name": "smith", "last_name": "john"}, {"first_name": "john", "last_name": "smith"},
                      {"first_name": 3, "last_name": 3}),
    "names swapped, one with a typo": ({"first_name": "smith", "last_name": "john"}, {"first_name": "jon", "last_name": "smith"},
                                       {"first_name": 2, "last_name": 2}),
    "one edit": ({}, {"first_name": "ana", "last_name": "smyth"}, {"first_name": 2, "last_name": 2}),
    "adjacent letters transposed": ({"first_name": "james"}, {"first_name": "jmaes"}, {"first_name": 2}),
    "first letter mistyped (soundex differs)": ({}, {"first_name": "xnna", "last_name": "zmith"}, {"first_name": 2, "last_name": 2}),
    "two letters apart swapped: not one transposition": ({"first_name": "james"}, {"first_name": "jsmea"}, {"first_name": 0}),
    "two edits, long name": ({"first_name": "katherine"}, {"first_name": "katharyne"}, {"first_name": 2}),
    "two edits, short name sounds alike": ({"first_name": "mark"}, {"first_name": "marco"}, {"first_name": 1}),
    "two edits in six letters: another name": ({"first_name": "jorden"}, {"first_name": "jayden"}, {"first_name": 0}),
    "different": ({}, {"first_name": "zoe", "last_name": "okafor"}, {"first_name": 0, "last_name": 0}),
    "null names": ({"last_name": None}, {"first_name": None}, {"first_name": -1, "last_name": -1}),
    "day and month transposed": ({}, {"date_of_birth": date(1980, 4, 3)}, {"date_of_birth": 1}),
    "one digit of the date": ({}, {"date_of_birth": date(1980, 3, 5)}, {"date_of_birth": 1}),
    "different date": ({}, {"date_of_birth": date(1991, 11, 22)}, {"date_of_birth": 0}),
    "null date": ({"date_of_birth": None}, {}, {"date_of_birth": -1}),
    "email and phone differ or missing": ({}, {"email": "bob@y.org", "phone": None}, {"email": 0, "phone": -1}),
    "email, phone and loyalty id one edit off": ({}, {"email": "a@x.orj", "phone": "+447700900010", "loyalty_id": "L1234576"},
                                                 {"email": 1, "phone": 1, "loyalty_id": 1}),
    "phone two digits off": ({}, {"phone": "+447700900221"}, {"phone": 0}),
    "other id one digit off": ({}, {"other_ids": {"passport": "P9876548"}}, {"other_ids": 1}),
    "other ids of different kinds": ({}, {"other_ids": {"ssn": "P9876543"}}, {"other_ids": -1}),
    "other ids: the best shared kind counts": ({"other_ids": {"passport": "P1", "ssn": "123"}},
                                               {"other_ids": {"passport": "P2222", "ssn": "123"}}, {"other_ids": 2}),
    "no other ids": ({"other_ids": None}, {}, {"other_ids": -1}),
    "same street and postcode, other city": ({}, {"city": "york"}, {"address": 4}),
    "similar street and same postcode": ({}, {"street": "12 hihg street", "city": "york"}, {"address": 3}),
    "same postcode, other street": ({}, {"street": "1 low road", "city": "york"}, {"address": 2}),
    "same street and city, other postcode": ({}, {"postcode": "zz9 9zz"}, {"address": 3}),
    "same street and city, no postcode": ({}, {"postcode": None}, {"address": 3}),
    "same city only": ({}, {"street": "1 low road", "postcode": "zz9 9zz"}, {"address": 1}),
    "similar street only": ({}, {"street": "12 high streat", "postcode": "zz9 9zz", "city": "york"}, {"address": 1}),
    "similar long street (edits up to a fifth)": (
        {"street": "123 long avenue north"}, {"street": "123 long av north", "postcode": "zz9 9zz", "city": "york"},
        {"address": 1},
    ),
    "same street, postcode and city one typo off": ({}, {"postcode": "ab1 2cf", "city": "leds"}, {"address": 3}),
    "house number left out": ({}, {"street": "high street", "postcode": "zz9 9zz", "city": "york"}, {"address": 1}),
    "neighbours: another house number, same postcode": ({}, {"street": "14 high street"}, {"address": 3}),
    "street too different": ({}, {"street": "12 high st", "postcode": "zz9 9zz", "city": "york"}, {"address": 0}),
    "no address on one side": ({}, {"street": None, "postcode": None, "city": None}, {"address": -1}),
    "only a city on one side": ({}, {"street": None, "postcode": None}, {"address": 1}),
}


def pair_row(vid: int, left: dict, right: dict) -> tuple:
    l, r = {**BASE, **left}, {**BASE, **right}
    return (vid, vid + 1000, "test", *[l[a] for a in ATTRIBUTES], *[r[a] for a in ATTRIBUTES])


@pytest.fixture(scope="module")
def levels(spark) -> dict[str, dict[str, int]]:
    names = list(LEVEL_CASES)
    pairs = spark.createDataFrame(
        [pair_row(i, left, right) for i, (left, right, _) in enumerate(LEVEL_CASES.values())], PAIRS_SCHEMA
    )
    rows = with_comparison_levels(pairs).collect()
    return {names[row.l_vid]: {c.name: row[f"gamma_{c.name}"] for c in COMPARISONS} for row in rows}


@pytest.mark.parametrize("case", list(LEVEL_CASES))
def test_comparison_levels(levels, case):
    expected = LEVEL_CASES[case][2]
    assert {name: levels[case][name] for name in expected} == expected


def test_comparison_levels_output_columns(spark):
    pairs = spark.createDataFrame([pair_row(7, {}, {})], PAIRS_SCHEMA)
    got = with_comparison_levels(pairs)
    expected = spark.createDataFrame(
        [(7, 1007, "test", 3, 3, 2, 4, 2, 2, 2, 2, None, None, None)],
        "l_vid long, r_vid long, rule string, " + ", ".join(f"{g} int" for g in GAMMAS)
        + ", tf_first_name double, tf_last_name double, tf_address double",
    )
    assert_df_equality(got, expected, ignore_nullable=True)


@pytest.mark.parametrize(
    ("keys", "fixed"),
    [
        (("soundex(last_name)", "postcode"), {"last_name", "address"}),
        (("soundex(last_name)", "date_of_birth"), {"last_name", "date_of_birth"}),
        (("first_name", "last_name", "city"), {"first_name", "last_name", "address"}),
        (("lower(email)",), {"email"}),
        (("substring(phone, 1, 6)", "street"), {"phone", "address"}),
        # attributes inside function calls count, function names do not
        (("substring(first_name, 1, 1)", "year(date_of_birth)"), {"first_name", "date_of_birth"}),
    ],
)
def test_fixed_comparisons(keys, fixed):
    assert fixed_comparisons(BlockingRule(name="rule", keys=keys)) == frozenset(fixed)


def test_blocking_keys_may_only_use_compared_attributes():
    with pytest.raises(ValidationError, match=r"key 'first_name_initial' uses \['first_name_initial'\]"):
        BlockingRule(name="rule", keys=("first_name_initial",))
    with pytest.raises(ValidationError, match=r"uses \['company_name'\]"):
        BlockingRule(name="rule", keys=("soundex(company_name)",))


# --- EM on synthetic comparison-vector counts with known parameters -----------------------------

TRUE_LAMBDA = 0.3
TRUE_M = {
    "first_name": np.array([0.05, 0.05, 0.10, 0.80]),
    "date_of_birth": np.array([0.05, 0.10, 0.85]),
    "email": np.array([0.25, 0.05, 0.70]),
    "phone": np.array([0.35, 0.05, 0.60]),
}
TRUE_U = {
    "first_name": np.array([0.85, 0.08, 0.05, 0.02]),
    "date_of_birth": np.array([0.90, 0.07, 0.03]),
    "email": np.array([0.985, 0.005, 0.01]),
    "phone": np.array([0.97, 0.01, 0.02]),
}


def full_u() -> dict[str, np.ndarray]:
    """True u where the data has the comparison; a flat u elsewhere (those columns are -1)."""
    return {c.name: TRUE_U.get(c.name, np.full(len(c.levels), 1 / len(c.levels))) for c in COMPARISONS}


def synthetic_counts(pairs: int = 40_000, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    match = rng.random(pairs) < TRUE_LAMBDA
    data = {}
    for comparison in COMPARISONS:
        if comparison.name not in TRUE_M:
            data[f"gamma_{comparison.name}"] = np.full(pairs, -1)
            continue
        m, u = TRUE_M[comparison.name], TRUE_U[comparison.name]
        data[f"gamma_{comparison.name}"] = np.where(
            match, rng.choice(len(m), size=pairs, p=m), rng.choice(len(u), size=pairs, p=u)
        )
    return pd.DataFrame(data).groupby(GAMMAS).size().rename("n").reset_index()


@pytest.fixture(scope="module")
def counts() -> pd.DataFrame:
    return synthetic_counts()


def test_em_recovers_match_share_and_m(counts):
    model = expectation_maximisation(counts, u=full_u(), rule="synthetic", max_iterations=500, tolerance=1e-9)
    assert len(counts) <= 4 * 3 * 3 * 3  # vectors, not pairs
    assert model.candidate_pairs == 40_000
    assert 1 < model.iterations < 500  # converged before the cap
    assert model.lam == pytest.approx(TRUE_LAMBDA, abs=0.015)
    for name, m in TRUE_M.items():
        np.testing.assert_allclose(model.m[name], m, atol=0.02, err_msg=name)
        assert model.m[name].sum() == pytest.approx(1.0)
    for name, u in full_u().items():  # u stays fixed
        np.testing.assert_array_equal(model.u[name], u)


def test_em_leaves_fixed_comparisons_out(counts):
    """A fixed comparison neither moves nor votes: fixing email while its column says 'exact' for
    every pair gives the same model as a data set without email at all."""
    without_email = counts.assign(gamma_email=-1).groupby(GAMMAS, as_index=False)["n"].sum()
    all_agree = counts.assign(gamma_email=2).groupby(GAMMAS, as_index=False)["n"].sum()
    reference = expectation_maximisation(without_email, u=full_u(), fixed=frozenset({"email"}))
    fixed = expectation_maximisation(all_agree, u=full_u(), fixed=frozenset({"email"}))
    assert fixed.lam == pytest.approx(reference.lam, abs=1e-12)
    assert fixed.iterations == reference.iterations
    for name in TRUE_M:
        np.testing.assert_allclose(fixed.m[name], reference.m[name], atol=1e-12)
    np.testing.assert_array_equal(fixed.m["email"], initial_m()["email"])
    # had it voted, "everyone agrees on email" (u = 0.01) would have made every pair a match
    voting = expectation_maximisation(all_agree, u=full_u())
    assert voting.lam > 0.99
    assert reference.lam == pytest.approx(TRUE_LAMBDA, abs=0.03)

    rows = {(r[1], r[2]): r for r in fixed.rows("run-1")}
    assert rows[("email", 2)][4] is None and rows[("email", 2)][6] is None  # m and weight: none for fixed
    assert rows[("email", 2)][5] == pytest.approx(0.01)
    assert rows[("first_name", 3)][4] == pytest.approx(fixed.m["first_name"][3])
    assert rows[("first_name", 3)][6] == pytest.approx(np.log2(fixed.m["first_name"][3] / 0.02))
    assert len(rows) == sum(len(c.levels) for c in COMPARISONS)


def test_em_on_no_pairs_does_nothing():
    empty = pd.DataFrame({**{g: pd.Series(dtype=int) for g in GAMMAS}, "n": pd.Series(dtype=int)})
    model = expectation_maximisation(empty, u=full_u(), rule="empty", lam=0.5)
    assert (model.iterations, model.candidate_pairs, model.lam) == (0, 0, 0.5)
    for name, m in initial_m().items():
        np.testing.assert_array_equal(model.m[name], m)


# --- candidate pairs ---------------------------------------------------------------------------

def record(vid, region="us", first="x", last="smith", dob=date(1980, 1, 1), street=None, postcode="ab1", city=None,
           email=None, phone=None, loyalty_id=None, other_ids=None):
    return (vid, region, first, last, dob, street, postcode, city, email, phone, loyalty_id, other_ids)


def test_candidate_pairs_skip_and_report_big_blocks(spark):
    records = spark.createDataFrame(
        [
            # four smiths at ab1 in us: a block of 4 > 3 for surname_postcode
            record(1, dob=date(1980, 1, 1)),
            record(2, last="smyth", dob=date(1980, 1, 1)),  # same soundex
            record(3, dob=date(1990, 1, 1)),
            record(4, dob=date(1990, 1, 1)),
            record(5, region="eu"),  # same keys, other region
            record(6, region="eu"),
            record(7, postcode=None, dob=date(1970, 1, 1)),  # a null key blocks nothing
            record(8, postcode=None, dob=date(1970, 1, 1)),
        ],
        RECORDS_SCHEMA,
    )
    rules = (
        BlockingRule(name="surname_postcode", keys=("soundex(last_name)", "postcode")),
        BlockingRule(name="surname_birth_date", keys=("soundex(last_name)", "date_of_birth")),
    )
    pairs, skipped = candidate_pairs(records, rules, max_block_size=3)
    assert sorted(tuple(r) for r in pairs.collect()) == [
        (1, 2, "surname_birth_date"),
        (3, 4, "surname_birth_date"),
        (5, 6, "surname_birth_date"),
        (5, 6, "surname_postcode"),
        (7, 8, "surname_birth_date"),
    ]
    assert_df_equality(
        skipped,
        spark.createDataFrame([("us", "surname_postcode", 4)], "region string, rule string, block_size long"),
        ignore_nullable=True,
    )
    # compared once per pair, under the first rule (in configured order) that found it
    compared = distinct_pairs(pairs, records, rules)
    assert sorted((r.l_vid, r.r_vid, r.rule, tuple(r.rules)) for r in compared.collect()) == [
        (1, 2, "surname_birth_date", ("surname_birth_date",)),
        (3, 4, "surname_birth_date", ("surname_birth_date",)),
        (5, 6, "surname_postcode", ("surname_birth_date", "surname_postcode")),
        (7, 8, "surname_birth_date", ("surname_birth_date",)),
    ]
    # both sides' attributes come along for the comparisons
    row = compared.where("l_vid = 1").first()
    assert (row.l_last_name, row.r_last_name, row.l_region) == ("smith", "smyth", "us")
    assert {f"{side}_{a}" for side in ("l", "r") for a in ATTRIBUTES} <= set(compared.columns)


def test_blocks_over_the_cap_pair_each_record_with_its_nearest_by_surname_and_by_first_name(spark):
    people = [("anna", "zed"), ("bob", "young"), ("carl", "xu"), ("dora", "webb"), ("anne", "zedd")]
    records = spark.createDataFrame(
        [record(i, first=first, last=last) for i, (first, last) in enumerate(people, start=1)]
        + [record(6, region="eu")],  # the same postcode in another region: a block of its own
        RECORDS_SCHEMA,
    )
    rules = (BlockingRule(name="postcode", keys=("postcode",)),)
    # by surname: webb 4, xu 3, young 2, zed 1, zedd 5; by first name: anna 1, anne 5, bob 2, carl 3, dora 4
    by_window = {
        1: [(1, 2), (1, 5), (2, 3), (2, 5), (3, 4)],
        2: [(1, 2), (1, 3), (1, 5), (2, 3), (2, 4), (2, 5), (3, 4), (3, 5)],  # all but (1, 4) and (4, 5)
        5: [(a, b) for a in range(1, 6) for b in range(a + 1, 6)],
    }
    for window, expected in by_window.items():
        pairs, large = candidate_pairs(records, rules, max_block_size=3, neighbourhood=window)
        assert sorted((r.l_vid, r.r_vid) for r in pairs.collect()) == expected, window
        assert {r.rule for r in pairs.collect()} == {"postcode:neighbours"}
        assert [tuple(r) for r in large.collect()] == [("us", "postcode", 5)]
    pairs, large = candidate_pairs(records, rules, max_block_size=3, neighbourhood=0)  # 0: the block is skipped
    assert pairs.count() == 0 and large.count() == 1


def test_candidate_pairs_need_a_rule(spark):
    records = spark.createDataFrame([record(1)], RECORDS_SCHEMA)
    with pytest.raises(ValueError, match="at least one blocking rule"):
        candidate_pairs(records, (), max_block_size=10)


# --- end to end --------------------------------------------------------------------------------

PEOPLE = [
    # person P1, three records: a typo, and a move to another address (same email)
    record(1, first="james", last="walker", dob=date(1975, 2, 11), street="4 rose lane", postcode="ls1 1aa", city="leeds", email="jw@x.org", phone="0700001"),
    record(2, first="jmaes", last="walker", dob=date(1975, 2, 11), street="4 rose lane", postcode="ls1 1aa", city="leeds", email="jw@x.org", phone=None),
    record(3, first="james", last="walker", dob=date(1975, 2, 11), street="9 oak road", postcode="ls2 2bb", city="leeds", email="jw@x.org", phone="0700001"),
    # P2: a nickname-ish spelling and a missing phone
    record(4, first="sarah", last="okafor", dob=date(1988, 7, 21), street="22 hill st", postcode="m1 4ab", city="manchester", email="so@x.org", phone="0700002"),
    record(5, first="sara", last="okafor", dob=date(1988, 7, 21), street="22 hill street", postcode="m1 4ab", city="manchester", email="so@x.org", phone=None),
    # P3: day and month transposed in one record, no email in another
    record(6, first="li", last="chen", dob=date(1992, 12, 3), street="7 park rd", postcode="b1 1cc", city="birmingham", email="lc@x.org", phone="0700003"),
    record(7, first="li", last="chen", dob=date(1992, 3, 12), street="7 park rd", postcode="b1 1cc", city="birmingham", email="lc@x.org", phone="0700003"),
    record(8, first="li", last="chen", dob=date(1992, 12, 3), street="7 park road", postcode="b1 1cc", city="birmingham", email=None, phone="0700003"),
    # P4
    record(9, first="maria", last="garcia", dob=date(1969, 4, 30), street="1 quay st", postcode="l1 9zz", city="liverpool", email="mg@x.org", phone="0700004"),
    record(10, first="maria", last="garcia", dob=date(1969, 4, 30), street="1 quay street", postcode="l1 9zz", city="liverpool", email="mg@x.org", phone=None),
    # households: P1's and P2's addresses and surnames, other people
    record(11, first="emma", last="walker", dob=date(1978, 5, 30), street="4 rose lane", postcode="ls1 1aa", city="leeds", email="ew@y.org", phone="0700011"),
    record(12, first="oliver", last="walker", dob=date(2005, 9, 14), street="4 rose lane", postcode="ls1 1aa", city="leeds", email="ow@z.org", phone=None),
    record(13, first="daniel", last="okafor", dob=date(1985, 1, 2), street="22 hill st", postcode="m1 4ab", city="manchester", email="do@y.org", phone="0700013"),
]
# unrelated people, for the u probabilities
FILLER = [
    record(100 + i, first=first, last=last, dob=date(1950 + 3 * i, 1 + i % 12, 1 + (7 * i) % 28), street=f"{i + 30} {street}",
           postcode=f"x{i} 1aa", city=city, email=f"{first}{i}@f.org", phone=f"07009{i:02d}")
    for i, (first, last, street, city) in enumerate(
        [("tom", "baker", "mill lane", "york"), ("ava", "patel", "church st", "bath"), ("noah", "wright", "bridge rd", "hull"),
         ("mia", "hughes", "kings way", "derby"), ("leo", "evans", "high st", "bristol"), ("isla", "turner", "green lane", "leeds"),
         ("jack", "ward", "station rd", "york"), ("ruby", "cox", "west st", "bath"), ("alfie", "price", "new road", "hull"),
         ("zara", "bell", "north rd", "derby"), ("ivy", "lloyd", "south st", "bristol"), ("finn", "moss", "manor rd", "leeds")]
    )
]
# six joneses at one postcode: a surname_postcode block above max_block_size
JONESES = [
    record(200 + i, first=first, last="jones", dob=date(1960 + i, 6, 15), street=f"{i} long row", postcode="zz9 9zz",
           city="cardiff", email=f"j{i}@j.org", phone=None)
    for i, first in enumerate(["amy", "ben", "cara", "dai", "evan", "gwen"])
]
SAME_PERSON = {(1, 2), (1, 3), (2, 3), (4, 5), (6, 7), (6, 8), (7, 8), (9, 10)}
HOUSEHOLD = {(1, 11), (1, 12), (2, 11), (2, 12), (11, 12), (4, 13), (5, 13)}


@pytest.fixture(scope="module")
def match_result(spark):
    records = spark.createDataFrame(PEOPLE + FILLER + JONESES, RECORDS_SCHEMA)
    settings = MatchingConfig(
        threshold=0.95,
        blocking_rules=(
            BlockingRule(name="surname_birth_date", keys=("soundex(last_name)", "date_of_birth")),
            BlockingRule(name="surname_postcode", keys=("soundex(last_name)", "postcode")),
        ),
        max_block_size=5,
        u_sample_records=100,
        seed=3,
    )
    result = probabilistic_links(records, settings)
    return result, {(r.src, r.dst): (r.rule, r.probability) for r in result.links.collect()}


def test_links_join_the_same_person_and_not_the_household(match_result):
    _, links = match_result
    assert set(links) == SAME_PERSON
    assert not set(links) & HOUSEHOLD
    assert all(0.95 <= probability <= 1.0 for _, probability in links.values())
    # (1, 3) moved house: only the surname and birth date rule finds it
    assert links[(1, 3)][0] == "surname_birth_date"


def test_links_report_large_blocks_and_one_model_per_rule(spark, match_result):
    result, _ = match_result
    assert_df_equality(
        result.large_blocks,
        spark.createDataFrame([("us", "surname_postcode", 6)], "region string, rule string, block_size long"),
        ignore_nullable=True,
    )
    models = {model.rule: model for model in result.models}
    assert set(models) == {"surname_birth_date", "surname_postcode"}
    assert models["surname_birth_date"].fixed == {"last_name", "date_of_birth"}
    assert models["surname_postcode"].fixed == {"last_name", "address"}
    for model in models.values():
        assert model.candidate_pairs > 0 and 0 < model.lam < 1
        # agreeing on first name is evidence for a match, disagreeing against
        assert model.m["first_name"][3] > model.u["first_name"][3]
        assert model.m["first_name"][0] < model.u["first_name"][0]
    model_rows = result.model_rows("run-1")
    assert len(model_rows) == 3 * sum(len(c.levels) for c in COMPARISONS)  # two sessions and the scoring model
    assert {row[0] for row in model_rows if row[4] is None} == {"surname_birth_date", "surname_postcode"}


def test_scoring_model_weighs_a_surname_at_a_shared_address_against_the_household(spark):
    """The scoring expression, value by value: prior of the region, log(m/u) per level, the
    term-frequency adjustment of an exact first name, and a surname at the same street weighed
    against the household share instead of its u (and without its term frequency) unless the
    first names agree."""
    import math

    from customer360.identity.matching import MatchModel

    m = {c.name: np.full(len(c.levels), 1.0 / len(c.levels)) for c in COMPARISONS}
    u = {c.name: np.full(len(c.levels), 1.0 / len(c.levels)) for c in COMPARISONS}
    m["last_name"] = np.array([0.05, 0.05, 0.1, 0.8])
    u["last_name"] = np.array([0.97, 0.01, 0.01, 0.01])
    m["first_name"] = np.array([0.05, 0.05, 0.1, 0.8])
    u["first_name"] = np.array([0.97, 0.01, 0.01, 0.01])
    m["address"] = np.array([0.1, 0.1, 0.1, 0.2, 0.5])
    u["address"] = np.array([0.9, 0.05, 0.03, 0.01, 0.01])
    model = MatchModel(m=m, u=u, priors={"us": 0.001, "gb": 0.01}, candidate_pairs=3, record_pairs=1000,
                       household_surname_share=0.3)
    gammas = {g: -1 for g in GAMMAS}
    rows = [
        # region, last, address, first, tf_first, tf_last
        ("us", 3, 4, -1, None, 0.001),  # surname at the same street: household share, no tf
        ("us", 3, 1, -1, None, 0.001),  # surname elsewhere in town: u and its term frequency
        ("gb", -1, -1, 3, 0.05, None),  # a common first name: weaker than the level's u
        ("us", 3, 4, 3, None, 0.001),  # first names agree too: relatives rarely share one, no household rule
    ]
    frame = spark.createDataFrame(
        [(region, *[{"gamma_last_name": last, "gamma_address": address, "gamma_first_name": first}.get(g, gammas[g]) for g in GAMMAS],
          tf_first, tf_last, None) for region, last, address, first, tf_first, tf_last in rows],
        "region string, " + ", ".join(f"{g} int" for g in GAMMAS) + ", tf_first_name double, tf_last_name double, tf_address double",
    )
    got = [r[0] for r in frame.select(model.log_odds()).collect()]
    logit = lambda p: math.log(p / (1 - p))  # noqa: E731
    expected = [
        logit(0.001) + math.log(0.8 / 0.3) + math.log(0.5 / 0.01),
        logit(0.001) + math.log(0.8 / 0.01) + math.log(0.01 / 0.001) + math.log(0.1 / 0.05),
        logit(0.01) + math.log(0.8 / 0.01) + math.log(0.01 / 0.05),
        logit(0.001) + 2 * math.log(0.8 / 0.01) + math.log(0.01 / 0.001) + math.log(0.5 / 0.01),
    ]
    assert got == pytest.approx(expected, rel=1e-9)
