"""The latent population every source is drawn from, and the column helpers the sources share.

A person has a region, a segment (behaviour), a household, one true name, address, email and
phone, an engagement level and a churn outcome. The sources only ever show noisy views of them.
Every helper works on whole columns; the few per-row string edits touch only the rows they change.
"""
from __future__ import annotations

import unicodedata
from collections.abc import Callable
from datetime import date

import numpy as np
import pandas as pd

from customer360.generate.regions import REGION_PROFILES, RegionProfile

END_DATE = date(2026, 6, 30)  # the data's last day; churn is observed after it
START_DATE = date(2021, 1, 1)
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
CATEGORIES = np.array(["electronics", "fashion", "home", "beauty", "sports", "toys", "grocery", "books"])


# --------------------------------------------------------------------------- column helpers


def pick(rng: np.random.Generator, values, size: int) -> np.ndarray:
    values = np.asarray(values, dtype=object)
    return values[rng.integers(0, len(values), size)]


def mask(rng: np.random.Generator, size: int, p: float) -> np.ndarray:
    return rng.random(size) < p


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


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


def addresses(rng: np.random.Generator, profile: RegionProfile, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Street (with a house number), city and postcode of ``size`` addresses in one region."""
    street = rng.integers(1, 250, size).astype(str).astype(object) + " " + pick(rng, profile.streets, size)
    city = pick(rng, profile.cities, size)
    return street, city, _postcodes(rng, profile.postcode, size)


def _edit(values: np.ndarray, rows: np.ndarray, fn: Callable[[object, int], object]) -> np.ndarray:
    """Apply a per-string edit to the masked rows only."""
    out = values.copy()
    idx = np.flatnonzero(rows)
    out[idx] = [fn(v, i) for v, i in zip(values[idx], idx)]
    return out


def typo(rng: np.random.Generator, values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    positions = rng.integers(0, 1 << 30, len(values))
    kinds = rng.integers(0, 3, len(values))

    def misspell(v, i):
        if not isinstance(v, str) or len(v) < 4:
            return v
        k = 1 + positions[i] % (len(v) - 2)
        if kinds[i] == 0:  # drop a letter
            return v[:k] + v[k + 1 :]
        if kinds[i] == 1:  # swap two letters
            return v[:k] + v[k + 1] + v[k] + v[k + 2 :]
        return v[:k] + v[k] + v[k:]  # double a letter

    return _edit(values, rows, misspell)


def phone_formats(rng: np.random.Generator, phone: np.ndarray, region: np.ndarray) -> np.ndarray:
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


def email_variants(rng: np.random.Generator, email: np.ndarray, p: float) -> np.ndarray:
    """A share ``p`` of the addresses in another case, plus-addressed or padded with spaces."""
    style = rng.integers(0, 3, len(email))
    tags = pick(rng, ["shop", "news", "promo", "x"], len(email))

    def fmt(v, i):
        user, _, dom = v.partition("@")
        if style[i] == 0:
            return v.upper() if i % 2 else v.title()
        if style[i] == 1:
            return f"{user}+{tags[i]}@{dom}"
        return f" {v} "

    return _edit(email, mask(rng, len(email), p), fmt)


# --------------------------------------------------------------------------- time


def epoch_seconds(d: date) -> int:
    """Seconds since 1970-01-01 UTC at midnight of ``d`` (independent of the machine's time zone)."""
    return (d - date(1970, 1, 1)).days * 86400


def _wall_clock(utc_seconds: np.ndarray, time_zone: str, *, with_offset: bool, fmt: str) -> np.ndarray:
    """Wall-clock strings in one time zone, optionally with the UTC offset that applied then."""
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


def local_times(utc_seconds: np.ndarray, region: np.ndarray, *, with_offset: bool, fmt: str = "iso") -> np.ndarray:
    """Each row's time as its region's local wall clock: ``fmt`` "iso" (a T) or "space"."""
    out = np.empty(len(region), dtype=object)
    for code in np.unique(region):
        idx = np.flatnonzero(region == code)
        out[idx] = _wall_clock(utc_seconds[idx], REGION_PROFILES[code].time_zone, with_offset=with_offset, fmt=fmt)
    return out


def activity_times(rng: np.random.Generator, people: pd.DataFrame, owners: np.ndarray) -> np.ndarray:
    """Event times between signup and the end date; churners fade out over their last 120 days."""
    end = epoch_seconds(END_DATE) + 86399
    start = people["signup_ts"].to_numpy()[owners]
    ts = start + (rng.random(len(owners)) * (end - start)).astype(np.int64)
    fading = people["churned"].to_numpy()[owners] & (ts > end - 120 * 86400)
    pulled = start + (rng.random(len(owners)) * np.maximum(end - 120 * 86400 - start, 86400)).astype(np.int64)
    keep_late = rng.random(len(owners)) < 0.25
    return np.where(fading & ~keep_late, pulled, ts)


# --------------------------------------------------------------------------- people


def segment_behaviour(segments) -> np.ndarray:
    """One row of ``SEGMENT_BEHAVIOUR`` a person, columns in its order."""
    return np.array([SEGMENT_BEHAVIOUR[s] for s in segments])


def event_owners(rng: np.random.Generator, people: pd.DataFrame, yearly_rate: np.ndarray, factor: float) -> np.ndarray:
    """Each person's row number once per event: a Poisson count of ``yearly_rate`` (one a person)
    over the years since signup, times engagement and ``factor``."""
    years = (epoch_seconds(END_DATE) - people["signup_ts"].to_numpy()) / (365 * 86400)
    counts = rng.poisson(yearly_rate * years * people["engagement"].to_numpy() * factor)
    return np.repeat(np.arange(len(people)), counts)


def latent_people(rng: np.random.Generator, n: int, regions: list[str]) -> pd.DataFrame:
    """The ``n`` true people, ``person_id`` P0000000 onwards, spread over ``regions`` by their weight."""
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
        first[idx] = pick(rng, prof.first_names, m)
        last[idx] = pick(rng, prof.last_names, m)
        street[idx], city[idx], postcode[idx] = addresses(rng, prof, m)
        phone[idx] = "+" + prof.phone_prefix + _digits(rng, m, prof.phone_digits)
        domain[idx] = pick(rng, prof.domains, m)
    person_id = np.array([f"P{i:07d}" for i in range(n)], dtype=object)

    # households: a quarter of people live with someone else of the same region and share the surname
    household = np.arange(n)
    joiners = np.flatnonzero(mask(rng, n, 0.25))
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
    birth_days = rng.integers(epoch_seconds(date(1940, 1, 1)) // 86400, epoch_seconds(date(2006, 1, 1)) // 86400, n)
    signup = rng.integers(epoch_seconds(START_DATE), epoch_seconds(END_DATE) - 60 * 86400, n)
    loyalty = np.where(mask(rng, n, 0.6), np.array([f"L{x:09d}" for x in rng.permutation(n) + 10_000_000]), None)

    beh = segment_behaviour(segment)
    engagement = rng.lognormal(0.0, 0.5, n)  # individual activity multiplier
    unhappy = mask(rng, n, 0.12)
    logit = beh[:, 4] - 1.1 * np.log(engagement) + 1.3 * unhappy + rng.normal(0, 0.6, n)
    churned = rng.random(n) < 1 / (1 + np.exp(-logit))
    churn_date = np.where(churned, epoch_seconds(END_DATE) // 86400 + rng.integers(1, 91, n), -1)
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
