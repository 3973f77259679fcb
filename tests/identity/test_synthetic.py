"""FEBRL-style synthetic records: shape, determinism, truth, and corruptions measured from the data.

The corruption rates are measured by comparing each duplicate with its original (found through
the truth), not by reading the generator's log; the log is then checked against what the data
shows. Ranges are about +-3 binomial standard deviations at 6,000 duplicates.
"""
from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from customer360.identity.standalone import StandaloneMapping
from customer360.identity.synthetic import (
    COLUMNS,
    GIVEN_NAMES,
    HOUSEHOLD_SHARE,
    SUBURBS,
    SURNAMES,
    febrl_like,
    to_identity_mapping,
)

ORIGINALS, DUPLICATES = 4000, 6000
FIELDS = [c for c in COLUMNS if c != "rec_id"]


def osa_distance(a: str, b: str) -> int:
    """Optimal string alignment distance (insert, delete, substitute, adjacent transpose)."""
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]


def hamming_one(a, b) -> bool:
    return a is not None and b is not None and len(a) == len(b) and sum(x != y for x, y in zip(a, b)) == 1


@pytest.fixture(scope="module")
def sample():
    return febrl_like(originals=ORIGINALS, duplicates=DUPLICATES, seed=7)


@pytest.fixture(scope="module")
def pairs(sample):
    """One row per duplicate, its values (``*_dup``) beside its original's (``*_org``)."""
    records = sample.records.merge(sample.truth, on="rec_id")
    originals = records[records["original"]]
    duplicates = records[~records["original"]]
    return duplicates.merge(originals, on="person_id", suffixes=("_dup", "_org"))


def logged(pairs: pd.DataFrame, kind: str) -> pd.Series:
    return pairs["corruptions_dup"].str.split(";").apply(lambda kinds: kind in kinds)


def share(mask: pd.Series) -> float:
    return mask.sum() / DUPLICATES


def test_same_seed_same_records_other_seed_other_records():
    a = febrl_like(originals=300, duplicates=400, seed=3)
    b = febrl_like(originals=300, duplicates=400, seed=3)
    c = febrl_like(originals=300, duplicates=400, seed=4)
    pd.testing.assert_frame_equal(a.records, b.records)
    pd.testing.assert_frame_equal(a.truth, b.truth)
    assert not a.records.drop(columns="rec_id").equals(c.records.drop(columns="rec_id"))


def test_dedupe_counts_columns_and_text_values(sample):
    records, truth = sample.records, sample.truth
    assert list(records.columns) == list(COLUMNS)
    assert len(records) == ORIGINALS + DUPLICATES
    assert truth["original"].sum() == ORIGINALS
    assert truth["person_id"].nunique() == ORIGINALS
    per_person = truth.groupby("person_id").size() - 1
    assert per_person.max() == 5 and per_person.min() == 0
    # FEBRL's long tail: one duplicate is the most common count
    assert per_person[per_person > 0].value_counts().idxmax() == 1
    values = records.to_numpy().ravel()
    assert all(v is None or isinstance(v, str) for v in values)
    assert sample.left is None and sample.right is None


def test_truth_covers_every_record_exactly_once(sample):
    assert sample.truth["rec_id"].is_unique
    assert sorted(sample.truth["rec_id"]) == sorted(sample.records["rec_id"])
    assert sample.truth["person_id"].notna().all()


def test_record_ids_and_order_reveal_nothing(sample):
    ids = sample.records["rec_id"]
    assert ids.str.fullmatch(r"rec-\d{7}").all()
    first_rows = sample.truth.head(1000)
    # originals are 40% of rows: spread through the file, not first
    assert 0.3 < first_rows["original"].mean() < 0.5


def test_original_values_are_well_formed(sample):
    org = sample.records[sample.truth["original"].to_numpy()]
    assert org[[c for c in FIELDS if c != "address_2"]].notna().all().all()
    assert org["postcode"].str.fullmatch(r"\d{4}").all()
    assert org["postcode"].str.startswith("0").any()  # Northern Territory: the zero is kept
    assert org["state"].isin(["nsw", "vic", "qld", "wa", "sa", "tas", "act", "nt"]).all()
    assert org["soc_sec_id"].str.fullmatch(r"[1-9]\d{6}").all() and org["soc_sec_id"].is_unique
    born = pd.to_datetime(org["date_of_birth"], format="%Y%m%d")
    assert born.min() >= pd.Timestamp(date(1920, 1, 1)) and born.max() <= pd.Timestamp(date(2010, 12, 31))
    assert 0.25 < org["address_2"].notna().mean() < 0.45


def test_names_follow_a_long_tailed_frequency(sample):
    org = sample.records[sample.truth["original"].to_numpy()]
    surnames = org["surname"].value_counts(normalize=True)
    assert surnames.index[0] in SURNAMES[:5]
    assert 0.02 < surnames.iloc[0] < 0.06
    assert surnames.iloc[0] > 10 * surnames.median()
    assert org["surname"].nunique() > 250 and org["given_name"].nunique() > 230
    assert set(org["given_name"]) <= set(GIVEN_NAMES) and set(org["suburb"]) <= set(SUBURBS)


