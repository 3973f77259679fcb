"""Customer lifetime value: BG/NBD for how often a customer buys and whether they are still a
customer, Gamma-Gamma for what they spend per purchase, both fitted by maximum likelihood.

Time is in days throughout. A customer's history is the usual RFM summary, with purchases on the
same UTC day counted as one purchase (the convention of the ``lifetimes`` library's
``summary_data_from_transaction_data(..., freq="D")``):

- ``frequency``: repeat purchase days (distinct purchase days minus 1);
- ``recency``: days from the first to the last purchase day;
- ``T``: days from the first purchase day to the as-of day;
- ``monetary_value``: mean net value of the repeat purchase days (0 without any).

The Spark side builds the summary and aggregates it to the distinct histories (a small table with
a count of customers each), which is all the driver sees; the fits run on those counts as weights,
and ``score`` brings the predictions back to every customer in a vectorized ``mapInPandas``.

References: Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way: An Alternative to
the Pareto/NBD Model", Marketing Science 24(2) (BG/NBD: likelihood section 7, conditional
expectation eq. 10; P(alive) from Hardie's note 021); Fader, Hardie & Lee (2005), "RFM and CLV:
Using Iso-Value Curves for Customer Base Analysis", JMR 42(4), and Hardie's note 025 (Gamma-Gamma).
"""
from __future__ import annotations

import operator
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from functools import reduce

import numpy as np
import pandas as pd
import pyspark.sql.functions as F
from numpy.typing import ArrayLike
from pyspark.sql import DataFrame
from pyspark.sql.types import DoubleType, StructField, StructType
from scipy.optimize import OptimizeResult, minimize
from scipy.special import digamma, expit, gammaln, hyp2f1

from customer360.errors import C360Error

KEYS = ("region", "customer_id")
ORDER_COLUMNS = ("order_id", "ordered_at", "net_amount")
SUMMARY_COLUMNS = ("frequency", "recency", "T", "monetary_value")
PREDICTION_COLUMNS = ("expected_purchases", "p_alive", "expected_avg_order_value", "clv")
#: the column of ``histories`` and ``spend_histories`` that counts the customers of one history
CUSTOMERS = "customers"
#: CLV discounts once per month of this many days (lifetimes' ``freq="D"`` uses 30)
MONTH_DAYS = 30
MAX_HISTORIES = 2_000_000

_EPOCH = date(1970, 1, 1)
_MICROS_PER_DAY = 86_400_000_000
#: BG/NBD is fitted on time rescaled so the longest T is 1, as lifetimes does: every parameter is
#: then of order 1 for the optimizer, and a penalizer means the same whatever the time unit
_TIME_SCALE = 1.0
#: log-parameters are bounded to +-15 (e^15 ~ 3e6) on the fitting scale, where every plausible
#: estimate is of order 1; one beyond +-14 is running away: the likelihood has no finite maximum
_LOG_BOUND = 15.0
_LOG_RUNAWAY = 14.0
#: below this |a - 1| eq. (10)'s 0/0 is evaluated at a = 1 +- this instead
_A_NEAR_ONE = 1e-7


class ClvError(C360Error):
    """A lifetime-value model cannot be fitted or applied to this data (empty, no repeat buyers,
    invalid values, no convergence, or parameters with no finite expectation)."""


