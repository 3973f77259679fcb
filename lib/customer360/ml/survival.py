"""Time to churn with right-censoring: survival durations from orders, a Weibull accelerated
failure time (AFT) model (MLlib), its expected and median remaining lifetime, and Harrell's
concordance index.

Churn is the moment a customer's inactivity reaches the region's horizon H (``gap_days``): H whole
days of 86,400 s after an order with no order in between. Instants are UTC and compared to the
microsecond. As in ``churn.labels``, a cut-off date c stands for the end of that day, the instant
``end_of_day(c)`` (00:00 UTC of the next day): an order is "by c" when it lies strictly before it,
and an order at that very instant is after c. The same half-open rule, [o, o + H), decides whether
a life goes on after an order o:

- an order less than H days after o continues the life; one exactly H days later (or more) comes
  after the churn at o + H: it starts a new life, which is not followed here;
- the customer is *active at* ``at`` when their last order by ``at``, o_0, is less than H days
  before the end of ``at``. Customers with no order by ``at`` (never bought) and customers whose
  inactivity had already reached H (lapsed, end of ``at`` - o_0 >= H) get no row: they cannot churn
  after ``at``.

For an active customer, o_0 <= o_1 <= ... are o_0 and the orders after the end of ``at`` up to the
end of ``until``. The life ends after the first o_k (k >= 0) followed by no order within H days:

- *observed* churn when o_k + H <= end of ``until`` (every order that could have continued the life
  lies before the end of ``until``, so it is known that none did): ``duration_days`` = o_k + H - end
  of ``at`` in days, ``churned`` = 1.0. The duration is > 0, since o_0 + H is after the end of ``at``;
- *censored* otherwise (the last order seen plus H lies beyond the end of ``until``): the customer
  is known to survive the whole window, ``duration_days`` = until - at in days, ``churned`` = 0.0.

Orders after the end of ``until`` are never read: a duration as of (``at``, ``until``) does not
change when later orders arrive.

The model is MLlib's ``AFTSurvivalRegression``: log T = x.beta + b + sigma * eps, eps the standard
minimum extreme value distribution, so T is Weibull with scale lambda = exp(x.beta + b) and shape
k = 1 / sigma. MLlib's prediction is lambda itself (not a mean), its ``scale`` is sigma, and its
``censorCol`` holds 1.0 where the event occurred (uncensored) and 0.0 where the time is censored:
exactly ``churned``. Hence, per customer,

- expected remaining days E[T] = lambda * Gamma(1 + 1/k) = lambda * Gamma(1 + sigma);
- median remaining days = lambda * (ln 2)^(1/k) = lambda * (ln 2)^sigma,

both counted from the cut-off the features are as of. The log-likelihood needs T > 0, and a time
of minutes would weigh like one of years in log T: training durations below ``MIN_DURATION_DAYS``
are raised to it.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import pyspark.sql.functions as F
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.feature import SQLTransformer, StandardScaler
from pyspark.ml.regression import AFTSurvivalRegression, AFTSurvivalRegressionModel
from pyspark.sql import DataFrame, Window

from customer360.errors import C360Error
from customer360.features.compute import cutoff as end_of_day
from customer360.ml.churn import PREFIX, VECTOR, preparation

KEYS = ("region", "customer_id")
DURATION = "duration_days"
EVENT = "churned"
EXPECTED = "expected_remaining_days"
MEDIAN = "median_remaining_days"
STATUS = "status"
SCALED = f"{PREFIX}survival_scaled"
#: the AFT model's own prediction, the Weibull scale lambda (not a mean): a helper column
LAMBDA = f"{PREFIX}weibull_scale"
#: training durations are raised to this floor (days): log T must exist and not dominate the fit
MIN_DURATION_DAYS = 0.5

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROS_PER_DAY = 86_400_000_000


class SurvivalError(C360Error):
    """Survival durations or the time-to-churn model cannot be computed: a bad window, missing
    columns, an empty training set or one without any observed churn."""


@dataclass(frozen=True)
class SurvivalParams:
    """``AFTSurvivalRegression``'s parameters (MLlib's maxIter, tol, fitIntercept, aggregationDepth)."""

    max_iter: int = 100
    tol: float = 1e-6
    fit_intercept: bool = True
    aggregation_depth: int = 2

    def __post_init__(self) -> None:
        if self.max_iter < 1 or not self.tol > 0 or self.aggregation_depth < 2:
            raise SurvivalError(f"survival params need max_iter >= 1, tol > 0 and aggregation_depth >= 2, got {self}")


# --- durations -------------------------------------------------------------------------------------

def _require_columns(df: DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise SurvivalError(f"{what} lacks the columns {missing} (it has {df.columns})")


def _micros(instant: datetime) -> int:
    return (instant - _EPOCH) // timedelta(microseconds=1)


def _check_window(at: date, until: date, gap_days: int) -> None:
    if until <= at:
        raise SurvivalError(f"until ({until}) must be after at ({at}): there is no time to observe churn in")
    if gap_days < 1:
        raise SurvivalError(f"gap_days must be a whole number of days >= 1, got {gap_days!r}")


def _life_ends(orders: DataFrame, *, start: int, stop: int, gap: int) -> DataFrame:
    """``KEYS`` and ``_end`` (epoch microseconds): o_k, the order after which the life of a customer
    active at ``start`` ends (see the module docstring). Times are epoch microseconds, so every
    comparison is exact."""
    per_customer = Window.partitionBy(*KEYS)
    t = F.col("_t")
    history = (
        orders.where(F.col("region").isNotNull() & F.col("customer_id").isNotNull() & F.col("ordered_at").isNotNull())
        .select(*KEYS, F.unix_micros("ordered_at").alias("_t"))
        .where(t < stop)
        .withColumn("_start", F.max(F.when(t < start, t)).over(per_customer))
        # o_0 and later only (no order by `at`: _start is null, no row); lapsed customers out
        .where((t >= F.col("_start")) & (F.col("_start") > start - gap))
        .withColumn("_next", F.lead(t).over(per_customer.orderBy(t)))
    )
    ends = F.col("_next").isNull() | (F.col("_next") - t >= gap)
    return history.where(ends).groupBy(*KEYS).agg(F.min(t).alias("_end"))


def durations(customers: DataFrame, orders: DataFrame, *, at: date, until: date, gap_days: int) -> DataFrame:
    """``customers`` active at ``at`` with ``duration_days`` (double, days from the end of ``at``
    to churn, or to the end of ``until`` when censored) and ``churned`` (1.0 observed, 0.0
    censored), as defined in the module docstring. ``customers`` has ``region``, ``customer_id``
    and any other columns, which are kept; ``orders`` has ``region``, ``customer_id``,
    ``ordered_at`` (timestamp). Customers with no order by ``at`` or lapsed at ``at`` are dropped;
    rows of ``orders`` with a null key or time are ignored."""
    _check_window(at, until, gap_days)
    _require_columns(customers, KEYS, "customers")
    _require_columns(orders, (*KEYS, "ordered_at"), "orders")
    start, stop, gap = _micros(end_of_day(at)), _micros(end_of_day(until)), gap_days * _MICROS_PER_DAY
    churn_at = F.col("_end") + gap
    observed = churn_at <= stop
    return (
        customers.join(_life_ends(orders, start=start, stop=stop, gap=gap), list(KEYS), "inner")
        .withColumn(DURATION, F.when(observed, (churn_at - start) / _MICROS_PER_DAY).otherwise(F.lit(float((until - at).days))))
        .withColumn(EVENT, F.when(observed, 1.0).otherwise(0.0))
        .select(*customers.columns, DURATION, EVENT)
    )


def status(customers: DataFrame, orders: DataFrame, *, at: date, gap_days: int) -> DataFrame:
    """The buyers among ``customers`` (an order by ``at``) with ``status``: ``active`` when their
    last order by ``at`` is less than ``gap_days`` before the end of ``at`` (they can churn later:
    the model predicts their remaining lifetime), else ``lapsed`` (churned by this definition).
    Customers without an order by ``at`` get no row."""
    if gap_days < 1:
        raise SurvivalError(f"gap_days must be a whole number of days >= 1, got {gap_days!r}")
    _require_columns(customers, KEYS, "customers")
    _require_columns(orders, (*KEYS, "ordered_at"), "orders")
    start, gap = _micros(end_of_day(at)), gap_days * _MICROS_PER_DAY
    last = (
        orders.where(F.col("region").isNotNull() & F.col("customer_id").isNotNull() & F.col("ordered_at").isNotNull())
        .select(*KEYS, F.unix_micros("ordered_at").alias("_t")).where(F.col("_t") < start)
        .groupBy(*KEYS).agg(F.max("_t").alias("_last"))
    )
    return (
        customers.join(last, list(KEYS), "inner")
        .withColumn(STATUS, F.when(F.col("_last") > start - gap, "active").otherwise("lapsed"))
        .drop("_last")
    )


# --- model -----------------------------------------------------------------------------------------

def model_pipeline(features: Sequence[str], params: SurvivalParams) -> Pipeline:
    """``churn.preparation`` (null -> 0 plus missing indicators, into ``churn.VECTOR``), a
    StandardScaler (mean and standard deviation) and ``AFTSurvivalRegression`` on ``duration_days``
    with ``churned`` as its censor column (1.0 = churn observed). Fit it on ``training_set(df)``
    (durations floored), or use ``fit``, which checks the data first."""
    if not features:
        raise SurvivalError("the survival model needs at least one feature")
    return Pipeline(stages=[
        *preparation(features),
        StandardScaler(inputCol=VECTOR, outputCol=SCALED, withMean=True, withStd=True),
        AFTSurvivalRegression(
            featuresCol=SCALED, labelCol=DURATION, censorCol=EVENT, predictionCol=LAMBDA,
            maxIter=params.max_iter, tol=params.tol, fitIntercept=params.fit_intercept,
            aggregationDepth=params.aggregation_depth,
        ),
    ])


def training_set(df: DataFrame, features: Sequence[str]) -> DataFrame:
    """``df`` as the model learns from it: ``duration_days`` raised to ``MIN_DURATION_DAYS`` and both
    label columns as doubles. Raises ``SurvivalError`` when a feature or label column is missing."""
    missing = [f for f in features if f not in df.columns]
    if missing:
        raise SurvivalError(f"the training set lacks the feature columns {missing} (it has {df.columns})")
    _require_columns(df, (DURATION, EVENT), "the training set")
    return (
        df.withColumn(DURATION, F.greatest(F.col(DURATION).cast("double"), F.lit(MIN_DURATION_DAYS)))
        .withColumn(EVENT, F.col(EVENT).cast("double"))
    )


def fit(df: DataFrame, *, features: Sequence[str], params: SurvivalParams) -> PipelineModel:
    """``model_pipeline`` fitted on ``df`` (``durations`` plus the features as of ``at``). Raises
    ``SurvivalError`` on a missing column, an empty training set, invalid labels (a null or
    negative duration, ``churned`` not 0 or 1) or no observed churn (all censored: the Weibull
    scale cannot be estimated)."""
    train = training_set(df, features)
    invalid = (
        F.col(DURATION).isNull() | F.isnan(DURATION) | (F.col(DURATION) < 0)
        | F.col(EVENT).isNull() | ~F.col(EVENT).isin(0.0, 1.0)
    )
    raw = df.withColumn(DURATION, F.col(DURATION).cast("double")).withColumn(EVENT, F.col(EVENT).cast("double"))
    row = raw.agg(
        F.count(F.lit(1)).alias("n"),
        F.count(F.when(invalid, 1)).alias("invalid"),
        F.count(F.when(F.col(EVENT) == 1.0, 1)).alias("events"),
    ).first()
    n, bad, events = int(row["n"]), int(row["invalid"]), int(row["events"])
    if n == 0:
        raise SurvivalError("the training set is empty: no customer is active at the cut-off")
    if bad:
        raise SurvivalError(f"{bad} of {n} training rows have a null or negative {DURATION} or a {EVENT} other than 0 or 1")
    if events == 0:
        raise SurvivalError(f"no observed churn among the {n} training customers (all censored): "
                            "choose a later `until` or an earlier cut-off")
    return model_pipeline(features, params).fit(train)


def aft_model(model: PipelineModel) -> AFTSurvivalRegressionModel:
    found = [s for s in model.stages if isinstance(s, AFTSurvivalRegressionModel)]
    if not found:
        raise SurvivalError("the model has no AFT survival regression stage: was it fitted by survival.fit?")
    return found[-1]


def servable(model: PipelineModel) -> PipelineModel:
    """The fitted model plus a last stage writing ``prediction`` = the expected remaining days: what
    MLflow's pyfunc flavour of a Spark model returns (``expected_remaining_days`` ignores it)."""
    factor = math.gamma(1.0 + aft_model(model).scale)
    return PipelineModel(stages=[*model.stages, SQLTransformer(statement=f"SELECT *, {LAMBDA} * {factor!r} AS prediction FROM __THIS__")])


