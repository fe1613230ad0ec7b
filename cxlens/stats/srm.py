"""Sample ratio mismatch: are the units split between arms the way the assignment says?

When the observed split differs from the configured one by more than chance allows, something
between the randomizer and the data drops or duplicates units in one arm (a redirect that loses
users, a bot filter applied to one arm, a logging bug), and every metric comparison of the
experiment is biased in an unknown direction. Checking this first is standard practice (Fabijan
et al. 2019, "Diagnosing Sample Ratio Mismatch in Online Controlled Experiments", KDD; Kohavi,
Tang and Xu, Trustworthy Online Controlled Experiments, 2020, ch. 21).

The test is Pearson's chi-square goodness of fit over the k arms (Pearson 1900; Agresti,
Categorical Data Analysis, 3rd ed., 2013, section 1.5): with N units in all, expected share w_i
(the weights, normalized to sum to 1) and observed count o_i,

    e_i = N w_i,    chi2 = sum_i (o_i - e_i)**2 / e_i,    p = P(chi2_{k-1} >= chi2).

It assumes units are assigned independently (so the counts are multinomial) and N w_i large
enough for the chi-square approximation (e_i >= 5 is the usual rule; an SRM check is meant for
experiments with thousands of units). The default threshold is p < 0.001, not 0.05: the check is
run on every experiment, often repeatedly, and a false alarm invalidates an experiment that was
fine (Fabijan et al. 2019 use 0.0005; GrowthBook uses 0.001).

Degenerate inputs never raise; ``code`` says what happened, first match wins:

- ``"single_arm"``: fewer than two arms, so there is no ratio to check; chi2 and p_value are None.
- ``"no_units"``: no unit in any arm; chi2 and p_value are None.
- ``"missing_arm"``: an arm expected to get units has none. The test is still computed (a
  large experiment with an empty arm is a mismatch), and ``message`` names the arm even when the
  counts are too small for the test to flag it.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Literal

from cxlens.errors import StatsError

Code = Literal["ok", "single_arm", "no_units", "missing_arm"]


@dataclass(frozen=True)
class SampleRatioCheck:
    """Observed and expected units per arm, Pearson's chi-square test of the split, and a verdict.

    ``mismatch`` is ``p_value < threshold``. ``message`` is one sentence to show a user when
    something is wrong (a mismatch or a degenerate code), None when the split is as expected.
    """

    observed: dict[str, int]
    expected: dict[str, float]
    chi2: float | None
    p_value: float | None
    threshold: float
    mismatch: bool
    code: Code
    message: str | None

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-able values (dicts are copies; never NaN or infinity)."""
        out: dict[str, object] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["observed"] = dict(self.observed)
        out["expected"] = dict(self.expected)
        return out


def srm_check(
    observed: Mapping[str, int],
    expected_weights: Mapping[str, float] | None = None,
    *,
    threshold: float = 0.001,
) -> SampleRatioCheck:
    """Test whether units per arm fit the assignment weights (equal when not given)."""
    counts = _counts(observed)
    shares = _shares(counts, expected_weights)
    if not (isinstance(threshold, (int, float)) and not isinstance(threshold, bool) and 0 < threshold < 1):
        raise StatsError(
            f"srm_check: threshold must be a p-value cut-off between 0 and 1 (0.001 by default), got {threshold!r}."
        )

    total = sum(counts.values())
    expected = {arm: total * share for arm, share in shares.items()}

    def result(
        code: Code, chi2: float | None = None, p_value: float | None = None, message: str | None = None
    ) -> SampleRatioCheck:
        mismatch = p_value is not None and p_value < threshold
        return SampleRatioCheck(counts, expected, chi2, p_value, threshold, mismatch, code, message)

    if len(counts) < 2:
        given = f"Only one arm ({next(iter(counts))!r}) was given" if counts else "No arm was given"
        return result(
            "single_arm",
            message=f"{given}, so there is no sample ratio to check; an experiment needs at least two arms.",
        )
    if total == 0:
        return result(
            "no_units", message="No units were observed in any arm, so the sample ratio cannot be checked yet."
        )

    chi2 = math.fsum((counts[arm] - e) ** 2 / e for arm, e in expected.items())
    # scipy.special rather than scipy.stats: the same survival function at a quarter of the
    # import time, which the CLI pays on start-up.
    from scipy.special import chdtrc

    p_value = min(1.0, max(0.0, float(chdtrc(len(counts) - 1, chi2))))
    empty = [arm for arm, n in counts.items() if n == 0]
    code: Code = "missing_arm" if empty else "ok"
    if p_value < threshold:
        message = (
            f"Sample ratio mismatch: {_split(counts)} where {_percentages(shares)} was expected "
            f"({_format_p(p_value)}); "
            "the assignment or the data pipeline is broken, so these results cannot be trusted."
        )
    elif empty:
        missing = _join([f"{arm} ({_percent(shares[arm])} expected)" for arm in empty])
        message = f"No units in {missing}; check that the arm is live and that its exposures are logged."
    else:
        message = None
    return result(code, chi2, p_value, message)


