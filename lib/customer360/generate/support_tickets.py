"""Support tickets: mostly from unhappy people, contact details typed in by an agent, local
times without an offset, and a few impossible open dates for bronze to quarantine."""
from __future__ import annotations

import numpy as np
import pandas as pd

from customer360.generate.people import activity_times, email_variants, local_times, mask, phone_formats, pick, typo


def support_tickets(rng: np.random.Generator, people: pd.DataFrame) -> pd.DataFrame:
    n = len(people)
    unhappy = people["unhappy"].to_numpy()
    count = rng.poisson(np.where(unhappy, 2.0, 0.35))
    owner = np.repeat(np.arange(n), count)
    m = len(owner)
    p = people.iloc[owner].reset_index(drop=True)
    region = p["region"].to_numpy(dtype=object)
    opened_at = local_times(activity_times(rng, people, owner), region, with_offset=False, fmt="space")
    satisfaction = np.where(unhappy[owner], rng.integers(1, 3, m), rng.integers(3, 6, m)).astype(object)
    satisfaction[mask(rng, m, 0.3)] = None
    email = email_variants(rng, p["email"].to_numpy(dtype=object), 0.15)
    phone = phone_formats(rng, p["phone"].to_numpy(dtype=object), region)
    phone[mask(rng, m, 0.5)] = None
    opened_at[mask(rng, m, 0.001)] = "1985-01-01 09:00:00"  # impossible: before 1990
    return pd.DataFrame(
        {
            "ticket_id": np.array([f"T{i:08d}" for i in range(1, m + 1)], dtype=object),
            "contact_first_name": typo(rng, p["first_name"].to_numpy(dtype=object), mask(rng, m, 0.05)),
            "contact_last_name": p["last_name"].to_numpy(dtype=object),
            "contact_email": email,
            "contact_phone": phone,
            "opened_at": opened_at,
            "channel": pick(rng, ["email", "phone", "chat", "store"], m),
            "topic": pick(rng, ["delivery", "refund", "product", "account", "billing"], m),
            "satisfaction": satisfaction,
            "region": region,
            "_person": p["person_id"].to_numpy(dtype=object),
        }
    )
