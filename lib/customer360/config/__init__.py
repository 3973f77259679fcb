"""Configuration: YAML files in conf/ loaded into frozen, validated pydantic models.

One module per domain holds its models (``lakehouse``, ``sources``, ``regions``, ``identity``,
``gold``, ``ml``, ``governance``, ``quality``, ``monitoring``), ``app`` composes them into
:class:`AppConfig`, and ``loading`` reads and layers the files (precedence, provenance of every
value, ``--set``). Everything is re-exported here: import from ``customer360.config``.
"""
from __future__ import annotations

from customer360.config.app import PIPELINE_STAGES, AppConfig, PipelineConfig
from customer360.config.gold import BotRule, ColdStartRule, FeaturesConfig, FinanceConfig, FxRate
from customer360.config.governance import (
    ErasureConfig,
    GovernanceConfig,
    PiiConfig,
    PrincipalsConfig,
    RoleConfig,
    SqlBoundsConfig,
    UnityCatalogConfig,
)
from customer360.config.identity import (
    BLOCKING_ATTRIBUTES,
    PII_ATTRIBUTES,
    BlockingRule,
    IdentityConfig,
    MatchingConfig,
    SurvivorshipConfig,
)
from customer360.config.lakehouse import CatalogConfig, LakehouseConfig, SparkConfig
from customer360.config.loading import (
    CONF_DIR_ENV,
    DOTTED_KEY_MAPS,
    SET_SOURCE,
    SETTABLE_GOVERNANCE,
    SETTABLE_GOVERNANCE_NAMES,
    SHARED_FILES,
    default_conf_dir,
    load_config,
    parse_overrides,
    resolve_root,
)
from customer360.config.ml import (
    BacktestConfig,
    ChurnConfig,
    ClvConfig,
    ForestParams,
    GbtParams,
    LogisticParams,
    MlConfig,
    MlflowConfig,
    SegmentationConfig,
    SegmentFeature,
    SegmentRule,
    StabilityConfig,
    TaxonomyEntry,
)
from customer360.config.monitoring import FairnessConfig, MonitoringConfig
from customer360.config.quality import QualityCheckConfig, QualityConfig
from customer360.config.regions import ChurnCosts, PostcodeRule, RegionConfig, SegmentCountBounds
from customer360.config.sources import CANONICAL_ATTRIBUTES, IngestConfig, KafkaConfig, SampleDataConfig, SourceMapping

__all__ = [
    "BacktestConfig",
    "ChurnCosts",
    "ClvConfig",
    "ForestParams",
    "BLOCKING_ATTRIBUTES",
    "CANONICAL_ATTRIBUTES",
    "CONF_DIR_ENV",
    "DOTTED_KEY_MAPS",
    "PII_ATTRIBUTES",
    "PIPELINE_STAGES",
    "SETTABLE_GOVERNANCE",
    "SETTABLE_GOVERNANCE_NAMES",
    "SET_SOURCE",
    "SHARED_FILES",
    "AppConfig",
    "BlockingRule",
    "BotRule",
    "CatalogConfig",
    "ChurnConfig",
    "ColdStartRule",
    "ErasureConfig",
    "FairnessConfig",
    "FeaturesConfig",
    "FinanceConfig",
    "FxRate",
    "GbtParams",
    "GovernanceConfig",
    "IdentityConfig",
    "IngestConfig",
    "KafkaConfig",
    "LakehouseConfig",
    "LogisticParams",
    "MatchingConfig",
    "MlConfig",
    "MlflowConfig",
    "MonitoringConfig",
    "PiiConfig",
    "PipelineConfig",
    "PostcodeRule",
    "PrincipalsConfig",
    "QualityCheckConfig",
    "QualityConfig",
    "RegionConfig",
    "RoleConfig",
    "SampleDataConfig",
    "SegmentCountBounds",
    "SegmentFeature",
    "SegmentRule",
    "SegmentationConfig",
    "SourceMapping",
    "SparkConfig",
    "SqlBoundsConfig",
    "StabilityConfig",
    "SurvivorshipConfig",
    "TaxonomyEntry",
    "UnityCatalogConfig",
    "default_conf_dir",
    "load_config",
    "parse_overrides",
    "resolve_root",
]
