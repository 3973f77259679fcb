"""Day-by-day deliveries: the sample's last ``days`` days held back and landed one day at a time.

``generate(out, days=N)`` writes the history (every row dated up to the cut, ``END_DATE - N``) to
``out/sources/`` as before and each later day's rows to ``out/deliveries/<YYYY-MM-DD>/<source>/
<region>/<source>_<region>_<YYYYMMDD>.<ext>``; ``deliver_next_day(out)`` moves the earliest
undelivered day into ``out/sources/`` (one rename a file, so a reader never sees half a file) and
records it in the manifest. A run after each delivery is what an incremental load sees in
production:

- a row's day is its own date (web events, tickets and consent in the region's local time, orders
  in UTC, CRM records by ``updated_at``); a few web events arrive one or two days late;
- CRM arrives as change rows after the cut (``change_op``, ``change_seq``): the records whose
  ``updated_at`` falls on the day as inserts, updates of live records (a new email, phone or
  address), deletes, and stale updates that arrive the day after a newer change of the same record
  (the same day on the last day; their sequence is lower, so they must lose);
- in each region an identity merge and split: two history records of one new person share no
  identifier (another surname, one has only the email, the other only the phone and an address),
  the first delivered day inserts a record carrying both the email and the phone (a bridge: the
  two clusters merge), and the second delivered day deletes it (the bridge is gone: they split).

The extra draws come from generators of their own, so ``days=0`` writes what it always wrote; the
union of the history and every day is the ``days=0`` sample plus the CRM change rows and the merge
subjects' records (web events keep every line; which lines are truncated depends on the file).
The merge subjects are in ``truth/record_person.parquet``, not in ``truth/people.parquet``.
"""
from __future__ import annotations

import json
import os
import unicodedata
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from customer360.errors import C360Error
from customer360.generate.people import END_DATE, addresses, pick
from customer360.generate.regions import REGION_PROFILES

DELIVERIES = "deliveries"
#: the column giving each source's rows their day
DAY_COLUMNS = {
    "crm_customers": "updated_at",
    "web_events": "event_ts",
    "orders": "ordered_at",
    "support_tickets": "opened_at",
    "consent": "recorded_at",
}
#: web events delivered 0, 1 or 2 days after their local date
WEB_LATENESS = (0.97, 0.02, 0.01)
#: per delivered day: the share of live CRM records updated, and deleted
UPDATE_SHARE = 0.003
DELETE_SHARE = 0.0005
#: the share of updates that also send an older version the next day (and each day's first)
STALE_SHARE = 0.25
CHANGE_COLUMNS = ("change_op", "change_seq")


def check_days(days: int) -> None:
    if not isinstance(days, int) or isinstance(days, bool) or not 0 <= days <= 366:
        raise ValueError(f"days held back must be a whole number from 0 to 366, got {days!r}")


def cut_date(days: int) -> date:
    """The history's last day when ``days`` are held back."""
    return END_DATE - timedelta(days=days)


