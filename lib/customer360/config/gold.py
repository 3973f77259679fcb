"""``features`` and ``finance`` (gold.yaml): the customer features of the gold layer and the dated
FX rates orders are reported in."""
from __future__ import annotations

import re
from datetime import date

from pydantic import Field, field_validator, model_validator

from customer360.config.base import FrozenModel


class ColdStartRule(FrozenModel):
    min_orders: int = Field(default=2, ge=0)
    min_tenure_days: int = Field(default=30, ge=0)


class BotRule(FrozenModel):
    """When a web session is bot-like (flagged in silver, left out of every feature)."""

    max_session_events: int = Field(default=300, ge=2)
    min_events: int = Field(default=20, ge=2)
    max_events_per_minute: float = Field(default=20.0, gt=0)


class FeaturesConfig(FrozenModel):
    #: the date features are computed as of; None means the data's end
    as_of: date | None = None
    #: robust z-score (median/MAD) above which an order is bulk and a customer's revenue an outlier
    outlier_z: float = Field(default=3.5, gt=0)
    cold_start: ColdStartRule = Field(default_factory=ColdStartRule)
    bot: BotRule = Field(default_factory=BotRule)


class FxRate(FrozenModel):
    valid_from: date
    #: reporting-currency units per unit of the currency
    rate: float = Field(gt=0)


class FinanceConfig(FrozenModel):
    reporting_currency: str = Field(pattern=r"^[A-Z]{3}$")
    #: currency -> dated rates, each valid from its day until the next entry's
    fx_rates: dict[str, tuple[FxRate, ...]] = Field(default_factory=dict)

    @field_validator("fx_rates")
    @classmethod
    def _dated(cls, value: dict[str, tuple[FxRate, ...]]) -> dict[str, tuple[FxRate, ...]]:
        for currency, rates in value.items():
            if not re.fullmatch(r"[A-Z]{3}", currency):
                raise ValueError(f"{currency!r} is not an ISO 4217 currency code")
            if not rates:
                raise ValueError(f"{currency}: at least one rate is needed")
            days = [r.valid_from for r in rates]
            if days != sorted(set(days)):
                raise ValueError(f"{currency}: valid_from dates must be strictly increasing, got {[d.isoformat() for d in days]}")
        return value

    @model_validator(mode="after")
    def _reporting_rate_is_one(self) -> FinanceConfig:
        own = self.fx_rates.get(self.reporting_currency, ())
        if any(r.rate != 1.0 for r in own):
            raise ValueError(f"fx_rates.{self.reporting_currency}: the reporting currency converts at rate 1")
        return self
