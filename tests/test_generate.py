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


def _content_digests(root):
    """SHA-256 of what each source folder, truth file and the manifest hold, files in path order.

    Parquet is hashed as its schema and rows, not its bytes: the footer names the writer's version.
    CSV and JSON lines carry no time stamp or version, so their bytes are the content.
    """
    groups = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root)
        group = "/".join(relative.parts[:2])  # sources/<source>, truth/<file>, manifest.json
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            content = f"{table.schema.remove_metadata()}\n{table.to_pandas().to_csv(index=False)}".encode()
        else:
            content = path.read_bytes()
        digest = groups.setdefault(group, hashlib.sha256())
        digest.update(relative.as_posix().encode() + b"\0" + hashlib.sha256(content).digest())
    return {group: digest.hexdigest() for group, digest in groups.items()}


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


# What generator version 2 wrote before it was split into a package (pandas 2.3.3, pyarrow 22.0.0,
# numpy 2.4.6). A change that moves one of these on purpose bumps GENERATOR_VERSION with it.
PINNED_DEFAULT = {
    "manifest.json": "4f774658bc0e017d3c9f67263b84889e8aaf2fb729d19730ae7d51049ee9810b",
    "sources/consent": "14c912710db0027cfa8f809b4df31f1becf170407938fdc996c375ef786b28ab",
    "sources/crm_customers": "bf8036eb9c26a4a445ad32570d80bc6734b351fac2d9b92851e13cfaaecff9f0",
    "sources/orders": "99acb1cc26ea2bdd2deac3a01f57ce551291a94c4c549cd91979ceb50853bfaa",
    "sources/support_tickets": "26cc45c927d0a2e6c973b0c4510fff1e4a5f82d33e2276632a9dec7fe4fcfb13",
    "sources/web_events": "c0f9e6aa7faa9f16fd53b544867677bbbdcee29bd64243179241a81a4c8f7896",
    "truth/bot_cookies.parquet": "9160ac78cf4223a9755a0ddffb42e11f95a592cc7025a74a0d7028c56147f675",
    "truth/people.parquet": "0573da49799be26fa0c28e38f7590f549b582247cf99ebb77f62b510be122eba",
    "truth/record_person.parquet": "aa6fa5fbe58d9f49a045f114c38e424b41431af3390b121ad7ded6bf8f853135",
}
PINNED_REGIONS_AND_REGIMES = {
    "manifest.json": "d0cb36d00b61067824e912c797c7ede6bb06bf6be23c7b5555cacaa8f2a9c442",
    "sources/consent": "61a936954c0d7dffe21c78fa6c9e08eb77227e74f5e7d055a3930ef1de5348ad",
    "sources/crm_customers": "c1a930bb906b51df8254ce30785de7bd10f2bf22de1be35b86f99cc042b8a6f9",
    "sources/orders": "1127757db90dd1497e1d246a0f98849dc3afbf57aa6e83678376b20ec60c306d",
    "sources/support_tickets": "edc656520718f25d36d607f966864ad2851c2f196142c4ebb40a0f2a54e90c76",
    "sources/web_events": "3fbd3669e84da3228047513a5b3a27c422158991f46ca2a7f8f90d3059917059",
    "truth/bot_cookies.parquet": "025fa7764eb57a500bfc9f5de30bda76b80e55282aab7c729074bbac5c78fe58",
    "truth/people.parquet": "aa232b8827291751a637e25cdbb4250ad07a3e2ddf5b7b0043348523f44bc15e",
    "truth/record_person.parquet": "e917a8e99fe3156c4194e1360b04e6574a9ad05f7bfd8a87e1af08ac44038270",
}
PINNED_ENSURED = {
    "manifest.json": "4177a2096656d3796d730077dcd18b339335f857842d1117ff3b34f5a5eb71fb",
    "sources/consent": "4e455766982e871a5f144ac9eefb6969169ae7cb120b34ffef577ac5eec54430",
    "sources/crm_customers": "81f2455967115772e40d74122b06cf7dcddcfb6dd87225f536f0f06f042c1872",
    "sources/orders": "aacf41f9723388b9aeee9054e4d837fb085cde7db74783e1f9748369b501299f",
    "sources/support_tickets": "80b602221d35c7885ff1055ce76c0a060251dcc238255554062bb12589e2f14b",
    "sources/web_events": "443805bd9dbecc24f8d02a711a937e1542c847523bc2a3f45f2f8c63a2d44d90",
    "truth/bot_cookies.parquet": "22ae9ef4f28dd633c4e0950848d109def04a77807eb200d8ebd99344a0c801c8",
    "truth/people.parquet": "985f75f6c31a8372be8aefa04dd410eef9ec6d76983c4a833562de0a43f9b294",
    "truth/record_person.parquet": "2b620352b1f4b302994d951d07a17d835194167636a7c8e62d2671970c207cc1",
}


def test_default_sample_content_is_pinned(sample):
    assert _content_digests(sample.root) == PINNED_DEFAULT


def test_region_order_and_consent_regimes_content_is_pinned(tmp_path):
    data = generate(tmp_path / "r", scale=0.0005, seed=9, regions=("fr", "us"), consent_regimes={"us": "opt_out"})
    assert _content_digests(data.root) == PINNED_REGIONS_AND_REGIMES


def test_ensure_sample_data_content_is_pinned(tmp_path):
    data, made = ensure_sample_data(tmp_path / "s", scale=0.0005, seed=3, regions=["us", "gb"])
    assert made
    assert _content_digests(data.root) == PINNED_ENSURED
