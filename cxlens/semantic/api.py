"""The Python API of the semantic layer: `measure()` a metric from a workspace.

    from cxlens.semantic import measure
    result = measure(ws, "nps", grain="quarter", by=["channel"])
    result.frame        # pandas: period_start, channel, value, n, promoters, ...
    result.to_json()    # the `cxlens metrics show --format json` contract
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd

from cxlens.semantic.compile import KEY_PERIOD
from cxlens.semantic.model import Metric, Query
from cxlens.semantic.plan import answer
from cxlens.semantic.registry import Catalog, definitions_path
from cxlens.semantic.templates import Templates

PUBLIC_EXTRA = ("numerator", "denominator")


@dataclass(frozen=True)
class MetricResult:
    """One metric's values per period and dimension value, with the statistics behind them."""

    metric: Metric
    query: Query
    frame: pd.DataFrame

    @property
    def keys(self) -> list[str]:
        return ([KEY_PERIOD] if self.query.grain != "all" else []) + list(self.query.by)

    def rows(self) -> list[dict[str, Any]]:
        """Rows as plain JSON values: dates as YYYY-MM-DD, missing values as None (never NaN)."""
        extras = [name for name, _ in self.metric.extras]
        cols = [*self.keys, "value", "n", *[c for c in PUBLIC_EXTRA if c in self.frame.columns], *extras]
        out = []
        for rec in self.frame[cols].to_dict(orient="records"):
            out.append({k: _plain(v) for k, v in rec.items()})
        return out

    def to_json(self) -> dict[str, Any]:
        m = self.metric
        return {"metric": m.id, "grain": self.query.grain, "label": m.label, "unit": m.unit,
                "direction": m.direction, "timing": m.timing, "rows": self.rows()}


def _plain(v: Any) -> Any:
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, float):
        return None if math.isnan(v) or math.isinf(v) else v
    if hasattr(v, "item"):
        return _plain(v.item())
    return v


def catalog_for(ws: Any) -> Catalog:
    """Built-in definitions plus the workspace's definitions file, if any."""
    return Catalog.load(definitions_path(getattr(ws, "path", None)))


class Measurer:
    """Measures many metrics on one workspace, building each derived source (sessions, cases) once.

        m = Measurer(ws)
        for metric_id in m.catalog.metrics:
            m.measure(metric_id, grain="month")
    """

    def __init__(self, ws: Any, catalog: Catalog | None = None, *, materialize: bool = True,
                 templates: Templates | None = None):
        self.ws = ws
        self.catalog = catalog or catalog_for(ws)
        self.context = self.catalog.context(ws, materialize=materialize)
        self.templates = templates
        """Compiled queries kept for this catalogue and data version (see cxlens.semantic.templates)."""

    def close(self) -> None:
        """Drop the sources materialized so far (call before closing the workspace)."""
        self.context.release()

    def __enter__(self) -> "Measurer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def measure(self, metric: str, *, grain: str | None = None, by: Sequence[str] = (), since: str | date | None = None,
                until: str | date | None = None, where: str | None = None) -> MetricResult:
        """Compute one metric in the workspace's engine."""
        return self.measure_many([metric], grain=grain, by=by, since=since, until=until, where=where)[metric]

    def measure_many(self, metrics: Sequence[str], *, grain: str | None = None, by: Sequence[str] = (),
                     since: str | date | None = None, until: str | date | None = None,
                     where: str | None = None) -> dict[str, MetricResult]:
        """Compute several metrics with the same cut, sharing engine work: results equal `measure`'s.

        Measures over the same source (and unit) run as one query with one aggregate column set
        each, so the whole catalogue by month is about one query per source instead of one or two
        per metric. `grain=None` uses each metric's default grain.
        """
        queries = [self._query(m, grain, tuple(by), since, until, where) for m in dict.fromkeys(metrics)]
        frames = answer(self.context, self.catalog, queries, self.templates)
        return {q.metric: MetricResult(self.catalog.metric(q.metric), q, f) for q, f in zip(queries, frames)}

    def prepare(self, metrics: Sequence[str], *, grain: str | None = None, by: Sequence[str] = (),
                since: str | date | None = None, until: str | date | None = None, where: str | None = None,
                stop: Callable[[], bool] | None = None) -> bool:
        """Compile, without running, what `measure_many` with these arguments would run, into this
        Measurer's templates (see cxlens.semantic.templates): a later call with other dates then
        only runs the engine. False when `stop()` ended it early; nothing to do without templates."""
        if self.templates is None:
            return True
        queries = [self._query(m, grain, tuple(by), since, until, where) for m in dict.fromkeys(metrics)]
        return self.templates.prepare(self.context, self.catalog, queries, stop)

    def _query(self, metric: str, grain: str | None, by: tuple[str, ...], since: str | date | None,
               until: str | date | None, where: str | None) -> Query:
        m = self.catalog.metric(metric)
        if m.share_over and not any(d in m.share_over for d in by):
            by = (*by, m.share_over[0])
        return Query(metric=metric, grain=grain or m.default_grain, by=by, since=since, until=until, where=where)  # type: ignore[arg-type]

    def compare(self, metric: str, before: Any, after: Any, *, by: Sequence[str] = (), where: str | None = None,
                alpha: float = 0.05) -> Any:
        """A baseline comparison (see cxlens.semantic.baseline) reusing this Measurer's sources."""
        from cxlens.semantic.baseline import compare_in

        return compare_in(self.context, self.catalog, metric, before, after, by=by, where=where, alpha=alpha)


def measure(ws: Any, metric: str, *, grain: str | None = None, by: Sequence[str] = (), since: str | date | None = None,
            until: str | date | None = None, where: str | None = None, catalog: Catalog | None = None) -> MetricResult:
    """Compute one metric in the workspace's engine (use a Measurer for many)."""
    with Measurer(ws, catalog, materialize=False) as m:
        return m.measure(metric, grain=grain, by=by, since=since, until=until, where=where)