def expected_remaining_days(model: PipelineModel, df: DataFrame) -> DataFrame:
    """``df`` with the Weibull mean ``expected_remaining_days`` = lambda * Gamma(1 + sigma) and
    ``median_remaining_days`` = lambda * (ln 2)^sigma, lambda = exp(x.beta + b) being MLlib's
    prediction and sigma its ``scale``; helper columns dropped."""
    sigma = aft_model(model).scale
    scored = (
        model.transform(df)
        .withColumn(EXPECTED, F.col(LAMBDA) * F.lit(math.gamma(1.0 + sigma)))
        .withColumn(MEDIAN, F.col(LAMBDA) * F.lit(math.log(2.0) ** sigma))
    )
    return scored.drop(*[c for c in scored.columns if c.startswith(PREFIX) or c == VECTOR or (c == "prediction" and c not in df.columns)])


# --- evaluation ------------------------------------------------------------------------------------

def concordance(df: DataFrame, *, duration: str = DURATION, event: str = EVENT, predicted: str = EXPECTED) -> float:
    """Harrell's concordance index of ``predicted`` (a longer predicted time should go with a longer
    survival) against the observed ``duration`` and ``event`` (1 = churn observed, 0 = censored):
    among the pairs whose shorter duration is an observed churn (a censored duration equal to it
    counts as longer), the share ordered alike by the prediction, ties in the prediction counting
    one half. Computed by lifelines (O(n log n)) on the three columns, the only data that reaches
    the driver."""
    columns = (duration, event, predicted)
    _require_columns(df, columns, "the scored frame")
    values = df.select(*[F.col(c).cast("double").alias(c) for c in columns]).toPandas()
    if values.empty:
        raise SurvivalError("no rows to compute the concordance index on")
    nulls = int(values.isna().any(axis=1).sum())
    if nulls:
        raise SurvivalError(f"{nulls} rows have a null or NaN {duration}, {event} or {predicted}")
    if not values[event].isin((0.0, 1.0)).all():
        raise SurvivalError(f"{event} must be 1.0 (churn observed) or 0.0 (censored)")
    from lifelines.utils import concordance_index  # imported on use: lifelines takes a second to import

    try:
        return float(concordance_index(values[duration], values[predicted], values[event]))
    except ZeroDivisionError:
        raise SurvivalError(f"no comparable pair among {len(values)} rows (no observed churn before another "
                            "customer's duration): the concordance index is undefined") from None
