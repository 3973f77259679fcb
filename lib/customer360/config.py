"""Configuration: YAML files in conf/ loaded into frozen, validated pydantic models.

Precedence, lowest first: ``base.yaml``, ``sources.yaml``, ``identity.yaml``, ``gold.yaml``, ``ml.yaml``,
``governance.yaml`` < ``<env>.yaml`` <
``regions/<code>.yaml`` < ``--set key=value``. Each region's settings start from
``region_defaults`` (base, then env) and are overlaid by that region's file.

Every leaf value remembers which file (or ``--set``) gave it, so a validation error names
the file and the dotted key. Secrets never live in files: the PII hashing key is read from
the environment variable named by ``pii.hash_key_env``.
"""
from __future__ import annotations

import copy
import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from datetime import date
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from customer360.errors import ConfigError

log = logging.getLogger(__name__)

CONF_DIR_ENV = "C360_CONF_DIR"
DOTTED_KEY_MAPS = (("spark", "conf"), ("lakehouse", "storage_options"))
SET_SOURCE = "--set"
#: files every environment loads first, in this order
SHARED_FILES = ("base", "sources", "identity", "gold", "ml", "governance")

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


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _as_strings(value: Any) -> Any:
    """Spark settings and storage options are strings; YAML gives bools and numbers too."""
    if not isinstance(value, dict):
        return value
    return {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()}


class CatalogConfig(_Frozen):
    """Tables by name: ``<layer>.<table>`` in the session's catalog, or ``<name>.<layer>.<table>``
    in the Unity Catalog catalog ``name``. Names are external tables over the lakehouse's paths."""

    #: Unity Catalog catalog of three-level names (Databricks); null: the session catalog's two-level names
    name: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    #: runs (c360 run, each stage job, spark-submit) register the tables they wrote, notebooks and
    #: `c360 catalog` all tables; false: paths only
    enabled: bool = True
    #: where a local session keeps the names: derby (Spark's Hive metastore under <root>/_catalog,
    #: kept between runs; one process at a time holds it, the others keep names for their session)
    #: or memory (this session only). Clusters and Databricks use their own metastore.
    local_metastore: Literal["derby", "memory"] = "derby"


class LakehouseConfig(_Frozen):
    root: str = Field(min_length=1)
    engine: Literal["auto", "delta-spark", "delta-rs"] = "auto"
    vacuum_retention_hours: int = Field(default=168, ge=0)
    commit_retries: int = Field(default=20, ge=0)
    storage_options: dict[str, str] = Field(default_factory=dict)
    #: layers whose tables record Change Data Feed (delta-spark; incremental runs read it)
    change_data_feed_layers: tuple[Literal["bronze", "silver", "gold", "ops"], ...] = ("silver", "gold")
    #: how long a table's log keeps old versions for time travel (delta.logRetentionDuration)
    log_retention_days: int = Field(default=30, ge=1)
    #: deletes mark rows in deletion vectors instead of rewriting files (delta-spark only; such
    #: tables are unreadable for delta-rs, so off by default); erasure purges them with REORG
    deletion_vectors: bool = False
    #: columns each table is Z-ordered by when optimized (`c360 optimize TABLE`)
    zorder: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    #: the tables' names in the metastore or Unity Catalog
    catalog: CatalogConfig = Field(default_factory=CatalogConfig)

    _strings = field_validator("storage_options", mode="before")(classmethod(lambda cls, v: _as_strings(v)))

    def table_properties(self, layer: str) -> dict[str, str]:
        """Delta table properties a new table of ``layer`` is created with."""
        props = {
            "delta.logRetentionDuration": f"interval {self.log_retention_days} days",
            # vacuum's default retention is also how long removed files stay for time travel
            "delta.deletedFileRetentionDuration": f"interval {self.vacuum_retention_hours} hours",
        }
        if layer in self.change_data_feed_layers:
            props["delta.enableChangeDataFeed"] = "true"
        if self.deletion_vectors:
            props["delta.enableDeletionVectors"] = "true"
        return props

    @field_validator("root")
    @classmethod
    def _no_percent(cls, value: str) -> str:
        if "%" in value:
            raise ValueError("'%' is not allowed in the lakehouse root (Delta paths are URL-encoded)")
        return value


