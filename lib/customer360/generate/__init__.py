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

``generate(out, days=N)`` holds the last N days back under ``out/deliveries/<day>/`` (CRM as
change rows, late web events, an identity merge and split); ``deliver_next_day`` lands them one
at a time (``deliveries``).

``regions`` holds each region's vocabularies, ``people`` the latent population and the column
helpers, one module each the sources (``crm``, ``web_events``, ``orders``, ``support_tickets``,
``consent``), which depend on those two only, and ``writer`` the draw order, file layout, truth
and manifest. What callers use is re-exported here (``__all__``): import it from
``customer360.generate``; the sources' vocabularies stay in their modules.
"""
from __future__ import annotations

from customer360.generate.crm import JUNK_EMAILS
from customer360.generate.deliveries import Delivery, deliver_next_day, pending_days
from customer360.generate.people import END_DATE
from customer360.generate.regions import REGION_PROFILES, RegionProfile
from customer360.generate.writer import GENERATOR_VERSION, SOURCES, GeneratedData, ensure_sample_data, generate

__all__ = [
    "Delivery",
    "END_DATE",
    "GENERATOR_VERSION",
    "JUNK_EMAILS",
    "REGION_PROFILES",
    "SOURCES",
    "GeneratedData",
    "RegionProfile",
    "deliver_next_day",
    "ensure_sample_data",
    "generate",
    "pending_days",
]
