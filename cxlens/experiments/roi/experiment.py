"""Experiment ROI (randomized): incremental buyers, orders, revenue and margin against personalization cost."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from cxlens.errors import UsageError
from cxlens.experiments.analysis import Settings
from cxlens.experiments.roi.common import (
    CHANNEL_ALIASES,
    COST_KIND,
    MARGIN,
    OUTCOMES,
    interval,
    judge,
    number,
)
from cxlens.experiments.workspace import analyze_experiment
from cxlens.semantic.api import catalog_for
from cxlens.semantic.expressions import compile_expr
from cxlens.semantic.registry import Catalog


@dataclass
class RoiResult:
    """An experiment's incremental buyers, orders, revenue and margin against personalization cost."""

    experiment_id: str
    control: str
    units: dict[str, int]
    period: dict[str, Any]
    costs: dict[str, float]
    """Personalization cost per cost channel over the period (`(none)` for rows without one)."""
    total: list[dict[str, Any]]
    """One row per treatment variant, over all channels."""
    rows: list[dict[str, Any]] = field(default_factory=list)
    """One row per treatment variant × value of ``by`` (empty without ``by``)."""
    by: str | None = None
    cost_filter: str | None = None
    cost_shares: dict[str, float] = field(default_factory=dict)
    """Share of the cost charged to each treatment arm (its share of treated units)."""
    unallocated_cost: float | None = None
    alpha: float = 0.05
    pre_days: float = 30
    srm: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        keys = ("experiment_id", "control", "units", "period", "by", "cost_filter", "costs", "cost_shares",
                "unallocated_cost", "alpha", "pre_days", "total", "rows", "srm", "warnings")
        return {k: getattr(self, k) for k in keys}


def channel_condition(channel: str) -> str:
    """A cost filter keeping the costs booked to `channel` (quotes doubled: the name is data, not SQL)."""
    return f"channel = '{channel.replace(chr(39), chr(39) * 2)}'"


def experiment_roi(
    ws: Any,
    experiment_id: str,
    *,
    control: str | None = None,
    window_days: float | None = None,
    by: str | None = None,
    cost_filter: str | None = None,
    pre_days: float = 30,
    alpha: float = 0.05,
    catalog: Catalog | None = None,
) -> RoiResult:
    """ROI of a personalization experiment: incremental margin of each treatment arm vs its cost.

    Incremental totals are the per-unit absolute effect (CUPED over ``pre_days`` unless 0) times
    the arm's units, the interval scaled the same way. The cost is every `costs` row of kind
    personalization (and matching ``cost_filter``, an expression such as ``channel = 'web'``)
    dated from the first assignment to the end of the exposure window (last assignment +
    ``window_days``) or of the data; it is treated as known. With several treatment arms (e.g.
    ``all_channels``, ``email_only`` against ``none``: personalized in all channels vs one vs
    none) each arm is its own row and the cost is split across arms by their units.
    ``by="channel"`` cuts effects by the orders' channel and charges each channel the costs booked
    to it (or to an alias in :data:`CHANNEL_ALIASES`); costs no channel row takes are reported as
    ``unallocated_cost``.
    """
    if by not in (None, "channel"):
        raise UsageError(f"ROI can be cut by channel only (costs carry a channel), not {by!r}; "
                         "`cxlens experiment analyze --by` cuts the effects by any dimension.")
    catalog = catalog or catalog_for(ws)
    if "margin" not in catalog.metrics:
        catalog = replace(catalog, metrics={**catalog.metrics, "margin": MARGIN})
    settings = Settings(alpha=alpha)
    run: dict[str, Any] = {"control": control, "window_days": window_days, "pre_days": pre_days, "settings": settings,
                           "catalog": catalog}
    overall = analyze_experiment(ws, experiment_id, list(OUTCOMES), **run)
    split = analyze_experiment(ws, experiment_id, list(OUTCOMES), by=by, **run) if by else None
    period = _period(ws, experiment_id, window_days)
    costs = personalization_costs(ws, period["start"], period["end"], cost_filter)
    treated = {v: n for v, n in overall.units.items() if v != overall.control}
    share = {v: n / sum(treated.values()) if sum(treated.values()) else 0.0 for v, n in treated.items()}
    total_cost = sum(costs.values())
    total = [_row(overall.results, v, None, None, total_cost * share[v], f"Personalization in {v!r}") for v in treated]
    rows: list[dict[str, Any]] = []
    unallocated = None
    if split is not None:
        values = sorted({str(r[by]) for r in split.results})  # type: ignore[index]
        owner = {c: _channel_row(c, values) for c in costs}
        for variant in treated:
            for value in values:
                cost = sum(a for c, a in costs.items() if owner[c] == value) * share[variant]
                rows.append(_row(split.results, variant, by, value, cost, f"Personalization in {variant!r}, channel {value}"))
        unallocated = round(sum(a for c, a in costs.items() if owner[c] is None), 2)
    warnings = list(overall.warnings) + _cost_warnings(ws, costs, cost_filter)
    return RoiResult(
        experiment_id=experiment_id, control=overall.control, units=overall.units, period=_iso(period, window_days),
        costs=costs, total=total, rows=rows, by=by, cost_filter=cost_filter, cost_shares=share,
        unallocated_cost=unallocated, alpha=alpha, pre_days=pre_days, srm=overall.srm.to_dict(), warnings=warnings,
    )


