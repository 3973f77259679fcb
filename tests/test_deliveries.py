"""Day-by-day deliveries of the sample: history up to the cut, each later day held back and landed
one at a time, CRM as change rows, late web events, an identity merge and split."""
from __future__ import annotations

import json
from datetime import date, timedelta

import pandas as pd
import pyarrow.parquet as pq
import pytest

from customer360.generate import END_DATE, SOURCES, deliver_next_day, ensure_sample_data, generate, pending_days
from customer360.generate.deliveries import DAY_COLUMNS

SCALE = 0.005  # 500 people, as tests/test_generate.py
SEED = 11
DAYS = 3
CUT = END_DATE - timedelta(days=DAYS)


def _frames(folder, source):
    frames = []
    for path in sorted(folder.rglob(f"{source}_*.*")):
        if path.suffix == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        elif path.suffix == ".jsonl":
            frame = pd.DataFrame([json.loads(line) for line in path.read_text().splitlines() if _json(line)])
        else:
            frame = pq.read_table(path).to_pandas()
        frames.append(frame.assign(_file=path.name))
    return pd.concat(frames, ignore_index=True)


def _json(line):
    try:
        json.loads(line)
        return True
    except json.JSONDecodeError:
        return False


def _lines(folder, source):
    return sum(len(p.read_text().splitlines()) for p in folder.rglob(f"{source}_*.jsonl"))


def _day(source, frame):
    values = frame[DAY_COLUMNS[source]]
    if source == "orders":
        return values.dt.tz_convert("UTC").dt.date
    return pd.to_datetime(values.str.slice(0, 10), format="%Y-%m-%d", errors="coerce").dt.date


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    root = tmp_path_factory.mktemp("deliveries")
    return generate(root / "all", scale=SCALE, seed=SEED), generate(root / "held", scale=SCALE, seed=SEED, days=DAYS)


def test_history_and_days_together_are_the_whole_sample(both):
    whole, held = both
    days = sorted(p.name for p in (held.root / "deliveries").iterdir())
    assert days == [(CUT + timedelta(days=k)).isoformat() for k in (1, 2, 3)]
    for source in ("orders", "support_tickets", "consent"):
        everything = _frames(whole.sources, source).drop(columns="_file")
        history = _frames(held.sources, source)
        later = [_frames(held.root / "deliveries" / d, source) for d in days if any((held.root / "deliveries" / d).rglob(f"{source}_*"))]
        together = pd.concat([history, *later], ignore_index=True).drop(columns="_file")
        key = {"orders": "order_line_id", "support_tickets": "ticket_id", "consent": "consent_event_id"}[source]
        pd.testing.assert_frame_equal(
            together.sort_values(key, na_position="first").reset_index(drop=True),
            everything.sort_values(key, na_position="first").reset_index(drop=True),
            check_dtype=False,
        )
        # history up to the cut, each day's file holds that day's rows
        assert (_day(source, history).dropna() <= CUT).all()
        for d, frame in zip([d for d in days if any((held.root / "deliveries" / d).rglob(f"{source}_*"))], later):
            assert {min(x, END_DATE) for x in _day(source, frame)} == {date.fromisoformat(d)}
    # web events: every line kept (truncated ones included), some delivered a day or two late
    assert _lines(whole.sources, "web_events") == _lines(held.root, "web_events")
    lags = []
    for d in days:
        frame = _frames(held.root / "deliveries" / d, "web_events")
        # a local date past END_DATE (east of UTC) lands on the last day
        lags += [(date.fromisoformat(d) - min(x, END_DATE)).days for x in _day("web_events", frame)]
    assert set(lags) <= {0, 1, 2} and {0, 1} <= set(lags)
    assert held.rows["web_events"] == whole.rows["web_events"]


