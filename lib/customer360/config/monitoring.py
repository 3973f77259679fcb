"""``monitoring`` (governance.yaml): drift, segment shift, realized churn and fairness alerts."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from customer360.config.base import FrozenModel


class FairnessConfig(FrozenModel):
    attributes: tuple[Literal["age_band", "gender"], ...] = ("age_band", "gender")
    min_disparate_impact: float = Field(default=0.8, gt=0, le=1)
    max_equal_opportunity_difference: float = Field(default=0.1, gt=0, le=1)
    min_group_size: int = Field(default=30, ge=1)


class ShadowConfig(FrozenModel):
    """Champion against the shadow challenger (ops.shadow_comparison)."""

    #: promotion is recommended when the challenger's realized ROC AUC beats the champion's by more
    #: than this and its Brier score is no worse
    min_improvement: float = Field(default=0.005, ge=0)
    #: realized outcomes needed (customers both models scored, horizon passed) before recommending anything
    min_labelled: int = Field(default=100, ge=1)


class MonitoringConfig(FrozenModel):
    psi_bins: int = Field(default=10, ge=2, le=100)
    #: PSI from here is a shift (warn), from psi_alert a major shift (alert)
    psi_warn: float = Field(default=0.1, gt=0)
    psi_alert: float = Field(default=0.25, gt=0)
    #: a segment whose share changes by more than this fraction (0.15 = +-15%) is flagged
    segment_shift_threshold: float = Field(default=0.15, gt=0)
    #: the comparison run is the latest scored date at least this many days before (month over month)
    segment_shift_min_gap_days: int = Field(default=28, ge=1)
    #: realized minus predicted churn rate beyond this is an alert
    realized_churn_tolerance: float = Field(default=0.1, gt=0, le=1)
    fairness: FairnessConfig = Field(default_factory=FairnessConfig)
    shadow: ShadowConfig = Field(default_factory=ShadowConfig)
    #: any alert makes the run exit non-zero (c360 run/monitor --fail-on-alert)
    fail_on_alert: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> MonitoringConfig:
        if self.psi_alert < self.psi_warn:
            raise ValueError(f"monitoring.psi_alert ({self.psi_alert}) must not be below psi_warn ({self.psi_warn})")
        return self
