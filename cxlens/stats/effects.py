"""Treatment effects of experiment arms from sufficient statistics, vectorized over cells.

Each cell pairs a control arm and a treatment arm (one metric, one variant, one segment). The
engine works on :class:`~cxlens.stats.sums.Sums` only, so a database computes the per-unit
aggregates and Python never sees a unit. Assumptions: units are independent and assigned at
random; arms are large enough for the normal approximation of their estimates.

Estimates, per arm (``mu`` are per-unit means, ``S`` the per-unit covariance matrix):

- ``mean`` — mean of y; its variance ``S_yy / n``. ``proportion`` is the same for a 0/1 y with
  the binomial variance ``p (1 - p) / n`` and normal quantiles.
- ``ratio`` — ``mu_y / mu_d`` (revenue per visit, AOV, clicks per impression), whose units are
  the randomization units, not the visits: its variance is the delta method's
  ``g' S g / n`` with ``g = (1/mu_d, -mu_y/mu_d**2)`` (Deng, Knoblich and Lu 2018, "Applying the
  Delta Method in Metric Analytics", KDD).
- **CUPED** (Deng, Xu, Kohavi and Walker 2013, "Improving the Sensitivity of Online Controlled
  Experiments by Utilizing Pre-Experiment Data", WSDM): with the same metric ``h`` over a
  pre-period, the estimate is ``g - theta (h - h_pooled)`` with
  ``theta = sum_arms (n-1) cov(g, h) / sum_arms (n-1) var(h)`` (unit-level, delta-method linearized for ratio
  metrics, as gbstats does); its variance ``(var g - 2 theta cov(g, h) + theta**2 var h) / n``
  shrinks by about ``rho**2``, the squared correlation of the metric with its pre-period value.
  theta and the pooled covariate mean are treated as known, the usual large-sample convention.

Effects: ``abs_effect = t - c``, variance ``v_t + v_c``; ``rel_effect = t / c - 1`` with the
delta-method variance ``v_t / c**2 + t**2 v_c / c**4``. Quantiles are Student t with
Welch-Satterthwaite degrees of freedom for means and ratios, normal for proportions.
``p_value`` tests "no relative effect" (the interval a decision reads, as gbstats does);
``abs_p_value`` tests "no absolute difference" (scipy's Welch ``ttest_ind``, or the pooled
two-proportion z-test).

Bayesian read-out (Gaussian approximation of the relative effect, flat prior unless ``prior_sd``
gives a normal prior centred on 0): ``chance_to_win`` = P(treatment better), ``expected_loss``
= E[max(0, -effect)] in relative units if the treatment is shipped, ``expected_loss_control``
the same for keeping control (Stucchio 2015, "Bayesian A/B testing at VWO").

Sequential testing (``sequential=True``): intervals and p-values are always valid — they hold
at every look, however often the team peeks — from the two-sided normal-mixture confidence
sequence of Howard, Ramdas, McAuliffe and Sekhon (2021, "Time-uniform, nonparametric,
nonasymptotic confidence sequences", Annals of Statistics, eq. 14), tuned to be tightest at
``sequential_tuning`` total units (gbstats' default 5,000). The p-value is the smallest alpha
whose sequence excludes 0.

Degenerate cells never raise and never yield NaN; ``code`` says why a field is None, first
match wins: ``empty_arm`` (an arm has no units: its mean is None, every effect field too),
``zero_denominator`` (a ratio's denominator sums to 0 in an arm), ``too_few_units`` (an arm has
one unit: means and effects, no intervals), ``zero_variance`` (no spread: the interval is the
point itself; p is 0 when the arms differ, None when equal), ``zero_control_mean`` (the
relative effect is undefined; ``p_value`` and ``chance_to_win`` then use the absolute effect).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Literal, get_args

import numpy as np

from cxlens.errors import StatsError
from cxlens.stats.sums import Sums

MetricKind = Literal["mean", "proportion", "ratio"]
Code = Literal["ok", "empty_arm", "zero_denominator", "too_few_units", "zero_variance", "zero_control_mean"]
CODES: tuple[Code, ...] = get_args(Code)

# A variance numerator this small relative to the sum of squares is rounding (all values equal).
_ROUNDING = 1e-12


@dataclass(frozen=True, eq=False)
class Effects:
    """Per-cell results as arrays (NaN where a field does not apply); ``records()`` gives dicts."""

    n: np.ndarray
    control_n: np.ndarray
    mean: np.ndarray
    control_mean: np.ndarray
    abs_effect: np.ndarray
    rel_effect: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    rel_ci_low: np.ndarray
    rel_ci_high: np.ndarray
    p_value: np.ndarray
    abs_p_value: np.ndarray
    chance_to_win: np.ndarray
    expected_loss: np.ndarray
    expected_loss_control: np.ndarray
    variance_reduction: np.ndarray
    codes: np.ndarray

    def __len__(self) -> int:
        return int(self.n.size)

    def records(self) -> list[dict[str, float | int | str | None]]:
        """One plain dict per cell: floats, ints, the code and None — never NaN or infinity."""
        return list(self._iter_records())

    def _iter_records(self) -> Iterator[dict[str, float | int | str | None]]:
        names = [f.name for f in fields(self) if f.name != "codes"]
        columns = [getattr(self, name) for name in names]
        for i in range(len(self)):
            record: dict[str, float | int | str | None] = {}
            for name, column in zip(names, columns):
                value = float(column[i])
                record[name] = None if not math.isfinite(value) else int(value) if name in ("n", "control_n") else value
            record["code"] = CODES[int(self.codes[i])]
            yield record


def estimate_effects(
    control: Sums,
    treatment: Sums,
    *,
    kind: MetricKind,
    cuped: bool = False,
    alpha: float = 0.05,
    higher_is_better: bool = True,
    sequential: bool = False,
    sequential_tuning: float = 5_000,
    prior_sd: float | None = None,
) -> Effects:
    """Effects of ``treatment`` against ``control``, cell by cell; see the module docstring."""
    _check(control, treatment, kind, cuped, alpha, sequential_tuning, prior_sd)
    with np.errstate(all="ignore"):
        c, t = _Arm(control, kind, cuped), _Arm(treatment, kind, cuped)
        theta, pooled_h = _cuped_theta(c, t) if cuped else (np.zeros(len(control)), None)
        est_c, var_c = c.adjusted(theta, pooled_h)
        est_t, var_t = t.adjusted(theta, pooled_h)
        raw_var = c.var_g + t.var_g
        var_abs = var_c + var_t
        abs_effect = est_t - est_c
        rel_effect = est_t / est_c - 1
        var_rel = var_t / est_c**2 + (est_t / est_c) ** 2 * var_c / est_c**2
        df = _welch_df(var_c, var_t, c.n, t.n) if kind != "proportion" else np.full(len(control), np.inf)
        codes = _codes(c, t, var_abs, est_c)
        out = _intervals(abs_effect, rel_effect, var_abs, var_rel, df, c.n + t.n, alpha, sequential, sequential_tuning)
        abs_p = out.pop("abs_p_value") if sequential else _abs_p_value(control, treatment, kind, cuped, abs_effect, var_abs, df)
        bayes = _bayesian(rel_effect, var_rel, abs_effect, var_abs, codes, higher_is_better, prior_sd)
        reduction = np.where(cuped & (raw_var > 0), 1 - var_abs / raw_var, 0.0) if cuped else np.zeros(len(control))
    return _mask(
        Effects(
            n=t.n, control_n=c.n, mean=t.g, control_mean=c.g, abs_effect=abs_effect, rel_effect=rel_effect,
            ci_low=out["ci_low"], ci_high=out["ci_high"], rel_ci_low=out["rel_ci_low"], rel_ci_high=out["rel_ci_high"],
            p_value=out["p_value"], abs_p_value=abs_p, chance_to_win=bayes[0], expected_loss=bayes[1],
            expected_loss_control=bayes[2], variance_reduction=reduction, codes=codes,
        ),
        est_c,
    )


def _check(control: Sums, treatment: Sums, kind: str, cuped: bool, alpha: float, tuning: float, prior_sd: float | None) -> None:
    if kind not in get_args(MetricKind):
        raise StatsError(f"estimate_effects: unknown kind {kind!r}; valid kinds are mean, proportion, ratio.")
    if not (isinstance(alpha, (int, float)) and 0 < alpha < 1):
        raise StatsError(f"estimate_effects: alpha must be between 0 and 1 (0.05 for 95% intervals), got {alpha!r}.")
    if not (isinstance(tuning, (int, float)) and tuning > 0):
        raise StatsError(f"estimate_effects: sequential_tuning must be a number of units > 0, got {tuning!r}.")
    if prior_sd is not None and not (isinstance(prior_sd, (int, float)) and prior_sd > 0 and math.isfinite(prior_sd)):
        raise StatsError(f"estimate_effects: prior_sd must be a finite number > 0 or None (flat prior), got {prior_sd!r}.")
    if len(control) != len(treatment):
        raise StatsError(f"estimate_effects: {len(control)} control cells but {len(treatment)} treatment cells.")
    needed = {"mean": ("y",), "proportion": ("y",), "ratio": ("y", "d")}[kind]
    needed += ("x", "e")[: len(needed)] if cuped else ()
    for side, sums in (("control", control), ("treatment", treatment)):
        missing = [v for v in needed if not sums.has(v)]
        if missing:
            raise StatsError(
                f"estimate_effects(kind={kind!r}{', cuped=True' if cuped else ''}): the {side} sums lack "
                f"variable(s) {missing}; they have {list(sums.variables)}."
            )


class _Arm:
    """One arm's estimate g (post period), covariate h (pre period) and their unit-level covariance."""

    def __init__(self, sums: Sums, kind: str, cuped: bool) -> None:
        self.n = sums.n
        ratio = kind == "ratio"
        base = ("y", "d") if ratio else ("y",)
        names = base + (("x", "e") if ratio else ("x",)) if cuped else base
        idx = [sums.index(v) for v in names]
        s = sums.sums[:, idx]
        q = sums.cross[:, idx][:, :, idx]
        n = self.n[:, None]
        mu = s / n
        ddof = 0 if kind == "proportion" else 1
        centred = q - n[:, :, None] * mu[:, :, None] * mu[:, None, :]
        diag = np.einsum("cii->ci", centred)
        scale = np.einsum("cii->ci", q)
        tiny = diag <= _ROUNDING * scale
        centred = np.where(tiny[:, :, None] | tiny[:, None, :], 0.0, centred)
        cov = centred / np.maximum(self.n - ddof, 1)[:, None, None]
        k = len(names)
        half = k // 2 if cuped else k
        self.g, grad_g = _estimate(mu[:, :half], ratio)
        self.denominator_zero = (s[:, 1] == 0) if ratio else np.zeros(self.n.size, dtype=bool)
        zeros = np.zeros_like(grad_g)
        full_g = np.concatenate([grad_g, zeros], axis=1) if cuped else grad_g
        self.s_gg = np.einsum("ci,cij,cj->c", full_g, cov, full_g)
        self.var_g = self.s_gg / self.n
        if cuped:
            self.h, grad_h = _estimate(mu[:, half:], ratio)
            self.sums_h = s[:, half:]
            full_h = np.concatenate([zeros, grad_h], axis=1)
            self.s_gh = np.einsum("ci,cij,cj->c", full_g, cov, full_h)
            self.s_hh = np.einsum("ci,cij,cj->c", full_h, cov, full_h)
            self.denominator_zero |= (s[:, 3] == 0) if ratio else False
            self.ratio = ratio

    def adjusted(self, theta: np.ndarray, pooled_h: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        if pooled_h is None:
            return self.g, self.var_g
        estimate = self.g - theta * np.where(np.isfinite(self.h), self.h - pooled_h, 0.0)
        variance = np.maximum(self.s_gg - 2 * theta * self.s_gh + theta**2 * self.s_hh, 0.0) / self.n
        return estimate, variance


def _estimate(mu: np.ndarray, ratio: bool) -> tuple[np.ndarray, np.ndarray]:
    """The estimate from per-unit means, and its gradient with respect to them."""
    if not ratio:
        return mu[:, 0], np.ones_like(mu)
    num, den = mu[:, 0], mu[:, 1]
    return num / den, np.column_stack([1 / den, -num / den**2])


def _cuped_theta(c: _Arm, t: _Arm) -> tuple[np.ndarray, np.ndarray]:
    """theta pooled over both arms, and the pooled covariate estimate the arms are centred on.

    Weighting each arm's covariances by its n - 1 makes theta the within-arm least-squares slope,
    so for a mean metric the CUPED effect equals the treatment coefficient of the ANCOVA
    regression y ~ treatment + x.
    """
    w_c, w_t = np.maximum(c.n - 1, 0), np.maximum(t.n - 1, 0)
    denominator = w_c * c.s_hh + w_t * t.s_hh
    theta = np.where(denominator > 0, (w_c * c.s_gh + w_t * t.s_gh) / denominator, 0.0)
    theta = np.where(np.isfinite(theta), theta, 0.0)
    total = c.sums_h + t.sums_h
    pooled = total[:, 0] / total[:, 1] if c.ratio else total[:, 0] / (c.n + t.n)
    return theta, pooled


def _welch_df(var_c: np.ndarray, var_t: np.ndarray, n_c: np.ndarray, n_t: np.ndarray) -> np.ndarray:
    total = var_c + var_t
    share_c, share_t = var_c / total, var_t / total
    return 1 / (share_c**2 / (n_c - 1) + share_t**2 / (n_t - 1))


def _codes(c: _Arm, t: _Arm, var_abs: np.ndarray, est_c: np.ndarray) -> np.ndarray:
    conditions = [
        (c.n == 0) | (t.n == 0),
        c.denominator_zero | t.denominator_zero,
        (c.n < 2) | (t.n < 2),
        var_abs == 0,
        est_c == 0,
    ]
    codes = np.zeros(c.n.size, dtype=np.int8)
    for code, condition in zip(range(len(conditions), 0, -1), reversed(conditions)):
        codes = np.where(condition, code, codes)
    return codes


def _intervals(
    abs_effect: np.ndarray,
    rel_effect: np.ndarray,
    var_abs: np.ndarray,
    var_rel: np.ndarray,
    df: np.ndarray,
    total_n: np.ndarray,
    alpha: float,
    sequential: bool,
    tuning: float,
) -> dict[str, np.ndarray]:
    if sequential:
        rho2 = (-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / tuning
        grow = total_n * rho2 + 1
        width = np.sqrt(2 * grow / (total_n**2 * rho2) * np.log(np.sqrt(grow) / alpha))
        abs_half, rel_half = width * np.sqrt(var_abs * total_n), width * np.sqrt(var_rel * total_n)
        exponent = total_n**2 * rho2 / (2 * grow * total_n)
        rel_p = np.minimum(1.0, np.sqrt(grow) * np.exp(-(rel_effect**2) / var_rel * exponent))
        abs_p = np.minimum(1.0, np.sqrt(grow) * np.exp(-(abs_effect**2) / var_abs * exponent))
    else:
        quantile = _t_quantile(1 - alpha / 2, np.where(np.isnan(df), np.inf, df))
        abs_half, rel_half = quantile * np.sqrt(var_abs), quantile * np.sqrt(var_rel)
        rel_p = 2 * _t_tail(np.abs(rel_effect) / np.sqrt(var_rel), df)
        abs_p = 2 * _t_tail(np.abs(abs_effect) / np.sqrt(var_abs), df)
    # The relative test needs a control mean; without one the absolute test answers.
    p_value = np.where(np.isfinite(rel_effect), rel_p, abs_p)
    zero = var_abs == 0
    abs_half = np.where(zero, 0.0, abs_half)
    rel_half = np.where(zero, 0.0, rel_half)
    p_value = np.where(zero, np.where(abs_effect != 0, 0.0, np.nan), p_value)
    return {
        "ci_low": abs_effect - abs_half,
        "ci_high": abs_effect + abs_half,
        "rel_ci_low": rel_effect - rel_half,
        "rel_ci_high": rel_effect + rel_half,
        "p_value": np.minimum(p_value, 1.0),
        "abs_p_value": np.where(zero, np.where(abs_effect != 0, 0.0, np.nan), abs_p),
    }


def _t_quantile(q: float, df: np.ndarray) -> np.ndarray:
    """Student t quantile (normal for infinite df); scipy.special imports in a fraction of scipy.stats' time."""
    from scipy.special import stdtrit

    return stdtrit(df, q)


def _t_tail(statistic: np.ndarray, df: np.ndarray) -> np.ndarray:
    """P(T > statistic) for Student t with df degrees of freedom (normal for infinite df)."""
    from scipy.special import stdtr

    return stdtr(df, -statistic)


def _abs_p_value(
    control: Sums, treatment: Sums, kind: str, cuped: bool, abs_effect: np.ndarray, var_abs: np.ndarray, df: np.ndarray
) -> np.ndarray:
    """p-value of "no absolute difference": pooled z for plain proportions, else the Welch t."""
    se = np.sqrt(var_abs)
    if kind == "proportion" and not cuped:
        i_c, i_t = control.index("y"), treatment.index("y")
        n_c, n_t = control.n, treatment.n
        pooled = np.clip((control.sums[:, i_c] + treatment.sums[:, i_t]) / (n_c + n_t), 0, 1)
        se = np.sqrt(pooled * (1 - pooled) * (1 / n_c + 1 / n_t))
    p = 2 * _t_tail(np.abs(abs_effect) / se, df)
    return np.where(se == 0, np.where(abs_effect != 0, 0.0, np.nan), np.minimum(p, 1.0))


def _bayesian(
    rel_effect: np.ndarray,
    var_rel: np.ndarray,
    abs_effect: np.ndarray,
    var_abs: np.ndarray,
    codes: np.ndarray,
    higher_is_better: bool,
    prior_sd: float | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Chance to win and expected losses from the Gaussian posterior of the effect."""
    from scipy.special import ndtr

    relative = codes != CODES.index("zero_control_mean")
    mean = np.where(relative, rel_effect, abs_effect)
    variance = np.where(relative, var_rel, var_abs)
    if prior_sd is not None:
        precision = 1 / variance + 1 / prior_sd**2
        mean = np.where(variance > 0, mean / variance / precision, 0.0 * mean)
        variance = np.where(variance > 0, 1 / precision, 0.0)
    signed = mean if higher_is_better else -mean
    sd = np.sqrt(variance)
    z = signed / sd
    chance = np.where(sd > 0, ndtr(z), np.where(signed > 0, 1.0, np.where(signed < 0, 0.0, np.nan)))
    density = np.where(sd > 0, sd * np.exp(-z * z / 2) / math.sqrt(2 * math.pi), 0.0)
    loss_ship = density - signed * np.where(sd > 0, ndtr(-z), (signed < 0).astype(float))
    loss_keep = density + signed * np.where(sd > 0, ndtr(z), (signed > 0).astype(float))
    return chance, np.maximum(loss_ship, 0.0), np.maximum(loss_keep, 0.0)


def _mask(effects: Effects, est_c: np.ndarray) -> Effects:
    """Blank (NaN) what each code says is undefined, and anything that overflowed."""
    code = effects.codes
    empty = code == CODES.index("empty_arm")
    no_ratio = code == CODES.index("zero_denominator")
    few = code == CODES.index("too_few_units")
    none_effect = empty | no_ratio
    no_interval = none_effect | few
    no_relative = est_c == 0
    blank = {
        "mean": (effects.n == 0) | no_ratio,
        "control_mean": (effects.control_n == 0) | no_ratio,
        "abs_effect": none_effect,
        "rel_effect": none_effect | no_relative,
        "ci_low": no_interval,
        "ci_high": no_interval,
        "rel_ci_low": no_interval | no_relative,
        "rel_ci_high": no_interval | no_relative,
        "p_value": no_interval,
        "abs_p_value": no_interval,
        "chance_to_win": no_interval,
        "expected_loss": no_interval,
        "expected_loss_control": no_interval,
        "variance_reduction": no_interval,
    }
    changes: dict[str, np.ndarray] = {}
    for name, mask in blank.items():
        column = np.asarray(getattr(effects, name), dtype=np.float64)
        changes[name] = np.where(mask | ~np.isfinite(column), np.nan, column)
    n = effects.n.astype(np.int64)
    control_n = effects.control_n.astype(np.int64)
    return Effects(n=n, control_n=control_n, codes=code, **changes)
