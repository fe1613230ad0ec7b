"""A KPI tile: one metric's series reduced to what a reader scans first.

Current value (the metric's latest period with a value), the period before it, the baseline, and
the changes between them. The tile only reads a series the engine already computed; it never
queries anything itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd

from cxlens.report import periods
from cxlens.report.formatting import Tone, change, is_number, tone
from cxlens.semantic import Metric

KEY_PERIOD = "period_start"
TESTED: frozenset[str] = frozenset({"ok", "zero_baseline"})
"""Comparison codes that come with a p-value and an interval on the absolute change."""


@dataclass(frozen=True)
class Point:
    """A metric's value in one period and the number of units it rests on."""

    period: date
    value: float
    n: int


@dataclass(frozen=True)
class Comparison:
    """A `--baseline` window against the tile's current period, from `compare_periods`."""

    before_start: date
    before_end: date
    after_start: date
    after_end: date
    before: float | None
    after: float | None
    absolute: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    code: str
    warnings: tuple[str, ...] = ()

    @property
    def significant(self) -> bool | None:
        """p < 0.05 for a tested change; None when no test could be run."""
        if self.code not in TESTED or self.p_value is None:
            return None
        return self.p_value < 0.05

    @classmethod
    def from_row(cls, row: dict[str, Any], before: tuple[date, date], after: tuple[date, date],
                 warnings: list[str]) -> "Comparison":
        def num(key: str) -> float | None:
            v = row.get(key)
            return float(v) if v is not None and is_number(float(v)) else None

        return cls(before[0], before[1], after[0], after[1], num("before"), num("after"), num("absolute"),
                   num("ci_low"), num("ci_high"), num("p_value"), str(row.get("code", "")), tuple(warnings))


@dataclass(frozen=True)
class Tile:
    """One metric as a KPI tile."""

    metric: Metric
    grain: str
    points: tuple[Point, ...] = ()
    current: Point | None = None
    previous: Point | None = None
    baseline: Point | None = None
    group: str | None = None
    """For a share across groups (traffic sources): the group the tile follows, the largest one."""
    note: str | None = None
    """Why there is no value: no data, or the sentence of the error that stopped the metric."""
    comparison: Comparison | None = None
    partial: bool = False
    """The current period is not over in the data (its totals are not comparable yet)."""

    @property
    def has_data(self) -> bool:
        return self.current is not None

    @property
    def change(self) -> float | None:
        return change(self.current.value if self.current else None, self.previous.value if self.previous else None)

    @property
    def baseline_value(self) -> float | None:
        if self.comparison is not None:
            return self.comparison.before
        return self.baseline.value if self.baseline else None

    @property
    def baseline_change(self) -> float | None:
        if self.comparison is not None:
            return self.comparison.absolute
        return change(self.current.value if self.current else None, self.baseline_value)

    @property
    def tone(self) -> Tone:
        return tone(self.change, self.metric.direction)

    @property
    def baseline_tone(self) -> Tone:
        if self.comparison is not None and self.comparison.significant is False:
            return "neutral"
        return tone(self.baseline_change, self.metric.direction)

    def with_comparison(self, comparison: Comparison) -> "Tile":
        from dataclasses import replace

        return replace(self, comparison=comparison)


def no_data(metric: Metric, grain: str) -> Tile:
    """A tile saying plainly that the workspace has nothing this metric can be computed from."""
    return Tile(metric, grain, note=f"Nothing to compute it from in these dates (reads: {', '.join(metric.tables)}).")


def tile_from_series(metric: Metric, frame: pd.DataFrame, grain: str, span: periods.DataSpan | None,
                     group_column: str | None = None) -> Tile:
    """Reduce a metric's series to a tile; the default baseline is its first full period with a value."""
    if frame.empty or "value" not in frame.columns or KEY_PERIOD not in frame.columns:
        return no_data(metric, grain)
    frame = frame[frame["value"].map(lambda v: is_number(None if pd.isna(v) else float(v)))]
    group = None
    if group_column is not None and not frame.empty:
        latest = frame[frame[KEY_PERIOD] == frame[KEY_PERIOD].max()]
        group = str(latest.sort_values("value", ascending=False, kind="stable").iloc[0][group_column])
        frame = frame[frame[group_column].astype(str) == group]
    if frame.empty:
        return no_data(metric, grain)
    points = tuple(Point(r[KEY_PERIOD], float(r["value"]), int(r["n"]) if pd.notna(r["n"]) else 0)
                   for r in frame.sort_values(KEY_PERIOD).to_dict(orient="records"))
    by_period = {p.period: p for p in points}
    current = points[-1]
    previous = by_period.get(periods.shift(current.period, grain, -1))
    full = [p for p in points if span is None or span.first.date() <= p.period]
    baseline = full[0] if full and full[0].period < current.period else None
    partial = span is not None and span.last.date() < periods.last_day(current.period, grain)
    return Tile(metric, grain, points, current, previous, baseline, group, None, None, partial)
