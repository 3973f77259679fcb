"""``gold.customer_360``: one row per customer - golden attributes (tokens), consent, latest features,
and the ML columns the segmentation and churn stages fill."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import pyspark.sql.functions as F
from pyspark.sql import DataFrame

from customer360.features.registry import expand
from customer360.governance.consent import with_consent

GOLDEN_COLUMNS = (
    "customer_type", "household_id", "first_name", "last_name", "email", "phone", "date_of_birth", "street", "city",
    "postcode", "country", "loyalty_id", "company_name", "record_count", "sources", "first_seen", "last_seen",
)

CONSENT_COLUMNS = ("marketing_consent", "profiling_consent", "erasure_requested", "consent_updated_at")
ML_COLUMNS = {
    "segment": "string", "global_segment": "string", "segment_model_version": "string",
    "churn_score": "double", "churn_predicted": "boolean", "churn_cold_start": "boolean", "churn_model_version": "string",
    "expected_purchases": "double", "p_alive": "double", "clv": "double", "expected_remaining_days": "double",
}

BASE_COMMENTS = {
    "customer_id": "stable customer id (silver.customer_ids)",
    "customer_type": "B2C or B2B",
    "household_id": "customer id of the household's first member (shared address and surname)",
    "first_name": "golden first name, as a PII token (silver.pii_vault holds the value)",
    "last_name": "golden last name, PII token",
    "email": "golden email, PII token",
    "phone": "golden phone (E.164), PII token",
    "date_of_birth": "golden date of birth, PII token",
    "street": "golden street, PII token (the address is chosen as one unit)",
    "city": "golden city, PII token",
    "postcode": "golden postcode, PII token",
    "country": "country of the golden address",
    "loyalty_id": "loyalty number, PII token",
    "company_name": "company of a B2B customer, PII token",
    "record_count": "source records resolved to the customer",
    "sources": "sources the customer's records come from",
    "first_seen": "earliest record time, UTC",
    "last_seen": "latest record time, UTC",
    "marketing_consent": "may be contacted for marketing: every merged subject's latest choice is yes (a refusal on any wins), else the region's regime default; false after an erasure request",
    "profiling_consent": "may be profiled: as marketing_consent, for profiling (segments and churn scores are left out without it)",
    "erasure_requested": "the customer asked for erasure (governance acts on it)",
    "consent_updated_at": "time of the latest consent event, UTC; null without any",
    "features_as_of": "as-of date of the features in this row",
    "feature_set_version": "version of the feature definitions (gold.feature_registry)",
    "segment": "segment name (gold.segment_profiles); null without profiling consent or before scoring",
    "global_segment": "the segment's name in the global taxonomy shared by all regions",
    "segment_model_version": "registered segmentation model and version that assigned the segment (name/version)",
    "churn_score": "probability of no order within the region's churn horizon after features_as_of; the cold-start score when churn_cold_start",
    "churn_predicted": "churn_score is at or above the cost-based decision threshold of the model",
    "churn_cold_start": "too little history for the model: churn_score is the observed churn rate of cold-start customers",
    "expected_purchases": "BG/NBD expected purchase days over ml.clv.horizon_days after features_as_of (gold.customer_clv); null without orders",
    "p_alive": "BG/NBD probability that the customer is still active as of features_as_of",
    "clv": "lifetime value over ml.clv.horizon_days: expected purchases x Gamma-Gamma spend per purchase, discounted (reporting currency)",
    "expected_remaining_days": "Weibull AFT expected days from features_as_of until the customer's inactivity reaches the churn horizon "
                               "(gold.customer_survival); 0 when it already has, null without orders or in cold start",
    "churn_model_version": "registered churn model and version that scored the row (name/version)",
    "run_id": "pipeline run that wrote the row",
    "region": "region (partition)",
    "as_of_date": "the date the features describe (partition): only facts up to the end of this day (UTC) are used",
}


def column_comments(windows: Sequence[int]) -> dict[str, str]:
    """Descriptions of every column of the customer features and 360 tables."""
    return {**BASE_COMMENTS, **{f.name: f.description for f in expand(windows)}}


def customer_360(
    golden: DataFrame,
    features: DataFrame,
    consent: DataFrame,
    *,
    regimes: Mapping[str, str],
    run_id: str,
) -> DataFrame:
    """Join golden records, consent flags and one as-of date's features; every golden customer
    gets a row (features null where the customer was not known by the as-of date)."""
    feature_columns = [c for c in features.columns if c not in ("region", "customer_id", "as_of_date")]
    df = with_consent(golden.select("region", "customer_id", *GOLDEN_COLUMNS), consent, regimes=regimes).join(
        features.withColumnRenamed("as_of_date", "features_as_of"), ["region", "customer_id"], "left"
    )
    return df.select(
        "customer_id",
        *GOLDEN_COLUMNS,
        *CONSENT_COLUMNS,
        "features_as_of",
        *feature_columns,
        *[F.lit(None).cast(t).alias(c) for c, t in ML_COLUMNS.items()],
        F.lit(run_id).alias("run_id"),
        "region",
    )


def with_ml_columns(
    c360: DataFrame, segments: DataFrame | None, churn: DataFrame | None, value: DataFrame | None = None,
    survival: DataFrame | None = None,
) -> DataFrame:
    """Fill the ML columns from gold.customer_segments, gold.churn_scores, gold.customer_clv and
    gold.customer_survival rows of the same as-of date as the features (``features_as_of``);
    customers without a score, and customers whose ``profiling_consent`` is no longer true, stay null."""
    order = [*c360.columns, *[c for c in ML_COLUMNS if c not in c360.columns]]
    df = c360.drop(*ML_COLUMNS)
    if segments is not None:
        df = df.join(
            segments.select(
                "region", "customer_id", F.col("as_of_date").alias("features_as_of"), "segment", "global_segment",
                F.concat_ws("/", "model_name", "model_version").alias("segment_model_version"),
            ),
            ["region", "customer_id", "features_as_of"], "left",
        )
    if churn is not None:
        df = df.join(
            churn.select(
                "region", "customer_id", F.col("as_of_date").alias("features_as_of"), "churn_score", "churn_predicted",
                F.col("is_cold_start_score").alias("churn_cold_start"),
                F.concat_ws("/", "model_name", "model_version").alias("churn_model_version"),
            ),
            ["region", "customer_id", "features_as_of"], "left",
        )
    if value is not None:
        df = df.join(
            value.select("region", "customer_id", F.col("as_of_date").alias("features_as_of"), "expected_purchases", "p_alive", "clv"),
            ["region", "customer_id", "features_as_of"], "left",
        )
    if survival is not None:
        df = df.join(
            survival.select("region", "customer_id", F.col("as_of_date").alias("features_as_of"), "expected_remaining_days"),
            ["region", "customer_id", "features_as_of"], "left",
        )
    allowed = F.coalesce(F.col("profiling_consent"), F.lit(False)) if "profiling_consent" in df.columns else F.lit(True)
    for column, data_type in ML_COLUMNS.items():
        value = F.col(column) if column in df.columns else F.lit(None)
        df = df.withColumn(column, F.when(allowed, value).cast(data_type))
    return df.select(*order)
