"""Compare one metric between two periods ("before" and "after") from their sufficient statistics.

Assumptions shared by every kind: units in "before" and "after" are independent of each other
and within each group (a customer who appears in both periods makes the test conservative or
liberal depending on the correlation; a paired design needs another test), and the groups are
large enough for a normal (or Student t) approximation of the difference.

Kinds, the estimate of each group's metric and its variance:

- ``"mean"``: the mean of y; Welch's t-test with Welch-Satterthwaite degrees of freedom
  (Welch 1947, Biometrika 34:28-35; Satterthwaite 1946), CI with the t quantile at that df.
- ``"proportion"``: the share of y == 1 (y is 0/1); two-proportion z-test with the pooled
  variance for the p-value and the unpooled Wald interval for the difference (Agresti,
  Categorical Data Analysis, 3rd ed., 2013, sections 1.4 and 3.1).
- ``"nps"``: y is +1 promoter, 0 passive, -1 detractor, so the mean is p+ - p-; its variance is
  the multinomial one, (p+ + p- - (p+ - p-)**2) / n (Rocks 2016, "Interval estimation for the
  Net Promoter Score", The American Statistician 70:365-372); z-test and Wald CI.
- ``"total"``: the sum of y over rows (revenue, orders), each total taken as compound Poisson, so
  var(total) = E[N] E[y**2], estimated by sum_sq (Klugman, Panjer and Willmot, Loss Models,
  ch. 9); z-test and CI on the difference of totals.

The relative change (after - before) / before gets a delta-method CI for the ratio of two
independent estimates, var(a/b) ~ var_a / b**2 + a**2 var_b / b**4 (Deng, Knoblich and Lu 2018,
"Applying the Delta Method in Metric Analytics", KDD), with the same quantile as the absolute CI.
For a negative baseline (an NPS below 0) the relative change keeps that formula's sign.

Degenerate data never raises and never yields NaN; ``code`` says what happened, first match wins:

- ``"empty_group"``: a group has no units. Its value is None (no data is not zero); the other
  group's value is still given; everything else is None.
- ``"too_few_units"`` (kind "mean"): a group has one unit, so no spread can be estimated. Values,
  absolute and relative change are given; p-value and CIs are None.
- ``"zero_variance"``: neither group has any spread, so the CI has zero width. The CI (absolute
  and relative) is the single point [change, change], its limit as the spread goes to 0 (what
  statsmodels' Wald interval returns). The p-value is the test's own while its standard error is
  positive (the pooled z-test for 0% vs 100%); when that is zero too, the statistic is infinite
  if the values differ, so p_value = 0.0 (as scipy's ttest_ind), and 0/0 if they are equal, so
  p_value = None. The code tells a reader that the certainty comes from no spread in this
  sample, not from its size.
- ``"zero_baseline"``: before == 0, so the relative change and its CI are None; the absolute
  change, its CI and the p-value are given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Literal, get_args


from cxlens.errors import StatsError
from cxlens.stats.summary import Moments

Kind = Literal["mean", "proportion", "nps", "total"]
TestName = Literal["welch_t", "two_proportion_z", "nps_multinomial_z", "poisson_total_z"]
Code = Literal["ok", "empty_group", "zero_variance", "zero_baseline", "too_few_units"]

_TEST: dict[str, TestName] = {
    "mean": "welch_t",
    "proportion": "two_proportion_z",
    "nps": "nps_multinomial_z",
    "total": "poisson_total_z",
}
# Tolerance for "sum == sum_sq" style checks on counts that were added up as floats.
_COUNT_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Comparison:
    """A metric before and after, its change with a CI, and the p-value of "no change".

    ``before``, ``after``, ``absolute`` and ``ci_low``/``ci_high`` are in the metric's unit times
    ``scale``; ``relative`` and its CI are fractions (0.1 is +10%).
    """

    before: float | None
    after: float | None
    absolute: float | None
    relative: float | None
    ci_low: float | None
    ci_high: float | None
    relative_ci_low: float | None
    relative_ci_high: float | None
    p_value: float | None
    test: TestName
    code: Code

    def to_dict(self) -> dict[str, float | str | None]:
        """Plain JSON-able values: floats, strings and None (never NaN or infinity)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def compare(
    before: Moments,
    after: Moments,
    *,
    kind: Kind,
    scale: float = 1.0,
    alpha: float = 0.05,
) -> Comparison:
    """Compare a metric between two independent groups of units; see the module docstring."""
    _check_arguments(kind, scale, alpha)
    _check_fits(before, kind, "before")
    _check_fits(after, kind, "after")
    test = _TEST[kind]

    if before.n == 0 or after.n == 0:
        b_value = _value(before, kind) * scale if before.n > 0 else None
        a_value = _value(after, kind) * scale if after.n > 0 else None
        return _result(b_value, a_value, test=test, code="empty_group")

    b, a = _value(before, kind), _value(after, kind)
    b_scaled, a_scaled = b * scale, a * scale
    absolute = a_scaled - b_scaled
    relative = (a - b) / b if b != 0 else None
    if kind == "mean" and (before.n < 2 or after.n < 2):
        return _result(b_scaled, a_scaled, absolute=absolute, relative=relative, test=test, code="too_few_units")

    var_b, var_a = _estimate_variance(before, kind), _estimate_variance(after, kind)
    df = _welch_df(var_b, var_a, before.n, after.n) if kind == "mean" else None
    p_value = _p_value(a - b, _null_standard_error(before, after, kind, var_b, var_a), df)

    zero_variance = var_a + var_b == 0
    # With no spread the CI is the point itself, whatever the quantile (which needs a df then).
    quantile = 0.0 if zero_variance else _quantile(1 - alpha / 2, df)
    half = quantile * math.sqrt(var_a + var_b) * scale
    relative_ci: tuple[float | None, float | None] = (None, None)
    if relative is not None:
        # sqrt(var_a / b**2 + a**2 var_b / b**4), written so that a tiny b cannot underflow b**4 to 0.
        ratio = a / b
        relative_half = quantile * math.sqrt(var_a + ratio * ratio * var_b) / abs(b)
        relative_ci = (relative - relative_half, relative + relative_half)

    code: Code = "zero_variance" if zero_variance else "zero_baseline" if b == 0 else "ok"
    return _result(
        b_scaled,
        a_scaled,
        absolute=absolute,
        relative=relative,
        ci=(absolute - half, absolute + half),
        relative_ci=relative_ci,
        p_value=p_value,
        test=test,
        code=code,
    )


