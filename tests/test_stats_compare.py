"""cxlens.stats.compare against independent computations: scipy's Welch test, statsmodels'
proportion and Poisson tests, and the NPS multinomial variance written out from counts."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from fractions import Fraction
from statistics import NormalDist

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from statsmodels.stats import proportion as sm_proportion
from statsmodels.stats import rates as sm_rates

from cxlens.errors import CxlensError, StatsError
from cxlens.stats import Comparison, Moments, compare

REL = 1e-9
KINDS = ("mean", "proportion", "nps", "total")


def _nps_answers(promoters: int, passives: int, detractors: int) -> np.ndarray:
    return np.array([1] * promoters + [0] * passives + [-1] * detractors, dtype=float)


def _assert_json_clean(c: Comparison) -> None:
    d = c.to_dict()
    json.dumps(d, allow_nan=False)
    assert all(v is None or isinstance(v, (float, str)) for v in d.values()), d
    assert all(not isinstance(v, float) or math.isfinite(v) for v in d.values()), d


# --- Moments -----------------------------------------------------------------------------------


def test_moments_of_matches_numpy() -> None:
    x = np.random.default_rng(7).normal(3.0, 2.0, 500)
    m = Moments.of(x)
    assert m.n == 500
    assert m.mean == pytest.approx(x.mean(), rel=1e-12)
    assert m.variance == pytest.approx(x.var(ddof=1), rel=1e-9)


def test_moments_degenerate_mean_and_variance() -> None:
    assert Moments.of([]).mean is None and Moments.of([]).variance is None
    assert Moments.of([4.0]).mean == 4.0 and Moments.of([4.0]).variance is None
    assert Moments.of([0.1] * 1000).variance == 0.0
    assert Moments.of([1, 0, 1, 1]).variance == pytest.approx(np.var([1, 0, 1, 1], ddof=1))


def test_moments_add_across_strata_and_builtin_sum() -> None:
    rng = np.random.default_rng(11)
    parts = [rng.exponential(20.0, n) for n in (5, 40, 300)]
    pooled = Moments.of(np.concatenate(parts))
    total = sum(Moments.of(p) for p in parts)
    assert isinstance(total, Moments)
    assert total.n == pooled.n
    assert total.sum == pytest.approx(pooled.sum, rel=1e-12)
    assert total.sum_sq == pytest.approx(pooled.sum_sq, rel=1e-12)


def test_moments_coerce_database_and_numpy_numbers() -> None:
    m = Moments(n=np.int64(3), sum=Decimal("4.50"), sum_sq=np.float32(8.25))
    assert (m.n, m.sum, m.sum_sq) == (3, 4.5, 8.25)
    assert type(m.n) is int and type(m.sum) is float


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n": -1, "sum": 0.0, "sum_sq": 0.0},
        {"n": 2.5, "sum": 0.0, "sum_sq": 0.0},
        {"n": True, "sum": 0.0, "sum_sq": 0.0},
        {"n": 3, "sum": math.nan, "sum_sq": 1.0},
        {"n": 3, "sum": 1.0, "sum_sq": math.inf},
        {"n": 3, "sum": 1.0, "sum_sq": -1.0},
        {"n": 0, "sum": 1.0, "sum_sq": 1.0},
        {"n": 10, "sum": 50.0, "sum_sq": 5.0},  # sum and sum_sq swapped: sum**2 > n * sum_sq
    ],
)
def test_impossible_moments_raise_a_stats_error(kwargs: dict[str, float]) -> None:
    with pytest.raises(StatsError):
        Moments(**kwargs)  # type: ignore[arg-type]


def test_moments_of_rejects_nan_naming_the_position() -> None:
    with pytest.raises(StatsError, match="#2"):
        Moments.of([1.0, 2.0, math.nan])


integer_values = st.lists(st.integers(-1000, 1000).map(float), max_size=20)


@given(integer_values, integer_values, integer_values)
def test_moments_addition_is_associative_and_commutative(xs: list[float], ys: list[float], zs: list[float]) -> None:
    a, b, c = Moments.of(xs), Moments.of(ys), Moments.of(zs)
    assert (a + b) + c == a + (b + c)
    assert a + b == b + a
    assert a + b == Moments.of(xs + ys)


float_values = st.lists(st.floats(-1e6, 1e6, allow_nan=False), max_size=20)


@given(float_values, float_values, float_values)
def test_moments_addition_of_floats_agrees_up_to_rounding(xs: list[float], ys: list[float], zs: list[float]) -> None:
    a, b, c = Moments.of(xs), Moments.of(ys), Moments.of(zs)
    left, right = (a + b) + c, a + (b + c)
    assert left.n == right.n
    assert left.sum == pytest.approx(right.sum, rel=1e-12, abs=1e-6)
    assert left.sum_sq == pytest.approx(right.sum_sq, rel=1e-12, abs=1e-6)


# --- kind "mean": Welch -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n_before", "n_after", "sd_before", "sd_after", "shift", "alpha"),
    [(50, 40, 2.0, 3.0, 0.8, 0.05), (12, 300, 1.0, 10.0, -1.5, 0.05), (2, 3, 1.0, 1.0, 0.2, 0.10), (1000, 900, 5.0, 5.0, 0.0, 0.01)],
)
def test_mean_matches_scipy_welch(
    n_before: int, n_after: int, sd_before: float, sd_after: float, shift: float, alpha: float
) -> None:
    rng = np.random.default_rng(n_before + n_after)
    x = rng.normal(10.0, sd_before, n_before)
    y = rng.normal(10.0 + shift, sd_after, n_after)
    c = compare(Moments.of(x), Moments.of(y), kind="mean", alpha=alpha)
    ref = sps.ttest_ind(y, x, equal_var=False)
    ci = ref.confidence_interval(confidence_level=1 - alpha)
    assert (c.test, c.code) == ("welch_t", "ok")
    assert c.before == pytest.approx(x.mean(), rel=1e-12)
    assert c.after == pytest.approx(y.mean(), rel=1e-12)
    assert c.absolute == pytest.approx(y.mean() - x.mean(), rel=1e-9)
    assert c.p_value == pytest.approx(ref.pvalue, rel=REL)
    assert (c.ci_low, c.ci_high) == pytest.approx((ci.low, ci.high), rel=REL)
    # Delta method on the ratio, written from the raw arrays with scipy's df.
    a, b = y.mean(), x.mean()
    var_a, var_b = y.var(ddof=1) / n_after, x.var(ddof=1) / n_before
    half = sps.t.ppf(1 - alpha / 2, ref.df) * math.sqrt(var_a / b**2 + a**2 * var_b / b**4)
    assert c.relative == pytest.approx(a / b - 1, rel=REL)
    assert (c.relative_ci_low, c.relative_ci_high) == pytest.approx((a / b - 1 - half, a / b - 1 + half), rel=REL)


def test_mean_scale_multiplies_values_and_ci_but_not_relative() -> None:
    rng = np.random.default_rng(5)
    before, after = Moments.of(rng.normal(0.3, 0.1, 80)), Moments.of(rng.normal(0.35, 0.1, 70))
    plain, scaled = compare(before, after, kind="mean"), compare(before, after, kind="mean", scale=100)
    for field in ("before", "after", "absolute", "ci_low", "ci_high"):
        assert getattr(scaled, field) == pytest.approx(100 * getattr(plain, field), rel=1e-12)
    for field in ("relative", "relative_ci_low", "relative_ci_high", "p_value"):
        assert getattr(scaled, field) == getattr(plain, field)


def test_mean_from_strata_equals_pooled_raw_data() -> None:
    rng = np.random.default_rng(21)
    days_before = [rng.gamma(2.0, 15.0, n) for n in (30, 45, 12)]
    days_after = [rng.gamma(2.2, 15.0, n) for n in (50, 8)]
    c = compare(sum(Moments.of(d) for d in days_before), sum(Moments.of(d) for d in days_after), kind="mean")
    ref = sps.ttest_ind(np.concatenate(days_after), np.concatenate(days_before), equal_var=False)
    assert c.p_value == pytest.approx(ref.pvalue, rel=REL)
    assert (c.ci_low, c.ci_high) == pytest.approx(tuple(ref.confidence_interval()), rel=REL)


# --- kind "proportion" --------------------------------------------------------------------------


def _binary(successes: int, n: int) -> Moments:
    return Moments.of([1.0] * successes + [0.0] * (n - successes))


@pytest.mark.parametrize(("x_before", "n_before", "x_after", "n_after"), [(20, 90, 30, 100), (480, 5000, 560, 5100), (3, 10, 1, 12), (0, 40, 10, 40)])
def test_proportion_matches_statsmodels(x_before: int, n_before: int, x_after: int, n_after: int) -> None:
    c = compare(_binary(x_before, n_before), _binary(x_after, n_after), kind="proportion", scale=100)
    _, p_pooled = sm_proportion.proportions_ztest([x_after, x_before], [n_after, n_before])
    with np.errstate(divide="ignore"):  # statsmodels also reports the ratio, infinite for 0 before
        score = sm_proportion.test_proportions_2indep(
            x_after, n_after, x_before, n_before, method="score", correction=False
        )
    low, high = sm_proportion.confint_proportions_2indep(x_after, n_after, x_before, n_before, method="wald")
    assert c.test == "two_proportion_z"
    assert c.p_value == pytest.approx(p_pooled, rel=REL)
    assert c.p_value == pytest.approx(score.pvalue, rel=REL)
    assert (c.ci_low, c.ci_high) == pytest.approx((100 * low, 100 * high), rel=REL)
    assert c.before == pytest.approx(100 * x_before / n_before, rel=1e-12)
    assert c.after == pytest.approx(100 * x_after / n_after, rel=1e-12)


def test_proportion_relative_ci_is_the_delta_method_on_the_wald_variances() -> None:
    c = compare(_binary(20, 90), _binary(30, 100), kind="proportion")
    pb, pa = Fraction(20, 90), Fraction(30, 100)
    var = (pa * (1 - pa) / 100) / pb**2 + pa**2 * (pb * (1 - pb) / 90) / pb**4
    half = NormalDist().inv_cdf(0.975) * math.sqrt(var)
    rel = float(pa / pb - 1)
    assert (c.relative, c.relative_ci_low, c.relative_ci_high) == pytest.approx((rel, rel - half, rel + half), rel=REL)


def test_proportion_zero_versus_all_keeps_the_pooled_p_value_and_a_point_ci() -> None:
    c = compare(_binary(0, 10), _binary(10, 10), kind="proportion")
    _, p_pooled = sm_proportion.proportions_ztest([10, 0], [10, 10])
    assert c.code == "zero_variance"
    assert c.p_value == pytest.approx(p_pooled, rel=REL)
    assert (c.ci_low, c.ci_high) == (1.0, 1.0)
    assert c.relative is None and c.relative_ci_low is None


def test_proportion_zero_baseline_gives_absolute_ci_and_p_but_no_relative() -> None:
    c = compare(_binary(0, 50), _binary(5, 50), kind="proportion")
    assert c.code == "zero_baseline"
    assert c.before == 0.0 and c.absolute == pytest.approx(0.1)
    assert c.p_value is not None and c.ci_low is not None and c.ci_high is not None
    assert (c.relative, c.relative_ci_low, c.relative_ci_high) == (None, None, None)


# --- kind "nps" ---------------------------------------------------------------------------------


def test_nps_pinned_values() -> None:
    """Before 50/30/20 (NPS 30), after 130/40/30 (NPS 50). z = 0.2 / sqrt(61/10000 + 11/4000),
    computed with Fraction and Decimal outside cxlens; the quantile from statistics.NormalDist."""
    before, after = Moments.of(_nps_answers(50, 30, 20)), Moments.of(_nps_answers(130, 40, 30))
    c = compare(before, after, kind="nps", scale=100)
    assert (c.test, c.code) == ("nps_multinomial_z", "ok")
    assert c.before == pytest.approx(30.0, rel=1e-12)
    assert c.after == pytest.approx(50.0, rel=1e-12)
    assert c.absolute == pytest.approx(20.0, rel=1e-12)
    assert c.p_value == pytest.approx(0.033505256790828206, rel=REL)  # erfc(2.1259760138109356 / sqrt 2)
    assert (c.ci_low, c.ci_high) == pytest.approx((1.5617488456353357, 38.438251154364664), rel=REL)


def _nps_from_counts(promoters: int, passives: int, detractors: int) -> tuple[float, float]:
    """NPS share and the variance of its estimate, from the multinomial counts."""
    n = promoters + passives + detractors
    p_plus, p_minus = promoters / n, detractors / n
    variance = (p_plus * (1 - p_plus) + p_minus * (1 - p_minus) + 2 * p_plus * p_minus) / n
    return p_plus - p_minus, variance


@pytest.mark.parametrize(
    ("before_counts", "after_counts", "alpha"),
    [((50, 30, 20), (130, 40, 30), 0.05), ((12, 3, 25), (20, 11, 9), 0.10), ((400, 350, 250), (380, 330, 290), 0.05), ((1, 0, 0), (0, 1, 1), 0.05)],
)
def test_nps_matches_the_multinomial_formula_and_raw_data(
    before_counts: tuple[int, int, int], after_counts: tuple[int, int, int], alpha: float
) -> None:
    b_raw, a_raw = _nps_answers(*before_counts), _nps_answers(*after_counts)
    c = compare(Moments.of(b_raw), Moments.of(a_raw), kind="nps", scale=100, alpha=alpha)
    nb, var_b = _nps_from_counts(*before_counts)
    na, var_a = _nps_from_counts(*after_counts)
    assert var_b == pytest.approx(b_raw.var(ddof=0) / b_raw.size, rel=1e-12, abs=1e-15)
    assert var_a == pytest.approx(a_raw.var(ddof=0) / a_raw.size, rel=1e-12, abs=1e-15)
    se = math.sqrt(var_a + var_b)
    q = NormalDist().inv_cdf(1 - alpha / 2)
    assert c.p_value == pytest.approx(2 * (1 - NormalDist().cdf(abs(na - nb) / se)), rel=1e-7)
    assert (c.ci_low, c.ci_high) == pytest.approx((100 * (na - nb - q * se), 100 * (na - nb + q * se)), rel=REL, abs=1e-9)
    if nb != 0:
        half = q * math.sqrt(var_a / nb**2 + na**2 * var_b / nb**4)
        assert (c.relative_ci_low, c.relative_ci_high) == pytest.approx((na / nb - 1 - half, na / nb - 1 + half), rel=REL)


def test_nps_all_promoters_versus_all_detractors_is_zero_variance_with_p_zero() -> None:
    c = compare(Moments.of([1.0] * 3), Moments.of([-1.0] * 3), kind="nps", scale=100)
    assert c.code == "zero_variance"
    assert (c.before, c.after, c.absolute) == (100.0, -100.0, -200.0)
    assert c.p_value == 0.0
    assert (c.ci_low, c.ci_high) == (-200.0, -200.0)
    assert (c.relative, c.relative_ci_low, c.relative_ci_high) == (-2.0, -2.0, -2.0)


# --- kind "total" -------------------------------------------------------------------------------


@pytest.mark.parametrize(("orders_before", "orders_after"), [(100, 130), (2000, 1890), (3, 9)])
def test_total_of_counts_matches_statsmodels_poisson_wald(orders_before: int, orders_after: int) -> None:
    c = compare(Moments.of([1.0] * orders_before), Moments.of([1.0] * orders_after), kind="total")
    ref = sm_rates.test_poisson_2indep(orders_after, 1, orders_before, 1, method="wald", compare="diff")
    low, high = sm_rates.confint_poisson_2indep(orders_after, 1, orders_before, 1, method="wald", compare="diff")
    assert (c.test, c.code) == ("poisson_total_z", "ok")
    assert (c.before, c.after) == (float(orders_before), float(orders_after))
    assert c.p_value == pytest.approx(ref.pvalue, rel=REL)
    assert (c.ci_low, c.ci_high) == pytest.approx((low, high), rel=REL)


def test_total_of_revenue_uses_the_sum_of_squares_as_variance() -> None:
    rng = np.random.default_rng(3)
    before, after = rng.lognormal(3.0, 1.0, 400), rng.lognormal(3.1, 1.0, 420)
    c = compare(Moments.of(before), Moments.of(after), kind="total", scale=0.01)
    diff, se = after.sum() - before.sum(), math.sqrt((after**2).sum() + (before**2).sum())
    q = NormalDist().inv_cdf(0.975)
    assert c.before == pytest.approx(0.01 * before.sum(), rel=1e-12)
    assert c.p_value == pytest.approx(2 * NormalDist().cdf(-abs(diff) / se), rel=1e-7)
    assert (c.ci_low, c.ci_high) == pytest.approx((0.01 * (diff - q * se), 0.01 * (diff + q * se)), rel=REL)
    a, b = after.sum(), before.sum()
    half = q * math.sqrt((after**2).sum() / b**2 + a**2 * (before**2).sum() / b**4)
    assert (c.relative_ci_low, c.relative_ci_high) == pytest.approx((a / b - 1 - half, a / b - 1 + half), rel=REL)


# --- degenerate data ----------------------------------------------------------------------------

EMPTY = Moments(n=0, sum=0.0, sum_sq=0.0)
_EXAMPLE = {"mean": [2.0, 4.0, 9.0], "proportion": [1.0, 0.0, 1.0], "nps": [1.0, -1.0, 0.0], "total": [2.0, 4.0, 9.0]}


@pytest.mark.parametrize("kind", KINDS)
def test_empty_group_keeps_the_other_value_and_nothing_else(kind: str) -> None:
    full = Moments.of(_EXAMPLE[kind])
    expected = 15.0 if kind == "total" else full.sum / full.n
    for before, after in ((EMPTY, full), (full, EMPTY), (EMPTY, EMPTY)):
        c = compare(before, after, kind=kind)  # type: ignore[arg-type]
        assert c.code == "empty_group"
        assert c.before == (None if before.n == 0 else pytest.approx(expected))
        assert c.after == (None if after.n == 0 else pytest.approx(expected))
        assert all(getattr(c, f) is None for f in ("absolute", "relative", "ci_low", "ci_high", "p_value"))
        assert c.relative_ci_low is None and c.relative_ci_high is None
        _assert_json_clean(c)


def test_mean_with_one_unit_is_too_few_units() -> None:
    c = compare(Moments.of([5.0]), Moments.of([6.0, 8.0, 7.0]), kind="mean")
    assert c.code == "too_few_units"
    assert (c.before, c.after, c.absolute, c.relative) == (5.0, 7.0, 2.0, 0.4)
    assert (c.ci_low, c.ci_high, c.p_value, c.relative_ci_low, c.relative_ci_high) == (None,) * 5


@pytest.mark.filterwarnings("ignore:Precision loss occurred:RuntimeWarning")
def test_mean_zero_variance_follows_scipy() -> None:
    differ = compare(Moments.of([5.0, 5.0]), Moments.of([6.0, 6.0, 6.0]), kind="mean")
    assert differ.code == "zero_variance"
    assert differ.p_value == 0.0 == sps.ttest_ind([6.0, 6.0, 6.0], [5.0, 5.0], equal_var=False).pvalue
    assert (differ.ci_low, differ.ci_high) == (1.0, 1.0)
    assert (differ.relative_ci_low, differ.relative_ci_high) == (0.2, 0.2)
    same = compare(Moments.of([5.0, 5.0]), Moments.of([5.0, 5.0, 5.0]), kind="mean")
    assert (same.code, same.p_value, same.absolute, same.ci_low, same.ci_high) == ("zero_variance", None, 0.0, 0.0, 0.0)


@pytest.mark.filterwarnings("ignore:Precision loss occurred:RuntimeWarning")
def test_spread_in_one_group_only_is_an_ordinary_welch_test() -> None:
    x, y = np.array([5.0, 5.0, 5.0]), np.array([1.0, 5.0, 7.0, 9.0])
    c = compare(Moments.of(x), Moments.of(y), kind="mean")
    ref = sps.ttest_ind(y, x, equal_var=False)
    assert c.code == "ok"
    assert c.p_value == pytest.approx(ref.pvalue, rel=REL)
    assert (c.ci_low, c.ci_high) == pytest.approx(tuple(ref.confidence_interval()), rel=REL)


def test_total_of_zeros_is_zero_variance() -> None:
    c = compare(Moments.of([0.0] * 4), Moments.of([0.0] * 7), kind="total")
    assert (c.code, c.before, c.after, c.absolute, c.p_value, c.relative) == ("zero_variance", 0.0, 0.0, 0.0, None, None)


def test_mean_zero_baseline() -> None:
    c = compare(Moments.of([-1.0, 1.0, 0.0]), Moments.of([1.0, 2.0, 3.0]), kind="mean")
    assert c.code == "zero_baseline"
    assert c.p_value is not None and c.ci_low is not None
    assert (c.relative, c.relative_ci_low, c.relative_ci_high) == (None, None, None)


# --- arguments and moments that do not fit ------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "median"}, "unknown kind 'median'"),
        ({"kind": "mean", "scale": 0}, "scale"),
        ({"kind": "mean", "scale": math.nan}, "scale"),
        ({"kind": "mean", "alpha": 1.5}, "alpha"),
    ],
)
def test_bad_arguments_raise_a_stats_error_that_says_what_is_valid(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(StatsError, match=match) as info:
        compare(Moments.of([1.0, 2.0]), Moments.of([1.0, 2.0]), **kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, CxlensError)


def test_moments_that_do_not_fit_the_kind_raise() -> None:
    with pytest.raises(StatsError, match="after.*0/1"):
        compare(Moments.of([0.0, 1.0]), Moments.of([0.0, 2.0]), kind="proportion")
    with pytest.raises(StatsError, match=r"before.*\+1/0/-1"):
        compare(Moments.of([3.0, 1.0]), Moments.of([1.0, 0.0]), kind="nps")


# --- properties ---------------------------------------------------------------------------------

_VALUES = {
    "mean": st.floats(-1e6, 1e6, allow_nan=False),
    "proportion": st.sampled_from([0.0, 1.0]),
    "nps": st.sampled_from([-1.0, 0.0, 1.0]),
    "total": st.floats(-1e6, 1e6, allow_nan=False),
}


@st.composite
def _kind_and_two_groups(draw: st.DrawFn) -> tuple[str, Moments, Moments]:
    kind = draw(st.sampled_from(KINDS))
    values = st.lists(_VALUES[kind], max_size=25)
    return kind, Moments.of(draw(values)), Moments.of(draw(values))


@settings(max_examples=300, deadline=None, derandomize=True)
@given(_kind_and_two_groups(), st.sampled_from([1.0, 100.0]))
def test_compare_never_raises_nor_returns_nan(case: tuple[str, Moments, Moments], scale: float) -> None:
    kind, before, after = case
    c = compare(before, after, kind=kind, scale=scale)  # type: ignore[arg-type]
    _assert_json_clean(c)
    if c.ci_low is not None and c.ci_high is not None:
        assert c.ci_low <= c.ci_high
    if c.p_value is not None:
        assert 0.0 <= c.p_value <= 1.0


@settings(max_examples=200, deadline=None, derandomize=True)
@given(_kind_and_two_groups())
def test_compare_with_itself_shows_no_change(case: tuple[str, Moments, Moments]) -> None:
    kind, group, _ = case
    c = compare(group, group, kind=kind)  # type: ignore[arg-type]
    if group.n == 0:
        assert c.code == "empty_group"
        return
    assert c.absolute == 0.0
    assert c.p_value in (1.0, None)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(_kind_and_two_groups())
def test_swapping_before_and_after_flips_the_sign(case: tuple[str, Moments, Moments]) -> None:
    kind, before, after = case
    forward = compare(before, after, kind=kind)  # type: ignore[arg-type]
    backward = compare(after, before, kind=kind)  # type: ignore[arg-type]
    assert (forward.before, forward.after) == (backward.after, backward.before)
    assert forward.code == backward.code or {forward.code, backward.code} == {"ok", "zero_baseline"}
    assert forward.p_value == backward.p_value
    if forward.absolute is not None:
        assert backward.absolute == -forward.absolute
    if forward.ci_low is not None:
        assert (backward.ci_low, backward.ci_high) == (-forward.ci_high, -forward.ci_low)