class SparkConfig(_Frozen):
    master: str = "local[2]"
    app_name: str = "customer360"
    driver_memory: str = Field(default="4g", pattern=r"^\d+[kmgt]?$")
    shuffle_partitions: int = Field(default=8, ge=1)
    ui_enabled: bool = False
    #: folder of JVM jars (Delta Lake, GraphFrames, Kafka) put on a local session's spark.jars;
    #: null: the checkout's jars/ (filled by `make jars`), when there is one
    jars_dir: str | None = None
    #: a local session's JVM log (lib/customer360/log4j2-redacted.properties) and PySpark's query
    #: loggers keep exceptions' classes and error classes, never their messages (they quote row values)
    redact_jvm_logs: bool = True
    conf: dict[str, str] = Field(default_factory=dict)

    _strings = field_validator("conf", mode="before")(classmethod(lambda cls, v: _as_strings(v)))


PIPELINE_STAGES = ("ingest", "identity", "facts", "quality", "gold", "ml", "monitoring")


class PipelineConfig(_Frozen):
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


class PiiConfig(_Frozen):
    hash_key_env: str = Field(pattern=r"^[A-Z_][A-Z0-9_]*$")
    #: Local runs may fall back to a fixed, publicly known key; never allowed in prod.
    allow_dev_key: bool = False


class IngestConfig(_Frozen):
    #: Raw source files: ``<landing_root>/<source>/<region>/<files>``.
    landing_root: str = Field(min_length=1)


class SampleDataConfig(_Frozen):
    """The bundled generator: ``c360 run`` creates the sample once when enabled (local runs)."""

    enabled: bool = False
    dir: str = "sample_data"
    scale: float = Field(default=0.1, gt=0)
    seed: int = 42


class MlflowConfig(_Frozen):
    #: None: a sqlite store inside the lakehouse folder (``<root>/_mlflow``); any MLflow URI otherwise
    tracking_uri: str | None = None
    experiment_prefix: str = "/Shared/customer360"
    #: registered models are ``<prefix>_<region>_segmentation`` / ``_churn`` (``catalog.schema.c360`` on Unity Catalog)
    registered_model_prefix: str = Field(default="c360", pattern=r"^[A-Za-z0-9_.]+$")


class SegmentCountBounds(_Frozen):
    min: int = Field(ge=2)
    max: int = Field(ge=2)

    @model_validator(mode="after")
    def _ordered(self) -> SegmentCountBounds:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        return self


class PostcodeRule(_Frozen):
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


class RegionConfig(_Frozen):
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


class SourceMapping(_Frozen):
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


class BlockingRule(_Frozen):
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


class MatchingConfig(_Frozen):
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


class SurvivorshipConfig(_Frozen):
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


class IdentityConfig(_Frozen):
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


class ColdStartRule(_Frozen):
    min_orders: int = Field(default=2, ge=0)
    min_tenure_days: int = Field(default=30, ge=0)


class BotRule(_Frozen):
    """When a web session is bot-like (flagged in silver, left out of every feature)."""

    max_session_events: int = Field(default=300, ge=2)
    min_events: int = Field(default=20, ge=2)
    max_events_per_minute: float = Field(default=20.0, gt=0)


class FeaturesConfig(_Frozen):
    #: the date features are computed as of; None means the data's end
    as_of: date | None = None
    #: robust z-score (median/MAD) above which an order is bulk and a customer's revenue an outlier
    outlier_z: float = Field(default=3.5, gt=0)
    cold_start: ColdStartRule = Field(default_factory=ColdStartRule)
    bot: BotRule = Field(default_factory=BotRule)


class FxRate(_Frozen):
    valid_from: date
    #: reporting-currency units per unit of the currency
    rate: float = Field(gt=0)


class FinanceConfig(_Frozen):
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