def _check_arguments(kind: str, scale: float, alpha: float) -> None:
    if kind not in _TEST:
        valid = ", ".join(repr(k) for k in get_args(Kind))
        raise StatsError(f"compare: unknown kind {kind!r}; valid kinds are {valid}.")
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise StatsError(f"compare: scale must be a finite number > 0 (100 for NPS points), got {scale!r}.")
    if not (isinstance(alpha, (int, float)) and 0 < alpha < 1):
        raise StatsError(f"compare: alpha must be between 0 and 1 (0.05 for a 95% CI), got {alpha!r}.")


def _check_fits(m: Moments, kind: str, side: str) -> None:
    """Reject moments that cannot come from the coding the kind assumes."""
    tolerance = _COUNT_TOLERANCE * max(1, m.n)
    if kind == "proportion" and (abs(m.sum - m.sum_sq) > tolerance or m.sum < -tolerance or m.sum > m.n + tolerance):
        raise StatsError(
            f"compare(kind='proportion'): the {side} moments {m} do not come from 0/1 values; "
            "they need sum == sum_sq (the number of 1s) between 0 and n."
        )
    if kind == "nps" and (m.sum_sq < abs(m.sum) - tolerance or m.sum_sq > m.n + tolerance):
        raise StatsError(
            f"compare(kind='nps'): the {side} moments {m} do not come from +1/0/-1 answers; "
            "they need |sum| <= sum_sq <= n (sum = promoters - detractors, sum_sq = promoters + detractors)."
        )


def _value(m: Moments, kind: str) -> float:
    return m.sum if kind == "total" else m.sum / m.n


def _estimate_variance(m: Moments, kind: str) -> float:
    """The (unpooled) variance of the group's estimated metric; m.n >= 1 (>= 2 for mean)."""
    if kind == "mean":
        variance = m.variance
        assert variance is not None, "compare() returns too_few_units before this"
        return variance / m.n
    if kind == "proportion":
        p = min(max(m.sum / m.n, 0.0), 1.0)
        return p * (1 - p) / m.n
    if kind == "nps":
        net, answered = m.sum / m.n, m.sum_sq / m.n
        return max(answered - net * net, 0.0) / m.n
    return m.sum_sq


def _null_standard_error(before: Moments, after: Moments, kind: str, var_b: float, var_a: float) -> float:
    """Standard error of the difference used by the test: pooled for proportions, else unpooled."""
    if kind == "proportion":
        pooled = min(max((before.sum + after.sum) / (before.n + after.n), 0.0), 1.0)
        return math.sqrt(pooled * (1 - pooled) * (1 / before.n + 1 / after.n))
    return math.sqrt(var_a + var_b)


def _welch_df(var_b: float, var_a: float, n_before: int, n_after: int) -> float | None:
    """Welch-Satterthwaite degrees of freedom; None when neither group has any spread."""
    total = var_b + var_a
    if total == 0:
        return None
    share_before, share_after = var_b / total, var_a / total  # no overflow in squares
    return 1 / (share_before * share_before / (n_before - 1) + share_after * share_after / (n_after - 1))


def _quantile(q: float, df: float | None) -> float:
    from scipy import stats as sps  # imported here: scipy.stats costs ~1 s of CLI start-up

    return float(sps.t.ppf(q, df)) if df is not None else float(sps.norm.ppf(q))


def _p_value(difference: float, standard_error: float, df: float | None) -> float | None:
    """Two-sided p-value of difference / standard_error; the zero-variance rule when it is 0."""
    if standard_error == 0:
        return 0.0 if difference != 0 else None
    statistic = abs(difference) / standard_error
    from scipy import stats as sps

    tail = sps.t.sf(statistic, df) if df is not None else sps.norm.sf(statistic)
    return min(1.0, 2 * float(tail))


def _finite(x: float | None) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def _result(
    before: float | None,
    after: float | None,
    *,
    absolute: float | None = None,
    relative: float | None = None,
    ci: tuple[float | None, float | None] = (None, None),
    relative_ci: tuple[float | None, float | None] = (None, None),
    p_value: float | None = None,
    test: TestName,
    code: Code,
) -> Comparison:
    """Build a Comparison, turning any overflow to infinity into None so no field is ever NaN/inf."""
    return Comparison(
        before=_finite(before),
        after=_finite(after),
        absolute=_finite(absolute),
        relative=_finite(relative),
        ci_low=_finite(ci[0]),
        ci_high=_finite(ci[1]),
        relative_ci_low=_finite(relative_ci[0]),
        relative_ci_high=_finite(relative_ci[1]),
        p_value=_finite(p_value),
        test=test,
        code=code,
    )
