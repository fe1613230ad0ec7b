"""Sufficient statistics of several per-unit variables, for many cells at once.

An experiment metric is a function of a few per-unit quantities: the value ``y``; for a ratio
metric (revenue per visit, CTR per impression) its denominator ``d``; for CUPED the same
quantities over the pre-period, ``x`` (and ``e`` for a ratio). Every estimate and variance the
engine needs comes from the count ``n``, the sums of those variables and the sums of their
pairwise products, which a database computes in one pass (``COUNT(*)``, ``SUM(y)``,
``SUM(y * x)``) and which add up across strata (the gbstats approach).

A :class:`Sums` holds those numbers for ``C`` cells (variant × metric × segment …) as numpy arrays
so the engine analyzes thousands of cells in one vectorized call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from cxlens.errors import StatsError
from cxlens.stats.summary import Moments

_VARIABLES = ("y", "d", "x", "e")


@dataclass(frozen=True, eq=False)
class Sums:
    """``n`` (C,), ``sums`` (C, k) and ``cross`` (C, k, k) sums of products of k variables.

    ``variables`` names the k columns in order, a prefix-free choice among ``y`` (value),
    ``d`` (ratio denominator), ``x`` (pre-period value) and ``e`` (pre-period denominator).
    """

    variables: tuple[str, ...]
    n: np.ndarray
    sums: np.ndarray
    cross: np.ndarray

    def __post_init__(self) -> None:
        unknown = [v for v in self.variables if v not in _VARIABLES]
        if unknown or len(set(self.variables)) != len(self.variables):
            raise StatsError(f"Sums: variables must be distinct names among {_VARIABLES}, got {self.variables}.")
        n = np.atleast_1d(np.asarray(self.n, dtype=np.float64))
        sums = np.asarray(self.sums, dtype=np.float64).reshape(n.size, len(self.variables))
        cross = np.asarray(self.cross, dtype=np.float64).reshape(n.size, len(self.variables), len(self.variables))
        if not (np.isfinite(n).all() and np.isfinite(sums).all() and np.isfinite(cross).all()):
            raise StatsError("Sums: counts, sums and sums of products must all be finite numbers.")
        if (n < 0).any() or (n != np.round(n)).any():
            raise StatsError("Sums: n must be whole counts >= 0.")
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "sums", sums)
        object.__setattr__(self, "cross", (cross + np.swapaxes(cross, 1, 2)) / 2)

    def __len__(self) -> int:
        return int(self.n.size)

    def __add__(self, other: object) -> Sums:
        """Pool disjoint units cell by cell (strata, days, segments)."""
        if not isinstance(other, Sums) or other.variables != self.variables or len(other) != len(self):
            return NotImplemented
        return Sums(self.variables, self.n + other.n, self.sums + other.sums, self.cross + other.cross)

    def index(self, variable: str) -> int:
        return self.variables.index(variable)

    def has(self, variable: str) -> bool:
        return variable in self.variables

    def take(self, cells: np.ndarray | Sequence[int]) -> Sums:
        """The given cells, in that order (repeat a control to pair it with many treatments)."""
        idx = np.asarray(cells, dtype=np.intp)
        return Sums(self.variables, self.n[idx], self.sums[idx], self.cross[idx])

    @classmethod
    def of(cls, **columns: Sequence[float] | np.ndarray) -> Sums:
        """One cell from raw per-unit values (tests, notebooks): ``Sums.of(y=revenue, x=pre_revenue)``."""
        names = tuple(v for v in _VARIABLES if v in columns)
        if set(columns) - set(names):
            raise StatsError(f"Sums.of: variables must be among {_VARIABLES}, got {sorted(columns)}.")
        data = np.column_stack([np.asarray(columns[v], dtype=np.float64) for v in names])
        if not np.isfinite(data).all():
            raise StatsError("Sums.of: every value must be a finite number.")
        return cls(names, np.array([len(data)]), data.sum(axis=0)[None, :], (data.T @ data)[None, :, :])

    @classmethod
    def from_moments(cls, *cells: Moments) -> Sums:
        """Cells of a single variable ``y`` from :class:`Moments` (n, sum, sum of squares)."""
        return cls(
            ("y",),
            np.array([m.n for m in cells]),
            np.array([[m.sum] for m in cells]),
            np.array([[[m.sum_sq]] for m in cells]),
        )

    @classmethod
    def from_columns(cls, table: Mapping[str, Sequence[float] | np.ndarray], variables: Sequence[str]) -> Sums:
        """Cells from aggregate columns ``n``, ``sum_<v>`` and ``sum_<a>_<b>`` (a before b in ``variables``).

        This is the shape an engine query returns (one row per cell), e.g. for a ratio metric
        ``n, sum_y, sum_d, sum_y_y, sum_y_d, sum_d_d``.
        """
        names = tuple(variables)
        missing = [c for c in column_names(names) if c not in table]
        if missing:
            raise StatsError(f"Sums.from_columns: missing aggregate columns {missing}.")
        n = _column(table["n"])
        k = len(names)
        sums = np.column_stack([_column(table[f"sum_{v}"]) for v in names]) if n.size else np.zeros((0, k))
        cross = np.zeros((n.size, k, k))
        for i, a in enumerate(names):
            for j in range(i, k):
                cross[:, i, j] = cross[:, j, i] = _column(table[f"sum_{a}_{names[j]}"])
        return cls(names, n, sums, cross)


def column_names(variables: Sequence[str]) -> list[str]:
    """The aggregate columns :meth:`Sums.from_columns` reads for these variables, in order."""
    names = list(variables)
    pairs = [f"sum_{a}_{b}" for i, a in enumerate(names) for b in names[i:]]
    return ["n", *(f"sum_{v}" for v in names), *pairs]


def _column(values: Sequence[float] | np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    # Databases hand back NULL for the sum over no rows; that sum is 0.
    return np.where(np.isnan(array), 0.0, array) if array.size else array

