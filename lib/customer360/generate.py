"""Synthetic customer sources with ground truth, deterministic by seed and sized by a scale factor.

``generate(out, scale=0.1, seed=42)`` writes

    out/sources/crm_customers/<region>/crm_customers_<region>_0001.csv
    out/sources/web_events/<region>/web_events_<region>_0001.jsonl
    out/sources/orders/<region>/orders_<region>_0001.parquet
    out/sources/support_tickets/<region>/support_tickets_<region>_0001.csv
    out/sources/consent/<region>/consent_<region>_0001.jsonl
    out/truth/record_person.parquet   (source, source_record_id, person_id)
    out/truth/people.parquet          (person_id, region, segment, churned, churn_date, ...)
    out/truth/bot_cookies.parquet     (cookie_id, region) of the crawler traffic in web_events

Scale 1 is about 100k people, 300k CRM records, 2M order lines and 10M web events. People come
from a few latent segments (their behaviour differs), churn depends on behaviour, and the sources
carry the mess of real data: typos, nicknames, swapped names, missing fields, many email and phone
formats, moved and shared addresses, shared family devices, junk identifiers, local time stamps
with and without offsets, and a few rows that bronze must quarantine.

Everything is drawn from one ``numpy`` generator in a fixed order, so a seed gives the same bytes;
what later versions added (crawler traffic, unit costs) draws from generators of its own, so the
earlier columns keep their values. ``GENERATOR_VERSION`` is in the manifest: a cached sample made
by another version is generated again.
Work is done on whole columns; the few per-row string edits touch only the rows they change.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

log = logging.getLogger(__name__)

#: bump when the output changes; ensure_sample_data regenerates samples of other versions
GENERATOR_VERSION = 2
END_DATE = date(2026, 6, 30)  # the data's last day; churn is observed after it
START_DATE = date(2021, 1, 1)
PEOPLE_AT_SCALE_1 = 100_000
SEGMENTS = np.array(["loyal", "bargain_hunter", "occasional", "browser", "business"])
SEGMENT_P = np.array([0.2, 0.25, 0.3, 0.2, 0.05])
#: orders per year, web sessions per year, mean order lines, mean unit price, churn base log-odds
SEGMENT_BEHAVIOUR = {
    "loyal": (9.0, 40.0, 2.0, 60.0, -2.2),
    "bargain_hunter": (6.0, 30.0, 3.0, 18.0, -1.0),
    "occasional": (2.2, 9.0, 1.5, 45.0, -0.6),
    "browser": (0.6, 22.0, 1.2, 30.0, -0.4),
    "business": (10.0, 12.0, 4.0, 80.0, -1.6),
}
SOURCES = ("crm_customers", "web_events", "orders", "support_tickets", "consent")
CATEGORIES = np.array(["electronics", "fashion", "home", "beauty", "sports", "toys", "grocery", "books"])
JUNK_EMAILS = np.array(["test@test.com", "n/a", "noemail@none.com", "none"])
JUNK_PHONES = np.array(["0000000000", "n/a", "1234567890"])


@dataclass(frozen=True)
class RegionProfile:
    first_names: tuple[str, ...]
    last_names: tuple[str, ...]
    streets: tuple[str, ...]
    cities: tuple[str, ...]
    domains: tuple[str, ...]
    phone_prefix: str  # international dialling code
    phone_digits: int  # national significant number length
    postcode: str  # '9' a digit, 'A' a letter, anything else literal
    currency: str
    time_zone: str
    weight: float


REGION_PROFILES: dict[str, RegionProfile] = {
    "us": RegionProfile(
        ("James", "Robert", "John", "Michael", "William", "David", "Richard", "Joseph", "Thomas", "Charles",
         "Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Barbara", "Susan", "Jessica", "Sarah", "Karen",
         "Daniel", "Matthew", "Anthony", "Katherine", "Margaret", "Christopher", "Nancy", "Steven", "Emily", "Andrew"),
        ("Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
         "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
         "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson"),
        ("Main Street", "Oak Avenue", "Maple Drive", "Cedar Lane", "Park Road", "Washington Boulevard", "Lake Street",
         "Hill Road", "Pine Street", "Elm Street"),
        ("New York", "Chicago", "Houston", "Phoenix", "Seattle", "Denver", "Boston", "Atlanta", "Austin", "Portland"),
        ("gmail.com", "yahoo.com", "outlook.com", "aol.com", "icloud.com"),
        "1", 10, "99999", "USD", "America/New_York", 0.4,
    ),
    "gb": RegionProfile(
        ("Oliver", "George", "Harry", "Jack", "Charlie", "Thomas", "James", "William", "Daniel", "Alexander",
         "Olivia", "Amelia", "Isla", "Ava", "Emily", "Sophie", "Grace", "Lily", "Jessica", "Elizabeth",
         "Margaret", "Katherine", "Samuel", "Joseph", "Edward", "Charlotte", "Lucy", "Hannah", "Robert", "Michael"),
        ("Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Robinson", "Wright",
         "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall", "Wood", "Jackson", "Clarke",
         "Patel", "Khan", "Lewis", "James", "Phillips", "Mason", "Mitchell", "Rose", "Davis", "Turner"),
        ("High Street", "Station Road", "Church Lane", "Victoria Road", "Green Lane", "Manor Road", "Park Avenue",
         "Queens Road", "Kings Road", "Mill Lane"),
        ("London", "Manchester", "Birmingham", "Leeds", "Glasgow", "Bristol", "Liverpool", "Edinburgh", "Cardiff", "York"),
        ("gmail.com", "hotmail.co.uk", "btinternet.com", "yahoo.co.uk", "outlook.com"),
        "44", 10, "AA9 9AA", "GBP", "Europe/London", 0.25,
    ),
    "de": RegionProfile(
        ("Lukas", "Leon", "Maximilian", "Felix", "Paul", "Jonas", "Johannes", "Stefan", "Michael", "Andreas",
         "Anna", "Lena", "Lea", "Hannah", "Sophie", "Katharina", "Julia", "Sabine", "Claudia", "Elisabeth",
         "Jürgen", "Günter", "Matthias", "Thomas", "Wolfgang", "Ursula", "Monika", "Petra", "Susanne", "Christian"),
        ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz", "Hoffmann",
         "Schäfer", "Koch", "Bauer", "Richter", "Klein", "Wolf", "Schröder", "Neumann", "Schwarz", "Zimmermann",
         "Braun", "Krüger", "Hofmann", "Hartmann", "Lange", "Schmitt", "Werner", "Krause", "Meier", "Lehmann"),
        ("Hauptstraße", "Schulstraße", "Gartenstraße", "Bahnhofstraße", "Dorfstraße", "Bergstraße", "Lindenstraße",
         "Kirchstraße", "Waldstraße", "Ringstraße"),
        ("Berlin", "Hamburg", "München", "Köln", "Frankfurt am Main", "Stuttgart", "Düsseldorf", "Leipzig", "Dresden", "Bremen"),
        ("gmail.com", "web.de", "gmx.de", "t-online.de", "outlook.de"),
        "49", 11, "99999", "EUR", "Europe/Berlin", 0.2,
    ),
    "fr": RegionProfile(
        ("Jean", "Pierre", "Michel", "Philippe", "Nicolas", "Thomas", "Julien", "Antoine", "François", "Louis",
         "Marie", "Nathalie", "Isabelle", "Sophie", "Catherine", "Camille", "Julie", "Céline", "Élodie", "Hélène",
         "Frédéric", "Sébastien", "Christophe", "Laurent", "Stéphane", "Émilie", "Chloé", "Léa", "Manon", "Margaux"),
        ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy", "Moreau",
         "Simon", "Laurent", "Lefèvre", "Michel", "Garcia", "David", "Bertrand", "Roux", "Vincent", "Fournier",
         "Morel", "Girard", "André", "Lefebvre", "Mercier", "Dupont", "Lambert", "Bonnet", "François", "Martinez"),
        ("rue de la Paix", "avenue des Champs", "rue Victor Hugo", "boulevard Saint-Michel", "rue de la République",
         "rue Pasteur", "avenue Jean Jaurès", "rue du Moulin", "place de la Gare", "rue des Écoles"),
        ("Paris", "Marseille", "Lyon", "Toulouse", "Nice", "Nantes", "Strasbourg", "Montpellier", "Bordeaux", "Lille"),
        ("gmail.com", "orange.fr", "free.fr", "laposte.net", "hotmail.fr"),
        "33", 9, "99999", "EUR", "Europe/Paris", 0.15,
    ),
}

NICKNAMES = {
    "Robert": "Bob", "William": "Bill", "James": "Jim", "Michael": "Mike", "Elizabeth": "Liz",
    "Katherine": "Kate", "Margaret": "Peggy", "Richard": "Dick", "Joseph": "Joe", "Thomas": "Tom",
    "Charles": "Chuck", "Christopher": "Chris", "Daniel": "Dan", "Matthew": "Matt", "Anthony": "Tony",
    "Jennifer": "Jen", "Patricia": "Pat", "Susan": "Sue", "Andrew": "Andy", "Steven": "Steve",
    "Alexander": "Alex", "Samuel": "Sam", "Edward": "Ed", "Jessica": "Jess", "Charlotte": "Lottie",
    "Johannes": "Hans", "Katharina": "Kathi", "Matthias": "Matze", "Wolfgang": "Wolf", "Christian": "Chris",
    "Nicolas": "Nico", "Frédéric": "Fred", "Sébastien": "Seb", "Christophe": "Chris", "Catherine": "Cathy",
}


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def _pick(rng: np.random.Generator, values, size: int) -> np.ndarray:
    values = np.asarray(values, dtype=object)
    return values[rng.integers(0, len(values), size)]


def _digits(rng: np.random.Generator, size: int, width: int) -> np.ndarray:
    """Random digit strings of a fixed width (first digit 2-9)."""
    first = rng.integers(2, 10, size).astype(str).astype(object)
    rest = rng.integers(0, 10 ** (width - 1), size)
    return first + pd.Series(rest).astype(str).str.zfill(width - 1).to_numpy(dtype=object)


def _postcodes(rng: np.random.Generator, pattern: str, size: int) -> np.ndarray:
    out = np.full(size, "", dtype=object)
    for ch in pattern:
        if ch == "9":
            part = rng.integers(0, 10, size).astype(str).astype(object)
        elif ch == "A":
            part = np.array(list("ABCDEFGHJKLMNPRSTUWXYZ"), dtype=object)[rng.integers(0, 22, size)]
        else:
            part = np.full(size, ch, dtype=object)
        out = out + part
    return out


def _mask(rng: np.random.Generator, size: int, p: float) -> np.ndarray:
    return rng.random(size) < p


def _edit(values: np.ndarray, mask: np.ndarray, fn) -> np.ndarray:
    """Apply a per-string edit to the masked rows only."""
    out = values.copy()
    idx = np.flatnonzero(mask)
    out[idx] = [fn(v, i) for v, i in zip(values[idx], idx)]
    return out


def _typo(rng: np.random.Generator, values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    positions = rng.integers(0, 1 << 30, len(values))
    kinds = rng.integers(0, 3, len(values))

    def typo(v, i):
        if not isinstance(v, str) or len(v) < 4:
            return v
        k = 1 + positions[i] % (len(v) - 2)
        if kinds[i] == 0:  # drop a letter
            return v[:k] + v[k + 1 :]
        if kinds[i] == 1:  # swap two letters
            return v[:k] + v[k + 1] + v[k] + v[k + 2 :]
        return v[:k] + v[k] + v[k:]  # double a letter

    return _edit(values, mask, typo)


def _epoch_seconds(d: date) -> int:
    """Seconds since 1970-01-01 UTC at midnight of ``d`` (independent of the machine's time zone)."""
    return (d - date(1970, 1, 1)).days * 86400


def _local_strings(utc_seconds: np.ndarray, time_zone: str, *, with_offset: bool, fmt: str = "iso") -> np.ndarray:
    """Region-local wall-clock strings, optionally with the UTC offset that applied then."""
    utc = pd.to_datetime(utc_seconds, unit="s", utc=True)
    local = utc.tz_convert(time_zone)
    offsets = (local.tz_localize(None) - utc.tz_localize(None)).total_seconds().astype(int)
    naive = local.tz_localize(None).to_numpy().astype("datetime64[s]")
    text = np.datetime_as_string(naive, unit="s").astype(object)
    if fmt == "space":
        text = np.char.replace(text.astype(str), "T", " ").astype(object)
    if not with_offset:
        return text
    unique = {o: ("+" if o >= 0 else "-") + f"{abs(o) // 3600:02d}:{abs(o) % 3600 // 60:02d}" for o in np.unique(offsets)}
    return text + np.vectorize(unique.get, otypes=[object])(offsets)


# --------------------------------------------------------------------------- people


def _people(rng: np.random.Generator, n: int, regions: list[str]) -> pd.DataFrame:
    weights = np.array([REGION_PROFILES[r].weight for r in regions])
    region = np.array(regions, dtype=object)[rng.choice(len(regions), n, p=weights / weights.sum())]
    segment = SEGMENTS[rng.choice(len(SEGMENTS), n, p=SEGMENT_P)]
    first = np.empty(n, dtype=object)
    last = np.empty(n, dtype=object)
    street = np.empty(n, dtype=object)
    city = np.empty(n, dtype=object)
    postcode = np.empty(n, dtype=object)
    phone = np.empty(n, dtype=object)
    domain = np.empty(n, dtype=object)
    for code in regions:
        prof = REGION_PROFILES[code]
        idx = np.flatnonzero(region == code)
        m = len(idx)
        first[idx] = _pick(rng, prof.first_names, m)
        last[idx] = _pick(rng, prof.last_names, m)
        street[idx] = rng.integers(1, 250, m).astype(str).astype(object) + " " + _pick(rng, prof.streets, m)
        city[idx] = _pick(rng, prof.cities, m)
        postcode[idx] = _postcodes(rng, prof.postcode, m)
        phone[idx] = "+" + prof.phone_prefix + _digits(rng, m, prof.phone_digits)
        domain[idx] = _pick(rng, prof.domains, m)
    person_id = np.array([f"P{i:07d}" for i in range(n)], dtype=object)

    # households: a quarter of people live with someone else of the same region and share the surname
    household = np.arange(n)
    joiners = np.flatnonzero(_mask(rng, n, 0.25))
    for code in regions:
        in_region = np.flatnonzero(region == code)
        movers = np.intersect1d(joiners, in_region)
        heads = np.setdiff1d(in_region, joiners)
        if len(movers) and len(heads):
            chosen = heads[rng.integers(0, len(heads), len(movers))]
            household[movers] = chosen
    last[joiners] = last[household[joiners]]
    street[joiners] = street[household[joiners]]
    city[joiners] = city[household[joiners]]
    postcode[joiners] = postcode[household[joiners]]

    local_part = (
        pd.Series([_ascii(f) for f in first]).str.lower().to_numpy(dtype=object)
        + "."
        + pd.Series([_ascii(s) for s in last]).str.lower().str.replace(" ", "").to_numpy(dtype=object)
        + rng.integers(10, 10_000, n).astype(str).astype(object)
    )
    email = local_part + "@" + domain
    birth_days = rng.integers(_epoch_seconds(date(1940, 1, 1)) // 86400, _epoch_seconds(date(2006, 1, 1)) // 86400, n)
    signup = rng.integers(_epoch_seconds(START_DATE), _epoch_seconds(END_DATE) - 60 * 86400, n)
    loyalty = np.where(_mask(rng, n, 0.6), np.array([f"L{x:09d}" for x in rng.permutation(n) + 10_000_000]), None)

    beh = np.array([SEGMENT_BEHAVIOUR[s] for s in segment])
    engagement = rng.lognormal(0.0, 0.5, n)  # individual activity multiplier
    unhappy = _mask(rng, n, 0.12)
    logit = beh[:, 4] - 1.1 * np.log(engagement) + 1.3 * unhappy + rng.normal(0, 0.6, n)
    churned = rng.random(n) < 1 / (1 + np.exp(-logit))
    churn_date = np.where(churned, _epoch_seconds(END_DATE) // 86400 + rng.integers(1, 91, n), -1)
    return pd.DataFrame(
        {
            "person_id": person_id,
            "region": region,
            "segment": segment,
            "first_name": first,
            "last_name": last,
            "email": email,
            "phone": phone,
            "date_of_birth": pd.to_datetime(birth_days, unit="D").date,
            "street": street,
            "city": city,
            "postcode": postcode,
            "household_id": person_id[household],
            "loyalty_number": loyalty,
            "signup_ts": signup,
            "engagement": engagement,
            "unhappy": unhappy,
            "churned": churned,
            "churn_date": [None if d < 0 else pd.Timestamp(d, unit="D").date() for d in churn_date],
        }
    )


def _activity_times(rng: np.random.Generator, people: pd.DataFrame, owners: np.ndarray) -> np.ndarray:
    """Event times between signup and the end date; churners fade out over their last 120 days."""
    end = _epoch_seconds(END_DATE) + 86399
    start = people["signup_ts"].to_numpy()[owners]
    ts = start + (rng.random(len(owners)) * (end - start)).astype(np.int64)
    fading = people["churned"].to_numpy()[owners] & (ts > end - 120 * 86400)
    pulled = start + (rng.random(len(owners)) * np.maximum(end - 120 * 86400 - start, 86400)).astype(np.int64)
    keep_late = rng.random(len(owners)) < 0.25
    return np.where(fading & ~keep_late, pulled, ts)


def _phone_formats(rng: np.random.Generator, phone: np.ndarray, region: np.ndarray) -> np.ndarray:
    """The same number written as people write it: national, spaced, dotted, 00-prefixed."""
    style = rng.integers(0, 5, len(phone))
    prefix_len = np.array([1 + len(REGION_PROFILES[r].phone_prefix) for r in region])

    def fmt(v, i):
        national = v[prefix_len[i]:]
        s = style[i]
        if s == 0:
            return v
        if s == 1:
            return "0" + national if region[i] != "us" else f"({national[:3]}) {national[3:6]}-{national[6:]}"
        if s == 2:
            return v[: prefix_len[i]] + " " + " ".join(national[j : j + 3] for j in range(0, len(national), 3))
        if s == 3:
            return ".".join(national[j : j + 3] for j in range(0, len(national), 3))
        return "00" + v[1:]

    return _edit(phone, np.ones(len(phone), dtype=bool), fmt)


def _email_variants(rng: np.random.Generator, email: np.ndarray, p: float) -> np.ndarray:
    style = rng.integers(0, 3, len(email))
    tags = _pick(rng, ["shop", "news", "promo", "x"], len(email))

    def fmt(v, i):
        user, _, dom = v.partition("@")
        if style[i] == 0:
            return v.upper() if i % 2 else v.title()
        if style[i] == 1:
            return f"{user}+{tags[i]}@{dom}"
        return f" {v} "

    return _edit(email, _mask(rng, len(email), p), fmt)


# --------------------------------------------------------------------------- sources


def _crm(rng: np.random.Generator, people: pd.DataFrame) -> pd.DataFrame:
    n = len(people)
    per_person = 1 + rng.poisson(2.0, n)
    owner = np.repeat(np.arange(n), per_person)
    m = len(owner)
    p = people.iloc[owner].reset_index(drop=True)
    first = p["first_name"].to_numpy(dtype=object)
    last = p["last_name"].to_numpy(dtype=object)
    region = p["region"].to_numpy(dtype=object)

    nick = _mask(rng, m, 0.12) & np.isin(first, list(NICKNAMES))
    first = np.where(nick, np.vectorize(lambda v: NICKNAMES.get(v, v), otypes=[object])(first), first)
    first = _typo(rng, first, _mask(rng, m, 0.04))
    last = _typo(rng, last, _mask(rng, m, 0.04))
    swap = _mask(rng, m, 0.03)
    first, last = np.where(swap, last, first), np.where(swap, first, last)
    case = rng.integers(0, 10, m)
    first = np.where(case == 0, np.char.upper(first.astype(str)).astype(object), first)
    last = np.where(case == 1, np.char.upper(last.astype(str)).astype(object), last)

    email = _email_variants(rng, p["email"].to_numpy(dtype=object), 0.2)
    phone = _phone_formats(rng, p["phone"].to_numpy(dtype=object), region)
    street = p["street"].to_numpy(dtype=object)
    city = p["city"].to_numpy(dtype=object)
    postcode = p["postcode"].to_numpy(dtype=object)
    # an older record of a person who moved carries the previous address
    first_of_person = np.r_[True, owner[1:] != owner[:-1]]
    moved = first_of_person & _mask(rng, m, 0.15) & (per_person[owner] > 1)
    for code in np.unique(region[moved]):
        prof = REGION_PROFILES[code]
        idx = np.flatnonzero(moved & (region == code))
        street[idx] = rng.integers(1, 250, len(idx)).astype(str).astype(object) + " " + _pick(rng, prof.streets, len(idx))
        city[idx] = _pick(rng, prof.cities, len(idx))
        postcode[idx] = _postcodes(rng, prof.postcode, len(idx))
    street = np.where(_mask(rng, m, 0.05), np.char.upper(street.astype(str)).astype(object), street)

    dob = pd.to_datetime(p["date_of_birth"]).dt.strftime("%Y-%m-%d").to_numpy(dtype=object)
    for column, prob in ((email, 0.08), (phone, 0.15), (dob, 0.2), (street, 0.05), (postcode, 0.05)):
        column[_mask(rng, m, prob)] = None
    junk_email = _mask(rng, m, 0.01)
    email[junk_email] = _pick(rng, JUNK_EMAILS, int(junk_email.sum()))
    junk_phone = _mask(rng, m, 0.01)
    phone[junk_phone] = _pick(rng, JUNK_PHONES, int(junk_phone.sum()))

    business = p["segment"].to_numpy() == "business"
    company = np.where(business, last + " " + _pick(rng, ["GmbH", "Ltd", "Inc", "SARL", "& Co"], m), None)
    updated = p["signup_ts"].to_numpy() + (rng.random(m) * (_epoch_seconds(END_DATE) - p["signup_ts"].to_numpy())).astype(np.int64)
    updated_at = np.empty(m, dtype=object)
    for code in np.unique(region):
        idx = np.flatnonzero(region == code)
        updated_at[idx] = _local_strings(updated[idx], REGION_PROFILES[code].time_zone, with_offset=False, fmt="space")

    # rows bronze must quarantine: a birth date in the future, a missing id
    future = _mask(rng, m, 0.001)
    dob[future] = "2030-05-17"
    crm_id = np.array([f"CRM-{i:08d}" for i in rng.permutation(m) + 1], dtype=object)
    crm_id[_mask(rng, m, 0.0005)] = None
    return pd.DataFrame(
        {
            "crm_id": crm_id,
            "account_type": np.where(business, "B2B", "B2C"),
            "company_name": company,
            "first_name": first,
            "last_name": last,
            "email": email,
            "phone": phone,
            "birth_date": dob,
            "street": street,
            "city": city,
            "postcode": postcode,
            "country": np.char.upper(region.astype(str)),
            "loyalty_number": np.where(_mask(rng, m, 0.8), p["loyalty_number"].to_numpy(dtype=object), None),
            "updated_at": updated_at,
            "region": region,
            "_person": p["person_id"].to_numpy(dtype=object),
        }
    )


def _orders(rng: np.random.Generator, people: pd.DataFrame) -> pd.DataFrame:
    n = len(people)
    years = (_epoch_seconds(END_DATE) - people["signup_ts"].to_numpy()) / (365 * 86400)
    beh = np.array([SEGMENT_BEHAVIOUR[s] for s in people["segment"]])
    orders_per_person = rng.poisson(beh[:, 0] * years * people["engagement"].to_numpy() * 0.56)
    order_owner = np.repeat(np.arange(n), orders_per_person)
    k = len(order_owner)
    order_ts = _activity_times(rng, people, order_owner)
    lines_per_order = 1 + rng.poisson(beh[order_owner, 2] - 1)
    line_order = np.repeat(np.arange(k), lines_per_order)
    owner = order_owner[line_order]
    m = len(owner)
    segment = people["segment"].to_numpy()[owner]
    region = people["region"].to_numpy(dtype=object)[owner]
    price = np.round(rng.gamma(2.0, beh[owner, 3] / 2.0), 2)
    quantity = 1 + rng.poisson(0.4, m)
    bulk = (segment == "business") & _mask(rng, m, 0.05)
    quantity = np.where(bulk, rng.integers(50, 500, m), quantity)
    is_return = _mask(rng, m, 0.06)
    price[_mask(rng, m, 0.0005)] *= -1  # impossible: bronze quarantines negative prices
    email = _email_variants(rng, people["email"].to_numpy(dtype=object)[owner], 0.1)
    email[_mask(rng, m, 0.05)] = None
    order_ids = np.array([f"O{i:09d}" for i in rng.permutation(k) + 1], dtype=object)
    line_no = np.arange(m) - np.repeat(np.cumsum(lines_per_order) - lines_per_order, lines_per_order) + 1
    return pd.DataFrame(
        {
            "order_line_id": order_ids[line_order] + "-" + line_no.astype(str).astype(object),
            "order_id": order_ids[line_order],
            "ordered_at": pd.to_datetime(order_ts[line_order], unit="s", utc=True),
            "customer_email": email,
            "loyalty_number": people["loyalty_number"].to_numpy(dtype=object)[owner],
            "shipping_postcode": people["postcode"].to_numpy(dtype=object)[owner],
            "product_category": CATEGORIES[rng.integers(0, len(CATEGORIES), m)],
            "quantity": quantity.astype(np.int64),
            "unit_price": price,
            "currency": np.array([REGION_PROFILES[r].currency for r in region], dtype=object),
            "is_return": is_return,
            "region": region,
            "_person": people["person_id"].to_numpy(dtype=object)[owner],
        }
    )


def _with_unit_costs(rng: np.random.Generator, orders: pd.DataFrame) -> pd.DataFrame:
    """The product's unit cost, known for about 80% of lines (40-75% of the price)."""
    m = len(orders)
    cost = np.round(np.abs(orders["unit_price"].to_numpy()) * rng.uniform(0.40, 0.75, m), 2)
    known = rng.random(m) < 0.8
    return orders.assign(unit_cost=np.where(known, cost, np.nan))


def _bot_events(rng: np.random.Generator, people: pd.DataFrame, first_id: int) -> pd.DataFrame:
    """Crawlers: cookies that never log in and fire hundreds of page views a second or two apart."""
    end = _epoch_seconds(END_DATE) + 86399
    start = _epoch_seconds(START_DATE)
    regions = people["region"].to_numpy(dtype=object)
    frames = []
    bot_no = 0
    for code in sorted(set(regions)):
        bots = max(1, int(round((regions == code).sum() * 0.002)))
        for _ in range(bots):
            bot_no += 1
            cookie = f"ck-{hashlib.md5(f'bot/{code}/{bot_no}'.encode()).hexdigest()[:20]}"
            device = hashlib.md5(f"botdevice/{code}/{bot_no}".encode()).hexdigest()[:16]
            for _session in range(int(rng.integers(1, 4))):
                n = int(rng.integers(150, 600))
                begin = int(rng.integers(start, end - 3600))
                ts = begin + np.cumsum(rng.uniform(0.5, 2.0, n)).astype(np.int64)
                frames.append(
                    pd.DataFrame(
                        {
                            "ts": ts,
                            "event_type": np.where(rng.random(n) < 0.7, "page_view", "product_view").astype(object),
                            "cookie_id": cookie,
                            "device_id": device,
                            "region": code,
                        }
                    )
                )
    bots = pd.concat(frames, ignore_index=True)
    m = len(bots)
    event_ts = np.empty(m, dtype=object)
    region = bots["region"].to_numpy(dtype=object)
    for code in np.unique(region):
        idx = np.flatnonzero(region == code)
        event_ts[idx] = _local_strings(bots["ts"].to_numpy()[idx], REGION_PROFILES[code].time_zone, with_offset=True)
    viewed = bots["event_type"].to_numpy() == "product_view"
    return pd.DataFrame(
        {
            "event_id": np.array([f"E{i:010d}" for i in range(first_id, first_id + m)], dtype=object),
            "event_ts": event_ts,
            "event_type": bots["event_type"].to_numpy(dtype=object),
            "cookie_id": bots["cookie_id"].to_numpy(dtype=object),
            "device_id": bots["device_id"].to_numpy(dtype=object),
            "login_email": None,
            "product_category": np.where(viewed, CATEGORIES[rng.integers(0, len(CATEGORIES), m)], None),
            "region": region,
            "_person": None,
        }
    )


def _web_events(rng: np.random.Generator, people: pd.DataFrame) -> pd.DataFrame:
    n = len(people)
    years = (_epoch_seconds(END_DATE) - people["signup_ts"].to_numpy()) / (365 * 86400)
    beh = np.array([SEGMENT_BEHAVIOUR[s] for s in people["segment"]])
    sessions = rng.poisson(beh[:, 1] * years * people["engagement"].to_numpy() * 0.31)
    session_owner = np.repeat(np.arange(n), sessions)
    s = len(session_owner)
    session_ts = _activity_times(rng, people, session_owner)
    # 1-3 devices per person; family members sometimes use the household head's device
    device_slot = rng.integers(0, 3, s)
    household = people["household_id"].to_numpy(dtype=object)
    device_person = np.where(_mask(rng, s, 0.1), household[session_owner], people["person_id"].to_numpy(dtype=object)[session_owner])
    device_id = np.array([hashlib.md5(f"{d}/{k}".encode()).hexdigest()[:16] for d, k in zip(device_person, device_slot)], dtype=object)
    # a cookie lives for a while on a device: one per device and quarter
    quarter = session_ts // (90 * 86400)
    cookie_id = np.array([f"ck-{hashlib.md5(f'{d}/{q}'.encode()).hexdigest()[:20]}" for d, q in zip(device_id, quarter)], dtype=object)
    logs_in = _mask(rng, s, 0.35)
    events_per_session = 2 + rng.poisson(2.5, s)
    sess = np.repeat(np.arange(s), events_per_session)
    m = len(sess)
    step = np.arange(m) - np.repeat(np.cumsum(events_per_session) - events_per_session, events_per_session)
    ts = session_ts[sess] + step * rng.integers(5, 120, m)
    kinds = np.array(["page_view", "product_view", "add_to_cart", "purchase"], dtype=object)
    event_type = kinds[rng.choice(4, m, p=[0.5, 0.33, 0.12, 0.05])]
    event_type = np.where((step == 1) & logs_in[sess], "login", event_type)
    owner = session_owner[sess]
    region = people["region"].to_numpy(dtype=object)[owner]
    login_email = np.where(event_type == "login", people["email"].to_numpy(dtype=object)[owner], None)
    event_ts = np.empty(m, dtype=object)
    for code in np.unique(region):
        idx = np.flatnonzero(region == code)
        event_ts[idx] = _local_strings(ts[idx], REGION_PROFILES[code].time_zone, with_offset=True)
    category = np.where(np.isin(event_type, ["product_view", "add_to_cart", "purchase"]), CATEGORIES[rng.integers(0, len(CATEGORIES), m)], None)
    return pd.DataFrame(
        {
            "event_id": np.array([f"E{i:010d}" for i in range(1, m + 1)], dtype=object),
            "event_ts": event_ts,
            "event_type": event_type,
            "cookie_id": cookie_id[sess],
            "device_id": device_id[sess],
            "login_email": login_email,
            "product_category": category,
            "region": region,
            "_person": people["person_id"].to_numpy(dtype=object)[owner],
        }
    )


def _tickets(rng: np.random.Generator, people: pd.DataFrame) -> pd.DataFrame:
    n = len(people)
    unhappy = people["unhappy"].to_numpy()
    count = rng.poisson(np.where(unhappy, 2.0, 0.35))
    owner = np.repeat(np.arange(n), count)
    m = len(owner)
    p = people.iloc[owner].reset_index(drop=True)
    region = p["region"].to_numpy(dtype=object)
    opened = _activity_times(rng, people, owner)
    opened_at = np.empty(m, dtype=object)
    for code in np.unique(region):
        idx = np.flatnonzero(region == code)
        opened_at[idx] = _local_strings(opened[idx], REGION_PROFILES[code].time_zone, with_offset=False, fmt="space")
    satisfaction = np.where(unhappy[owner], rng.integers(1, 3, m), rng.integers(3, 6, m)).astype(object)
    satisfaction[_mask(rng, m, 0.3)] = None
    email = _email_variants(rng, p["email"].to_numpy(dtype=object), 0.15)
    phone = _phone_formats(rng, p["phone"].to_numpy(dtype=object), region)
    phone[_mask(rng, m, 0.5)] = None
    opened_at[_mask(rng, m, 0.001)] = "1985-01-01 09:00:00"  # impossible: before 1990
    return pd.DataFrame(
        {
            "ticket_id": np.array([f"T{i:08d}" for i in range(1, m + 1)], dtype=object),
            "contact_first_name": _typo(rng, p["first_name"].to_numpy(dtype=object), _mask(rng, m, 0.05)),
            "contact_last_name": p["last_name"].to_numpy(dtype=object),
            "contact_email": email,
            "contact_phone": phone,
            "opened_at": opened_at,
            "channel": _pick(rng, ["email", "phone", "chat", "store"], m),
            "topic": _pick(rng, ["delivery", "refund", "product", "account", "billing"], m),
            "satisfaction": satisfaction,
            "region": region,
            "_person": p["person_id"].to_numpy(dtype=object),
        }
    )


def _consent(rng: np.random.Generator, people: pd.DataFrame, region_regimes: dict[str, str]) -> pd.DataFrame:
    n = len(people)
    count = 1 + rng.poisson(0.8, n)
    owner = np.repeat(np.arange(n), count)
    m = len(owner)
    region = people["region"].to_numpy(dtype=object)[owner]
    opt_in_region = np.array([region_regimes.get(r, "opt_in") == "opt_in" for r in region])
    action = np.where(rng.random(m) < np.where(opt_in_region, 0.65, 0.25), "opt_in", "opt_out").astype(object)
    action[_mask(rng, m, 0.01)] = "erasure_request"
    ts = _activity_times(rng, people, owner)
    recorded = pd.to_datetime(ts, unit="s", utc=True).strftime("%Y-%m-%dT%H:%M:%SZ").to_numpy(dtype=object)
    return pd.DataFrame(
        {
            "consent_event_id": np.array([f"C{i:09d}" for i in range(1, m + 1)], dtype=object),
            "email": people["email"].to_numpy(dtype=object)[owner],
            "purpose": _pick(rng, ["marketing", "profiling"], m),
            "action": action,
            "recorded_at": recorded,
            "channel": _pick(rng, ["web", "app", "store", "call_center"], m),
            "region": region,
            "_person": people["person_id"].to_numpy(dtype=object)[owner],
        }
    )


# --------------------------------------------------------------------------- writing

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
) -> GeneratedData:
    """Write the five sources and the ground truth under ``out``; the same seed gives the same bytes."""
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    unknown = [r for r in regions if r not in REGION_PROFILES]
    if unknown:
        raise ValueError(f"no sample-data profile for region(s) {unknown}; available: {sorted(REGION_PROFILES)}")
    root = Path(out)
    rng = np.random.default_rng(seed)
    n = max(50, int(round(PEOPLE_AT_SCALE_1 * scale)))
    people = _people(rng, n, list(regions))
    regimes = consent_regimes or {}
    # the main generator draws in this order (crm, web, orders, tickets, consent): keep it
    crm = _crm(rng, people)
    web = _web_events(rng, people)
    bots = _bot_events(np.random.default_rng([seed, 1]), people, first_id=len(web) + 1)
    frames = {
        "crm_customers": crm,
        "web_events": pd.concat([web, bots], ignore_index=True),
        "orders": _with_unit_costs(np.random.default_rng([seed, 2]), _orders(rng, people)),
        "support_tickets": _tickets(rng, people),
        "consent": _consent(rng, people, regimes),
    }
    truth_parts = []
    rows = {}
    for source, frame in frames.items():
        ext, writer = WRITERS[source]
        id_column = ID_COLUMNS[source]
        truth_parts.append(
            pd.DataFrame({"source": source, "source_record_id": frame[id_column], "person_id": frame["_person"]})
        )
        data = frame.drop(columns=["_person"])
        rows[source] = len(data)
        for code in regions:
            part = data[data["region"] == code].reset_index(drop=True)
            folder = root / "sources" / source / code
            folder.mkdir(parents=True, exist_ok=True)
            for number, chunk in _chunks(part):
                path = folder / f"{source}_{code}_{number:04d}.{ext}"
                if source == "web_events":
                    writer(chunk, path, corrupt_every=2000)
                else:
                    writer(chunk, path)
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
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    log.info("generated %d people: %s", n, rows)
    return GeneratedData(root=root, people=n, rows=rows)


def ensure_sample_data(
    out: str | Path, *, scale: float, seed: int, regions: Sequence[str]
) -> tuple[GeneratedData, bool]:
    """Generate the sample once: an existing one made with the same scale, seed and regions is reused.

    Returns the data and whether it was generated now.
    """
    root = Path(out)
    manifest = root / "manifest.json"
    if manifest.is_file():
        made = json.loads(manifest.read_text())
        wanted = (GENERATOR_VERSION, scale, seed, list(regions))
        if (made.get("generator_version"), made.get("scale"), made.get("seed"), made.get("regions")) == wanted:
            return GeneratedData(root=root, people=made["people"], rows=made["rows"]), False
    for part in ("sources", "truth"):
        if (root / part).exists():
            shutil.rmtree(root / part)
    return generate(root, scale=scale, seed=seed, regions=list(regions)), True
