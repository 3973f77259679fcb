"""``identity`` (identity.yaml): standardization, deterministic linking, probabilistic matching and
survivorship of the golden record."""
from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from customer360.config.base import FrozenModel


#: Standardized attributes a blocking key may use (the ones probabilistic matching compares).
BLOCKING_ATTRIBUTES = ("first_name", "last_name", "date_of_birth", "street", "postcode", "city", "email", "phone", "loyalty_id")

#: Attributes the identity stage standardizes and tokenizes (everything personal in a record).
PII_ATTRIBUTES = (
    "first_name",
    "last_name",
    "email",
    "phone",
    "date_of_birth",
    "street",
    "city",
    "postcode",
    "loyalty_id",
    "device_id",
    "cookie_id",
    "company_name",
)


class BlockingRule(FrozenModel):
    """Candidate pairs for probabilistic matching: records whose ``keys`` (SQL expressions over
    standardized attributes) are all equal and not null."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    keys: tuple[str, ...] = Field(min_length=1)

    @field_validator("keys")
    @classmethod
    def _attributes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for key in value:
            # every name not called as a function must be a compared attribute
            names = re.findall(r"\b([A-Za-z_][A-Za-z0-9_]*)\b(?!\s*\()", re.sub(r"'[^']*'", "''", key))
            unknown = sorted(set(names) - set(BLOCKING_ATTRIBUTES))
            if unknown:
                raise ValueError(
                    f"key {key!r} uses {unknown}; blocking keys are SQL expressions over "
                    f"{', '.join(BLOCKING_ATTRIBUTES)}"
                )
        return value


class MatchingConfig(FrozenModel):
    """Fellegi-Sunter matching; m probabilities and the match rate are estimated by EM."""

    #: a pair is linked when its match probability is at least this
    threshold: float = Field(default=0.99, gt=0, lt=1)
    blocking_rules: tuple[BlockingRule, ...] = Field(min_length=1)
    #: blocks with more records than this are not all-paired (and are reported)
    max_block_size: int = Field(default=200, ge=2)
    #: in a block over max_block_size, each record is paired with this many neighbours in the
    #: block sorted by surname, and as many sorted by first name; 0: such blocks are skipped
    neighbourhood: int = Field(default=10, ge=0, le=100)
    em_max_iterations: int = Field(default=200, ge=1)
    em_tolerance: float = Field(default=1e-7, gt=0)
    #: strength (in pairs) of the priors on m, u and the match share: keeps EM sane on small inputs
    em_prior_pairs: float = Field(default=10.0, ge=0)
    #: u probabilities come from about this many random record pairs per region, drawn among
    #: this many sampled records
    u_sample_records: int = Field(default=2000, ge=10)
    u_sample_pairs: int = Field(default=200_000, ge=100)
    seed: int = 42
    #: the chance that two different people at one street address share a surname (relatives):
    #: at a shared address a surname's agreement is weighed against this, not against two random
    #: records' chance, because surname and address are not independent among non-matches
    household_surname_share: float = Field(default=0.3, gt=0, lt=1)


class SurvivorshipConfig(FrozenModel):
    """Which record's value a golden record keeps, per attribute."""

    source_priority: tuple[str, ...] = Field(min_length=1)
    default: Literal["source_priority", "most_recent", "most_frequent"] = "most_recent"
    rules: dict[str, Literal["source_priority", "most_recent", "most_frequent"]] = Field(default_factory=dict)

    @field_validator("rules")
    @classmethod
    def _attributes(cls, value: dict[str, str]) -> dict[str, str]:
        allowed = (*PII_ATTRIBUTES, "address")
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            raise ValueError(f"unknown attribute(s) {unknown}; allowed: {', '.join(allowed)}")
        return value


class IdentityConfig(FrozenModel):
    #: an identifier value shared by more distinct record profiles than this is a hub, never a link
    hub_limit: int = Field(default=20, ge=1)
    #: identifier kinds that link records deterministically
    strong_identifiers: tuple[str, ...] = ("email", "phone", "loyalty_id", "device_id", "cookie_id")
    #: a device or cookie links only when the logins seen on it used at most this many emails
    max_login_emails_per_device: int = Field(default=1, ge=1)
    email_strip_plus_tags: bool = True
    #: providers that ignore dots in the local part (first.last == firstlast)
    email_dotless_domains: tuple[str, ...] = ("gmail.com",)
    email_domain_aliases: dict[str, str] = Field(default_factory=dict)
    #: local parts that are placeholders, not addresses (test@..., noemail@...)
    placeholder_email_local_parts: tuple[str, ...] = ()
    #: nickname (lower-case, accent-free) -> formal first name
    nicknames: dict[str, str] = Field(default_factory=dict)
    matching: MatchingConfig
    survivorship: SurvivorshipConfig

    @field_validator("strong_identifiers")
    @classmethod
    def _strong(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        allowed = ("email", "phone", "loyalty_id", "device_id", "cookie_id")
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            raise ValueError(f"unknown identifier(s) {unknown}; allowed: {', '.join(allowed)} (other ids are always strong)")
        return value
