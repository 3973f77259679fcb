"""Drawing the sources in their fixed order and writing them, the truth and the manifest.

One ``numpy`` generator draws the people and then crm, web events, orders, support tickets and
consent, in that order; crawler traffic and unit costs (added in version 2) draw from generators
of their own, so the earlier columns keep their values.
"""
from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from customer360.generate.consent import consent_events
from customer360.generate.crm import crm_customers
from customer360.generate.deliveries import DELIVERIES, check_days, crm_changes, cut_date, split_by_day
from customer360.generate.orders import order_lines, with_unit_costs
from customer360.generate.people import END_DATE, latent_people
from customer360.generate.regions import REGION_PROFILES
from customer360.generate.support_tickets import support_tickets
from customer360.generate.web_events import bot_events, web_events

log = logging.getLogger(__name__)

#: bump when the output changes; ensure_sample_data regenerates samples of other versions
GENERATOR_VERSION = 2
PEOPLE_AT_SCALE_1 = 100_000
SOURCES = ("crm_customers", "web_events", "orders", "support_tickets", "consent")
ROWS_PER_FILE = 500_000


def _chunks(frame: pd.DataFrame):
    for number, start in enumerate(range(0, max(len(frame), 1), ROWS_PER_FILE), start=1):
        yield number, frame.iloc[start : start + ROWS_PER_FILE]


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    table = pa.Table.from_pandas(frame.astype(object).where(frame.notna(), None), preserve_index=False)
    table = table.cast(pa.schema([pa.field(f.name, pa.string()) for f in table.schema]))
    pacsv.write_csv(table, path, write_options=pacsv.WriteOptions(quoting_style="needed"))


