"""``sources`` (sources.yaml), ``ingest`` and ``sample_data`` (base.yaml): the raw sources, where
their files land, and the bundled generator that can write a sample of them."""
from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from customer360.config.base import FrozenModel


#: The canonical attributes of ``silver.identity_records`` a source column can feed.
CANONICAL_ATTRIBUTES = (
    "source_record_id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "date_of_birth",
    "street",
    "city",
    "postcode",
    "country",
    "loyalty_id",
    "device_id",
    "cookie_id",
    "event_time",
    "region",
    "company_name",
)


#: ``host:port`` pairs, comma-separated: names and ports only, nothing a Kafka option could smuggle in
_BOOTSTRAP_RE = r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}[A-Za-z0-9])?:[0-9]{1,5}(?:,[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}[A-Za-z0-9])?:[0-9]{1,5}){0,15}"


class KafkaConfig(FrozenModel):
    """Clickstream (``web_events``) from Kafka besides its landing folder (``bronze.kafka``): one
    topic per region, ``<topic_prefix><region>``, each message one event as a JSON object."""

    #: the brokers; None: web events come from files only
    bootstrap_servers: str | None = Field(default=None, pattern=f"^{_BOOTSTRAP_RE}$")
    #: Kafka topic names allow letters, digits, '.', '_' and '-' (the region code is appended)
    topic_prefix: str = Field(default="c360.web_events.", pattern=r"^[A-Za-z0-9._-]{1,200}$")
    #: where a query with no checkpoint yet starts in each topic
    starting_offsets: Literal["earliest", "latest"] = "earliest"
    #: the most messages one micro-batch takes (over all partitions of a region's topic)
    max_offsets_per_trigger: int = Field(default=1_000_000, ge=1, le=10_000_000)


class IngestConfig(FrozenModel):
    #: Raw source files: ``<landing_root>/<source>/<region>/<files>``.
    landing_root: str = Field(min_length=1)
    kafka: KafkaConfig = Field(default_factory=KafkaConfig)


class SampleDataConfig(FrozenModel):
    """The bundled generator: ``c360 run`` creates the sample once when enabled (local runs)."""

    enabled: bool = False
    dir: str = "sample_data"
    scale: float = Field(default=0.1, gt=0)
    seed: int = 42
    #: the last days held back and landed one a run: the first ``c360 run`` sees the history, each
    #: later one the next day (``generate.deliveries``); 0 lands everything at once
    days_held_back: int = Field(default=0, ge=0, le=366)


class SourceMapping(FrozenModel):
    """Where one raw source lives and which of its columns feed which canonical attribute."""

    format: Literal["csv", "json", "parquet"]
    attributes: dict[str, str] = Field(min_length=1)
    #: further strong identifiers of this source: identifier kind -> column (e.g. order: order_id)
    other_ids: dict[str, str] = Field(default_factory=dict)
    #: a SQL predicate choosing which rows identify a person (e.g. only web events with a login)
    identity_filter: str | None = None

    @field_validator("other_ids")
    @classmethod
    def _kinds(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [kind for kind in value if not re.fullmatch(r"[a-z][a-z0-9_]*", kind)]
        if bad:
            raise ValueError(f"identifier kinds must be lower-case snake_case, got {bad}")
        return value

    @field_validator("attributes")
    @classmethod
    def _canonical(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(CANONICAL_ATTRIBUTES))
        if unknown:
            raise ValueError(
                f"unknown canonical attribute(s) {unknown}; allowed: {', '.join(CANONICAL_ATTRIBUTES)}"
            )
        if "source_record_id" not in value:
            raise ValueError("'source_record_id' must be mapped")
        return value
