"""Experiment planning: units (and days) to detect a relative change in a metric, and the inverse.

Each treatment arm is compared with the control by a two-sided test at level alpha using the
normal approximation. With n_c control units, n_t = k n_c units per treatment arm, per-unit
variances s_c**2 and s_t**2 of the metric, and the change delta = mde * baseline (``mde`` is
relative: 0.05 is +5%), the test reaches power 1 - beta when

    |delta| = (z_{1-alpha/2} + z_{1-beta}) * sqrt(s_c**2 / n_c + s_t**2 / n_t),
    so  n_c = (z_{1-alpha/2} + z_{1-beta})**2 * (s_c**2 + s_t**2 / k) / delta**2,  n_t = k n_c

(Chow, Shao and Wang, Sample Size Calculations in Clinical Research, 2nd ed., 2008, sections
3.2.1 and 4.2; the chance of a significant result in the wrong direction, below 1e-5 at the
usual settings, is ignored as there). Units are rounded up per arm.

Kinds and their per-unit variances:

- ``"mean"``: ``baseline`` is the mean and ``sd`` the standard deviation of the metric over units;
  s_c = s_t = sd (the change is assumed to move the mean, not the spread).
- ``"proportion"``: ``baseline`` is the rate p1 (0..1) and there is no ``sd``; the treatment rate
  is p2 = p1 (1 + mde) and the variances are unpooled, s_c**2 = p1 (1 - p1), s_t**2 = p2 (1 - p2).
- ``"ratio"``: a metric R = sum(y) / sum(x) over the randomized units, such as revenue per session
  when users are randomized (y_i = user i's revenue, x_i = user i's sessions). By the delta method
  var(R_hat) ~ var(l) / n with the linearized ratio l_i = (y_i - R x_i) / mean(x) (Deng, Knoblich
  and Lu 2018, "Applying the Delta Method in Metric Analytics", KDD), so ``sd`` is the standard
  deviation of l_i over units, from pre-experiment data: sd**2 = (var(y) - 2 R cov(x, y)
  + R**2 var(x)) / mean(x)**2. The ratio then plans like a mean; using the sd of y / x per
  session instead would understate the units needed, since sessions of one user are correlated.

With more than two arms each treatment arm is tested against the control at ``alpha``; to keep
the family-wise error rate at alpha, plan with alpha / (arms - 1) (Bonferroni) and adjust the
p-values with ``cxlens.stats.adjust_p_values``. By default every arm gets the same share of
units; ``control_share`` gives the control its own share and splits the rest evenly.

``minimum_detectable_effect`` inverts the relation for equal arms: for "mean" and "ratio"
|mde| = (z_{1-alpha/2} + z_{1-beta}) sd sqrt(2 / n) / |baseline|; for "proportion" p2 enters the
variance, and the change is found with Brent's method (its power rises monotonically with
|p2 - p1|, so the root is unique).

Degenerate inputs never raise; ``code`` says why the sizes (or the mde) are None, first match wins:

- ``"zero_baseline"``: the baseline is 0, so a relative change is no change at all.
- ``"zero_variance"``: ``sd`` is 0, so there is nothing to plan (any change shows in one unit).
- ``"impossible_effect"`` (proportion): the treatment rate p1 (1 + mde) is not strictly between
  0 and 1; for the inverse, no rate in (0, 1) is far enough from p1 to be detected.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, fields
from statistics import NormalDist
from typing import Literal, get_args

from cxlens.errors import StatsError

Kind = Literal["mean", "proportion", "ratio"]
Code = Literal["ok", "zero_baseline", "zero_variance", "impossible_effect"]
Direction = Literal["increase", "decrease"]

# Float noise below this relative size is not rounded up to one more unit (or day), so that
# sample_size(mde=minimum_detectable_effect(n).mde) gives back n.
_CEIL_SLACK = 1e-9


@dataclass(frozen=True)
class Plan:
    """What an experiment on one metric needs: units per arm, in total and in days of traffic.

    ``units_per_arm`` is the number of units in each treatment arm and ``control_units`` in the
    control; they are equal unless ``control_share`` was given. ``control_share`` is the share of
    all units in control (1 / arms by default). ``mde`` is relative (0.05 is +5%). Sizes are None
    when ``code`` is not "ok"; ``days`` is None too when no ``traffic_per_day`` was given.
    ``message`` is one sentence for a user.
    """

    kind: Kind
    baseline: float
    sd: float | None
    mde: float | None
    alpha: float
    power: float
    arms: int
    control_share: float
    control_units: int | None
    units_per_arm: int | None
    total_units: int | None
    traffic_per_day: float | None
    days: int | None
    code: Code
    message: str

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-able values: numbers, strings and None (never NaN or infinity)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def sample_size(
    kind: Kind,
    baseline: float,
    *,
    sd: float | None = None,
    mde: float,
    alpha: float = 0.05,
    power: float = 0.8,
    arms: int = 2,
    control_share: float | None = None,
    traffic_per_day: float | None = None,
) -> Plan:
    """Units per arm to detect a relative change ``mde`` in the metric; see the module docstring."""
    return _sample_size("sample_size", kind, baseline, sd, mde, alpha, power, arms, control_share, traffic_per_day)


def duration(
    traffic_per_day: float,
    kind: Kind,
    baseline: float,
    *,
    sd: float | None = None,
    mde: float,
    alpha: float = 0.05,
    power: float = 0.8,
    arms: int = 2,
    control_share: float | None = None,
) -> Plan:
    """Days the experiment must run when ``traffic_per_day`` units enter it daily (all arms together)."""
    if traffic_per_day is None:
        raise StatsError("duration: traffic_per_day must be given, the number of units a day entering the experiment.")
    return _sample_size("duration", kind, baseline, sd, mde, alpha, power, arms, control_share, traffic_per_day)


def _sample_size(
    where: str,
    kind: Kind,
    baseline: float,
    sd: float | None,
    mde: float,
    alpha: float,
    power: float,
    arms: int,
    control_share: float | None,
    traffic_per_day: float | None,
) -> Plan:
    baseline, sd = _check_metric(where, kind, baseline, sd)
    mde = _check_number(
        where, "mde", mde, "a relative change other than 0 (0.05 for +5%, -0.02 for -2%)", lambda x: x != 0
    )
    _check_test(where, alpha, power)
    arms = _check_arms(where, arms)
    share = _check_share(where, control_share, arms)
    traffic = _check_traffic(where, traffic_per_day)
    plan = _Plan(kind, baseline, sd, alpha, power, arms, share, traffic)

    if baseline == 0:
        return plan.done(
            mde,
            code="zero_baseline",
            message=(
                f"The baseline is 0, so a relative change of {_change(mde)} is no change at all "
                "and no sample size can be planned; plan on a metric whose baseline is not 0."
            ),
        )
    if sd == 0:
        return plan.done(mde, code="zero_variance", message=_ZERO_VARIANCE)
    delta = mde * baseline
    if kind == "proportion":
        p2 = baseline + delta
        if not 0 < p2 < 1:
            return plan.done(
                mde,
                code="impossible_effect",
                message=(
                    f"A {_change(mde)} change on a rate of {_rate(baseline)} would make it {_rate(p2)}, "
                    "but a rate must stay strictly between 0% and 100%."
                ),
            )
        var_control, var_treatment = baseline * (1 - baseline), p2 * (1 - p2)
    else:
        assert sd is not None
        var_control = var_treatment = sd * sd

    k = (1 - share) / (arms - 1) / share  # treatment units per control unit
    z = _z(alpha, power)
    try:
        n_control = (z / delta) ** 2 * (var_control + var_treatment / k)
    except OverflowError:
        n_control = math.inf
    if not math.isfinite(n_control):
        raise StatsError(f"{where}: mde={mde!r} is too small a change to plan for; the sample size overflows a float.")
    control_units, units_per_arm = _ceil(n_control), _ceil(k * n_control)
    sizes = _sizes(arms, control_units, units_per_arm, equal=control_share is None)
    return plan.done(
        mde,
        control_units=control_units,
        units_per_arm=units_per_arm,
        message=f"Detecting a {_change(mde)} change in {plan.metric()} "
        f"with {_percent(power)} power at alpha = {alpha:g} "
        f"(two-sided) needs {sizes}, {_total(arms, control_units, units_per_arm):,} in total.",
    )


def minimum_detectable_effect(
    kind: Kind,
    baseline: float,
    *,
    sd: float | None = None,
    units_per_arm: int,
    alpha: float = 0.05,
    power: float = 0.8,
    arms: int = 2,
    direction: Direction = "increase",
    traffic_per_day: float | None = None,
) -> Plan:
    """The smallest relative change detectable with ``units_per_arm`` units in every arm.

    ``direction`` picks the sign of the change: for a proportion an increase and a decrease of
    the same detectability differ in size (a rate of 10% moves more easily down than up).
    """
    where = "minimum_detectable_effect"
    baseline, sd = _check_metric(where, kind, baseline, sd)
    n = _check_units(where, units_per_arm)
    _check_test(where, alpha, power)
    arms = _check_arms(where, arms)
    if direction not in get_args(Direction):
        raise StatsError(f"{where}: direction must be 'increase' or 'decrease', got {direction!r}.")
    traffic = _check_traffic(where, traffic_per_day)
    plan = _Plan(kind, baseline, sd, alpha, power, arms, 1 / arms, traffic)
    sign = 1.0 if direction == "increase" else -1.0

    if baseline == 0:
        return plan.done(
            None,
            code="zero_baseline",
            message=(
                "The baseline is 0, so no relative change of it can be detected; "
                "plan on a metric whose baseline is not 0."
            ),
        )
    if sd == 0:
        return plan.done(None, code="zero_variance", message=_ZERO_VARIANCE)
    z = _z(alpha, power)
    if kind == "proportion":
        mde = _proportion_mde(baseline, n, z, sign)
        if mde is None:
            bound = "100%" if sign > 0 else "0%"
            return plan.done(
                None,
                code="impossible_effect",
                message=(
                    f"With {n:,} units per arm no {direction} of a rate of {_rate(baseline)} is detectable with "
                    f"{_percent(power)} power at alpha = {alpha:g}: not even a change to {bound}."
                ),
            )
    else:
        assert sd is not None
        mde = sign * z * sd * math.sqrt(2 / n) / abs(baseline)
    return plan.done(
        mde,
        control_units=n,
        units_per_arm=n,
        message=f"With {_sizes(arms, n, n, equal=True)} ({_total(arms, n, n):,} in total), the smallest {direction} "
        f"in {plan.metric()} detectable with {_percent(power)} power at alpha = {alpha:g} (two-sided) "
        f"is {_change(mde)}.",
    )


_ZERO_VARIANCE = (
    "sd is 0, so the metric does not vary between units and there is no sample size to plan; "
    "sd must be the standard deviation of the metric over units, not a standard error."
)


@dataclass(frozen=True)
class _Plan:
    """The arguments every Plan repeats, so each outcome is one ``done()`` call."""

    kind: Kind
    baseline: float
    sd: float | None
    alpha: float
    power: float
    arms: int
    control_share: float
    traffic_per_day: float | None

    def metric(self) -> str:
        if self.kind == "proportion":
            return f"a rate of {_rate(self.baseline)}"
        spread = "sd" if self.kind == "mean" else "sd of the linearized ratio"
        return f"a {self.kind} of {self.baseline:,.4g} ({spread} {self.sd:,.4g})"

    def done(
        self,
        mde: float | None,
        *,
        control_units: int | None = None,
        units_per_arm: int | None = None,
        code: Code = "ok",
        message: str,
    ) -> Plan:
        total = days = None
        if control_units is not None and units_per_arm is not None:
            total = _total(self.arms, control_units, units_per_arm)
            if self.traffic_per_day is not None:
                days = _ceil(total / self.traffic_per_day)
                plural = "s" if days != 1 else ""
                message = (
                    message.removesuffix(".")
                    + f"; at {self.traffic_per_day:,g} units a day they take {days:,} day{plural}."
                )
        return Plan(
            kind=self.kind,
            baseline=self.baseline,
            sd=self.sd,
            mde=mde,
            alpha=self.alpha,
            power=self.power,
            arms=self.arms,
            control_share=self.control_share,
            control_units=control_units,
            units_per_arm=units_per_arm,
            total_units=total,
            traffic_per_day=self.traffic_per_day,
            days=days,
            code=code,
            message=message,
        )


def _proportion_mde(p1: float, n: int, z: float, sign: float) -> float | None:
    """Relative change m with |p2 - p1| = z sqrt((p1 q1 + p2 q2) / n), p2 = p1 (1 + m) in (0, 1)."""
    target = z / math.sqrt(n)
    edge = (1 / p1 - 1) if sign > 0 else -1.0  # where p2 reaches 1 or 0, itself excluded
    if edge == 0:
        return None
    var1 = p1 * (1 - p1)
    if var1 == 0:
        # p1 = 1, a decrease: only p2 varies and |p2 - 1| / sqrt(p2 q2) = sqrt(q2 / p2) = target.
        return 1 / (1 + target * target) - 1

    def gap(m: float) -> float:
        p2 = p1 * (1 + m)
        return abs(p2 - p1) / math.sqrt(var1 + p2 * (1 - p2)) - target

    if gap(edge) <= 0:
        return None
    # Imported here: scipy.optimize costs ~0.6 s of CLI start-up.
    from scipy.optimize import brentq

    # A tiny xtol so that the relative tolerance governs: small rates have small roots.
    return float(brentq(gap, 0.0, edge, xtol=1e-300, rtol=1e-13))


def _z(alpha: float, power: float) -> float:
    normal = NormalDist()
    return normal.inv_cdf(1 - alpha / 2) + normal.inv_cdf(power)


def _ceil(x: float) -> int:
    return math.ceil(x * (1 - _CEIL_SLACK))


def _total(arms: int, control_units: int, units_per_arm: int) -> int:
    return control_units + (arms - 1) * units_per_arm


def _sizes(arms: int, control_units: int, units_per_arm: int, *, equal: bool) -> str:
    if equal:
        return f"{units_per_arm:,} units in each of the {arms} arms"
    treatments = "the treatment arm" if arms == 2 else f"each of the {arms - 1} treatment arms"
    return f"{control_units:,} units in control and {units_per_arm:,} in {treatments}"


def _change(x: float) -> str:
    """A signed relative change: 0.05 -> '+5%', -0.0123 -> '-1.23%'."""
    return f"{100 * x:+.3g}%"


def _percent(x: float) -> str:
    """A share: 0.8 -> '80%', 0.975 -> '97.5%'."""
    return f"{100 * x:.3g}%"


def _rate(p: float) -> str:
    return f"{100 * p:.4g}%"


def _real(value: object) -> float:
    """The value as a float, or NaN for anything that is not a real number (bools and strings too)."""
    if isinstance(value, (bool, str)):
        return math.nan
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _check_number(where: str, name: str, value: object, valid: str, ok: Callable[[float], bool]) -> float:
    number = _real(value)
    if not (math.isfinite(number) and ok(number)):
        raise StatsError(f"{where}: {name} must be {valid}, got {value!r}.")
    return number


def _check_metric(where: str, kind: str, baseline: object, sd: object) -> tuple[float, float | None]:
    if kind not in get_args(Kind):
        valid = ", ".join(repr(k) for k in get_args(Kind))
        raise StatsError(f"{where}: unknown kind {kind!r}; valid kinds are {valid}.")
    if kind == "proportion":
        if sd is not None:
            raise StatsError(f"{where}: sd is not used for kind 'proportion' (it follows from the rate); leave it out.")
        rate = _check_number(
            where, "baseline", baseline, "a rate between 0 and 1 for kind 'proportion'", lambda x: 0 <= x <= 1
        )
        return rate, None
    number = _check_number(where, "baseline", baseline, "a finite number", lambda x: True)
    if sd is None:
        raise StatsError(f"{where}: sd is required for kind {kind!r}: the standard deviation of the metric over units.")
    return number, _check_number(where, "sd", sd, "a finite number >= 0", lambda x: x >= 0)


def _check_test(where: str, alpha: object, power: object) -> None:
    a = _check_number(where, "alpha", alpha, "between 0 and 1 (0.05 for a 5% false-positive rate)", lambda x: 0 < x < 1)
    _check_number(
        where, "power", power, "between 0 and 1 (0.8 for an 80% chance to detect the change)", lambda x: 0 < x < 1
    )
    if not float(power) > a / 2:  # type: ignore[arg-type]
        raise StatsError(
            f"{where}: power must be above alpha / 2 = {a / 2:g} (a test with no units has that much), got {power!r}."
        )


def _whole(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        return None


def _check_arms(where: str, arms: object) -> int:
    n = _whole(arms)
    if n is None or n < 2:
        raise StatsError(f"{where}: arms must be a whole number >= 2 (the control counts as an arm), got {arms!r}.")
    return n


def _check_units(where: str, units: object) -> int:
    n = _whole(units)
    if n is None or n < 1:
        raise StatsError(f"{where}: units_per_arm must be a whole number >= 1, got {units!r}.")
    return n


def _check_share(where: str, share: object, arms: int) -> float:
    if share is None:
        return 1 / arms
    return _check_number(
        where,
        "control_share",
        share,
        "a share between 0 and 1 (0.5 for half the units in control)",
        lambda x: 0 < x < 1,
    )


def _check_traffic(where: str, traffic: object) -> float | None:
    if traffic is None:
        return None
    return _check_number(where, "traffic_per_day", traffic, "a number of units a day > 0", lambda x: x > 0)