def test_crm_changes_arrive_in_sequence_with_stale_ones_late(both):
    whole, held = both
    history = _frames(held.sources, "crm_customers")
    assert "change_op" not in history.columns  # a full export, as before
    changes = pd.concat(
        [_frames(held.root / "deliveries" / d, "crm_customers").assign(_day=d) for d in sorted(pq_days(held))],
        ignore_index=True,
    )
    changes["change_seq"] = changes["change_seq"].astype(int)
    assert set(changes["change_op"]) == {"insert", "update", "delete"}
    assert changes["change_seq"].is_unique
    # the source's sequence follows its clock
    ordered = changes.sort_values("change_seq")
    assert ordered["updated_at"].is_monotonic_increasing
    # the records whose updated_at falls after the cut arrive as inserts, on their own day
    everything = _frames(whole.sources, "crm_customers")
    after = everything[pd.to_datetime(everything["updated_at"].str.slice(0, 10)).dt.date > CUT]
    inserts = changes[changes["change_op"] == "insert"]
    assert set(after["crm_id"].dropna()) <= set(inserts["crm_id"])
    assert (pd.to_datetime(inserts["updated_at"].str.slice(0, 10)).dt.date.astype(str) == inserts["_day"]).all()
    # updates and deletes change records that were there before their day
    known = set(history["crm_id"].dropna())
    for _, day in changes.groupby("_day", sort=True):
        assert set(day.loc[day["change_op"] != "insert", "crm_id"]) <= known
        known |= set(day.loc[day["change_op"] == "insert", "crm_id"].dropna())
    # a stale update: a lower sequence arriving on a later day than a newer change of the record
    stale = [
        record for record, rows in changes[changes["change_op"] == "update"].groupby("crm_id")
        if len(rows) > 1 and rows.sort_values("change_seq")["_day"].is_monotonic_decreasing and rows["_day"].nunique() > 1
    ]
    assert stale
    # every record id of the deliveries is in the truth
    truth = pq.read_table(held.truth / "record_person.parquet").to_pandas()
    crm_truth = set(truth.loc[truth["source"] == "crm_customers", "source_record_id"])
    assert set(changes["crm_id"].dropna()) | set(history["crm_id"].dropna()) == crm_truth


def pq_days(data):
    return [p.name for p in (data.root / "deliveries").iterdir()]


def test_each_region_gets_an_identity_merge_then_a_split(both):
    _, held = both
    truth = pq.read_table(held.truth / "record_person.parquet").to_pandas()
    history = _frames(held.sources, "crm_customers")
    day1 = _frames(held.root / "deliveries" / (CUT + timedelta(days=1)).isoformat(), "crm_customers")
    day2 = _frames(held.root / "deliveries" / (CUT + timedelta(days=2)).isoformat(), "crm_customers")
    for code in ("us", "gb", "de", "fr"):
        ids = truth.loc[truth["person_id"] == f"P-CDC-{code}", "source_record_id"].tolist()
        assert len(ids) == 3
        a, b = (history[history["crm_id"] == i].iloc[0] for i in ids[:2])
        # two history records sharing no identifier, nor a surname
        assert pd.notna(a["email"]) and pd.isna(a["phone"]) and pd.isna(b["email"]) and pd.notna(b["phone"])
        assert a["last_name"] != b["last_name"] and pd.isna(a["loyalty_number"]) and pd.isna(b["loyalty_number"])
        bridge = day1[day1["crm_id"] == ids[2]].iloc[0]
        assert bridge["change_op"] == "insert"
        assert (bridge["email"], bridge["phone"]) == (a["email"], b["phone"])
        gone = day2[day2["crm_id"] == ids[2]].iloc[0]
        assert gone["change_op"] == "delete" and int(gone["change_seq"]) > int(bridge["change_seq"])


def test_days_land_one_at_a_time(tmp_path):
    data, made = ensure_sample_data(tmp_path / "s", scale=0.0005, seed=3, regions=["us", "gb"], days=2)
    assert made
    before = {p.name for p in data.sources.rglob("*.*")}
    assert pending_days(data.root) == [END_DATE - timedelta(days=1), END_DATE]
    manifest = json.loads((data.root / "manifest.json").read_text())
    first = deliver_next_day(data.root)
    assert first.day == END_DATE - timedelta(days=1) and first.remaining == 1
    assert first.rows == manifest["deliveries"][first.day.isoformat()]
    assert sum(first.rows.values()) > 0 and first.rows["crm_customers"] >= 3  # two updates and a bridge at least
    landed = {p.name for p in data.sources.rglob("*.*")} - before
    assert landed == {p.name for p in first.files} and all("20260629" in name for name in landed)
    assert all(p.parent.parent.parent == data.sources for p in first.files)
    assert not (data.root / "deliveries" / "2026-06-29").exists()
    assert first.line().startswith(f"delivered day 2026-06-29: {sum(first.rows.values()):,} rows in {len(first.files)} files (")
    # a run of ensure_sample_data with the same settings keeps what was delivered
    _, made_again = ensure_sample_data(tmp_path / "s", scale=0.0005, seed=3, regions=["us", "gb"], days=2)
    assert not made_again and pending_days(data.root) == [END_DATE]
    second = deliver_next_day(data.root)
    assert second.day == END_DATE and second.remaining == 0
    assert deliver_next_day(data.root) is None
    assert json.loads((data.root / "manifest.json").read_text())["delivered"] == ["2026-06-29", "2026-06-30"]
    assert not any((data.root / "deliveries").iterdir())
    # other days held back: generated again, nothing delivered
    _, remade = ensure_sample_data(tmp_path / "s", scale=0.0005, seed=3, regions=["us", "gb"], days=3)
    assert remade and len(pending_days(data.root)) == 3
    assert not any("2026063" in p.name or "2026062" in p.name for p in data.sources.rglob("*.*"))