@dataclass(frozen=True)
class BgNbdParams:
    """A fitted BG/NBD model. Purchase rates are Gamma(r, alpha) with alpha in days; the drop-out
    probability after each repeat purchase is Beta(a, b). ``log_likelihood`` is the total over the
    ``n`` customers fitted on (without the penalty)."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    n: float


@dataclass(frozen=True)
class GammaGammaParams:
    """A fitted Gamma-Gamma spend model: a purchase's value is Gamma(p, nu), a customer's nu is
    Gamma(q, v) (v in money units). The mean spend is finite only for q > 1. ``log_likelihood`` is
    the total over the ``n`` repeat buyers fitted on."""

    p: float
    q: float
    v: float
    log_likelihood: float
    n: float

    @property
    def population_mean(self) -> float:
        """Expected value of one purchase of a customer of whom nothing is known, v p / (q - 1)."""
        if self.q <= 1:
            raise ClvError(f"Gamma-Gamma q = {self.q:.4g} <= 1: the expected spend per purchase is infinite")
        return self.v * self.p / (self.q - 1)


# --- Spark: summary and histories ------------------------------------------------------------------

def _require_columns(df: DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ClvError(f"{what} lacks the columns {missing} (it has {df.columns})")


def _purchase_days(orders: DataFrame, *, as_of: date, keys: Sequence[str]) -> DataFrame:
    """One row per customer and UTC purchase day up to the end of ``as_of``: ``_day`` (days since
    1970-01-01) and ``_value`` (the day's net amount). Lines are summed to orders first, so an
    order is on the day its first line was ordered."""
    not_null = reduce(operator.and_, [F.col(c).isNotNull() for c in (*keys, "order_id", "ordered_at")])
    per_order = (
        orders.where(not_null)
        .groupBy(*keys, "order_id")
        .agg(F.min("ordered_at").alias("_at"), F.sum("net_amount").alias("_value"))
    )
    # days from the instant itself, so the session time zone plays no part
    day = F.floor(F.unix_micros("_at") / _MICROS_PER_DAY)
    return (
        per_order.withColumn("_day", day)
        .where(F.col("_day") <= (as_of - _EPOCH).days)
        .groupBy(*keys, "_day")
        .agg(F.sum("_value").alias("_value"))
    )


def summary_from_orders(orders: DataFrame, *, as_of: date, keys: Sequence[str] = KEYS) -> DataFrame:
    """The RFM summary per customer as of the end of ``as_of`` (UTC), in days.

    ``orders`` has one row per order line: ``keys``, ``order_id``, ``ordered_at`` (timestamp) and
    ``net_amount`` (decimal or double). Lines ordered on or before ``as_of`` count; rows with a
    null key, order id or time are ignored. Returns ``keys`` plus ``frequency`` (bigint, repeat
    purchase days), ``recency`` and ``T`` (bigint, days) and ``monetary_value`` (double, mean net
    value of the repeat purchase days, 0 when there are none; it may be <= 0 after returns).
    Customers without an order up to ``as_of`` have no row."""
    _require_columns(orders, [*keys, *ORDER_COLUMNS], "orders")
    days = _purchase_days(orders, as_of=as_of, keys=keys)
    per_customer = days.groupBy(*keys).agg(
        (F.count(F.lit(1)) - 1).alias("frequency"),
        F.min("_day").alias("_first"),
        F.max("_day").alias("_last"),
        F.sum("_value").alias("_total"),
        F.min_by("_value", "_day").alias("_first_value"),
    )
    # the repeat days' total is exact (decimal in, decimal sum); the mean is a double, as decimal
    # division would round it to 6 places
    repeat_mean = (F.col("_total") - F.col("_first_value")).cast("double") / F.col("frequency")
    return per_customer.select(
        *keys,
        "frequency",
        (F.col("_last") - F.col("_first")).cast("bigint").alias("recency"),
        (F.lit((as_of - _EPOCH).days) - F.col("_first")).cast("bigint").alias("T"),
        F.when(F.col("frequency") > 0, repeat_mean).otherwise(F.lit(0.0)).alias("monetary_value"),
    )


def _collect_small(df: DataFrame, columns: Sequence[str], max_rows: int) -> pd.DataFrame:
    found = df.limit(max_rows + 1).toPandas()
    if len(found) > max_rows:
        raise ClvError(f"more than {max_rows} distinct histories: too many to bring to the driver; "
                       "fit on a sample of customers or raise max_rows")
    return found.sort_values(list(columns), ignore_index=True)


def histories(summary: DataFrame, *, max_rows: int = MAX_HISTORIES) -> pd.DataFrame:
    """The distinct (frequency, recency, T) of ``summary`` with the number of customers of each
    (column ``customers``), for ``fit_bgnbd``. Aggregated in Spark; only this table reaches the
    driver. Raises ``ClvError`` when it would exceed ``max_rows``."""
    _require_columns(summary, SUMMARY_COLUMNS[:3], "summary")
    counted = summary.groupBy("frequency", "recency", "T").agg(F.count(F.lit(1)).alias(CUSTOMERS))
    return _collect_small(counted, ("frequency", "recency", "T"), max_rows)


def spend_histories(summary: DataFrame, *, max_rows: int = MAX_HISTORIES) -> pd.DataFrame:
    """The distinct (frequency, monetary_value rounded to cents) of the repeat buyers with a
    positive ``monetary_value``, with the number of customers of each (``customers``), for
    ``fit_gamma_gamma``."""
    _require_columns(summary, ("frequency", "monetary_value"), "summary")
    counted = (
        summary.where((F.col("frequency") > 0) & (F.col("monetary_value") > 0))
        .groupBy("frequency", F.round("monetary_value", 2).alias("monetary_value"))
        .agg(F.count(F.lit(1)).alias(CUSTOMERS))
    )
    return _collect_small(counted, ("frequency", "monetary_value"), max_rows)


# --- fitting ---------------------------------------------------------------------------------------

def _arrays(model: str, weights: ArrayLike | None, **columns: ArrayLike) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Float arrays of equal length, finite and >= 0 (weights > 0 kept), or a ``ClvError``."""
    arrays = {name: np.asarray(values, dtype=float).ravel() for name, values in columns.items()}
    n = len(next(iter(arrays.values())))
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float).ravel()
    lengths = {name: len(a) for name, a in {**arrays, "weights": w}.items()}
    if len(set(lengths.values())) != 1:
        raise ClvError(f"{model}: one value per customer is needed in each input, got lengths {lengths}")
    for name, values in {**arrays, "weights": w}.items():
        bad = ~np.isfinite(values) | (values < 0)
        if name == "monetary_value":  # negative spend (returns) is left out, not an error
            bad = ~np.isfinite(values)
        if bad.any():
            raise ClvError(f"{model}: {name} must be finite and >= 0; {int(bad.sum())} values are not "
                           f"(first: {values[bad][0]!r})")
    keep = w > 0
    if not keep.any():
        raise ClvError(f"{model}: no customers to fit on (empty input or all weights 0)")
    return {name: a[keep] for name, a in arrays.items()}, w[keep]


