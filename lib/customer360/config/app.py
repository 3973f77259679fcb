"""The whole configuration: :class:`AppConfig` composes every domain's model and checks the rules
that span domains (regions against rates, the one Unity Catalog, the dev key only locally)."""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from pydantic import Field, field_validator, model_validator

from customer360.config.base import FrozenModel
from customer360.config.gold import FeaturesConfig, FinanceConfig
from customer360.config.governance import GovernanceConfig, PiiConfig
from customer360.config.identity import IdentityConfig
from customer360.config.lakehouse import LakehouseConfig, SparkConfig
from customer360.config.ml import MlConfig, MlflowConfig
from customer360.config.monitoring import MonitoringConfig
from customer360.config.quality import QualityConfig
from customer360.config.regions import RegionConfig
from customer360.config.sources import IngestConfig, SampleDataConfig, SourceMapping
from customer360.errors import ConfigError

log = logging.getLogger(__name__)


PIPELINE_STAGES = ("ingest", "identity", "facts", "quality", "gold", "ml", "monitoring")


class PipelineConfig(FrozenModel):
    regions: tuple[str, ...] = Field(min_length=1)
    #: the stages ``c360 run`` runs, in pipeline order (e.g. [ingest, identity] to stop after identity)
    stages: tuple[str, ...] = Field(default=PIPELINE_STAGES, min_length=1)

    @field_validator("stages")
    @classmethod
    def _known_stages(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [s for s in value if s not in PIPELINE_STAGES]
        if unknown:
            raise ValueError(f"unknown stage(s) {unknown}; stages: {', '.join(PIPELINE_STAGES)}")
        ordered = [s for s in PIPELINE_STAGES if s in value]
        if list(value) != ordered:
            raise ValueError(f"stages run in pipeline order: write {ordered}")
        return value


class AppConfig(FrozenModel):
    env: str
    lakehouse: LakehouseConfig
    spark: SparkConfig
    pipeline: PipelineConfig
    pii: PiiConfig
    ingest: IngestConfig
    sample_data: SampleDataConfig
    mlflow: MlflowConfig
    sources: dict[str, SourceMapping]
    identity: IdentityConfig
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    finance: FinanceConfig
    ml: MlConfig
    governance: GovernanceConfig
    quality: QualityConfig = Field(default_factory=QualityConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    regions: dict[str, RegionConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _dev_key_only_locally(self) -> AppConfig:
        if self.pii.allow_dev_key and self.env != "local":
            raise ValueError(f"pii.allow_dev_key: only the local env may use the public development key, not {self.env!r}")
        return self

    @model_validator(mode="after")
    def _one_unity_catalog(self) -> AppConfig:
        names, governed = self.lakehouse.catalog.name, self.governance.unity_catalog.catalog
        if names is not None and names != governed:
            raise ValueError(
                f"lakehouse.catalog.name: the tables are named in catalog {names!r} but the governance "
                f"statements target {governed!r} (governance.unity_catalog.catalog); set both to one catalog"
            )
        return self

    @model_validator(mode="after")
    def _regions_consistent(self) -> AppConfig:
        for code, region in self.regions.items():
            if region.code != code:
                raise ValueError(f"regions.{code}.code: file for region {code!r} declares code {region.code!r}")
        rated = {*self.finance.fx_rates, self.finance.reporting_currency}
        for code, region in self.regions.items():
            if region.currency not in rated:
                raise ValueError(
                    f"finance.fx_rates: region {code} uses {region.currency}, which has no rates to "
                    f"{self.finance.reporting_currency}"
                )
        unknown = [code for code in self.pipeline.regions if code not in self.regions]
        if unknown:
            raise ValueError(
                f"pipeline.regions: names {unknown} but conf/regions has only {sorted(self.regions)}"
            )
        return self

    def select_regions(self, requested: Sequence[str] | None) -> tuple[str, ...]:
        """Resolve ``--region`` values: none means ``pipeline.regions``; ``all`` means every region file."""
        if not requested:
            return self.pipeline.regions
        codes: list[str] = []
        for item in requested:
            for code in (part.strip().lower() for part in item.split(",")):
                if not code:
                    continue
                if code == "all":
                    codes.extend(self.regions)
                elif code in self.regions:
                    codes.append(code)
                else:
                    raise ConfigError(
                        f"unknown region {code!r}; configured regions: {', '.join(sorted(self.regions))}"
                    )
        return tuple(dict.fromkeys(codes))

    def pii_hash_key(self) -> bytes:
        """The PII hashing key from the environment; the dev key only where the env allows it."""
        value = os.environ.get(self.pii.hash_key_env)
        if value:
            return value.encode("utf-8")
        if self.pii.allow_dev_key:
            log.warning(
                "%s is not set: using the built-in development key (env %r allows it; never in prod)",
                self.pii.hash_key_env,
                self.env,
            )
            return b"customer360-development-key-not-secret"
        raise ConfigError(
            f"environment variable {self.pii.hash_key_env} (pii.hash_key_env) is not set; "
            f"the PII hashing key is a secret and is read only from the environment"
        )