def _counts(observed: Mapping[str, int]) -> dict[str, int]:
    if not isinstance(observed, Mapping):
        raise StatsError(
            f"srm_check: observed must map each arm to its number of units, got {type(observed).__name__}."
        )
    counts: dict[str, int] = {}
    for arm, n in observed.items():
        try:
            if isinstance(n, bool):
                raise TypeError
            count = operator.index(n)
        except TypeError:
            raise StatsError(f"srm_check: arm {arm!r} has {n!r} units; a count must be a whole number >= 0.") from None
        if count < 0:
            raise StatsError(f"srm_check: arm {arm!r} has {n!r} units; a count must be a whole number >= 0.")
        counts[arm] = count
    return counts


def _shares(counts: dict[str, int], weights: Mapping[str, float] | None) -> dict[str, float]:
    """Weights normalized to sum to 1, in the order of the observed arms."""
    if weights is None:
        return {arm: 1 / len(counts) for arm in counts}
    if not isinstance(weights, Mapping):
        raise StatsError(f"srm_check: expected_weights must map each arm to its weight, got {type(weights).__name__}.")
    for arm in weights:
        if arm not in counts:
            raise StatsError(
                f"srm_check: expected_weights names arm {arm!r}, which has no observed count; "
                f"observed arms are {_join([repr(a) for a in counts])}."
            )
    for arm in counts:
        if arm not in weights:
            raise StatsError(
                f"srm_check: arm {arm!r} has observed units but no expected weight; "
                "give a weight for every observed arm."
            )
    values: dict[str, float] = {}
    for arm in counts:
        w = weights[arm]
        try:
            value = float(w) if not isinstance(w, (bool, str)) else math.nan
        except (TypeError, ValueError):
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            raise StatsError(
                f"srm_check: arm {arm!r} has weight {w!r}; "
                "a weight must be a finite number > 0 (0.5 or 50 for half the traffic)."
            )
        values[arm] = value
    total = math.fsum(values.values())
    return {arm: value / total for arm, value in values.items()}


def _join(words: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'; 'none' for no word."""
    if not words:
        return "none"
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _split(counts: dict[str, int]) -> str:
    """'5,120 units in control and 4,880 in treatment'."""
    parts = [f"{n:,} in {arm}" for arm, n in counts.items()]
    first_count, _, first_arm = parts[0].partition(" in ")
    parts[0] = f"{first_count} units in {first_arm}"
    return _join(parts)


def _percentages(shares: Mapping[str, float]) -> str:
    """'50%/50%', '33.3%/33.3%/33.3%'."""
    return "/".join(_percent(s) for s in shares.values())


def _percent(share: float) -> str:
    """One decimal, dropped when it is 0: '50%', '33.3%'."""
    return f"{100 * share:.1f}".removesuffix(".0") + "%"


def _format_p(p: float) -> str:
    return "p < 0.0001" if p < 0.0001 else f"p = {p:.4f}"
