"""Consent events by email: opt-ins more likely where the region's regime asks for them, a few
erasure requests, times in UTC."""
from __future__ import annotations

import numpy as np
import pandas as pd

from customer360.generate.people import activity_times, mask, pick


def consent_events(rng: np.random.Generator, people: pd.DataFrame, region_regimes: dict[str, str]) -> pd.DataFrame:
    """One or more events a person; a region missing from ``region_regimes`` counts as opt-in."""
    n = len(people)
    count = 1 + rng.poisson(0.8, n)
    owner = np.repeat(np.arange(n), count)
    m = len(owner)
    region = people["region"].to_numpy(dtype=object)[owner]
    opt_in_region = np.array([region_regimes.get(r, "opt_in") == "opt_in" for r in region])
    action = np.where(rng.random(m) < np.where(opt_in_region, 0.65, 0.25), "opt_in", "opt_out").astype(object)
    action[mask(rng, m, 0.01)] = "erasure_request"
    ts = activity_times(rng, people, owner)
    recorded = pd.to_datetime(ts, unit="s", utc=True).strftime("%Y-%m-%dT%H:%M:%SZ").to_numpy(dtype=object)
    return pd.DataFrame(
        {
            "consent_event_id": np.array([f"C{i:09d}" for i in range(1, m + 1)], dtype=object),
            "email": people["email"].to_numpy(dtype=object)[owner],
            "purpose": pick(rng, ["marketing", "profiling"], m),
            "action": action,
            "recorded_at": recorded,
            "channel": pick(rng, ["web", "app", "store", "call_center"], m),
            "region": region,
            "_person": people["person_id"].to_numpy(dtype=object)[owner],
        }
    )
