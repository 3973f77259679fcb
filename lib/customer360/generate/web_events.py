"""Web events: sessions on shared and rotating devices and cookies, a few with a login, and the
crawler traffic whose cookies the truth lists."""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from customer360.generate.people import (
    CATEGORIES,
    END_DATE,
    START_DATE,
    activity_times,
    epoch_seconds,
    event_owners,
    local_times,
    mask,
    segment_behaviour,
)


def web_events(rng: np.random.Generator, people: pd.DataFrame) -> pd.DataFrame:
    """The people's own events, ``event_id`` E0000000001 onwards."""
    session_owner = event_owners(rng, people, segment_behaviour(people["segment"])[:, 1], 0.31)
    s = len(session_owner)
    session_ts = activity_times(rng, people, session_owner)
    # 1-3 devices per person; family members sometimes use the household head's device
    device_slot = rng.integers(0, 3, s)
    household = people["household_id"].to_numpy(dtype=object)
    device_person = np.where(mask(rng, s, 0.1), household[session_owner], people["person_id"].to_numpy(dtype=object)[session_owner])
    device_id = np.array([hashlib.md5(f"{d}/{k}".encode()).hexdigest()[:16] for d, k in zip(device_person, device_slot)], dtype=object)
    # a cookie lives for a while on a device: one per device and quarter
    quarter = session_ts // (90 * 86400)
    cookie_id = np.array([f"ck-{hashlib.md5(f'{d}/{q}'.encode()).hexdigest()[:20]}" for d, q in zip(device_id, quarter)], dtype=object)
    logs_in = mask(rng, s, 0.35)
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
    event_ts = local_times(ts, region, with_offset=True)
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


def bot_events(rng: np.random.Generator, people: pd.DataFrame, first_id: int) -> pd.DataFrame:
    """Crawlers: cookies that never log in and fire hundreds of page views a second or two apart."""
    end = epoch_seconds(END_DATE) + 86399
    start = epoch_seconds(START_DATE)
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
    region = bots["region"].to_numpy(dtype=object)
    viewed = bots["event_type"].to_numpy() == "product_view"
    return pd.DataFrame(
        {
            "event_id": np.array([f"E{i:010d}" for i in range(first_id, first_id + m)], dtype=object),
            "event_ts": local_times(bots["ts"].to_numpy(), region, with_offset=True),
            "event_type": bots["event_type"].to_numpy(dtype=object),
            "cookie_id": bots["cookie_id"].to_numpy(dtype=object),
            "device_id": bots["device_id"].to_numpy(dtype=object),
            "login_email": None,
            "product_category": np.where(viewed, CATEGORIES[rng.integers(0, len(CATEGORIES), m)], None),
            "region": region,
            "_person": None,
        }
    )
