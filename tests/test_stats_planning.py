"""cxlens.stats.planning against statsmodels' power solver, the textbook proportion formula written
out with scipy, its own inverse, and simulated experiments of the planned size."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.power import NormalIndPower

from cxlens.errors import CxlensError, StatsError
from cxlens.stats import (
    Moments,
    Plan,
    compare,
    duration,
    minimum_detectable_effect,
    sample_size,
)
from cxlens.stats.planning import Direction, Kind


def _assert_json_clean(plan: Plan) -> None:
    d = json.loads(json.dumps(plan.to_dict(), allow_nan=False))
    assert d["code"] == plan.code and isinstance(d["message"], str) and d["message"].endswith(".")


def _z(alpha: float, power: float) -> float:
    return float(sps.norm.ppf(1 - alpha / 2) + sps.norm.ppf(power))


# --- mean and ratio: statsmodels ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("baseline", "sd", "mde", "alpha", "power"),
    [
        (10.0, 20.0, 0.05, 0.05, 0.8),
        (42.5, 130.0, 0.02, 0.01, 0.9),
        (3.2, 1.1, -0.1, 0.1, 0.8),
        (-5.0, 12.0, 0.03, 0.05, 0.95),
        (1000.0, 2500.0, 0.004, 0.05, 0.8),
    ],
)
def test_mean_matches_statsmodels(baseline: float, sd: float, mde: float, alpha: float, power: float) -> None:
    plan = sample_size("mean", baseline, sd=sd, mde=mde, alpha=alpha, power=power)
    effect = abs(mde * baseline / sd)
    solver = NormalIndPower()
    nobs1 = solver.solve_power(effect_size=effect, alpha=alpha, power=power, ratio=1.0)
    # statsmodels also counts the (negligible) chance of significance in the wrong direction,
    # which the textbook formula leaves out, so its exact n is a hair smaller.
    assert plan.code == "ok" and plan.units_per_arm == plan.control_units
    assert nobs1 <= plan.units_per_arm < nobs1 * (1 + 1e-5) + 1

    # The plan is the smallest whole number of units whose textbook power (the tail in the
    # direction of the change: a one-sided test at alpha / 2) reaches the target.
    def textbook_power(n: int) -> float:
        return solver.power(effect, nobs1=n, alpha=alpha / 2, ratio=1.0, alternative="larger")

    assert textbook_power(plan.units_per_arm) >= power > textbook_power(plan.units_per_arm - 1)
    assert plan.total_units == 2 * plan.units_per_arm
    assert (plan.kind, plan.baseline, plan.sd, plan.mde, plan.alpha, plan.power) == (
        "mean",
        baseline,
        sd,
        mde,
        alpha,
        power,
    )
    _assert_json_clean(plan)


@pytest.mark.parametrize(("control_share", "arms"), [(0.3, 2), (0.8, 2), (0.5, 3), (0.2, 4)])
def test_unequal_allocation_matches_statsmodels(control_share: float, arms: int) -> None:
    baseline, sd, mde = 25.0, 60.0, 0.04
    plan = sample_size("mean", baseline, sd=sd, mde=mde, arms=arms, control_share=control_share)
    ratio = (1 - control_share) / (arms - 1) / control_share  # statsmodels: nobs2 = ratio * nobs1
    nobs1 = NormalIndPower().solve_power(effect_size=mde * baseline / sd, alpha=0.05, power=0.8, ratio=ratio)
    assert plan.control_units is not None and plan.units_per_arm is not None
    assert nobs1 <= plan.control_units < nobs1 * (1 + 1e-5) + 1
    assert ratio * nobs1 <= plan.units_per_arm < ratio * nobs1 * (1 + 1e-5) + 1
    assert plan.total_units == plan.control_units + (arms - 1) * plan.units_per_arm
    assert plan.control_share == control_share
    assert "in control and" in plan.message


def test_more_arms_keep_the_per_arm_size() -> None:
    two = sample_size("mean", 10.0, sd=20.0, mde=0.05)
    four = sample_size("mean", 10.0, sd=20.0, mde=0.05, arms=4)
    assert four.units_per_arm == four.control_units == two.units_per_arm
    assert four.total_units == 4 * two.units_per_arm
    assert four.control_share == 0.25


def test_ratio_plans_like_a_mean_of_the_linearized_ratio() -> None:
    ratio = sample_size("ratio", 3.0, sd=5.0, mde=0.02)
    mean = sample_size("mean", 3.0, sd=5.0, mde=0.02)
    assert ratio.units_per_arm == mean.units_per_arm and ratio.kind == "ratio"
    assert "linearized ratio" in ratio.message


def test_linearized_ratio_sd_gives_the_delta_method_variance() -> None:
    # The module docstring's recipe for sd, checked by simulation: over many samples of n users,
    # the variance of R = sum(y) / sum(x) is sd**2 / n.
    rng = np.random.default_rng(31)
    n, reps = 400, 3000
    sessions = rng.poisson(3.0, (reps, n)) + 1
    revenue = rng.gamma(2.0, 1.5, (reps, n)) * sessions**0.8
    r_hat = revenue.sum(axis=1) / sessions.sum(axis=1)
    x, y = sessions.ravel().astype(float), revenue.ravel()  # the population, as pre-period data
    r = y.sum() / x.sum()
    sd = math.sqrt((y.var(ddof=1) - 2 * r * np.cov(x, y)[0, 1] + r * r * x.var(ddof=1)) / x.mean() ** 2)
    assert np.std((y - r * x) / x.mean(), ddof=1) == pytest.approx(sd, rel=1e-9)
    assert r_hat.var(ddof=1) == pytest.approx(sd * sd / n, rel=0.08)  # 3,000 samples: SE ~2.6%


# --- proportion: the textbook formula ---------------------------------------------------------


@pytest.mark.parametrize(
    ("p1", "mde", "alpha", "power", "control_share"),
    [
        (0.1, 0.1, 0.05, 0.8, None),
        (0.03, 0.05, 0.05, 0.8, None),
        (0.5, -0.02, 0.01, 0.9, None),
        (0.92, 0.05, 0.05, 0.8, None),
        (0.2, 0.15, 0.1, 0.8, 0.3),
        (0.6, -0.1, 0.05, 0.95, 0.7),
    ],
)
def test_proportion_matches_the_unpooled_formula(
    p1: float, mde: float, alpha: float, power: float, control_share: float | None
) -> None:
    plan = sample_size("proportion", p1, mde=mde, alpha=alpha, power=power, control_share=control_share)
    share = 0.5 if control_share is None else control_share
    k = (1 - share) / share
    p2 = p1 * (1 + mde)
    n_control = _z(alpha, power) ** 2 * (p1 * (1 - p1) + p2 * (1 - p2) / k) / (p2 - p1) ** 2
    assert plan.code == "ok" and plan.sd is None
    assert plan.control_units == math.ceil(n_control)
    assert plan.units_per_arm == math.ceil(k * n_control)
    _assert_json_clean(plan)


def test_pinned_proportion_plan() -> None:
    # 10% -> 11%: (1.959964 + 0.841621)**2 * (0.09 + 0.0979) / 0.01**2 = 14,748.04 per arm.
    plan = sample_size("proportion", 0.1, mde=0.1, traffic_per_day=1000)
    assert (plan.units_per_arm, plan.total_units, plan.days) == (14749, 29498, 30)
    assert plan.message == (
        "Detecting a +10% change in a rate of 10% with 80% power at alpha = 0.05 (two-sided) needs 14,749 units "
        "in each of the 2 arms, 29,498 in total; at 1,000 units a day they take 30 days."
    )


@pytest.mark.parametrize(("p1", "mde"), [(0.1, 0.1), (0.3, -0.05)])
def test_simulated_power_of_the_planned_proportion_experiment(p1: float, mde: float) -> None:
    """2,000 experiments of the planned size with the true effect at the MDE, read with the pooled
    two-proportion z-test that compare(kind="proportion") runs: about 80% come out significant
    (the window 0.77-0.83 is +-3.4 standard errors of a share of 2,000 around 0.8)."""
    plan = sample_size("proportion", p1, mde=mde, power=0.8)
    n_c, n_t = plan.control_units, plan.units_per_arm
    assert n_c is not None and n_t is not None
    rng = np.random.default_rng(2026)
    experiments = 2000
    x_c = rng.binomial(n_c, p1, experiments)
    x_t = rng.binomial(n_t, p1 * (1 + mde), experiments)
    pooled = (x_c + x_t) / (n_c + n_t)
    z = (x_t / n_t - x_c / n_c) / np.sqrt(pooled * (1 - pooled) * (1 / n_c + 1 / n_t))
    p_values = 2 * sps.norm.sf(np.abs(z))
    first = compare(Moments(n_c, x_c[0], x_c[0]), Moments(n_t, x_t[0], x_t[0]), kind="proportion")
    assert first.p_value == pytest.approx(p_values[0], rel=1e-9)  # the same test as cxlens runs
    assert 0.77 <= np.mean(p_values < 0.05) <= 0.83


# --- the inverse: minimum detectable effect ---------------------------------------------------


@pytest.mark.parametrize("n", [50, 1000, 25_000, 10**7])
@pytest.mark.parametrize("direction", ["increase", "decrease"])
def test_mean_mde_matches_statsmodels(n: int, direction: Direction) -> None:
    baseline, sd = 40.0, 90.0
    plan = minimum_detectable_effect("mean", baseline, sd=sd, units_per_arm=n, direction=direction)
    assert plan.mde is not None and plan.code == "ok"
    effect = abs(plan.mde) * baseline / sd
    solver = NormalIndPower()
    # Textbook power (one tail at alpha / 2) is exactly the target; two-sided adds < 1e-5.
    assert solver.power(effect, nobs1=n, alpha=0.025, ratio=1.0, alternative="larger") == pytest.approx(0.8, rel=1e-12)
    assert solver.power(effect, nobs1=n, alpha=0.05, ratio=1.0) == pytest.approx(0.8, abs=1e-5)
    if n <= 1000:  # statsmodels' own solver stops early on the tiny effects of large n
        assert abs(plan.mde) == pytest.approx(
            solver.solve_power(nobs1=n, alpha=0.05, power=0.8) * sd / baseline, rel=1e-5
        )
    assert (plan.mde > 0) == (direction == "increase")
    assert (plan.units_per_arm, plan.control_units, plan.total_units) == (n, n, 2 * n)


@pytest.mark.parametrize(("p1", "n"), [(0.1, 14749), (0.01, 200_000), (0.5, 300), (0.97, 5000), (1e-4, 10**9)])
@pytest.mark.parametrize("direction", ["increase", "decrease"])
def test_proportion_mde_solves_the_power_equation(p1: float, n: int, direction: Direction) -> None:
    plan = minimum_detectable_effect("proportion", p1, units_per_arm=n, direction=direction)
    assert plan.mde is not None and plan.code == "ok"
    assert (plan.mde > 0) == (direction == "increase")
    p2 = p1 * (1 + plan.mde)
    assert 0 < p2 < 1
    z = abs(p2 - p1) / math.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / n)
    assert z == pytest.approx(_z(0.05, 0.8), rel=1e-9)


@pytest.mark.parametrize(
    ("kind", "baseline", "sd", "mde"),
    [
        ("mean", 10.0, 20.0, 0.05),
        ("ratio", 3.0, 5.0, -0.03),
        ("proportion", 0.1, None, 0.1),
        ("proportion", 0.1, None, -0.1),
        ("proportion", 0.8, None, 0.2),
        ("proportion", 1.0, None, -0.07),
    ],
)
def test_mde_inverts_sample_size(kind: Kind, baseline: float, sd: float | None, mde: float) -> None:
    n = sample_size(kind, baseline, sd=sd, mde=mde).units_per_arm
    assert n is not None
    direction: Direction = "increase" if mde > 0 else "decrease"
    at_n = minimum_detectable_effect(kind, baseline, sd=sd, units_per_arm=n, direction=direction)
    fewer = minimum_detectable_effect(kind, baseline, sd=sd, units_per_arm=n - 1, direction=direction)
    assert at_n.mde is not None and fewer.mde is not None
    assert abs(at_n.mde) <= abs(mde) < abs(fewer.mde)
    # ... and back: the effect detectable with n units needs exactly n units.
    assert sample_size(kind, baseline, sd=sd, mde=at_n.mde).units_per_arm == n


# --- duration ---------------------------------------------------------------------------------


def test_duration_is_total_over_traffic_rounded_up() -> None:
    plan = duration(1200, "mean", 10.0, sd=20.0, mde=0.05)
    assert plan.total_units == 50234 and plan.traffic_per_day == 1200
    assert plan.days == math.ceil(50234 / 1200) == 42
    assert plan == sample_size("mean", 10.0, sd=20.0, mde=0.05, traffic_per_day=1200)
    assert sample_size("mean", 10.0, sd=20.0, mde=0.05).days is None
    assert duration(50234, "mean", 10.0, sd=20.0, mde=0.05).days == 1
    assert "1 day." in duration(50234, "mean", 10.0, sd=20.0, mde=0.05).message
    mde_plan = minimum_detectable_effect("mean", 10.0, sd=20.0, units_per_arm=5000, traffic_per_day=999.5)
    assert mde_plan.days == 11


# --- degenerate inputs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "baseline", "sd", "mde", "code"),
    [
        ("mean", 0.0, 20.0, 0.05, "zero_baseline"),
        ("ratio", 0.0, 0.0, 0.05, "zero_baseline"),
        ("proportion", 0.0, None, 0.05, "zero_baseline"),
        ("mean", 10.0, 0.0, 0.05, "zero_variance"),
        ("ratio", 2.0, 0.0, -0.05, "zero_variance"),
        ("proportion", 0.6, None, 0.8, "impossible_effect"),
        ("proportion", 0.5, None, 1.0, "impossible_effect"),
        ("proportion", 0.5, None, -1.0, "impossible_effect"),
        ("proportion", 0.5, None, -1.5, "impossible_effect"),
        ("proportion", 1.0, None, 0.01, "impossible_effect"),
    ],
)
def test_degenerate_plans_have_a_code_and_no_sizes(
    kind: Kind, baseline: float, sd: float | None, mde: float, code: str
) -> None:
    plan = sample_size(kind, baseline, sd=sd, mde=mde, traffic_per_day=100)
    assert plan.code == code and plan.mde == mde
    assert (plan.control_units, plan.units_per_arm, plan.total_units, plan.days) == (None, None, None, None)
    _assert_json_clean(plan)


def test_impossible_effect_message() -> None:
    plan = sample_size("proportion", 0.6, mde=0.8)
    assert (
        plan.message
        == "A +80% change on a rate of 60% would make it 108%, but a rate must stay strictly between 0% and 100%."
    )


@pytest.mark.parametrize(
    ("kind", "baseline", "sd", "n", "direction", "code"),
    [
        ("mean", 0.0, 1.0, 100, "increase", "zero_baseline"),
        ("proportion", 0.0, None, 100, "increase", "zero_baseline"),
        ("mean", 5.0, 0.0, 100, "increase", "zero_variance"),
        ("proportion", 0.999, None, 10, "increase", "impossible_effect"),
        ("proportion", 0.001, None, 10, "decrease", "impossible_effect"),
        ("proportion", 1.0, None, 10_000, "increase", "impossible_effect"),
    ],
)
def test_degenerate_mde(kind: Kind, baseline: float, sd: float | None, n: int, direction: Direction, code: str) -> None:
    plan = minimum_detectable_effect(kind, baseline, sd=sd, units_per_arm=n, direction=direction, traffic_per_day=10)
    assert plan.code == code and plan.mde is None
    assert plan.units_per_arm is None and plan.days is None
    _assert_json_clean(plan)


# --- misuse -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": 1.0}, "alpha"),
        ({"alpha": -0.05}, "alpha"),
        ({"alpha": math.nan}, "alpha"),
        ({"alpha": "0.05"}, "alpha"),
        ({"power": 0.0}, "power"),
        ({"power": 1.0}, "power"),
        ({"power": 1.2}, "power"),
        ({"power": 0.02}, "power"),  # below alpha / 2
        ({"mde": 0.0}, "mde"),
        ({"mde": math.inf}, "mde"),
        ({"mde": None}, "mde"),
        ({"traffic_per_day": -100}, "traffic_per_day"),
        ({"traffic_per_day": 0}, "traffic_per_day"),
        ({"kind": "median"}, "kind"),
        ({"sd": None}, "sd"),
        ({"sd": -1.0}, "sd"),
        ({"kind": "proportion", "baseline": 0.1, "sd": 0.3}, "sd"),
        ({"kind": "proportion", "baseline": 1.2, "sd": None}, "baseline"),
        ({"baseline": math.nan}, "baseline"),
        ({"arms": 1}, "arms"),
        ({"arms": 2.5}, "arms"),
        ({"control_share": 0.0}, "control_share"),
        ({"control_share": 1.0}, "control_share"),
        ({"mde": 1e-200}, "mde"),
    ],
)
def test_sample_size_misuse_names_the_argument(kwargs: dict, argument: str) -> None:
    call = {"kind": "mean", "baseline": 10.0, "sd": 20.0, "mde": 0.05} | kwargs
    kind, baseline = call.pop("kind"), call.pop("baseline")
    with pytest.raises(StatsError) as info:
        sample_size(kind, baseline, **call)
    message = str(info.value)
    assert isinstance(info.value, CxlensError)
    assert message.startswith("sample_size: ") and argument in message and message.endswith(".")
    assert message.count(". ") == 0  # one sentence


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"units_per_arm": 0}, "units_per_arm"),
        ({"units_per_arm": 1.5}, "units_per_arm"),
        ({"direction": "up"}, "direction"),
        ({"alpha": 2.0}, "alpha"),
        ({"traffic_per_day": -1}, "traffic_per_day"),
    ],
)
def test_mde_misuse_names_the_argument(kwargs: dict, argument: str) -> None:
    call = {"sd": 20.0, "units_per_arm": 1000} | kwargs
    with pytest.raises(StatsError, match=rf"^minimum_detectable_effect: .*{argument}"):
        minimum_detectable_effect("mean", 10.0, **call)


def test_duration_needs_traffic() -> None:
    with pytest.raises(StatsError, match="traffic_per_day"):
        duration(None, "mean", 10.0, sd=20.0, mde=0.05)
    with pytest.raises(StatsError, match="^duration: traffic_per_day"):
        duration(-5, "mean", 10.0, sd=20.0, mde=0.05)
    with pytest.raises(StatsError, match="^duration: alpha"):
        duration(100, "mean", 10.0, sd=20.0, mde=0.05, alpha=5)