def _minimize(objective: Callable, starts: Sequence[Sequence[float]], *, model: str, names: Sequence[str],
              hint: str) -> OptimizeResult:
    """The best of L-BFGS-B runs from ``starts`` (log-parameters with analytic gradients);
    ``hint`` says what in the data makes estimates run away."""
    best = None
    for start in starts:
        with np.errstate(all="ignore"):
            result = minimize(objective, np.asarray(start, dtype=float), jac=True, method="L-BFGS-B",
                              bounds=[(-_LOG_BOUND, _LOG_BOUND)] * len(start), options={"maxiter": 5000})
        # L-BFGS-B may stop on a line search failing at the optimum (no decrease left in float64)
        converged = result.success or np.max(np.abs(result.jac)) < 1e-6
        if converged and np.isfinite(result.fun) and (best is None or result.fun < best.fun):
            best = result
    if best is None:
        raise ClvError(f"{model}: the maximum-likelihood fit did not converge from any of {len(starts)} "
                       f"starting points; {hint}")
    runaway = {n: float(np.exp(x)) for n, x in zip(names, best.x) if abs(x) > _LOG_RUNAWAY}
    if runaway:
        raise ClvError(f"{model}: the estimates {runaway} run towards 0 or infinity (rescaled): the data have no "
                       f"finite maximum-likelihood estimate; {hint}")
    return best


def _bgnbd_objective(theta: np.ndarray, x: np.ndarray, tx: np.ndarray, T: np.ndarray, w: np.ndarray,
                     penalizer: float) -> tuple[float, np.ndarray]:
    """Mean weighted negative log-likelihood (``w`` sums to 1) plus penalizer * sum(params^2), and
    its gradient in the log-parameters."""
    params = np.exp(theta)
    r, alpha, a, b = params
    repeat = x > 0
    b_x1 = b + np.maximum(x, 1) - 1  # b + x - 1 where the drop-out term exists, finite elsewhere
    a3 = -(r + x) * np.log(alpha + T)
    a4 = np.where(repeat, np.log(a) - np.log(b_x1) - (r + x) * np.log(alpha + tx), -np.inf)
    mix = np.logaddexp(a3, a4)
    ll = (gammaln(r + x) - gammaln(r) + r * np.log(alpha)
          + gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x) + mix)
    alive, dropped = np.exp(a3 - mix), np.exp(a4 - mix)  # shares of the two likelihood terms
    gradient = np.stack([
        digamma(r + x) - digamma(r) + np.log(alpha) - alive * np.log(alpha + T) - dropped * np.log(alpha + tx),
        r / alpha - (r + x) * (alive / (alpha + T) + dropped / (alpha + tx)),
        digamma(a + b) - digamma(a + b + x) + dropped / a,
        digamma(a + b) + digamma(b + x) - digamma(b) - digamma(a + b + x) - dropped / b_x1,
    ])
    value = -(w @ ll) + penalizer * np.sum(params**2)
    return value, -(gradient @ w) * params + 2 * penalizer * params**2


