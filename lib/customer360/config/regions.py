"""A region file (conf/regions/<code>.yaml over ``region_defaults``): everything that differs
between country variants."""
from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from customer360.config.base import FrozenModel


class SegmentCountBounds(FrozenModel):
    min: int = Field(ge=2)
    max: int = Field(ge=2)

    @model_validator(mode="after")
    def _ordered(self) -> SegmentCountBounds:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        return self


class ChurnCosts(FrozenModel):
    """The cost matrix behind a region's churn decision, in the reporting currency.

    Flagging a customer costs a retention offer; an offer keeps a would-be churner with
    ``offer_success_rate``; a churner who leaves costs ``lost_customer``. Flagging pays when
    p * offer_success_rate * lost_customer > retention_offer."""

    lost_customer: float = Field(gt=0)
    retention_offer: float = Field(gt=0)
    offer_success_rate: float = Field(default=1.0, gt=0, le=1)

    def threshold(self) -> float:
        """The churn probability from which an offer is worth its cost (above 1: nobody is flagged)."""
        return self.retention_offer / (self.offer_success_rate * self.lost_customer)


class PostcodeRule(FrozenModel):
    """How a region writes postcodes: upper-cased, punctuation and spaces removed, then these steps."""

    #: regular expression the standardized postcode must match; anything else becomes null
    pattern: str = r"^[A-Z0-9 ]{3,10}$"
    #: keep only the first N characters (US ZIP+4 -> ZIP)
    truncate: int | None = Field(default=None, ge=1)
    #: left-pad all-digit postcodes with zeros to this length (a CSV read as a number lost them)
    zero_pad: int | None = Field(default=None, ge=1)
    #: put one space before the last N characters (GB inward code, NL letters)
    space_before_last: int | None = Field(default=None, ge=1)

    @field_validator("pattern")
    @classmethod
    def _regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from exc
        return value


class RegionConfig(FrozenModel):
    """A country variant: everything that differs between regions."""

    code: str = Field(pattern=r"^[a-z]{2}$")
    name: str
    default_phone_country: str = Field(pattern=r"^[A-Z]{2}$")
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    time_zone: str
    consent_regime: Literal["opt_in", "opt_out"]
    feature_windows_days: tuple[int, ...] = Field(min_length=1)
    segment_count: SegmentCountBounds
    churn_horizon_days: int = Field(ge=1)
    churn_costs: ChurnCosts
    #: a visitor's web events further apart than this start a new session
    session_timeout_minutes: int = Field(default=30, ge=1)
    postcode: PostcodeRule = Field(default_factory=PostcodeRule)
    #: regular expression -> replacement, applied in order to lower-case, accent-free street names
    street_abbreviations: dict[str, str] = Field(default_factory=dict)

    @field_validator("street_abbreviations")
    @classmethod
    def _regexes(cls, value: dict[str, str]) -> dict[str, str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from exc
        return value

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value

    @field_validator("feature_windows_days")
    @classmethod
    def _positive_windows(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(days < 1 for days in value):
            raise ValueError("feature windows must be at least 1 day")
        return tuple(sorted(set(value)))
