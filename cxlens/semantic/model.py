"""Metrics, measures and dimensions as data: what a KPI means, declared once, compiled to Ibis.

The words here mirror what users write in YAML (`agg: mean`, `direction: up`), so the built-in
catalogue and a user's own metrics are the same kind of object and go through the same compiler.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Grain = Literal["day", "week", "month", "quarter", "year", "all"]
GRAINS: tuple[str, ...] = ("day", "week", "month", "quarter", "year", "all")
TRUNCATE_UNIT: dict[str, str] = {"day": "D", "week": "W", "month": "M", "quarter": "Q", "year": "Y"}

Agg = Literal["count", "sum", "mean"]
AGGS: tuple[str, ...] = ("count", "sum", "mean")
Direction = Literal["up", "down", "none"]
"""Which way is good: `up` (higher is better), `down` (lower is better), `none` (a mix or a share)."""
Timing = Literal["leading", "lagging"]
Unit = Literal["currency", "count", "share", "points", "seconds", "days", "score", "ratio", "mean"]
UNITS: tuple[str, ...] = ("currency", "count", "share", "points", "seconds", "days", "score", "ratio", "mean")
Test = Literal["mean", "proportion", "nps", "total", "none"]
"""How a baseline comparison tests a change (see cxlens.stats.compare)."""


@dataclass(frozen=True)
class Measure:
    """An aggregation over the rows of one semantic source.

    Without `unit`, `expr` is evaluated per row and aggregated with `agg`. With `unit`, rows are
    first grouped by the unit key (a customer, a visitor) within each period and dimension value,
    `expr` is an aggregate over the unit's rows (`count(*) >= 2`), and `agg` then runs over units.
    """

    source: str
    agg: Agg
    expr: str | None = None
    filter: str | None = None
    unit: str | None = None
    dimension_columns: tuple[tuple[str, str], ...] = ()
    """Per-measure overrides of where a dimension comes from, as (dimension, column expression)."""

    def column_for(self, dimension: str) -> str | None:
        return dict(self.dimension_columns).get(dimension)


@dataclass(frozen=True)
class Metric:
    """One KPI: what it means (for people) and how it is computed (for the engine)."""

    id: str
    label: str
    description: str
    unit: Unit
    direction: Direction
    timing: Timing
    measure: Measure | None = None
    numerator: Measure | None = None
    denominator: Measure | None = None
    scale: float = 1.0
    """Multiplier applied to the value (100 turns the NPS mean of +1/0/−1 into points)."""
    test: Test = "mean"
    default_grain: Grain = "month"
    dimensions: tuple[str, ...] | None = None
    """Dimensions it can be cut by; None means every dimension its source offers."""
    needs_grain: bool = False
    """Period-over-period metrics (retention, churn) have no value for grain `all`."""
    share_over: tuple[str, ...] = ()
    """For a share metric: the dimensions whose values the share is taken across."""
    category: str = "custom"
    origin: str = "built-in"
    """Where it was declared: `built-in` or `file:line` of the user's YAML."""
    n_from: Literal["denominator", "numerator"] = "denominator"
    """For a ratio: whether `n` is the denominator's value or the numerator's row count."""
    extras: tuple[tuple[str, str], ...] = ()
    """Extra per-group values reported beside `value`, as (name, expression over the rows)."""

    @property
    def is_ratio(self) -> bool:
        return self.numerator is not None

    @property
    def tables(self) -> tuple[str, ...]:
        parts = [m for m in (self.measure, self.numerator, self.denominator) if m is not None]
        return tuple(dict.fromkeys(m.source for m in parts))


@dataclass(frozen=True)
class Dimension:
    """A way to cut metrics: a column of a source's rows, or an attribute of the profile."""

    id: str
    label: str
    description: str
    columns: tuple[tuple[str, str], ...] = ()
    """(source, column expression) pairs for row dimensions."""
    profile: str | None = None
    """Column of the profile attributes table, for profile dimensions."""
    origin: str = "built-in"

    def column_for(self, source: str) -> str | None:
        return dict(self.columns).get(source)


@dataclass(frozen=True)
class Segment:
    """A named group of profiles: a filter over profile attributes and per-profile metric values.

    With `within`, a micro segment of another (macro) segment: its members are the parent's
    members that also meet `where` ("of the customers with unresolved complaints, those who have
    stopped buying").
    """

    id: str
    label: str
    where: str
    origin: str = "built-in"
    within: str | None = None


@dataclass(frozen=True)
class EngagementSettings:
    """Weights and caps of the engagement score (documented in docs/metric-definitions.md)."""

    recency: float = 0.3
    frequency: float = 0.3
    depth: float = 0.2
    messages: float = 0.2
    half_life_days: float = 14.0
    sessions_cap: float = 8.0
    pages_cap: float = 10.0


@dataclass(frozen=True)
class Query:
    """What a user asked for: one metric, at a grain, cut by dimensions, within dates and a segment."""

    metric: str
    grain: Grain = "month"
    by: tuple[str, ...] = ()
    since: str | None = None
    until: str | None = None
    where: str | None = None
    window: bool = False
    """A baseline window: grain `all` over [since, until], period-over-period units built for it."""