def fit_bgnbd(frequency: ArrayLike, recency: ArrayLike, T: ArrayLike, weights: ArrayLike | None = None, *,
              penalizer: float = 0.0) -> BgNbdParams:
    """Fit BG/NBD by maximum likelihood to customer histories in days (``weights``: customers per
    history, e.g. ``histories(...)["customers"]``). ``penalizer`` adds penalizer * (r^2 + alpha'^2
    + a^2 + b^2) to the mean negative log-likelihood, with alpha' = alpha / max(T), exactly as
    lifetimes' ``BetaGeoFitter(penalizer_coef=...)``. Raises ``ClvError`` on empty or invalid input,
    no repeat buyer, or no convergence."""
    model = "BG/NBD"
    if not (np.isfinite(penalizer) and penalizer >= 0):
        raise ClvError(f"{model}: penalizer must be >= 0, got {penalizer!r}")
    cols, w = _arrays(model, weights, frequency=frequency, recency=recency, T=T)
    x, tx, t_obs = cols["frequency"], cols["recency"], cols["T"]
    if np.any(x != np.round(x)):
        raise ClvError(f"{model}: frequency counts repeat purchases and must be whole numbers")
    if np.any(tx > t_obs):
        raise ClvError(f"{model}: recency exceeds T for {int(np.sum(tx > t_obs))} histories (the last purchase "
                       "cannot come after the as-of day)")
    if not np.any(x > 0):
        raise ClvError(f"{model}: no repeat buyer (every frequency is 0): purchase rates cannot be estimated")
    scale = _TIME_SCALE / t_obs.max()
    args = (x, tx * scale, t_obs * scale, w / w.sum(), penalizer)
    # on this scale alpha is of the order of the time between purchases over the longest T: below 1
    starts = ([0.0, 0.0, 0.0, 0.0], np.log([0.5, 0.1, 0.5, 2.0]), np.log([2.0, 0.5, 2.0, 5.0]))
    best = _minimize(lambda th: _bgnbd_objective(th, *args), starts, model=model, names=("r", "alpha", "a", "b"),
                     hint="e.g. no sign of drop-outs or customers all alike: use more data, or a penalizer > 0 "
                          "against estimates running to infinity")
    r, alpha, a, b = np.exp(best.x)
    log_likelihood = -_bgnbd_objective(best.x, *args[:4], 0.0)[0] * w.sum() + np.sum(w * x) * np.log(scale)
    return BgNbdParams(r=float(r), alpha=float(alpha / scale), a=float(a), b=float(b),
                       log_likelihood=float(log_likelihood), n=float(w.sum()))