def _write_jsonl(frame: pd.DataFrame, path: Path, *, corrupt_every: int = 0) -> None:
    text = frame.to_json(orient="records", lines=True, force_ascii=False, date_format="iso")
    if corrupt_every:
        lines = text.splitlines()
        for i in range(corrupt_every - 1, len(lines), corrupt_every):
            lines[i] = lines[i][: len(lines[i]) // 2]  # a truncated, unparseable line
        text = "\n".join(lines) + "\n"
    path.write_text(text, encoding="utf-8")


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    # microsecond timestamps: what Spark and Delta read (pandas would write nanoseconds)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, compression="snappy", coerce_timestamps="us")


WRITERS = {
    "crm_customers": ("csv", _write_csv),
    "web_events": ("jsonl", _write_jsonl),
    "orders": ("parquet", _write_parquet),
    "support_tickets": ("csv", _write_csv),
    "consent": ("jsonl", _write_jsonl),
}
ID_COLUMNS = {
    "crm_customers": "crm_id",
    "web_events": "event_id",
    "orders": "order_line_id",
    "support_tickets": "ticket_id",
    "consent": "consent_event_id",
}


def _write_source(folder: Path, source: str, data: pd.DataFrame, regions, ext: str, writer, *, suffix: str = "") -> None:
    """One source's rows, a file per region (``_0001``... chunks, or one file named by ``suffix``)."""
    for code in regions:
        part = data[data["region"] == code].reset_index(drop=True)
        if suffix and part.empty:
            continue
        (folder / code).mkdir(parents=True, exist_ok=True)
        chunks = [(suffix, part)] if suffix else [(f"{number:04d}", chunk) for number, chunk in _chunks(part)]
        for name, chunk in chunks:
            path = folder / code / f"{source}_{code}_{name}.{ext}"
            if source == "web_events":
                writer(chunk, path, corrupt_every=2000)
            else:
                writer(chunk, path)


@dataclass(frozen=True)
class GeneratedData:
    root: Path
    people: int
    rows: dict[str, int]

    @property
    def sources(self) -> Path:
        return self.root / "sources"

    @property
    def truth(self) -> Path:
        return self.root / "truth"


def generate(
    out: str | Path,
    *,
    scale: float = 0.1,
    seed: int = 42,
    regions: list[str] | tuple[str, ...] = ("us", "gb", "de", "fr"),
    consent_regimes: dict[str, str] | None = None,
    days: int = 0,
) -> GeneratedData:
    """Write the five sources and the ground truth under ``out``; the same seed gives the same bytes.

    ``days``: hold the last days back as day-by-day deliveries (``generate.deliveries``)."""
    check_days(days)
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    unknown = [r for r in regions if r not in REGION_PROFILES]
    if unknown:
        raise ValueError(f"no sample-data profile for region(s) {unknown}; available: {sorted(REGION_PROFILES)}")
    root = Path(out)
    rng = np.random.default_rng(seed)
    n = max(50, int(round(PEOPLE_AT_SCALE_1 * scale)))
    people = latent_people(rng, n, list(regions))
    regimes = consent_regimes or {}
    # the main generator draws in this order (crm, web, orders, tickets, consent): keep it
    crm = crm_customers(rng, people)
    web = web_events(rng, people)
    bots = bot_events(np.random.default_rng([seed, 1]), people, first_id=len(web) + 1)
    frames = {
        "crm_customers": crm,
        "web_events": pd.concat([web, bots], ignore_index=True),
        "orders": with_unit_costs(np.random.default_rng([seed, 2]), order_lines(rng, people)),
        "support_tickets": support_tickets(rng, people),
        "consent": consent_events(rng, people, regimes),
    }
    truth_parts = []
    rows = {}
    per_day: dict[str, dict[str, int]] = {}
    held_rng = np.random.default_rng([seed, 3])  # the deliveries draw from a generator of their own
    for source, frame in frames.items():
        ext, writer = WRITERS[source]
        id_column = ID_COLUMNS[source]
        later = None
        if days and source == "crm_customers":
            frame, later = crm_changes(held_rng, frame, list(regions), days)
        elif days:
            frame, later = split_by_day(source, frame, held_rng, days)
        everything = frame if later is None else pd.concat([frame, later], ignore_index=True)
        truth_parts.append(
            pd.DataFrame({"source": source, "source_record_id": everything[id_column], "person_id": everything["_person"]})
            .drop_duplicates()
        )
        rows[source] = len(everything)
        _write_source(root / "sources" / source, source, frame.drop(columns=["_person"]), regions, ext, writer)
        if later is None:
            continue
        for day in sorted(set(later["_day"])):
            part = later[later["_day"] == day].drop(columns=["_person", "_day"])
            per_day.setdefault(day.isoformat(), {s: 0 for s in frames})[source] = len(part)
            folder = root / DELIVERIES / day.isoformat() / source
            _write_source(folder, source, part, regions, ext, writer, suffix=day.strftime("%Y%m%d"))
    truth = root / "truth"
    truth.mkdir(parents=True, exist_ok=True)
    record_person = pd.concat(truth_parts, ignore_index=True)
    record_person = record_person[record_person["source_record_id"].notna() & record_person["person_id"].notna()]
    pq.write_table(pa.Table.from_pandas(record_person, preserve_index=False), truth / "record_person.parquet")
    bot_cookies = bots[["cookie_id", "region"]].drop_duplicates().reset_index(drop=True)
    pq.write_table(pa.Table.from_pandas(bot_cookies, preserve_index=False), truth / "bot_cookies.parquet")
    people_out = people.drop(columns=["signup_ts", "engagement"]).assign(
        signup_date=pd.to_datetime(people["signup_ts"], unit="s").dt.date
    )
    pq.write_table(pa.Table.from_pandas(people_out, preserve_index=False), truth / "people.parquet")
    manifest = {"generator_version": GENERATOR_VERSION, "scale": scale, "seed": seed, "regions": list(regions), "people": n, "rows": rows, "end_date": END_DATE.isoformat()}
    if days:
        manifest.update(days=days, cut=cut_date(days).isoformat(), deliveries=dict(sorted(per_day.items())), delivered=[])
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    log.info("generated %d people: %s", n, rows)
    return GeneratedData(root=root, people=n, rows=rows)


def ensure_sample_data(
    out: str | Path, *, scale: float, seed: int, regions: Sequence[str], days: int = 0
) -> tuple[GeneratedData, bool]:
    """Generate the sample once: an existing one made with the same scale, seed, regions and days
    held back is reused (its deliveries so far kept).

    Returns the data and whether it was generated now.
    """
    root = Path(out)
    manifest = root / "manifest.json"
    if manifest.is_file():
        made = json.loads(manifest.read_text())
        wanted = (GENERATOR_VERSION, scale, seed, list(regions), days)
        if (made.get("generator_version"), made.get("scale"), made.get("seed"), made.get("regions"), made.get("days", 0)) == wanted:
            return GeneratedData(root=root, people=made["people"], rows=made["rows"]), False
    for part in ("sources", "truth", DELIVERIES):
        if (root / part).exists():
            shutil.rmtree(root / part)
    return generate(root, scale=scale, seed=seed, regions=list(regions), days=days), True
