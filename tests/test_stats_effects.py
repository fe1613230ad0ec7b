"""The experiment effects engine against published figures, scipy/statsmodels and simulation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats
from statsmodels.formula.api import ols
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from cxlens.errors import StatsError
from cxlens.stats.effects import estimate_effects
from cxlens.stats.summary import Moments
from cxlens.stats.sums import Sums, column_names


def _stack(cells: list[Sums]) -> Sums:
    """Many one-cell Sums as one multi-cell Sums."""
    return Sums(
        cells[0].variables,
        np.concatenate([c.n for c in cells]),
        np.concatenate([c.sums for c in cells]),
        np.concatenate([c.cross for c in cells]),
    )


def _batch_sums(values: dict[str, np.ndarray]) -> Sums:
    """Sums for many simulated experiments at once: each array is (experiments, units)."""
    names = tuple(v for v in ("y", "d", "x", "e") if v in values)
    data = np.stack([values[v] for v in names], axis=-1)  # (C, units, k)
    n = np.full(data.shape[0], data.shape[1])
    return Sums(names, n, data.sum(axis=1), np.einsum("cui,cuj->cij", data, data))


def test_known_answer_relative_effect_interval_and_p_value() -> None:
    control = Sums.from_moments(Moments(3407, 1396.87, 52377.9767))
    treatment = Sums.from_moments(Moments(3461, 2422.7, 134698.29))
    [r] = estimate_effects(control, treatment, kind="mean").records()
    assert r["rel_effect"] == pytest.approx(0.70732, abs=5e-6)
    assert r["rel_ci_low"] == pytest.approx(-0.03526, abs=5e-6)
    assert r["rel_ci_high"] == pytest.approx(1.44989, abs=5e-6)
    assert r["p_value"] == pytest.approx(0.06191, abs=5e-6)
    assert r["code"] == "ok"


def test_mean_metric_matches_scipy_welch_and_statsmodels_interval() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.gamma(2.0, 3.0, 800), rng.gamma(2.2, 3.0, 650)
    [r] = estimate_effects(Sums.of(y=a), Sums.of(y=b), kind="mean", alpha=0.1).records()
    assert r["abs_p_value"] == pytest.approx(stats.ttest_ind(b, a, equal_var=False).pvalue, rel=1e-9)
    low, high = CompareMeans(DescrStatsW(b), DescrStatsW(a)).tconfint_diff(alpha=0.1, usevar="unequal")
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((low, high), rel=1e-9)
    assert (r["mean"], r["control_mean"]) == pytest.approx((b.mean(), a.mean()))
    se_rel = math.sqrt(b.var(ddof=1) / len(b) / a.mean() ** 2 + b.mean() ** 2 * a.var(ddof=1) / len(a) / a.mean() ** 4)
    assert r["chance_to_win"] == pytest.approx(stats.norm.cdf((b.mean() / a.mean() - 1) / se_rel), rel=1e-9)


def test_proportion_matches_statsmodels_z_test_and_wald_interval() -> None:
    rng = np.random.default_rng(2)
    a, b = (rng.random(5000) < 0.11).astype(float), (rng.random(5200) < 0.125).astype(float)
    [r] = estimate_effects(Sums.of(y=a), Sums.of(y=b), kind="proportion").records()
    _, p = proportions_ztest([b.sum(), a.sum()], [len(b), len(a)])
    assert r["abs_p_value"] == pytest.approx(p, rel=1e-9)
    low, high = confint_proportions_2indep(b.sum(), len(b), a.sum(), len(a), method="wald")
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((low, high), rel=1e-9)


def test_ratio_metric_delta_method_equals_linearized_unit_values() -> None:
    rng = np.random.default_rng(3)
    visits_c, visits_t = rng.poisson(3, 900) + 1, rng.poisson(3, 950) + 1
    revenue_c = rng.gamma(1.0, 4.0, 900) * visits_c
    revenue_t = rng.gamma(1.0, 4.5, 950) * visits_t
    [r] = estimate_effects(Sums.of(y=revenue_c, d=visits_c), Sums.of(y=revenue_t, d=visits_t), kind="ratio").records()

    def linearized(y: np.ndarray, d: np.ndarray) -> tuple[float, float]:
        ratio = y.sum() / d.sum()
        return ratio, float(np.var((y - ratio * d) / d.mean(), ddof=1) / len(y))

    (rc, vc), (rt, vt) = linearized(revenue_c, visits_c), linearized(revenue_t, visits_t)
    assert (r["control_mean"], r["mean"]) == pytest.approx((rc, rt), rel=1e-12)
    df = (vc + vt) ** 2 / (vc**2 / 899 + vt**2 / 949)
    half = stats.t.ppf(0.975, df) * math.sqrt(vc + vt)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((rt - rc - half, rt - rc + half), rel=1e-9)


def test_cuped_effect_equals_the_ancova_treatment_coefficient() -> None:
    rng = np.random.default_rng(4)
    x_c, x_t = rng.gamma(2.0, 5.0, 700), rng.gamma(2.0, 5.0, 800)
    y_c = 3 + 0.8 * x_c + rng.normal(0, 4, 700)
    y_t = 4 + 0.8 * x_t + rng.normal(0, 4, 800)
    [r] = estimate_effects(Sums.of(y=y_c, x=x_c), Sums.of(y=y_t, x=x_t), kind="mean", cuped=True).records()
    frame = pd.DataFrame({"y": np.r_[y_c, y_t], "x": np.r_[x_c, x_t], "treated": np.r_[np.zeros(700), np.ones(800)]})
    fit = ols("y ~ treated + x", data=frame).fit()
    assert r["abs_effect"] == pytest.approx(fit.params["treated"], rel=1e-9)
    # The unadjusted means are reported as they are; the effect is the adjusted one.
    assert (r["mean"], r["control_mean"]) == pytest.approx((y_t.mean(), y_c.mean()))
    assert 0 < r["variance_reduction"] < 1
    assert (r["ci_high"] - r["ci_low"]) / 2 / 1.96 == pytest.approx(fit.bse["treated"], rel=0.05)


def test_cuped_variance_reduction_matches_one_minus_rho_squared() -> None:
    rng = np.random.default_rng(5)
    n, rho = 200_000, 0.6
    x = rng.normal(size=(2, n))
    y = rho * x + math.sqrt(1 - rho**2) * rng.normal(size=(2, n))
    [r] = estimate_effects(Sums.of(y=y[0], x=x[0]), Sums.of(y=y[1], x=x[1]), kind="mean", cuped=True).records()
    assert r["variance_reduction"] == pytest.approx(rho**2, abs=0.01)


def _coverage(effects: pd.DataFrame, true_abs: float, true_rel: float) -> tuple[float, float]:
    covered_abs = (effects.ci_low <= true_abs) & (true_abs <= effects.ci_high)
    covered_rel = (effects.rel_ci_low <= true_rel) & (true_rel <= effects.rel_ci_high)
    return float(covered_abs.mean()), float(covered_rel.mean())


@pytest.mark.parametrize("metric", ["mean", "proportion", "ratio", "cuped_mean", "cuped_ratio"])
def test_intervals_cover_the_true_effect_in_95_percent_of_2000_experiments(metric: str) -> None:
    rng = np.random.default_rng({"mean": 10, "proportion": 11, "ratio": 12, "cuped_mean": 13, "cuped_ratio": 14}[metric])
    experiments, units = 2000, 600

    def arm(lift: float) -> dict[str, np.ndarray]:
        shape = (experiments, units)
        if metric == "proportion":
            return {"y": (rng.random(shape) < 0.2 * (1 + lift)).astype(float)}
        if metric == "mean":
            return {"y": rng.lognormal(1.0, 0.8, shape) * (1 + lift)}
        if metric == "cuped_mean":
            x = rng.lognormal(1.0, 0.8, shape)
            return {"y": (0.7 * x + rng.lognormal(0.5, 0.6, shape)) * (1 + lift), "x": x}
        d = rng.poisson(2.0, shape) + 1.0
        untreated = rng.gamma(2.0, 1.5, shape) * d
        if metric == "ratio":
            return {"y": untreated * (1 + lift), "d": d}
        # The pre-period is correlated with the unit's untreated outcome, never with the treatment.
        e = d + rng.poisson(1.0, shape)
        return {"y": untreated * (1 + lift), "d": d, "x": 0.5 * untreated + rng.gamma(2.0, 1.0, shape) * e, "e": e}

    lift = 0.05
    kind = "ratio" if "ratio" in metric else metric.removeprefix("cuped_")
    control, treatment = _batch_sums(arm(0.0)), _batch_sums(arm(lift))
    result = pd.DataFrame(
        estimate_effects(control, treatment, kind=kind, cuped=metric.startswith("cuped")).records()  # type: ignore[arg-type]
    )
    truth_control = {"mean": math.exp(1.0 + 0.8**2 / 2), "proportion": 0.2, "ratio": 3.0}
    truth_control["cuped_mean"] = 0.7 * truth_control["mean"] + math.exp(0.5 + 0.6**2 / 2)
    truth_control["cuped_ratio"] = 3.0
    base = truth_control[metric]
    covered_abs, covered_rel = _coverage(result, base * lift, lift)
    assert 0.94 <= covered_abs <= 0.96, covered_abs
    assert 0.94 <= covered_rel <= 0.96, covered_rel
    if metric.startswith("cuped"):
        assert result.variance_reduction.median() > 0.2


def test_sequential_test_keeps_false_positives_under_daily_peeking() -> None:
    rng = np.random.default_rng(20)
    experiments, days, per_day = 2000, 30, 200
    daily = rng.lognormal(1.0, 1.0, size=(2, experiments, days, per_day))
    n = np.arange(1, days + 1) * per_day
    cum_sum = daily.sum(axis=3).cumsum(axis=2)
    cum_sq = (daily**2).sum(axis=3).cumsum(axis=2)

    def looks(arm: int) -> Sums:
        return Sums(
            ("y",), np.tile(n, experiments), cum_sum[arm].reshape(-1, 1), cum_sq[arm].reshape(-1, 1, 1)
        )

    def ever_significant(sequential: bool) -> float:
        effects = estimate_effects(looks(0), looks(1), kind="mean", sequential=sequential)
        p = np.nan_to_num(effects.p_value, nan=1.0).reshape(experiments, days)
        return float((p < 0.05).any(axis=1).mean())

    assert ever_significant(sequential=True) <= 0.05
    # The same data read with a fixed-horizon test every day: the inflation the sequential test prevents.
    assert ever_significant(sequential=False) > 0.15


def test_sequential_interval_is_wider_and_its_p_value_matches_its_interval() -> None:
    rng = np.random.default_rng(21)
    a, b = rng.normal(10, 3, 4000), rng.normal(10.3, 3, 4000)
    [fixed] = estimate_effects(Sums.of(y=a), Sums.of(y=b), kind="mean").records()
    [seq] = estimate_effects(Sums.of(y=a), Sums.of(y=b), kind="mean", sequential=True).records()
    assert seq["ci_low"] < fixed["ci_low"] and seq["ci_high"] > fixed["ci_high"]
    # Howard et al. (2021) eq. 14, written out here: rho is tuned for alpha = 0.05 at 5,000 units.
    n = 8000
    rho2 = (-2 * math.log(0.05) + math.log(-2 * math.log(0.05) + 1)) / 5000

    def half_width(alpha: float, variance: float) -> float:
        return math.sqrt(variance * n) * math.sqrt(2 * (n * rho2 + 1) / (n**2 * rho2) * math.log(math.sqrt(n * rho2 + 1) / alpha))

    var_abs = a.var(ddof=1) / 4000 + b.var(ddof=1) / 4000
    assert seq["ci_high"] - seq["abs_effect"] == pytest.approx(half_width(0.05, var_abs), rel=1e-9)
    # The always-valid p-value is the alpha at which the sequence's relative interval touches 0.
    var_rel = ((seq["rel_ci_high"] - seq["rel_effect"]) / half_width(0.05, 1.0)) ** 2
    assert half_width(seq["p_value"], var_rel) == pytest.approx(abs(seq["rel_effect"]), rel=1e-9)


def test_expected_loss_equals_numerical_integration_of_the_posterior() -> None:
    rng = np.random.default_rng(22)
    a, b = rng.normal(5, 2, 300), rng.normal(5.1, 2, 300)
    [r] = estimate_effects(Sums.of(y=a), Sums.of(y=b), kind="mean").records()
    mean = r["rel_effect"]
    sd = (r["rel_ci_high"] - r["rel_ci_low"]) / 2 / stats.t.ppf(0.975, 597.9)
    loss, _ = integrate.quad(lambda d: max(0.0, -d) * stats.norm.pdf(d, mean, sd), -1, 1, points=[0])
    keep, _ = integrate.quad(lambda d: max(0.0, d) * stats.norm.pdf(d, mean, sd), -1, 1, points=[0])
    assert r["expected_loss"] == pytest.approx(loss, rel=1e-3)
    assert r["expected_loss_control"] == pytest.approx(keep, rel=1e-3)
    [lower] = estimate_effects(Sums.of(y=a), Sums.of(y=b), kind="mean", higher_is_better=False).records()
    assert lower["chance_to_win"] == pytest.approx(1 - r["chance_to_win"])
    [shrunk] = estimate_effects(Sums.of(y=a), Sums.of(y=b), kind="mean", prior_sd=0.01).records()
    assert abs(stats.norm.ppf(shrunk["chance_to_win"])) < abs(stats.norm.ppf(r["chance_to_win"]))


def test_many_cells_in_one_call_equal_cell_by_cell() -> None:
    rng = np.random.default_rng(23)
    controls = [Sums.of(y=rng.normal(i, 1 + i, 50 + i)) for i in range(6)]
    treatments = [Sums.of(y=rng.normal(i + 0.2, 1 + i, 60 + i)) for i in range(6)]
    together = estimate_effects(_stack(controls), _stack(treatments), kind="mean").records()
    alone = [estimate_effects(c, t, kind="mean").records()[0] for c, t in zip(controls, treatments)]
    assert together == alone


def _all_finite_or_none(record: dict[str, object]) -> bool:
    return all(v is None or isinstance(v, str) or math.isfinite(v) for v in record.values())  # type: ignore[arg-type]


def test_degenerate_cells_return_codes_never_nan_or_exceptions() -> None:
    def one(values: list[float]) -> Sums:
        return Sums.of(y=values) if values else Sums(("y",), [0], [[0.0]], [[[0.0]]])

    cases = {
        "empty_arm": ([], [1.0, 2.0]),
        "too_few_units": ([1.0], [1.0, 2.0, 3.0]),
        "zero_variance": ([2.0, 2.0, 2.0], [3.0, 3.0]),
        "zero_control_mean": ([0.0, 0.0, 1.0, -1.0], [1.0, 2.0, 3.0]),
    }
    for code, (c, t) in cases.items():
        [r] = estimate_effects(one(c), one(t), kind="mean").records()
        assert r["code"] == code and _all_finite_or_none(r), r
    [empty] = estimate_effects(one([]), one([1.0, 2.0]), kind="mean").records()
    assert empty["control_mean"] is None and empty["mean"] == 1.5 and empty["p_value"] is None
    [flat] = estimate_effects(one([2.0, 2.0]), one([3.0, 3.0]), kind="mean").records()
    assert (flat["ci_low"], flat["ci_high"], flat["p_value"]) == (1.0, 1.0, 0.0)
    [same] = estimate_effects(one([2.0, 2.0]), one([2.0, 2.0]), kind="mean").records()
    assert same["p_value"] is None and same["code"] == "zero_variance"
    [zero] = estimate_effects(one([0.0, 0.0, 1.0, -1.0]), one([1.0, 2.0, 3.0]), kind="mean").records()
    assert zero["rel_effect"] is None and zero["abs_effect"] == 2.0 and zero["p_value"] is not None
    [no_visits] = estimate_effects(
        Sums.of(y=[0.0, 0.0], d=[0.0, 0.0]), Sums.of(y=[1.0, 2.0], d=[1.0, 1.0]), kind="ratio"
    ).records()
    assert no_visits["code"] == "zero_denominator" and no_visits["abs_effect"] is None and _all_finite_or_none(no_visits)


def test_sums_from_engine_columns_and_misuse_errors() -> None:
    table = {"n": [3], "sum_y": [6.0], "sum_d": [3.0], "sum_y_y": [14.0], "sum_y_d": [6.0], "sum_d_d": [3.0]}
    assert column_names(("y", "d")) == list(table)
    sums = Sums.from_columns(table, ("y", "d"))
    raw = Sums.of(y=[1.0, 2.0, 3.0], d=[1.0, 1.0, 1.0])
    assert np.allclose(sums.cross, raw.cross) and np.allclose(sums.sums, raw.sums)
    with pytest.raises(StatsError, match="lack variable"):
        estimate_effects(Sums.of(y=[1.0, 2.0]), Sums.of(y=[1.0, 3.0]), kind="ratio")
    with pytest.raises(StatsError, match="alpha"):
        estimate_effects(Sums.of(y=[1.0, 2.0]), Sums.of(y=[1.0, 3.0]), kind="mean", alpha=1.5)
    with pytest.raises(StatsError, match="missing aggregate columns"):
        Sums.from_columns({"n": [1]}, ("y",))


def test_the_known_answer_snippet_in_docs_runs_and_prints_what_it_says(capsys: pytest.CaptureFixture[str]) -> None:
    from conftest import doc_snippet

    block, expected = doc_snippet("experiments.md")
    exec(compile(block, "docs/experiments.md", "exec"), {})
    assert capsys.readouterr().out.split("\n")[: len(expected)] == expected
