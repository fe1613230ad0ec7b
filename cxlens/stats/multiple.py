"""Multiple-testing correction for a family of p-values (metrics x variants x segments).

An experiment read on 10 metrics, 3 variants and 5 segments runs 150 tests; at alpha = 0.05 about
7 of them come out "significant" when nothing changed. Adjusted p-values are compared with the
same alpha as before, and keep the error rate of the whole family at alpha.

With the m p-values sorted, p_(1) <= ... <= p_(m):

- ``"holm"`` (Holm 1979, "A simple sequentially rejective multiple test procedure", Scandinavian
  Journal of Statistics 6:65-70), step-down, controls the family-wise error rate (the chance of
  any false positive) under any dependence between the tests:
  adj_(i) = min(1, max_{j <= i} (m - j + 1) p_(j)).
- ``"bh"`` (Benjamini and Hochberg 1995, "Controlling the false discovery rate", JRSS B
  57:289-300), step-up, controls the false discovery rate (the expected share of false positives
  among the tests called significant), which keeps far more power when many metrics are read. It
  holds for independent tests and for positively dependent ones (PRDS; Benjamini and Yekutieli
  2001, Annals of Statistics 29:1165-1188), the usual case of metrics measured on the same units:
  adj_(i) = min(1, min_{j >= i} m p_(j) / j).

Tied p-values get the same adjusted value whichever order they are sorted in. Both definitions
match statsmodels' ``multipletests`` methods "holm" and "fdr_bh".

The family is what the caller passes: pass every test that was looked at, not only the
interesting ones. A ``None`` entry is a test that could not be computed (an empty group, no
spread); it stays None and does not count in m, since it cannot produce a false positive.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, get_args

import numpy as np

from cxlens.errors import StatsError

Method = Literal["holm", "bh"]


def adjust_p_values(p_values: Sequence[float | None], method: Method) -> list[float | None]:
    """Adjusted p-values in the input's order; None stays None and is left out of the family."""
    if method not in get_args(Method):
        valid = ", ".join(repr(m) for m in get_args(Method))
        raise StatsError(f"adjust_p_values: unknown method {method!r}; valid methods are {valid}.")
    positions, values = _valid(p_values)
    out: list[float | None] = [None] * len(p_values)
    if not values:
        return out

    p = np.asarray(values, dtype=float)
    m = p.size
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    rank = np.arange(1, m + 1)
    if method == "holm":
        adjusted_ranked = np.maximum.accumulate((m - rank + 1) * ranked)
    else:
        adjusted_ranked = np.minimum.accumulate((m / rank * ranked)[::-1])[::-1]
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(adjusted_ranked, 1.0)
    for position, value in zip(positions, adjusted.tolist(), strict=True):
        out[position] = value
    return out


def _valid(p_values: Sequence[float | None]) -> tuple[list[int], list[float]]:
    """Positions and values of the p-values that are not None; StatsError at the first invalid one."""
    if isinstance(p_values, (str, bytes)) or not hasattr(p_values, "__len__"):
        raise StatsError(
            f"adjust_p_values: p_values must be a list of p-values (or None), got {type(p_values).__name__}."
        )
    positions: list[int] = []
    values: list[float] = []
    for i, p in enumerate(p_values):
        if p is None:
            continue
        try:
            value = float(p) if not isinstance(p, (bool, str)) else math.nan
        except (TypeError, ValueError):
            value = math.nan
        if not 0 <= value <= 1:  # also catches NaN
            raise StatsError(
                f"adjust_p_values: the p-value at position {i} (counting from 0) is {p!r}; "
                "a p-value must be a number between 0 and 1, or None for a test that could not be computed."
            )
        positions.append(i)
        values.append(value)
    return positions, values