class SegmentFeature(_Frozen):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    transform: Literal["log", "none"] = "none"
    weight: float = Field(default=1.0, gt=0)
    fill: float = 0.0


class SegmentRule(_Frozen):
    name: str = Field(min_length=1)
    #: a Spark SQL boolean expression over gold.customer_features columns
    when: str = Field(min_length=1)


class TaxonomyEntry(_Frozen):
    name: str = Field(min_length=1)
    above: dict[str, float] = Field(default_factory=dict)
    below: dict[str, float] = Field(default_factory=dict)
    min_median: dict[str, float] = Field(default_factory=dict)


class StabilityConfig(_Frozen):
    bootstrap_samples: int = Field(default=2, ge=0)
    sample_fraction: float = Field(default=0.8, gt=0, le=1)
    #: the earlier as-of date a second model is fitted on (adjusted Rand index between the two); 0 = skip
    previous_as_of_days: int = Field(default=30, ge=0)


class SegmentationConfig(_Frozen):
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


class GbtParams(_Frozen):
    max_iter: int = Field(default=150, ge=1)
    max_depth: int = Field(default=2, ge=1, le=30)
    step_size: float = Field(default=0.1, gt=0, le=1)
    subsampling_rate: float = Field(default=0.8, gt=0, le=1)
    min_instances_per_node: int = Field(default=10, ge=1)
    seed: int = 42


class LogisticParams(_Frozen):
    reg_param: float = Field(default=0.01, ge=0)
    elastic_net_param: float = Field(default=0.0, ge=0, le=1)
    max_iter: int = Field(default=100, ge=1)


class ChurnConfig(_Frozen):
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


class MlConfig(_Frozen):
    retrain: Literal["if_missing", "always"] = "if_missing"
    segmentation: SegmentationConfig
    churn: ChurnConfig


_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
_TABLE = r"^(bronze|silver|gold|ops)\.[a-z0-9_*?\[\]]+$"


class RoleConfig(_Frozen):
    #: fnmatch patterns of the tables the role may read, e.g. gold.* or gold.finance_*
    tables: tuple[Annotated[str, Field(pattern=_TABLE)], ...] = Field(min_length=1)
    #: PII columns: clear (the vault's value), token (as stored), mask ("***"), drop (column removed)
    pii: Literal["clear", "token", "mask", "drop"]
    #: the Unity Catalog account group that holds the role
    group: str = Field(pattern=_NAME)
    #: may export contact details (c360 export)
    contact_export: bool = False


