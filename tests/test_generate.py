"""The sample generator: deterministic, sized by scale, messy in the documented ways, truth kept apart."""
from __future__ import annotations

import hashlib
import json

import pandas as pd
import pyarrow.parquet as pq
import pytest

from customer360.generate import END_DATE, JUNK_EMAILS, SOURCES, ensure_sample_data, generate

SCALE = 0.005  # 500 people


def _digests(root):
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen") / "a"
    return generate(root, scale=SCALE, seed=11)


def _read(sample, source):
    folder = sample.sources / source
    frames = []
    for path in sorted(folder.rglob("*.*")):
        if path.suffix == ".csv":
            frames.append(pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""]))
        elif path.suffix == ".jsonl":
            rows = []
            for line in path.read_text().splitlines():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
            frames.append(pd.DataFrame(rows))
        else:
            frames.append(pq.read_table(path).to_pandas())
    return pd.concat(frames, ignore_index=True)


def test_same_seed_same_bytes_other_seed_other_bytes(sample, tmp_path):
    again = generate(tmp_path / "b", scale=SCALE, seed=11)
    assert _digests(sample.root) == _digests(again.root)
    other = generate(tmp_path / "c", scale=SCALE, seed=12)
    assert _digests(sample.root) != _digests(other.root)


def test_layout_and_sizes(sample):
    assert sample.people == 500
    for source in SOURCES:
        assert sorted(p.name for p in (sample.sources / source).iterdir()) == ["de", "fr", "gb", "us"]
    assert not any("truth" in str(p) or "person" in p.name for p in sample.sources.rglob("*"))
    rows = sample.rows
    # scale 1 targets: 300k CRM records, 2M order lines, 10M web events per 100k people
    assert 2.5 < rows["crm_customers"] / sample.people < 3.5
    assert 14 < rows["orders"] / sample.people < 26
    assert 70 < rows["web_events"] / sample.people < 130


def test_ground_truth_covers_every_record(sample):
    truth = pq.read_table(sample.truth / "record_person.parquet").to_pandas()
    people = pq.read_table(sample.truth / "people.parquet").to_pandas()
    assert set(truth["person_id"]) <= set(people["person_id"])
    crm = _read(sample, "crm_customers")
    ids = set(crm["crm_id"].dropna())
    assert ids == set(truth.loc[truth["source"] == "crm_customers", "source_record_id"])
    assert truth.groupby("source")["source_record_id"].apply(lambda s: s.is_unique).all()
    # people appear several times in the CRM, and in other sources too
    per_person = truth[truth["source"] == "crm_customers"].groupby("person_id").size()
    assert per_person.max() >= 3 and (per_person > 1).mean() > 0.5
    assert set(people["segment"]) == {"loyal", "bargain_hunter", "occasional", "browser", "business"}


def test_messy_identifiers(sample):
    crm = _read(sample, "crm_customers")
    people = pq.read_table(sample.truth / "people.parquet").to_pandas()
    assert crm["email"].isin(JUNK_EMAILS).sum() > 0
    assert crm["phone"].isin(["0000000000", "n/a", "1234567890"]).sum() > 0
    assert crm["email"].str.contains(r"\+", regex=True, na=False).sum() > 0  # plus-addressing
    assert (crm["email"].str.upper() == crm["email"]).sum() > 0
    assert crm["phone"].str.startswith("00", na=False).sum() > 0
    assert crm["birth_date"].isna().sum() > 0
    assert set(crm["account_type"]) == {"B2B", "B2C"}
    assert crm["first_name"].isin(["Bob", "Bill", "Mike", "Liz", "Kate", "Jim", "Tom"]).sum() > 0
    shared = people.groupby(["street", "postcode"]).size()
    assert (shared > 1).sum() > 0  # households share an address
    events = _read(sample, "web_events")
    devices = events.dropna(subset=["login_email"]).groupby("device_id")["login_email"].nunique()
    assert (devices > 1).sum() > 0  # family devices seen with two logins
    assert events["event_ts"].str.contains(r"[+-]\d\d:\d\d$", regex=True).all()
    assert crm["updated_at"].str.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$").all()  # local, no offset


def test_churn_follows_behaviour(sample):
    people = pq.read_table(sample.truth / "people.parquet").to_pandas()
    truth = pq.read_table(sample.truth / "record_person.parquet").to_pandas()
    orders = _read(sample, "orders")
    orders["person_id"] = orders["order_line_id"].map(
        truth[truth["source"] == "orders"].set_index("source_record_id")["person_id"]
    )
    late = orders["ordered_at"] >= pd.Timestamp(END_DATE, tz="UTC") - pd.Timedelta(days=120)
    late_share = late.groupby(orders["person_id"]).mean()
    churned = people.set_index("person_id")["churned"].reindex(late_share.index)
    assert 0.1 < people["churned"].mean() < 0.6
    assert late_share[churned].mean() < 0.6 * late_share[~churned].mean()
    assert people.loc[people["churned"], "churn_date"].min() > END_DATE


def test_ensure_sample_data_generates_once(tmp_path):
    data, made = ensure_sample_data(tmp_path / "s", scale=0.0005, seed=3, regions=["us", "gb"])
    assert made and data.people == 50
    stamp = (tmp_path / "s" / "manifest.json").stat().st_mtime_ns
    _, made_again = ensure_sample_data(tmp_path / "s", scale=0.0005, seed=3, regions=["us", "gb"])
    assert not made_again and (tmp_path / "s" / "manifest.json").stat().st_mtime_ns == stamp
    _, remade = ensure_sample_data(tmp_path / "s", scale=0.0005, seed=4, regions=["us", "gb"])
    assert remade


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="scale must be positive"):
        generate(tmp_path, scale=0)
    with pytest.raises(ValueError, match=r"no sample-data profile for region\(s\) \['jp'\]"):
        generate(tmp_path, scale=0.001, regions=["us", "jp"])


def test_bytes_do_not_depend_on_the_machine_time_zone(tmp_path):
    import os
    import subprocess
    import sys

    here = generate(tmp_path / "here", scale=0.0005, seed=9)
    code = f"from customer360.generate import generate; generate({str(tmp_path / 'there')!r}, scale=0.0005, seed=9)"
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "TZ": "America/New_York"})
    assert _digests(here.root) == _digests(tmp_path / "there")