def test_every_duplicate_differs_from_its_original_and_has_one_to_three_corruptions(pairs):
    dup = pairs[[f"{c}_dup" for c in FIELDS]].to_numpy()
    org = pairs[[f"{c}_org" for c in FIELDS]].to_numpy()
    assert ((dup != org).sum(axis=1) >= 1).all()
    counts = pairs["corruptions_dup"].str.split(";").str.len()
    assert counts.between(1, 3).all()
    assert counts.value_counts(normalize=True).sort_index().round(2).tolist() == pytest.approx([0.45, 0.35, 0.20], abs=0.03)


def test_swapped_names_about_five_percent(pairs):
    swapped = (pairs["given_name_dup"] == pairs["surname_org"]) & (pairs["surname_dup"] == pairs["given_name_org"])
    # a swap cannot show in "james james" (nor can anything else pass for one there)
    visible = pairs["given_name_org"] != pairs["surname_org"]
    assert 0.04 < share(swapped & visible) < 0.06
    assert (swapped & visible).equals(logged(pairs, "swap_names") & visible)


def test_typos_in_both_names_about_fifteen_percent(pairs):
    both = [
        pd.notna(gd) and pd.notna(sd) and osa_distance(gd, go) == 1 and osa_distance(sd, so) == 1
        for gd, go, sd, so in zip(pairs["given_name_dup"], pairs["given_name_org"], pairs["surname_dup"], pairs["surname_org"])
    ]
    # davis/david swapped is also one edit in each name
    swapped = (pairs["given_name_dup"] == pairs["surname_org"]) & (pairs["surname_dup"] == pairs["given_name_org"])
    both = pd.Series(both, index=pairs.index) & ~swapped
    assert 0.13 < share(both) < 0.17
    assert both.equals(logged(pairs, "typo:both_names"))


def test_single_name_typos_and_first_letter_typos(pairs):
    # 20% each; the surname also gets the phonetic variants of names no spelling rule fits (about 2%)
    for field, low, high in (("given_name", 0.18, 0.22), ("surname", 0.19, 0.25)):
        kind = logged(pairs, f"typo:{field}")
        assert low < share(kind) < high
        one_edit = pairs[kind].apply(lambda r: osa_distance(r[f"{field}_dup"], r[f"{field}_org"]) == 1, axis=1)
        assert one_edit.all()
    typo = logged(pairs, "typo:given_name") | logged(pairs, "typo:both_names")
    first_changed = pairs.loc[typo, "given_name_dup"].str[0] != pairs.loc[typo, "given_name_org"].str[0]
    # the first letter (and so the soundex code) changes in about a quarter of the typos
    assert 0.15 < first_changed.mean() < 0.35


def test_phonetic_variants(pairs):
    phonetic = logged(pairs, "phonetic:given_name") | logged(pairs, "phonetic:surname")
    assert 0.08 < share(phonetic) < 0.12
    changed = pairs[logged(pairs, "phonetic:surname")]
    assert (changed["surname_dup"] != changed["surname_org"]).all()
    spellings = set(zip(changed["surname_org"], changed["surname_dup"]))
    # at least a few of the familiar ones
    assert {("mcdonald", "macdonald"), ("johnson", "johnsen"), ("thompson", "tompson")} & spellings


def test_missing_values(pairs):
    missing = pd.Series(False, index=pairs.index)
    for field in ("given_name", "surname", "street_number", "address_1", "suburb", "postcode", "state"):
        blank = pairs[f"{field}_dup"].isna() & pairs[f"{field}_org"].notna()
        assert 0.003 < share(blank) < 0.03, field
        missing |= blank
    assert 0.05 < share(missing) < 0.11
    dob_blank = pairs["date_of_birth_dup"].isna()
    assert 0.03 < share(dob_blank) < 0.07
    assert dob_blank.equals(logged(pairs, "missing:date_of_birth"))


def test_date_of_birth_corruptions(pairs):
    org, dup = pairs["date_of_birth_org"], pairs["date_of_birth_dup"]
    swapped = dup.notna() & (dup == org.str[:4] + org.str[6:8] + org.str[4:6]) & (dup != org)
    assert 0.02 < share(swapped) < 0.05
    assert swapped.equals(logged(pairs, "dob:day_month_swap"))
    one_digit = pd.Series([hamming_one(a, b) for a, b in zip(dup, org)], index=pairs.index) & ~swapped
    assert 0.12 < share(one_digit) < 0.18
    assert pd.to_datetime(dup[one_digit], format="%Y%m%d", errors="coerce").notna().all()