class UnityCatalogConfig(_Frozen):
    catalog: str = Field(default="main", pattern=_NAME)
    mask_function: str = Field(default="governance.mask_pii", pattern=r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")


class ErasureConfig(_Frozen):
    #: identity attributes whose tokens the tombstone keeps besides the records' keys (a record with
    #: one of them is not ingested again)
    tombstone_attributes: tuple[Literal["email", "loyalty_id"], ...] = ("email",)
    #: checkpoint folders (under <root>/_checkpoints) of other Spark applications unchanged this
    #: long are removed by an erasure; newer ones may belong to a running job and are left (logged)
    checkpoint_idle_hours: float = Field(default=6.0, ge=0, le=24 * 30)


class SqlBoundsConfig(_Frozen):
    """Bounds on each role query (c360 sql and every other door to role SQL)."""

    max_query_chars: int = Field(default=20_000, ge=100, le=1_000_000)
    #: parentheses and brackets open at once
    max_nesting: int = Field(default=64, ge=4, le=500)
    #: plan and expression nodes of the parsed query
    max_plan_nodes: int = Field(default=5_000, ge=50, le=100_000)
    #: rows one query may return
    max_rows: int = Field(default=100_000, ge=1, le=10_000_000)
    #: seconds before the query's Spark jobs are cancelled
    timeout_seconds: float = Field(default=300.0, gt=0, le=86_400)
    #: Spark's estimate of the bytes the query's tables hold, checked before it runs
    max_scan_bytes: int = Field(default=10 * 1024**3, ge=1)


class PrincipalsConfig(_Frozen):
    """Who may take a role (governance/principals.py): a signed token, the lakehouse's owner, OS groups."""

    #: the OS user that owns the local lakehouse folder may take any role (they can read the files anyway)
    owner_is_operator: bool = True
    #: the role of a principal that may take several and names none
    default_role: str = Field(default="analyst", pattern=_NAME)
    #: the longest a role token (c360 governance token) may last
    token_max_hours: float = Field(default=12.0, gt=0, le=24 * 30)


class GovernanceConfig(_Frozen):
    #: table -> its PII columns (tokens in the tables; the vault holds the values)
    pii_columns: dict[Annotated[str, Field(pattern=_TABLE)], tuple[str, ...]] = Field(default_factory=dict)
    roles: dict[Annotated[str, Field(pattern=_NAME)], RoleConfig] = Field(min_length=1)
    unity_catalog: UnityCatalogConfig = Field(default_factory=UnityCatalogConfig)
    erasure: ErasureConfig = Field(default_factory=ErasureConfig)
    sql: SqlBoundsConfig = Field(default_factory=SqlBoundsConfig)
    principals: PrincipalsConfig = Field(default_factory=PrincipalsConfig)

    @model_validator(mode="after")
    def _default_role_is_a_role(self):
        if self.principals.default_role not in self.roles:
            raise ValueError(f"governance.principals.default_role {self.principals.default_role!r} is not one of the roles")
        return self


class QualityCheckConfig(_Frozen):
    check: Literal["not_null", "unique", "accepted_values", "range", "freshness", "row_count_change"]
    columns: tuple[str, ...] = ()
    severity: Literal["error", "warn"] = "error"
    values: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    max_age_hours: float | None = Field(default=None, gt=0)
    max_change: float | None = Field(default=None, ge=0)
    name: str | None = None


class QualityConfig(_Frozen):
    #: table -> its checks; the quality stage checks bronze and silver tables, the gold stage its
    #: own outputs before it writes them
    checks: dict[Annotated[str, Field(pattern=_TABLE)], tuple[QualityCheckConfig, ...]] = Field(default_factory=dict)


class FairnessConfig(_Frozen):
    attributes: tuple[Literal["age_band", "gender"], ...] = ("age_band", "gender")
    min_disparate_impact: float = Field(default=0.8, gt=0, le=1)
    max_equal_opportunity_difference: float = Field(default=0.1, gt=0, le=1)
    min_group_size: int = Field(default=30, ge=1)


class MonitoringConfig(_Frozen):
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
    #: any alert makes the run exit non-zero (c360 run/monitor --fail-on-alert)
    fail_on_alert: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> MonitoringConfig:
        if self.psi_alert < self.psi_warn:
            raise ValueError(f"monitoring.psi_alert ({self.psi_alert}) must not be below psi_warn ({self.psi_warn})")
        return self


class AppConfig(_Frozen):
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


# --------------------------------------------------------------------------- loading


class _Layered:
    """A nested dict plus, for every leaf, the name of the layer that set it."""

    def __init__(self) -> None:
        self.tree: dict[str, Any] = {}
        self.origin: dict[tuple[str, ...], str] = {}

    def overlay(self, data: Mapping[str, Any], source: str, prefix: tuple[str, ...] = ()) -> None:
        target = self.tree
        for key in prefix:
            target = target.setdefault(key, {})
        self._merge(target, data, source, prefix)

    def _merge(self, target: dict[str, Any], data: Mapping[str, Any], source: str, path: tuple[str, ...]) -> None:
        for key, value in data.items():
            key = str(key)
            here = (*path, key)
            if isinstance(value, Mapping) and value and isinstance(target.get(key), dict):
                self._merge(target[key], value, source, here)
            elif isinstance(value, Mapping) and value:
                target[key] = {}
                self._drop_origin(here)
                self._merge(target[key], value, source, here)
            else:
                target[key] = copy.deepcopy(value)
                self._drop_origin(here)
                self.origin[here] = source

    def _drop_origin(self, path: tuple[str, ...]) -> None:
        for known in [p for p in self.origin if p[: len(path)] == path]:
            del self.origin[known]

    def source_of(self, path: Sequence[str | int]) -> str | None:
        keys = tuple(str(p) for p in path)
        while keys:
            if keys in self.origin:
                return self.origin[keys]
            below = [src for p, src in self.origin.items() if p[: len(keys)] == keys]
            if below:
                return below[-1]
            keys = keys[:-1]
        return None


def default_conf_dir() -> Any:
    """``$C360_CONF_DIR``, else ``./conf``, else the copy a wheel carries, else the checkout's."""
    env_dir = os.environ.get(CONF_DIR_ENV)
    if env_dir:
        return Path(env_dir)
    local = Path.cwd() / "conf"
    if (local / "base.yaml").is_file():
        return local
    try:
        packaged = resources.files("customer360.conf")
    except ModuleNotFoundError:  # an editable install maps lib/ only
        return Path(__file__).resolve().parents[2] / "conf"
    # a folder of an installed wheel, or a Traversable inside a zip (spark-submit --py-files)
    return Path(str(packaged)) if Path(str(packaged)).is_dir() else packaged


def _yaml_files(folder) -> list:
    """The ``*.yaml`` files of a folder (a Path, or a Traversable inside a zip)."""
    if not folder.is_dir():
        return []
    return [p for p in folder.iterdir() if p.name.endswith(".yaml") and p.is_file()]


class _Yaml12Loader(yaml.SafeLoader):
    """SafeLoader whose booleans are only true/false: 'NO' (Norway) or 'on' stay strings."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Yaml12Loader)  # noqa: S506 - a SafeLoader subclass


def _read_yaml(path: Path, label: str) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{label}: file not found") from exc
    try:
        data = _load_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{label}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: top level must be a mapping, got {type(data).__name__}")
    return data


#: the only governance keys ``--set`` may change: where the Unity Catalog statements point, never
#: what a role may read or see (a user choosing ``--set governance.roles.finance.pii=clear``)
SETTABLE_GOVERNANCE_NAMES = ("unity_catalog",)
SETTABLE_GOVERNANCE = tuple((name,) for name in SETTABLE_GOVERNANCE_NAMES)


def parse_overrides(items: Iterable[str]) -> list[tuple[tuple[str, ...], Any]]:
    """Parse ``key.path=value`` strings; values are YAML scalars or flow collections."""
    parsed = []
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not re.fullmatch(r"[A-Za-z0-9_*-]+(\.[A-Za-z0-9_*-]+)*", key):
            raise ConfigError(f"--set {item!r}: expected key.path=value, e.g. spark.shuffle_partitions=4")
        try:
            value = _load_yaml(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: value is not valid YAML: {exc}") from exc
        parts = tuple(key.split("."))
        # maps whose keys themselves contain dots: spark.conf.<spark key>, lakehouse.storage_options.<key>
        for prefix in DOTTED_KEY_MAPS:
            if parts[: len(prefix)] == prefix and len(parts) > len(prefix):
                parts = (*prefix, ".".join(parts[len(prefix) :]))
        parsed.append((parts, value))
    return parsed


def _nest(path: Sequence[str], value: Any) -> dict[str, Any]:
    for key in reversed(path):
        value = {key: value}
    return value


def load_config(
    env: str = "local",
    *,
    overrides: Iterable[str] = (),
    conf_dir: str | Path | None = None,
) -> AppConfig:
    """Load ``base`` < ``sources`` < ``<env>`` < ``regions/*`` < overrides into an :class:`AppConfig`."""
    root: Any = Path(conf_dir) if conf_dir is not None else default_conf_dir()
    if not (root / "base.yaml").is_file():
        raise ConfigError(f"{root}: no base.yaml here; pass --conf-dir or set {CONF_DIR_ENV}")
    if not re.fullmatch(r"[a-z0-9_-]+", env):
        raise ConfigError(f"environment name {env!r} must be lower-case letters, digits, '-' or '_'")
    env_file = root / f"{env}.yaml"
    if env in SHARED_FILES or not env_file.is_file():
        known = sorted(p.name[:-5] for p in _yaml_files(root) if p.name[:-5] not in SHARED_FILES)
        raise ConfigError(f"unknown environment {env!r}: no {env_file}; known: {', '.join(known)}")

    layers = _Layered()
    for path in (*(root / f"{name}.yaml" for name in SHARED_FILES), env_file):
        label = str(path)
        data = _read_yaml(path, label)
        if "regions" in data or "env" in data:
            bad = "regions" if "regions" in data else "env"
            raise ConfigError(f"{label}: key {bad!r} is not set in files (regions come from conf/regions/)")
        layers.overlay(data, label)
    layers.overlay({"env": env}, "--env")

    region_files = sorted(_yaml_files(root / "regions"), key=lambda p: p.name)
    if not region_files:
        raise ConfigError(f"{root / 'regions'}: no region files (<code>.yaml)")
    defaults = layers.tree.pop("region_defaults", {})
    default_origin = {p[1:]: src for p, src in layers.origin.items() if p[:1] == ("region_defaults",)}
    for path in region_files:
        code = path.name[:-5]
        layers.overlay({"regions": {code: copy.deepcopy(defaults)}}, "region_defaults")
        for sub, src in default_origin.items():
            layers.origin[("regions", code, *sub)] = src
        layers.overlay(_read_yaml(path, str(path)), str(path), prefix=("regions", code))

    for key_path, value in parse_overrides(overrides):
        if key_path[:1] == ("governance",) and key_path[1:2] not in SETTABLE_GOVERNANCE:
            raise ConfigError(
                f"--set {'.'.join(key_path)}: the access policy (roles, PII columns, SQL bounds) comes from the "
                f"configuration files only; --set may change only {', '.join(f'governance.{n}.*' for n in SETTABLE_GOVERNANCE_NAMES)}"
            )
        if key_path[:1] == ("regions",) and len(key_path) > 2 and key_path[1] == "*":
            for code in layers.tree.get("regions", {}):
                layers.overlay(_nest(key_path[2:], value), SET_SOURCE, prefix=("regions", code))
        elif key_path[:1] == ("region_defaults",):
            raise ConfigError(
                f"--set {'.'.join(key_path)}: set region values as regions.<code>.<key> or regions.*.<key>"
            )
        else:
            layers.overlay(_nest(key_path, value), SET_SOURCE)

    for section, key in (("lakehouse", "root"), ("ingest", "landing_root"), ("sample_data", "dir")):
        node = layers.tree.get(section)
        if isinstance(node, dict) and isinstance(node.get(key), str):
            node[key] = resolve_root(node[key])
    try:
        return AppConfig.model_validate(layers.tree)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, layers)) from None


def resolve_root(root: str) -> str:
    """URIs (s3://, abfss://, dbfs:/) stay as they are; local paths become absolute."""
    if not root or "://" in root or root.startswith("dbfs:"):
        return root
    return str(Path(root).expanduser().resolve())


def _describe(exc: ValidationError, layers: _Layered) -> str:
    lines = []
    for error in exc.errors():
        loc = [str(p) for p in error["loc"]]
        key = ".".join(loc) or "<root>"
        source = layers.source_of(loc)
        if error["type"] == "missing":
            where = source or "no file sets it; add it to base.yaml or pass --set"
            lines.append(f"{where}: {key}: required value is missing")
        elif error["type"] == "extra_forbidden":
            lines.append(f"{source or '?'}: {key}: unknown key")
        elif not loc:  # a rule across keys; its message starts with the dotted key it is about
            message = error["msg"].removeprefix("Value error, ")
            named = re.match(r"([a-z_]+(?:\.[a-z_*]+)+):", message)
            where = layers.source_of(named.group(1).split(".")) if named else None
            lines.append(f"{where or 'config'}: {message}")
        else:
            lines.append(f"{source or 'config'}: {key}: {error['msg']} (got {error.get('input')!r})")
    return "invalid configuration:\n  " + "\n  ".join(lines)