def test_an_interrupted_delivery_is_finished_by_the_next_call(tmp_path):
    data = generate(tmp_path / "s", scale=0.0005, seed=3, regions=["us"], days=1)
    folder = data.root / "deliveries" / END_DATE.isoformat()
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    assert len(files) >= 2
    moved = files[0]  # as if the process died after its first rename
    target = data.sources / moved.relative_to(folder)
    target.parent.mkdir(parents=True, exist_ok=True)
    moved.rename(target)
    delivery = deliver_next_day(data.root)
    assert delivery.day == END_DATE and len(delivery.files) == len(files) - 1
    assert all((data.sources / f.relative_to(folder)).is_file() for f in files)
    assert pending_days(data.root) == [] and not folder.exists()


@pytest.mark.parametrize("days", [-1, 367, 1.5, True])
def test_days_out_of_range_are_refused(tmp_path, days):
    with pytest.raises(ValueError, match="days held back must be a whole number from 0 to 366"):
        generate(tmp_path, scale=0.0005, days=days)
    assert not (tmp_path / "sources").exists()


def test_every_source_has_a_day_column():
    assert set(DAY_COLUMNS) == set(SOURCES)


def test_generate_deliver_and_run_land_the_days(tmp_path, capsys):
    from customer360 import cli
    from customer360.config import load_config

    from tests.conftest import CONF_DIR

    out = tmp_path / "s"
    common = ["--conf-dir", str(CONF_DIR), "--region", "us"]
    assert cli.main(["generate", "--scale", "0.0005", "--seed", "5", "--days", "2", "--out", str(out), *common]) == 0
    assert "generated 50 people" in capsys.readouterr().out
    assert cli.main(["deliver", "--out", str(out), *common]) == 0
    assert capsys.readouterr().out.startswith("delivered day 2026-06-29: ")
    assert cli.main(["deliver", "--out", str(out), *common]) == 0
    assert "; 0 day(s) still held back" in capsys.readouterr().out
    assert cli.main(["deliver", "--out", str(out), *common]) == 0
    assert capsys.readouterr().out == "every held-back day is already delivered: nothing new lands\n"
    # a sample without held-back days, and no sample at all: refused with the reason
    generate(tmp_path / "plain", scale=0.0005, seed=5, regions=["us"])
    assert cli.main(["deliver", "--out", str(tmp_path / "plain"), *common]) == 2
    assert "holds no day back: c360 generate --days N writes one that does" in capsys.readouterr().err
    assert cli.main(["deliver", "--out", str(tmp_path / "none"), *common]) == 2
    assert "no sample at" in capsys.readouterr().err

    # c360 run: the first run generates the history, each later one lands the next day first
    config = load_config("local", conf_dir=CONF_DIR, overrides=[
        f"sample_data.dir={tmp_path / 'run'}", "sample_data.scale=0.0005", "sample_data.days_held_back=2", "pipeline.regions=[us, gb]",
    ])
    first = cli.prepare_sample(config)
    assert first == [f"sample data: {tmp_path / 'run'} (scale 0.0005, seed 42, 50 people; generated now; the last 2 day(s) held back)"]
    second = cli.prepare_sample(config)
    assert second[0].endswith("cached; the last 2 day(s) held back)") and second[1].startswith("sample data: delivered day 2026-06-29: ")
    assert cli.prepare_sample(config)[1].endswith("; 0 day(s) still held back")
    assert cli.prepare_sample(config)[1] == "sample data: every held-back day is already delivered: nothing new lands"
    assert cli.prepare_sample(load_config("local", conf_dir=CONF_DIR, overrides=["sample_data.enabled=false"])) == []