def test_postcode_street_number_suburb_and_national_id_corruptions(pairs):
    postcode = pd.Series([hamming_one(a, b) for a, b in zip(pairs["postcode_dup"], pairs["postcode_org"])], index=pairs.index)
    assert 0.12 < share(postcode) < 0.18 and postcode.equals(logged(pairs, "postcode:digit"))
    number = pairs["street_number_dup"].notna() & (pairs["street_number_dup"] != pairs["street_number_org"])
    assert 0.12 < share(number) < 0.18 and number.equals(logged(pairs, "street_number:changed"))
    suburb = pd.Series(
        [pd.notna(a) and a != b and osa_distance(a, b) == 1 for a, b in zip(pairs["suburb_dup"], pairs["suburb_org"])],
        index=pairs.index,
    )
    assert 0.09 < share(suburb) < 0.14 and suburb.equals(logged(pairs, "typo:suburb"))
    ssn_typo = pd.Series([hamming_one(a, b) for a, b in zip(pairs["soc_sec_id_dup"], pairs["soc_sec_id_org"])], index=pairs.index)
    ssn_blank = pairs["soc_sec_id_dup"].isna()
    assert 0.09 < share(ssn_typo) < 0.14 and 0.04 < share(ssn_blank) < 0.08


def test_households_are_distinct_people_sharing_surname_and_address(sample):
    records = sample.records.merge(sample.truth, on="rec_id")
    members = records[records["original"] & records["household_id"].notna()]
    sizes = members.groupby("household_id")["person_id"].nunique()
    assert (sizes >= 2).all()
    assert (sizes - 1).sum() == round(ORIGINALS * HOUSEHOLD_SHARE)
    shared = ["surname", "street_number", "address_1", "suburb", "postcode", "state"]
    per_household = members.groupby("household_id").agg(
        {**{c: "nunique" for c in shared}, "given_name": "nunique", "date_of_birth": "nunique", "soc_sec_id": "nunique"}
    )
    assert (per_household[shared] == 1).all().all()
    for distinct in ("given_name", "date_of_birth", "soc_sec_id"):
        assert (per_household[distinct] == sizes).all(), distinct


def test_link_mode_is_febrl4_shaped():
    result = febrl_like(originals=500, duplicates=500, mode="link", seed=1)
    assert result.records is None
    assert len(result.left) == 500 and len(result.right) == 500
    truth = result.truth.set_index("rec_id")["person_id"]
    left_people = truth[result.left["rec_id"]]
    right_people = truth[result.right["rec_id"]]
    assert left_people.is_unique and right_people.is_unique
    assert set(right_people) == set(left_people)
    assert result.left["rec_id"].str.startswith("a-").all() and result.right["rec_id"].str.startswith("b-").all()
    assert result.truth.set_index("rec_id").loc[result.left["rec_id"], "original"].all()
    assert len(result.all_records()) == 1000

    fewer = febrl_like(originals=500, duplicates=200, mode="link", seed=1)
    assert len(fewer.left) == 500 and len(fewer.right) == 200
    assert set(fewer.truth.set_index("rec_id").loc[fewer.right["rec_id"], "person_id"]) < set(
        fewer.truth.set_index("rec_id").loc[fewer.left["rec_id"], "person_id"]
    )


def test_without_national_id():
    result = febrl_like(originals=200, duplicates=300, with_national_id=False)
    assert "soc_sec_id" not in result.records.columns
    assert not result.truth["corruptions"].str.contains("soc_sec_id").any()
    assert "other_ids" not in to_identity_mapping(False)


def test_identity_mapping_is_a_valid_standalone_mapping():
    mapping = StandaloneMapping.model_validate(to_identity_mapping(True))
    assert mapping.record_id == "rec_id"
    assert mapping.column("first_name") == "given_name" and mapping.column("last_name") == "surname"
    assert mapping.date_format("date_of_birth") == "yyyyMMdd"
    assert mapping.source_columns("street") == ["street_number", "address_1"] and mapping.column("city") == "suburb"
    assert mapping.other_ids == {"soc_sec_id": "soc_sec_id"}
    mapped = set(mapping.input_columns()) - {"rec_id"}
    assert mapped <= set(FIELDS)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"originals": 0, "duplicates": 0}, "originals must be at least 1"),
        ({"originals": 10, "duplicates": -1}, "duplicates must be 0 or more"),
        ({"originals": 10, "duplicates": 51}, "51 duplicates need more than 10 originals x 5"),
        ({"originals": 10, "duplicates": 11, "mode": "link"}, "one duplicate per original"),
        ({"originals": 10, "duplicates": 5, "mode": "both"}, "mode must be"),
        ({"originals": 10, "duplicates": 5, "max_duplicates_per_original": 0}, "at least 1"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        febrl_like(**kwargs)


def test_most_duplicates_per_original_can_be_reached_exactly():
    result = febrl_like(originals=10, duplicates=50, seed=5)
    assert (result.truth.groupby("person_id").size() == 6).all()
