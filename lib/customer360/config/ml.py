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


class TunableParams(FrozenModel):
    """A model's parameters plus ``tune``: parameter -> values tried inside each back-test fold's
    training window (the grid is their product; the fold's next older fold picks the point)."""

    tune: dict[str, tuple[float, ...]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _tune_names_parameters(self) -> TunableParams:
        names = set(type(self).model_fields) - {"tune"}
        unknown = sorted(set(self.tune) - names)
        if unknown:
            raise ValueError(f"tune: {unknown} are not parameters of this model (known: {sorted(names)})")
        empty = sorted(k for k, v in self.tune.items() if not v)
        if empty:
            raise ValueError(f"tune: {empty} need at least one value")
        return self


class GbtParams(TunableParams):
    max_iter: int = Field(default=150, ge=1)
    max_depth: int = Field(default=2, ge=1, le=30)
    step_size: float = Field(default=0.1, gt=0, le=1)
    subsampling_rate: float = Field(default=0.8, gt=0, le=1)
    min_instances_per_node: int = Field(default=10, ge=1)
    seed: int = 42


class LogisticParams(TunableParams):
    reg_param: float = Field(default=0.01, ge=0)
    elastic_net_param: float = Field(default=0.0, ge=0, le=1)
    max_iter: int = Field(default=100, ge=1)


class ForestParams(TunableParams):
    num_trees: int = Field(default=100, ge=1)
    max_depth: int = Field(default=5, ge=1, le=30)
    min_instances_per_node: int = Field(default=10, ge=1)
    subsampling_rate: float = Field(default=0.8, gt=0, le=1)
    feature_subset_strategy: Literal["auto", "all", "sqrt", "log2", "onethird"] = "sqrt"
    seed: int = 42


class BacktestConfig(FrozenModel):
    #: time-ordered validation cut-offs (rolling origin): T - H, T - H - step, ... (T the as-of date, H the horizon)
    folds: int = Field(default=3, ge=1, le=12)
    #: days between cut-offs; null = the horizon. At least the horizon: a training label never overlaps its fold's outcomes
    step_days: int | None = Field(default=None, ge=1)
    #: candidate fits run at once (threads of one Spark application); small fits are bound by job scheduling
    parallelism: int = Field(default=2, ge=1, le=16)


CHURN_MODELS = ("gbt", "logistic", "random_forest")
CHURN_BASELINES = ("recency",)


class SurvivalConfig(FrozenModel):
    """Time to churn (ml/survival.py): a Weibull AFT model on the churn features, trained with the
    churn model and deployed with it; its expected remaining lifetime goes to gold.customer_survival."""

    enabled: bool = True
    max_iter: int = Field(default=100, ge=1, le=10_000)
    tol: float = Field(default=1e-6, gt=0)


class ChurnConfig(FrozenModel):
    features: tuple[str, ...] = Field(min_length=1)
    #: the metric the back-test ranks candidates by (averaged over the folds)
    primary_metric: Literal["roc_auc", "pr_auc", "top_decile_lift"] = "roc_auc"
    backtest: BacktestConfig = Field(default_factory=BacktestConfig)
    #: MLlib models competing for deployment
    candidates: tuple[Literal["gbt", "logistic", "random_forest"], ...] = Field(default=CHURN_MODELS, min_length=1)
    #: rules a model must beat; when none does, the best baseline is deployed (calibrated like a model)
    baselines: tuple[Literal["recency"], ...] = Field(default=CHURN_BASELINES, min_length=1)
    gbt: GbtParams = Field(default_factory=GbtParams)
    logistic: LogisticParams = Field(default_factory=LogisticParams)
    random_forest: ForestParams = Field(default_factory=ForestParams)
    #: calibration methods tried; the one with the lowest Brier score on a later fold than it was fitted on is used
    calibration: tuple[Literal["platt", "isotonic"], ...] = Field(default=("platt", "isotonic"), min_length=1)
    #: a new model becomes champion only when its back-tested primary metric beats the champion's by more than this
    min_improvement: float = Field(default=0.005, ge=0)
    #: a newly trained model that does not become champion becomes the challenger (MLflow alias
    #: ``challenger``; one can also be set by hand); scoring scores it into gold.churn_scores_shadow
    shadow: bool = True
    survival: SurvivalConfig = Field(default_factory=SurvivalConfig)

    @field_validator("features", "candidates", "baselines", "calibration")
    @classmethod
    def _unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError(f"an entry is listed twice in {list(value)}")
        return value


class ClvConfig(FrozenModel):
    """Customer lifetime value: BG/NBD (purchases, P(alive)) and Gamma-Gamma (spend per purchase),
    fitted per region at each scoring date on the histories up to it."""

    #: the CLV and expected-purchase horizon
    horizon_days: int = Field(default=365, ge=1, le=3650)
    #: yearly discount rate of future margin (cash flows discounted monthly)
    discount_rate_annual: float = Field(default=0.10, ge=0, lt=1)
    #: L2 penalty on the BG/NBD log-parameters (lifetimes' penalizer_coef); 0 = plain maximum likelihood
    penalizer: float = Field(default=0.0, ge=0)


class MlConfig(FrozenModel):
    retrain: Literal["if_missing", "always"] = "if_missing"
    segmentation: SegmentationConfig
    churn: ChurnConfig
    clv: ClvConfig = Field(default_factory=ClvConfig)