def _gamma_gamma_objective(theta: np.ndarray, x: np.ndarray, m: np.ndarray, w: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean weighted negative log-likelihood of the mean spends ``m`` of ``x`` purchases (note 025,
    eq. 1a) and its gradient in the log-parameters."""
    params = np.exp(theta)
    p, q, v = params
    px = p * x
    share = np.log(x * m) - np.log(x * m + v)
    ll = (gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(v)
          + (px - 1) * np.log(m) + px * np.log(x) - (px + q) * np.log(x * m + v))
    gradient = np.stack([
        x * (digamma(px + q) - digamma(px) + share),
        digamma(px + q) - digamma(q) + np.log(v) - np.log(x * m + v),
        q / v - (px + q) / (x * m + v),
    ])
    return -(w @ ll), -(gradient @ w) * params


def fit_gamma_gamma(frequency: ArrayLike, monetary_value: ArrayLike, weights: ArrayLike | None = None) -> GammaGammaParams:
    """Fit Gamma-Gamma by maximum likelihood to the repeat buyers' mean spend per purchase
    (``monetary_value``, money units, over ``frequency`` repeat purchases). Histories with
    frequency 0 or monetary_value <= 0 are left out. Raises ``ClvError`` on invalid input, no
    history left, or no convergence."""
    model = "Gamma-Gamma"
    cols, w = _arrays(model, weights, frequency=frequency, monetary_value=monetary_value)
    usable = (cols["frequency"] > 0) & (cols["monetary_value"] > 0)
    if not usable.any():
        raise ClvError(f"{model}: no repeat buyer with a positive monetary_value to fit on")
    x, m, w = cols["frequency"][usable], cols["monetary_value"][usable], w[usable]
    # spend rescaled to mean 1 for the optimizer: only v changes (v' = v / scale)
    scale = float(np.average(m, weights=w))
    args = (x, m / scale, w / w.sum())
    starts = (np.log([1.0, 2.0, 1.0]), np.log([4.0, 5.0, 1.0]), np.log([0.5, 1.5, 1.0]))
    best = _minimize(lambda th: _gamma_gamma_objective(th, *args), starts, model=model, names=("p", "q", "v"),
                     hint="e.g. spend that hardly varies within or between customers: use more data")
    p, q, v = np.exp(best.x)
    log_likelihood = -best.fun * w.sum() - w.sum() * np.log(scale)
    return GammaGammaParams(p=float(p), q=float(q), v=float(v * scale), log_likelihood=float(log_likelihood),
                            n=float(w.sum()))


def fit_summary(summary: DataFrame, *, penalizer: float = 0.0) -> tuple[BgNbdParams, GammaGammaParams]:
    """Both models fitted on the aggregated histories of ``summary`` (``summary_from_orders``)."""
    counted = histories(summary)
    spend = spend_histories(summary)
    bgnbd = fit_bgnbd(counted["frequency"], counted["recency"], counted["T"], counted[CUSTOMERS], penalizer=penalizer)
    return bgnbd, fit_gamma_gamma(spend["frequency"], spend["monetary_value"], spend[CUSTOMERS])


# --- predictions (numpy, vectorized) ----------------------------------------------------------------

def probability_alive(params: BgNbdParams, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> np.ndarray:
    """P(still a customer at T) given a history in days (1 without a repeat purchase)."""
    x, tx, t_obs = (np.asarray(v, dtype=float) for v in (frequency, recency, T))
    log_odds_dead = (np.log(params.a) - np.log(params.b + np.maximum(x, 1) - 1)
                     + (params.r + x) * np.log((params.alpha + t_obs) / (params.alpha + tx)))
    return np.where(x > 0, expit(-log_odds_dead), 1.0)


def expected_purchases(params: BgNbdParams, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike,
                       T: ArrayLike) -> np.ndarray:
    """Expected repeat purchases in the ``t`` days after T, given a history in days (eq. 10).

    Eq. 10's (1 - z)^(r+x) 2F1(r+x, b+x; c; z) is evaluated in Euler's form (1 - z)^(a-1)
    2F1(c-r-x, a-1; c; z) with c = a+b+x-1: the same number, but neither factor overflows as the
    frequency grows. Its divisor 1 + [x>0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x) is 1 / P(alive)."""
    r, alpha, b = params.r, params.alpha, params.b
    a = params.a if abs(params.a - 1) >= _A_NEAR_ONE else 1 + np.copysign(_A_NEAR_ONE, params.a - 1)
    x, t_obs, t = (np.asarray(v, dtype=float) for v in (frequency, T, t))
    c = a + b + x - 1
    z = t / (alpha + t_obs + t)
    with np.errstate(over="ignore", under="ignore"):
        remaining = (1 - z) ** (a - 1) * hyp2f1(c - r - x, a - 1, c, z)
    return c / (a - 1) * (1 - remaining) * probability_alive(params, x, recency, t_obs)


def expected_average_value(params: GammaGammaParams, frequency: ArrayLike, monetary_value: ArrayLike) -> np.ndarray:
    """Expected net value of a future purchase (note 025, eq. 5): the population mean v p/(q-1)
    shrunk towards the customer's own mean with weight p x / (p x + q - 1). Without a repeat
    purchase it is the population mean; a non-positive mean (returns) counts as 0."""
    population = params.population_mean
    x = np.asarray(frequency, dtype=float)
    own = np.maximum(np.asarray(monetary_value, dtype=float), 0.0)
    weight = params.p * x / (params.p * x + params.q - 1)
    return (1 - weight) * population + weight * own


def _check_horizon(horizon_days: float, discount_rate_annual: float) -> None:
    if not (np.isfinite(horizon_days) and horizon_days > 0):
        raise ClvError(f"horizon_days must be > 0, got {horizon_days!r}")
    if not (np.isfinite(discount_rate_annual) and discount_rate_annual > -1):
        raise ClvError(f"discount_rate_annual must be > -1 (e.g. 0.1 for 10 %), got {discount_rate_annual!r}")


def lifetime_value(bgnbd: BgNbdParams, gg: GammaGammaParams, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike,
                   monetary_value: ArrayLike, *, horizon_days: float, discount_rate_annual: float) -> np.ndarray:
    """Discounted expected net value of the next ``horizon_days`` days: for each 30-day month k,
    expected purchases in it x ``expected_average_value``, discounted by (1 + d)^(end_k / 30) with
    the monthly rate d = (1 + discount_rate_annual)^(1/12) - 1. A last partial month ends at the
    horizon. For a horizon of whole months this is lifetimes' ``customer_lifetime_value(...,
    time=horizon_days / 30, discount_rate=d, freq="D")``."""
    _check_horizon(horizon_days, discount_rate_annual)
    monthly = (1 + discount_rate_annual) ** (1 / 12) - 1
    spend = expected_average_value(gg, frequency, monetary_value)
    ends = np.minimum(np.arange(1, int(np.ceil(horizon_days / MONTH_DAYS)) + 1) * MONTH_DAYS, horizon_days)
    value = cumulative_before = np.zeros(np.broadcast(frequency, recency, T).shape)
    for end in ends:
        cumulative = expected_purchases(bgnbd, end, frequency, recency, T)
        value = value + spend * (cumulative - cumulative_before) / (1 + monthly) ** (end / MONTH_DAYS)
        cumulative_before = cumulative
    return value


def with_predictions(history: pd.DataFrame, bgnbd: BgNbdParams, gg: GammaGammaParams, *, horizon_days: float,
                     discount_rate_annual: float) -> pd.DataFrame:
    """``history`` (pandas, with the summary columns) plus ``expected_purchases`` (in the next
    ``horizon_days`` days), ``p_alive``, ``expected_avg_order_value`` and ``clv``."""
    x, tx, t_obs, m = (history[c].to_numpy(dtype=float) for c in SUMMARY_COLUMNS)
    return history.assign(
        expected_purchases=expected_purchases(bgnbd, horizon_days, x, tx, t_obs),
        p_alive=probability_alive(bgnbd, x, tx, t_obs),
        expected_avg_order_value=expected_average_value(gg, x, m),
        clv=lifetime_value(bgnbd, gg, x, tx, t_obs, m, horizon_days=horizon_days,
                           discount_rate_annual=discount_rate_annual),
    )


def score(summary: DataFrame, bgnbd: BgNbdParams, gg: GammaGammaParams, *, horizon_days: float,
          discount_rate_annual: float) -> DataFrame:
    """``summary`` with the four prediction columns (doubles) of ``with_predictions``, computed in
    a vectorized ``mapInPandas`` (nothing is collected). Customers with no order are not in the
    summary; the caller decides their value."""
    _require_columns(summary, SUMMARY_COLUMNS, "summary")
    clash = [c for c in PREDICTION_COLUMNS if c in summary.columns]
    if clash:
        raise ClvError(f"summary already has the columns {clash}")
    _check_horizon(horizon_days, discount_rate_annual)
    gg.population_mean  # noqa: B018 - fails here, on the driver, rather than in every task
    schema = StructType([*summary.schema.fields, *(StructField(c, DoubleType()) for c in PREDICTION_COLUMNS)])

    def predict(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            yield with_predictions(batch, bgnbd, gg, horizon_days=horizon_days, discount_rate_annual=discount_rate_annual)

    return summary.mapInPandas(predict, schema)


def by_segment(value: DataFrame, segments: DataFrame) -> DataFrame:
    """The finance mart: per region, as-of date and segment, the scored buyers, their total and
    mean lifetime value, expected purchases and mean P(alive). ``value`` is gold.customer_clv,
    ``segments`` gold.customer_segments (joined on region, customer and as-of date)."""
    keys = ["region", "customer_id", "as_of_date"]
    joined = value.join(segments.select(*keys, "segment"), keys, "left")
    return joined.groupBy("region", "as_of_date", F.coalesce("segment", F.lit("(no segment)")).alias("segment")).agg(
        F.count(F.lit(1)).alias("customers"),
        F.round(F.sum("clv"), 2).alias("clv_total"),
        F.round(F.avg("clv"), 2).alias("clv_mean"),
        F.round(F.sum("expected_purchases"), 2).alias("expected_purchases_total"),
        F.round(F.avg("p_alive"), 4).alias("p_alive_mean"),
    )
