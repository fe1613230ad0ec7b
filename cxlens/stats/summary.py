"""Sufficient statistics of a per-unit quantity: count, sum and sum of squares, which add up.

Every comparison in ``cxlens.stats`` is computed from these three numbers, so a metric can be
aggregated in SQL (``COUNT(*)``, ``SUM(y)``, ``SUM(y * y)``) per stratum, added in Python, and
never needs the raw rows (the approach of GrowthBook's gbstats).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable
from dataclasses import dataclass

from cxlens.errors import StatsError

# A variance numerator this small relative to sum_sq is rounding left by ``sum_sq - sum**2 / n``
# on values that are all equal, not spread: it is reported as 0. This treats a coefficient of
# variation below ~1e-6 as none, far below anything a customer metric can resolve.
_ROUNDING = 1e-12


@dataclass(frozen=True)
class Moments:
    """Count ``n``, ``sum`` and ``sum_sq`` (sum of squares) of a quantity y over independent units.

    ``a + b`` pools two disjoint sets of units (strata, days, segments); ``sum(parts)`` works too.
    For a 0/1 outcome ``sum == sum_sq`` is the number of successes; for NPS coded +1/0/-1,
    ``sum`` is promoters - detractors and ``sum_sq`` is promoters + detractors.
    """

    n: int
    sum: float
    sum_sq: float

    def __post_init__(self) -> None:
        # Coerce what databases and numpy hand back (numpy ints, Decimal sums) to int and float.
        try:
            if isinstance(self.n, bool):
                raise TypeError
            object.__setattr__(self, "n", operator.index(self.n))
        except TypeError:
            raise StatsError(f"Moments.n must be a count (an int >= 0), got {self.n!r}.") from None
        if self.n < 0:
            raise StatsError(f"Moments.n must be a count (an int >= 0), got {self.n!r}.")
        for name in ("sum", "sum_sq"):
            value = getattr(self, name)
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = math.nan
            if isinstance(value, (bool, str)) or not math.isfinite(number):
                raise StatsError(f"Moments.{name} must be a finite number, got {value!r}.")
            object.__setattr__(self, name, number)
        if self.sum_sq < 0:
            raise StatsError(f"Moments.sum_sq is a sum of squares and cannot be negative, got {self.sum_sq!r}.")
        if self.n == 0 and (self.sum != 0 or self.sum_sq != 0):
            raise StatsError(f"Moments with n=0 must have sum=0 and sum_sq=0, got {self.sum!r} and {self.sum_sq!r}.")
        # Cauchy-Schwarz: sum**2 <= n * sum_sq for any real values; failing it means the fields
        # were swapped or come from different rows.
        if self.sum * self.sum > self.n * self.sum_sq * (1 + 1e-6) + 1e-9:
            raise StatsError(
                f"Moments(n={self.n}, sum={self.sum!r}, sum_sq={self.sum_sq!r}) cannot come from real values: "
                "sum**2 must be at most n * sum_sq (are sum and sum_sq swapped?)."
            )

    @classmethod
    def of(cls, values: Iterable[float]) -> Moments:
        """Moments of raw values (for tests and notebooks), summed exactly with ``math.fsum``."""
        xs = [float(v) for v in values]
        for i, x in enumerate(xs):
            if not math.isfinite(x):
                raise StatsError(f"Moments.of: value #{i} is {x!r}; every value must be a finite number.")
        try:
            return cls(n=len(xs), sum=math.fsum(xs), sum_sq=math.fsum(x * x for x in xs))
        except OverflowError:
            raise StatsError("Moments.of: the sum of squares of these values overflows a float.") from None

    def __add__(self, other: object) -> Moments:
        if not isinstance(other, Moments):
            return NotImplemented
        return Moments(n=self.n + other.n, sum=self.sum + other.sum, sum_sq=self.sum_sq + other.sum_sq)

    def __radd__(self, other: object) -> Moments:
        """Lets the built-in ``sum()`` start from 0."""
        if isinstance(other, int) and not isinstance(other, bool) and other == 0:
            return self
        return NotImplemented

    @property
    def mean(self) -> float | None:
        """Mean of y; None when there are no units."""
        return self.sum / self.n if self.n > 0 else None

    @property
    def variance(self) -> float | None:
        """Sample variance of y (ddof=1); None below two units, never negative."""
        if self.n < 2:
            return None
        numerator = self.sum_sq - self.sum * (self.sum / self.n)
        if numerator <= _ROUNDING * self.sum_sq:
            return 0.0
        return numerator / (self.n - 1)
