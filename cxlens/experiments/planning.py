"""Plan an experiment on a catalogue metric from what the workspace saw recently.

The baseline is the metric per customer over the last ``days`` days of the metric's data (every
profile in `customers` is a candidate unit, with zeros for those without rows); its spread is
the per-unit standard deviation (the linearized ratio's for ratio metrics, see
:mod:`cxlens.stats.planning`). Traffic, unless given, is the number of customers with any row
in that window divided by its days: how many units an experiment would enroll per day.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import ibis

from cxlens.errors import MetricError
from cxlens.experiments.metrics import experiment_metric, unit_values
from cxlens.semantic.api import catalog_for
from cxlens.semantic.registry import Catalog
from cxlens.semantic.sources import Request
from cxlens.stats.planning import sample_size


def plan_from_workspace(
    ws: Any,
    metric_id: str,
    *,
    mde: float,
    traffic_per_day: float | None = None,
    days: int = 28,
    alpha: float = 0.05,
    power: float = 0.8,
    arms: int = 2,
    catalog: Catalog | None = None,
) -> dict[str, Any]:
    """The baseline measured in the workspace and the plan for it (JSON-able)."""
    if days <= 0:
        raise MetricError(f"--days must be > 0, got {days}.")
    catalog = catalog or catalog_for(ws)
    spec, parts = experiment_metric(catalog.metric(metric_id))
    ctx = catalog.context(ws)
    try:
        rows = ctx.source(parts[0].measure.source, Request("all"))
        end = rows.ts.max().to_pyarrow().as_py()
        if end is None:
            raise MetricError(f"{metric_id} has no data in this workspace to take a baseline from.")
        start = end - timedelta(days=days)
        customers = ws.table("customers")
        units = customers.filter(customers.profile_id.notnull()).select(unit=customers.profile_id).distinct()
        units = units.mutate(start=ibis.literal(start).cast("timestamp"))
        values = unit_values(ctx, catalog, units, parts, window_days=days + 1 / 86400, pre_days=0, row_dim=None)
        y, d = f"{metric_id}__y", f"{metric_id}__d"
        agg = {"active": values.count(), "sum_y": values[y].sum(), "sum_yy": (values[y] * values[y]).sum()}
        if spec.kind == "ratio":
            agg.update(sum_d=values[d].sum(), sum_dd=(values[d] * values[d]).sum(), sum_yd=(values[y] * values[d]).sum())
        stats = values.aggregate(**agg).to_pyarrow().to_pylist()[0]
        n = int(units.count().to_pyarrow().as_py())
    finally:
        ctx.release()
    baseline, sd = _baseline(spec.kind, n, stats)
    if baseline is None or sd is None:
        raise MetricError(f"{metric_id} has too little data in the last {days} days to take a baseline from "
                          "(fewer than two customers, or no denominator); try a longer --days.")
    observed_traffic = (stats["active"] or 0) / days
    plan = sample_size(
        "mean" if spec.kind == "mean" else "ratio", baseline, sd=sd, mde=mde,
        alpha=alpha, power=power, arms=arms, traffic_per_day=traffic_per_day or observed_traffic or None,
    )
    return {
        "metric": metric_id, "kind": spec.kind, "baseline": _plain(baseline * spec.scale),
        "sd": _plain(sd * spec.scale), "units_measured": n, "window_start": start.isoformat(),
        "window_end": end.isoformat(), "observed_traffic_per_day": observed_traffic, "plan": plan.to_dict(),
    }


def _baseline(kind: str, n: int, s: dict[str, Any]) -> tuple[float | None, float | None]:
    if n < 2:
        return None, None
    sum_y, sum_yy = float(s["sum_y"] or 0), float(s["sum_yy"] or 0)
    if kind != "ratio":
        mean = sum_y / n
        return mean, math.sqrt(max(sum_yy - n * mean * mean, 0.0) / (n - 1))
    sum_d, sum_dd, sum_yd = float(s["sum_d"] or 0), float(s["sum_dd"] or 0), float(s["sum_yd"] or 0)
    if sum_d == 0:
        return None, None
    ratio, mean_d = sum_y / sum_d, sum_d / n
    var_y = (sum_yy - sum_y * sum_y / n) / (n - 1)
    var_d = (sum_dd - sum_d * sum_d / n) / (n - 1)
    cov = (sum_yd - sum_y * sum_d / n) / (n - 1)
    return ratio, math.sqrt(max(var_y - 2 * ratio * cov + ratio * ratio * var_d, 0.0)) / mean_d


def _plain(v: float | None) -> float | None:
    return v if v is None or math.isfinite(v) else None
