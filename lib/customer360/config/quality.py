"""``quality`` (governance.yaml): the data-quality checks run on each table."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from customer360.config.base import TABLE_PATTERN, FrozenModel


class QualityCheckConfig(FrozenModel):
    check: Literal["not_null", "unique", "accepted_values", "range", "freshness", "row_count_change"]
    columns: tuple[str, ...] = ()
    severity: Literal["error", "warn"] = "error"
    values: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    max_age_hours: float | None = Field(default=None, gt=0)
    max_change: float | None = Field(default=None, ge=0)
    name: str | None = None


class QualityConfig(FrozenModel):
    #: table -> its checks; the quality stage checks bronze and silver tables, the gold stage its
    #: own outputs before it writes them
    checks: dict[Annotated[str, Field(pattern=TABLE_PATTERN)], tuple[QualityCheckConfig, ...]] = Field(default_factory=dict)
