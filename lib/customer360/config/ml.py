"""``ml`` (ml.yaml) and ``mlflow`` (base.yaml): segmentation and churn models, and where MLflow
tracks and registers them."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from customer360.config.base import FrozenModel


class MlflowConfig(FrozenModel):
    #: None: a sqlite store inside the lakehouse folder (``<root>/_mlflow``); any MLflow URI otherwise
    tracking_uri: str | None = None
    experiment_prefix: str = "/Shared/customer360"
    #: registered models are ``<prefix>_<region>_segmentation`` / ``_churn`` (``catalog.schema.c360`` on Unity Catalog)
    registered_model_prefix: str = Field(default="c360", pattern=r"^[A-Za-z0-9_.]+$")


class SegmentFeature(FrozenModel):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    transform: Literal["log", "none"] = "none"
    weight: float = Field(default=1.0, gt=0)
    fill: float = 0.0


class SegmentRule(FrozenModel):
    name: str = Field(min_length=1)
    #: a Spark SQL boolean expression over gold.customer_features columns
    when: str = Field(min_length=1)


class TaxonomyEntry(FrozenModel):
    name: str = Field(min_length=1)
    above: dict[str, float] = Field(default_factory=dict)
    below: dict[str, float] = Field(default_factory=dict)
    min_median: dict[str, float] = Field(default_factory=dict)


class StabilityConfig(FrozenModel):
    bootstrap_samples: int = Field(default=2, ge=0)
    sample_fraction: float = Field(default=0.8, gt=0, le=1)
    #: the earlier as-of date a second model is fitted on (adjusted Rand index between the two); 0 = skip
    previous_as_of_days: int = Field(default=30, ge=0)


class SegmentationConfig(FrozenModel):
    algorithm: Literal["kmeans", "bisecting_kmeans", "gaussian_mixture"] = "kmeans"
    seed: int = 42
    max_iter: int = Field(default=40, ge=1)
    features: tuple[SegmentFeature, ...] = Field(min_length=2)
    rules: tuple[SegmentRule, ...] = ()
    silhouette_tolerance: float = Field(default=0.02, ge=0)
    min_segment_share: float = Field(default=0.03, ge=0, lt=0.5)
    match_max_distance: float = Field(default=1.0, gt=0)
    #: a new model becomes champion only when its silhouette on today's customers beats the champion's by more than this
    min_silhouette_improvement: float = Field(default=0.005, ge=0)
    stability: StabilityConfig = Field(default_factory=StabilityConfig)
    taxonomy: tuple[TaxonomyEntry, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> SegmentationConfig:
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            raise ValueError(f"ml.segmentation.features: a feature is listed twice in {names}")
        last = self.taxonomy[-1]
        if last.above or last.below or last.min_median:
            raise ValueError(f"ml.segmentation.taxonomy: the last entry ({last.name!r}) is the fallback and must have no conditions")
        for entry in self.taxonomy:
            unknown = sorted({*entry.above, *entry.below, *entry.min_median} - set(names))
            if unknown:
                raise ValueError(
                    f"ml.segmentation.taxonomy: {entry.name!r} uses {unknown}, which are not segmentation features {names}"
                )
        rule_names = [r.name for r in self.rules]
        if len(set(rule_names)) != len(rule_names):
            raise ValueError(f"ml.segmentation.rules: rule names must be unique, got {rule_names}")
        return self


class GbtParams(FrozenModel):
    max_iter: int = Field(default=150, ge=1)
    max_depth: int = Field(default=2, ge=1, le=30)
    step_size: float = Field(default=0.1, gt=0, le=1)
    subsampling_rate: float = Field(default=0.8, gt=0, le=1)
    min_instances_per_node: int = Field(default=10, ge=1)
    seed: int = 42


class LogisticParams(FrozenModel):
    reg_param: float = Field(default=0.01, ge=0)
    elastic_net_param: float = Field(default=0.0, ge=0, le=1)
    max_iter: int = Field(default=100, ge=1)


class ChurnConfig(FrozenModel):
    cutoff_step_days: int | None = Field(default=None, ge=1)
    features: tuple[str, ...] = Field(min_length=1)
    gbt: GbtParams = Field(default_factory=GbtParams)
    logistic: LogisticParams = Field(default_factory=LogisticParams)
    cost_false_positive: float = Field(default=1.0, gt=0)
    cost_false_negative: float = Field(default=4.0, gt=0)
    min_auc_improvement: float = Field(default=0.005, ge=0)

    @field_validator("features")
    @classmethod
    def _unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError(f"a feature is listed twice in {list(value)}")
        return value


class MlConfig(FrozenModel):
    retrain: Literal["if_missing", "always"] = "if_missing"
    segmentation: SegmentationConfig
    churn: ChurnConfig
