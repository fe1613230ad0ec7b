"""Baselines: a metric before and after a change, with the change's interval and p-value.

Both windows are computed in the engine at grain `all` (period-over-period metrics such as
retention use the equally long window right before each one); the comparison itself runs on the
sufficient statistics (n, sum, sum of squares) in cxlens.stats.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd

from cxlens.errors import MetricError, StatsError
from cxlens.semantic.api import _plain, catalog_for
from cxlens.semantic.compile import parse_date
from cxlens.semantic.model import Metric, Query
from cxlens.semantic.plan import answer
from cxlens.semantic.registry import Catalog
from cxlens.semantic.sources import Context
from cxlens.stats import Moments, compare



@dataclass(frozen=True)
class Period:
    """An inclusive date range written START..END."""

    start: date
    end: date

    @classmethod
    def parse(cls, text: str, option: str) -> "Period":
        parts = text.split("..")
        if len(parts) != 2 or not all(parts):
            raise MetricError(f"{option} must be START..END with dates, such as 2025-01-01..2025-03-31, got {text!r}.")
        start, end = parse_date(parts[0].strip(), option), parse_date(parts[1].strip(), option)
        assert start is not None and end is not None
        if end < start:
            raise MetricError(f"{option} ends ({end}) before it starts ({start}).")
        return cls(start, end)

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def to_json(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}


@dataclass(frozen=True)
class Baseline:
    """The comparison of one metric between two windows, per dimension value."""

    metric: Metric
    before: Period
    after: Period
    by: tuple[str, ...]
    rows: list[dict[str, Any]]
    warnings: list[str]

    def to_json(self) -> dict[str, Any]:
        m = self.metric
        return {"metric": m.id, "label": m.label, "unit": m.unit, "direction": m.direction,
                "before": self.before.to_json(), "after": self.after.to_json(), "by": list(self.by),
                "rows": self.rows, "warnings": self.warnings}


def _window(ctx: Context, catalog: Catalog, metric: Metric, p: Period, by: tuple[str, ...], where: str | None) -> pd.DataFrame:
    q = Query(metric=metric.id, grain="all", by=by, since=p.start.isoformat(), until=p.end.isoformat(), where=where,
              window=True)
    return answer(ctx, catalog, [q])[0]


def _moments(row: pd.Series | None, metric: Metric) -> Moments:
    if row is None:
        return Moments(0, 0.0, 0.0)
    n = int(row["n"]) if pd.notna(row["n"]) else 0
    if metric.is_ratio or metric.share_over:
        num = float(row.get("numerator", 0.0) or 0.0)
        return Moments(n, num, num)
    if "sum" in row and pd.notna(row.get("sum")):
        return Moments(n, float(row["sum"]), float(row["sum_sq"]))
    return Moments(n, float(n), float(n))


def _n(row: pd.Series | None) -> int:
    return int(row["n"]) if row is not None and pd.notna(row["n"]) else 0


def compare_periods(ws: Any, metric_id: str, before: Period, after: Period, *, by: Sequence[str] = (),
                    where: str | None = None, alpha: float = 0.05, catalog: Catalog | None = None) -> Baseline:
    """Compare a metric between two inclusive date windows (optionally per dimension value)."""
    catalog = catalog or catalog_for(ws)
    ctx = catalog.context(ws)
    try:
        return compare_in(ctx, catalog, metric_id, before, after, by=by, where=where, alpha=alpha)
    finally:
        ctx.release()


def compare_in(ctx: Context, catalog: Catalog, metric_id: str, before: Period, after: Period, *,
               by: Sequence[str] = (), where: str | None = None, alpha: float = 0.05) -> Baseline:
    """compare_periods on an existing semantic context (a Measurer's, whose sources are shared)."""
    metric = catalog.metric(metric_id)
    by_t = tuple(by)
    if metric.share_over and not any(d in metric.share_over for d in by_t):
        by_t = (*by_t, metric.share_over[0])
    b, a = _window(ctx, catalog, metric, before, by_t, where), _window(ctx, catalog, metric, after, by_t, where)
    key = lambda r: tuple(_plain(r[d]) for d in by_t)  # noqa: E731
    rows_b = {key(r): r for _, r in b.iterrows()}
    rows_a = {key(r): r for _, r in a.iterrows()}
    warnings = []
    if before.days != after.days and metric.test == "total":
        warnings.append(f"unequal_windows: before has {before.days} days and after {after.days}; totals are not per day.")
    if before.end >= after.start and after.end >= before.start:
        warnings.append("overlapping_windows: the two windows share days, so they are not independent samples.")
    out = []
    for k in sorted(set(rows_b) | set(rows_a), key=lambda t: tuple("" if v is None else str(v) for v in t)):
        rec: dict[str, Any] = dict(zip(by_t, k))
        rec.update({"n_before": _n(rows_b.get(k)), "n_after": _n(rows_a.get(k))})
        value_b = _plain(rows_b[k]["value"]) if k in rows_b else None
        value_a = _plain(rows_a[k]["value"]) if k in rows_a else None
        if metric.test == "none":
            change = None if value_a is None or value_b is None else value_a - value_b
            rel = None if change is None or not value_b else change / value_b
            rec.update({"before": value_b, "after": value_a, "absolute": change, "relative": rel, "ci_low": None,
                        "ci_high": None, "relative_ci_low": None, "relative_ci_high": None, "p_value": None,
                        "test": "none", "code": "no_test"})
        else:
            try:
                mb, ma = _moments(rows_b.get(k), metric), _moments(rows_a.get(k), metric)
                result = compare(mb, ma, kind=metric.test, scale=metric.scale, alpha=alpha)  # type: ignore[arg-type]
                rec.update(result.to_dict())
            except StatsError as exc:
                rec.update({"before": value_b, "after": value_a, "absolute": None, "relative": None, "ci_low": None,
                            "ci_high": None, "relative_ci_low": None, "relative_ci_high": None, "p_value": None,
                            "test": metric.test, "code": "not_testable"})
                warnings.append(f"not_testable: {exc}")
            if metric.is_ratio or metric.share_over:
                rec["before"], rec["after"] = value_b, value_a
        out.append(rec)
    return Baseline(metric, before, after, by_t, out, warnings)