def row_days(source: str, frame: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """Each row's delivery day (``datetime64[D]``): its date, a few web events later, none after
    ``END_DATE``; a row without a readable date is history (NaT)."""
    values = frame[DAY_COLUMNS[source]]
    if pd.api.types.is_datetime64_any_dtype(values):
        days = values.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("datetime64[D]")
    else:
        text = values.astype("string").str.slice(0, 10)
        days = pd.to_datetime(text, format="%Y-%m-%d", errors="coerce").to_numpy().astype("datetime64[D]")
    if source == "web_events":
        days = days + rng.choice(len(WEB_LATENESS), len(frame), p=WEB_LATENESS).astype("timedelta64[D]")
    # the data ends with END_DATE in UTC; a local date past it (east of UTC) lands on the last day
    return np.where(np.isnat(days), days, np.minimum(days, np.datetime64(END_DATE, "D")))


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower().replace(" ", "")


def _at(rng: np.random.Generator, day: date) -> str:
    """A local wall-clock time on ``day`` between 01:00 and 22:59 (CRM's ``updated_at`` format)."""
    seconds = int(rng.integers(3600, 23 * 3600))
    return f"{day.isoformat()} {seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _merge_subjects(rng: np.random.Generator, crm: pd.DataFrame, regions: list[str], cut: date, days: int) -> pd.DataFrame:
    """Per region, a new person's two unlinked history records (A: email; B: phone, address, a new
    surname), the bridge C inserted on the first delivered day and deleted on the second."""
    number = len(crm)
    rows = []
    for code in regions:
        prof = REGION_PROFILES[code]
        first = str(pick(rng, prof.first_names, 1)[0])
        maiden, married = (str(v) for v in rng.choice(np.array(prof.last_names, dtype=object), 2, replace=False))
        email = f"{_ascii(first)}.{_ascii(maiden)}.{int(rng.integers(10_000, 100_000))}@{pick(rng, prof.domains, 1)[0]}"
        phone = "+" + prof.phone_prefix + str(int(rng.integers(2, 10))) + "".join(
            str(d) for d in rng.integers(0, 10, prof.phone_digits - 1)
        )
        street, city, postcode = (v[0] for v in addresses(rng, prof, 1))
        person = f"P-CDC-{code}"
        base = {
            "account_type": "B2C", "company_name": None, "birth_date": None, "country": code.upper(),
            "loyalty_number": None, "region": code, "_person": person,
        }
        ids = [f"CRM-{number + k:08d}" for k in (1, 2, 3)]
        number += 3
        old = cut - timedelta(days=int(rng.integers(60, 400)))
        rows.append({**base, "crm_id": ids[0], "first_name": first, "last_name": maiden, "email": email, "phone": None,
                     "street": None, "city": None, "postcode": None, "updated_at": _at(rng, old), "_day": None})
        rows.append({**base, "crm_id": ids[1], "first_name": first, "last_name": married, "email": None, "phone": phone,
                     "street": street, "city": city, "postcode": postcode, "updated_at": _at(rng, old + timedelta(days=30)),
                     "_day": None})
        bridge = {**base, "crm_id": ids[2], "first_name": first, "last_name": married, "email": email, "phone": phone,
                  "street": street, "city": city, "postcode": postcode}
        first_day = cut + timedelta(days=1)
        rows.append({**bridge, "updated_at": _at(rng, first_day), "_day": first_day, "change_op": "insert"})
        if days >= 2:
            second_day = cut + timedelta(days=2)
            rows.append({**bridge, "updated_at": _at(rng, second_day), "_day": second_day, "change_op": "delete"})
    return pd.DataFrame(rows)


def _changed(rng: np.random.Generator, row: dict, kind: str) -> dict:
    """A new version of a CRM record: another email, phone or address of the same person."""
    prof = REGION_PROFILES[row["region"]]
    out = dict(row)
    if kind == "email":
        user = f"{_ascii(str(row['first_name'] or 'x'))}.{_ascii(str(row['last_name'] or 'y'))}{int(rng.integers(100, 1000))}"
        out["email"] = f"{user}@{pick(rng, prof.domains, 1)[0]}"
    elif kind == "phone":
        out["phone"] = "+" + prof.phone_prefix + str(int(rng.integers(2, 10))) + "".join(
            str(d) for d in rng.integers(0, 10, prof.phone_digits - 1)
        )
    else:
        out["street"], out["city"], out["postcode"] = (v[0] for v in addresses(rng, prof, 1))
    return out


def crm_changes(rng: np.random.Generator, crm: pd.DataFrame, regions: list[str], days: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(history, change rows): the CRM records dated up to the cut plus the merge subjects' two,
    and every change row after it with its delivery day (``_day``) and sequence."""
    cut = cut_date(days)
    day_of = row_days("crm_customers", crm, rng)
    later = ~np.isnat(day_of) & (day_of > np.datetime64(cut, "D"))
    subjects = _merge_subjects(rng, crm, regions, cut, days)
    history = pd.concat([crm[~later], subjects[subjects["_day"].isna()].drop(columns=["_day", "change_op"])], ignore_index=True)
    inserts = crm[later].assign(change_op="insert", _day=[d.astype(object) for d in day_of[later]])
    bridges = subjects[subjects["_day"].notna()]

    # the live records and their current versions, day by day: updates and deletes of records
    # live before the day (so a change never precedes the record's own insert)
    current = {r["crm_id"]: r for r in history[history["crm_id"].notna()].to_dict("records")}
    scripted = set(subjects["crm_id"])  # the merge and split happen as written, untouched by chance
    changes = []
    for offset in range(1, days + 1):
        day = cut + timedelta(days=offset)
        live = sorted(k for k in current if k not in scripted)
        n_update = max(2, int(rng.binomial(len(live), UPDATE_SHARE)))
        n_delete = int(rng.binomial(len(live), DELETE_SHARE))
        chosen = rng.choice(len(live), min(len(live), n_update + n_delete), replace=False)
        for position, index in enumerate(chosen):
            record_id = live[index]
            row = current[record_id]
            at = _at(rng, day)
            if position < n_update:
                kind = str(pick(rng, ["email", "phone", "address"], 1)[0])
                new = {**_changed(rng, row, kind), "updated_at": at, "change_op": "update", "_day": day}
                current[record_id] = new
                changes.append(new)
                if position == 0 or rng.random() < STALE_SHARE:
                    # an older version, sent again late: earlier time, lower sequence, next day
                    stale = {**_changed(rng, row, kind), "updated_at": f"{day.isoformat()} 00:30:00", "change_op": "update",
                             "_day": min(day + timedelta(days=1), END_DATE)}
                    changes.append(stale)
            else:
                changes.append({**row, "updated_at": at, "change_op": "delete", "_day": day})
                del current[record_id]
        for row in inserts[inserts["_day"] == day].to_dict("records") + bridges[bridges["_day"] == day].to_dict("records"):
            if row["crm_id"] is not None and row["change_op"] == "insert":
                current[row["crm_id"]] = row
            elif row["crm_id"] is not None:
                current.pop(row["crm_id"], None)
    out = pd.concat([inserts, bridges, pd.DataFrame(changes)], ignore_index=True)
    # the source's sequence follows its clock: the order of updated_at (ties by record id)
    out = out.sort_values(["updated_at", "crm_id"], kind="stable", na_position="first").reset_index(drop=True)
    out["change_seq"] = np.arange(1, len(out) + 1, dtype=np.int64) * 10
    return history, out


def split_by_day(source: str, frame: pd.DataFrame, rng: np.random.Generator, days: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(history, later rows with their ``_day``) of one non-CRM source."""
    day_of = row_days(source, frame, rng)
    later = ~np.isnat(day_of) & (day_of > np.datetime64(cut_date(days), "D"))
    return frame[~later], frame[later].assign(_day=[d.astype(object) for d in day_of[later]])


# --------------------------------------------------------------------------- landing a day


@dataclass
class Delivery:
    """One day moved into the landing folders."""

    day: date
    files: list[Path] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    #: days still held back after this one
    remaining: int = 0

    def line(self) -> str:
        total = sum(self.rows.values())
        per_source = ", ".join(f"{source} {rows:,}" for source, rows in self.rows.items() if rows)
        return (f"delivered day {self.day.isoformat()}: {total:,} rows in {len(self.files)} files ({per_source}); "
                f"{self.remaining} day(s) still held back")


def _manifest(root: Path) -> dict:
    """The manifest of a sample that holds days back; refused, with what to do, otherwise."""
    path = root / "manifest.json"
    if not path.is_file():
        raise C360Error(f"no sample at {root} (no manifest.json): c360 generate --days N writes one")
    made = json.loads(path.read_text())
    if "days" not in made:
        raise C360Error(f"the sample at {root} holds no day back: c360 generate --days N writes one that does")
    return made


def _pending(made: dict) -> list[date]:
    delivered = set(made.get("delivered", []))
    return [date.fromisoformat(d) for d in sorted(made.get("deliveries", {})) if d not in delivered]


def pending_days(root: str | Path) -> list[date]:
    """The held-back days not delivered yet, oldest first."""
    return _pending(_manifest(Path(root)))


def deliver_next_day(root: str | Path) -> Delivery | None:
    """Move the earliest held-back day's files into ``sources/``; None when every day is delivered.

    Each file is renamed into place (atomic on one file system); the manifest records the day
    after its last file, and a delivery interrupted half way is finished by the next call."""
    root = Path(root)
    made = _manifest(root)
    pending = _pending(made)
    if not pending:
        return None
    day = pending[0]
    folder = root / DELIVERIES / day.isoformat()
    delivery = Delivery(day=day, rows=dict(made["deliveries"][day.isoformat()]), remaining=len(pending) - 1)
    if folder.is_dir():
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            target = root / "sources" / path.relative_to(folder)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
            delivery.files.append(target)
        for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            sub.rmdir()
        folder.rmdir()
    made["delivered"] = sorted({*made.get("delivered", []), day.isoformat()})
    staged = root / "manifest.json.tmp"
    staged.write_text(json.dumps(made, indent=2) + "\n")
    os.replace(staged, root / "manifest.json")  # a crash leaves the old manifest or the new one
    return delivery