def _channel_row(cost_channel: str, values: list[str]) -> str | None:
    """The result channel a cost channel is charged to: the same name, else an alias, else none."""
    if cost_channel in values:
        return cost_channel
    return next((v for v in values if cost_channel in CHANNEL_ALIASES.get(v, ())), None)


def _row(results: list[dict[str, Any]], variant: str, by: str | None, value: str | None, cost: float,
         what: str) -> dict[str, Any]:
    mine = {r["metric"]: r for r in results if r["variant"] == variant and (by is None or str(r.get(by)) == value)}
    n = next((int(r["n"]) for r in mine.values() if r.get("n") is not None), 0)
    row: dict[str, Any] = {"variant": variant, **({by: value} if by else {}), "treated_units": n,
                           "control_units": next((r["control_n"] for r in mine.values()), None)}
    per_unit = {}
    for metric, name in OUTCOMES.items():
        r = mine.get(metric, {})
        row[name] = interval(r.get("abs_effect"), r.get("ci_low"), r.get("ci_high"), n)
        per_unit[metric] = {k: number(r.get(k)) for k in ("mean", "control_mean", "abs_effect", "rel_effect", "rel_ci_low",
                                                          "rel_ci_high", "p_value")} | {"code": r.get("code", "no_rows")}
    row["per_unit"] = per_unit
    return row | judge(row["incremental_margin"], cost, what)


def _period(ws: Any, experiment_id: str, window_days: float | None) -> dict[str, datetime]:
    a = ws.table("assignments")
    a = a.filter(a.experiment_id == experiment_id)
    first, last = a.aggregate(s=a.assigned_at.min(), e=a.assigned_at.max()).to_pyarrow().to_pylist()[0].values()
    o, e = ws.table("orders"), ws.table("events")
    ends = [x for x in (o.ordered_at.max().to_pyarrow().as_py(), e.occurred_at.max().to_pyarrow().as_py()) if x]
    end = max(ends) if ends else last
    if window_days is not None:
        end = min(end, last + timedelta(days=window_days))
    return {"start": first, "end": end}


def _iso(period: dict[str, datetime], window_days: float | None) -> dict[str, Any]:
    return {"start": period["start"].isoformat(), "end": period["end"].isoformat(), "window_days": window_days}


def personalization_costs(ws: Any, start: date | datetime, end: date | datetime, cost_filter: str | None = None) -> dict[str, float]:
    """Cost of kind personalization per channel, dated start..end (days, inclusive)."""
    c = ws.table("costs")
    first, last = (d.date() if isinstance(d, datetime) else d for d in (start, end))
    c = c.filter((c.kind.lower() == COST_KIND) & (c.incurred_on >= first) & (c.incurred_on <= last))
    if cost_filter:
        c = c.filter(compile_expr(cost_filter, c, where="--cost-filter"))
    rows = c.group_by(channel=c.channel.fill_null("(none)")).aggregate(amount=c.amount.sum()).to_pyarrow().to_pylist()
    return {r["channel"]: round(float(r["amount"] or 0.0), 2) for r in sorted(rows, key=lambda r: r["channel"])}


def _cost_warnings(ws: Any, costs: dict[str, float], cost_filter: str | None) -> list[str]:
    out = []
    if not costs:
        out.append("No personalization costs in the period" + (f" matching {cost_filter!r}" if cost_filter else "")
                   + ": ROI is not computed (code no_cost).")
    o = ws.table("orders")
    if int(o.cost.count().to_pyarrow().as_py() or 0) == 0:
        out.append("Orders carry no cost of goods: margin equals revenue, so ROI is overstated.")
    return out
