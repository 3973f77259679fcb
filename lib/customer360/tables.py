"""Every table of the lakehouse: its full name, layer, partitioning, key columns and the stages
(or commands) that write it.

Stages and libraries import table names from here, never from another stage, so what a stage
owns (``written_by``) and what it only reads is visible in one place. The names are plain strings
(``<layer>.<table>``), as ``Lakehouse.read`` and ``write`` take them; ``TABLES`` maps each name to
its ``Table``. ``tests/test_tables.py`` checks the catalog against the tables of test lakehouses (the
shared sample through ml, a ``c360 run``, an erasure): the same partition columns, and key columns
that identify one row.

Bronze has one table per configured source (``bronze_table``), keyed by the source's record id
(``conf/sources.yaml``) and the load; its entry here is the pattern ``bronze.<source>``. Each
source's current state is ``bronze.<source>_current`` (``current_table``), keyed by region and
record id.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

Layer = Literal["bronze", "silver", "gold", "ops"]


@dataclass(frozen=True)
class Table:
    name: str
    #: the stages (or commands, for tables no stage writes) that write the table
    written_by: tuple[str, ...]
    #: columns whose values identify one row (for bronze sources: see ``bronze_table``)
    keys: tuple[str, ...]
    partition_by: tuple[str, ...] = ("region",)
    description: str = ""

    @property
    def layer(self) -> Layer:
        return self.name.split(".", 1)[0]  # type: ignore[return-value]


_TABLES: dict[str, Table] = {}


def _table(name: str, *, written_by: str | tuple[str, ...], keys: tuple[str, ...], partition_by: tuple[str, ...] = ("region",), description: str = "") -> str:
    if name in _TABLES:
        raise ValueError(f"table {name} is declared twice")
    writers = (written_by,) if isinstance(written_by, str) else written_by
    _TABLES[name] = Table(name, writers, keys, partition_by, description)
    return name


# bronze (ingest): one table per source, plus the rows that failed their contract
BRONZE_SOURCE = _table(
    "bronze.<source>", written_by="ingest", keys=("<source_record_id>", "_source_file", "_row_number"),
    description="Every row of every file of the source that met its contract, typed, with its load's metadata.",
)
QUARANTINE = _table(
    "bronze._quarantine", written_by="ingest", keys=("source", "file", "row_number"),
    description="Every row that failed its source's contract: the raw payload and every reason.",
)
INGESTED_FILES = _table(
    "ops.ingested_files", written_by="ingest", keys=("source", "file", "run_id", "status"), partition_by=(),
    description="Each file's status changes (loading, loaded, skipped, changed, failed): an append-only log.",
)

# bronze: each source's current state (bronze.current), kept by MERGE as files load; raw values
# like bronze's, so with bronze's access
SOURCE_CURRENT = _table(
    "bronze.<source>_current", written_by=("ingest", "identity", "facts"), keys=("region", "<source_record_id>"),
    description="One row per record of the source: its latest change by sequence, then load; a delete stays as a "
    "tombstone row (change_op = 'delete').",
)
CURRENT_APPLIED = _table(
    "ops.current_applied", written_by=("ingest", "identity", "facts"), keys=("source", "file", "run_id"), partition_by=(),
    description="Which loads of which files (ops.ingested_files) each source's current-state table has taken in.",
)

# silver: identity
IDENTITY_RECORDS = _table(
    "silver.identity_records", written_by="identity", keys=("region", "source", "source_record_id"),
    description="One row per source record, standardized, PII as tokens.",
)
PII_VAULT = _table(
    "silver.pii_vault", written_by="identity", keys=("region", "token"),
    description="Token -> clear value (restricted).",
)
IDENTITY_GRAPH = _table(
    "silver.identity_graph", written_by="identity", keys=("region", "src_source", "src_record_id", "dst_source", "dst_record_id", "rule"),
    description="The links between records, one per rule that made it, with its probability.",
)
IDENTITY_HUBS = _table(
    "silver.identity_hubs", written_by="identity", keys=("region", "kind", "token"),
    description="Identifier values shared by too many people to link on (family emails, shop phones).",
)
CUSTOMER_XREF = _table(
    "silver.customer_xref", written_by="identity", keys=("region", "source", "source_record_id"),
    description="Every source record with its customer id, match rule and confidence.",
)
CUSTOMER_GOLDEN = _table(
    "silver.customer_golden", written_by="identity", keys=("customer_id",),
    description="One golden record per customer, by the survivorship rules.",
)
CUSTOMER_IDS = _table(
    "silver.customer_ids", written_by="identity", keys=("customer_id",),
    description="Every customer id ever issued, with when it was created and retired.",
)
IDENTITY_AUDIT = _table(
    "silver.identity_audit", written_by="identity", keys=("run_id", "event", "new_id", "old_ids"),
    description="Every merge, split and retirement of customer ids.",
)
IDENTITY_MODEL = _table(
    "ops.identity_model", written_by="identity", keys=("run_id", "blocking_rule", "comparison", "level"), partition_by=(),
    description="The probabilistic matching model of each run: m and u per comparison level.",
)

# silver: facts
SILVER_ORDERS = _table(
    "silver.orders", written_by="facts", keys=("region", "order_line_id"),
    description="Order lines with their customer, in the reporting currency.",
)
SILVER_WEB_EVENTS = _table(
    "silver.web_events", written_by="facts", keys=("region", "event_id"),
    description="Web and app events stitched to customers, with sessions and bot flags.",
)
SILVER_TICKETS = _table(
    "silver.support_tickets", written_by="facts", keys=("region", "ticket_id"),
    description="Support tickets with their customer.",
)
SILVER_CONSENT = _table(
    "silver.consent", written_by="facts", keys=("region", "consent_event_id"),
    description="Consent events with their customer.",
)
SILVER_QUARANTINE = _table(
    "silver._quarantine", written_by="facts", keys=("region", "source", "record_id"),
    description="Fact rows the facts stage could not use, with the reason.",
)

# gold
CUSTOMER_360 = _table(
    "gold.customer_360", written_by=("gold", "ml"), keys=("customer_id",),
    description="One row per customer of the latest run: golden record (PII as tokens), consent, the features of the "
    "run's as-of date, the current segment and churn score.",
)
CUSTOMER_FEATURES = _table(
    "gold.customer_features", written_by=("gold", "ml"), keys=("customer_id", "as_of_date", "feature_set_version"),
    partition_by=("region", "as_of_date"),
    description="One row per customer and as-of date: the behavioural features (the history the models train on).",
)
FEATURE_REGISTRY = _table(
    "gold.feature_registry", written_by="gold", keys=("region", "feature_set_version", "name"),
    description="The definition of every feature of each feature-set version.",
)
CUSTOMER_SEGMENTS = _table(
    "gold.customer_segments", written_by="ml", keys=("customer_id", "as_of_date"), partition_by=("region", "as_of_date"),
    description="One row per customer and scoring date: the segment the champion model assigned.",
)
CHURN_SCORES = _table(
    "gold.churn_scores", written_by="ml", keys=("customer_id", "as_of_date"), partition_by=("region", "as_of_date"),
    description="One row per customer and scoring date: churn probability and prediction of the champion model.",
)
CHURN_SCORES_SHADOW = _table(
    "gold.churn_scores_shadow", written_by="ml", keys=("customer_id", "as_of_date"), partition_by=("region", "as_of_date"),
    description="One row per customer and scoring date: the churn score of the challenger model, in shadow (no decision uses it).",
)
CUSTOMER_CLV = _table(
    "gold.customer_clv", written_by="ml", keys=("customer_id", "as_of_date"), partition_by=("region", "as_of_date"),
    description="One row per buyer and scoring date: BG/NBD expected purchases and P(alive), Gamma-Gamma spend, lifetime value.",
)
CUSTOMER_SURVIVAL = _table(
    "gold.customer_survival", written_by="ml", keys=("customer_id", "as_of_date"), partition_by=("region", "as_of_date"),
    description="One row per buyer past cold start and scoring date: active or lapsed, Weibull AFT expected and median remaining lifetime.",
)
CLV_BY_SEGMENT = _table(
    "gold.finance_clv_by_segment", written_by="ml", keys=("as_of_date", "segment"), partition_by=("region", "as_of_date"),
    description="Finance mart: customers, lifetime value and expected purchases per segment, region and scoring date.",
)
SEGMENT_PROFILES = _table(
    "gold.segment_profiles", written_by="ml", keys=("region", "model_name", "model_version", "segment_id"),
    description="One row per segment of each trained segmentation model: size, revenue share, feature means.",
)
REVENUE_MONTHLY = _table(
    "gold.finance_revenue_monthly", written_by="gold", keys=("region", "month"),
    description="Revenue per region and month in the reporting currency.",
)
COHORT_RETENTION = _table(
    "gold.finance_cohort_retention", written_by="gold", keys=("region", "cohort_month", "months_since"),
    description="Customers of each first-order month still ordering N months later.",
)
CUSTOMER_VALUE = _table(
    "gold.finance_customer_value", written_by="gold", keys=("customer_id",),
    description="Lifetime value per customer: revenue, returns, cost and margin.",
)

# ops: quality, monitoring, erasure and the run log
DQ_RESULTS = _table(
    "ops.dq_results", written_by=("quality", "gold"), keys=("run_id", "region", "table", "check"),
    description="Every data-quality check result (the quality stage and the gold stage's gate).",
)
ALERTS = _table(
    "ops.alerts", written_by="monitoring", keys=("run_id", "region", "kind", "subject"),
    description="Drift, segment-shift, realized-churn and fairness alerts.",
)
DRIFT_METRICS = _table(
    "ops.drift_metrics", written_by="monitoring", keys=("run_id", "region", "metric", "name"),
    description="Every drift measurement of a monitoring run.",
)
SHADOW_COMPARISON = _table(
    "ops.shadow_comparison", written_by="monitoring", keys=("run_id", "region"),
    description="Champion against the shadow challenger: score distributions, realized performance, a recommendation.",
)
FAIRNESS_REPORT = _table(
    "ops.fairness_report", written_by="monitoring", keys=("run_id", "region", "attribute", "group", "metric"),
    description="Churn-model metrics per protected group.",
)
ERASURE_REQUESTS = _table(
    "ops.erasure_requests", written_by="c360 erase", keys=("request_id",), partition_by=(),
    description="Erasure requests and their status (pending until every table is rewritten).",
)
ERASURE_TOMBSTONES = _table(
    "ops.erasure_tombstones", written_by="c360 erase", keys=("request_id", "region", "kind", "token"),
    description="Tokens of erased identifiers: a later load of the same person is flagged.",
)
ERASURE_FILES = _table(
    "ops.erasure_source_files", written_by="c360 erase", keys=("request_id", "source", "file"),
    description="Landing files an erasure rewrote, and how many rows it removed from each.",
)
PIPELINE_RUNS = _table(
    "ops.pipeline_runs", written_by="every pipeline command", keys=("run_id",), partition_by=(),
    description="One row per pipeline run: regions, stages, status.",
)
RUN_METRICS = _table(
    "ops.run_metrics", written_by="every pipeline command", keys=("run_id", "stage", "table", "metric", "region"),
    description="The stages' counts of each run (rows in and out per table and region).",
)
JOB_RUNS = _table(
    "ops.job_runs", written_by="every job", keys=("run_id", "job"), partition_by=(),
    description="One row per job run: who, which config and commit, table versions read and written, row counts.",
)

TABLES = MappingProxyType(_TABLES)


def bronze_table(source: str) -> str:
    """``bronze.<source>``: one table per configured source."""
    return f"bronze.{source}"


def current_table(source: str) -> str:
    """``bronze.<source>_current``: the current state of a configured source."""
    return f"bronze.{source}_current"


def table(name: str) -> Table:
    """The catalog entry of ``name`` (a ``bronze.<source>`` name gives the bronze pattern, a
    ``bronze.<source>_current`` one the current-state pattern)."""
    if name in TABLES:
        return TABLES[name]
    if name.startswith("bronze.") and name.endswith("_current"):
        return TABLES[SOURCE_CURRENT]
    if name.startswith("bronze.") and not name.startswith("bronze._"):
        return TABLES[BRONZE_SOURCE]
    raise KeyError(f"{name} is not in the table catalog (customer360.tables)")
