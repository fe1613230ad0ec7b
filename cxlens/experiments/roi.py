"""Personalization ROI: what personalization earned against what the cost ledger says it cost.

Three views, each computed from aggregates the engine returns (per-variant sufficient statistics,
per-person sums, per-campaign costs):

- :func:`experiment_roi` — **randomized**. Per-unit effects of a personalization experiment (buyers,
  orders, revenue, margin; :func:`cxlens.experiments.workspace.analyze_experiment`, CUPED by
  default) times the treated units give incremental totals with intervals; ROI =
  (incremental margin − cost) / cost, cost = personalization costs booked over the experiment.
- :func:`content_roi` — per content piece (``events.content_id``): clicks per send of personalized
  content against generic content, the incremental clicks, what a click is worth, the content's
  personalization cost, ROI, and a flag on content that does not pay. **Observational** unless
  the content itself was randomized (a content with personalized and generic sends is compared
  within itself).
- :func:`stage_report` — per journey stage (:data:`JOURNEY_STAGES`): personalized vs generic
  touches and the share of touches followed by an order. **Observational**.

Every ROI interval treats the cost as known: its only uncertainty is the incremental margin's
(and, for content, the value of a click's). Degenerate inputs give a ``code``, never an exception
or a NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from statistics import NormalDist
from typing import Any, Literal

import ibis
import ibis.expr.types as ir
import pandas as pd

from cxlens.errors import UsageError
from cxlens.experiments.analysis import Settings
from cxlens.experiments.workspace import analyze_experiment
from cxlens.semantic.api import catalog_for
from cxlens.semantic.expressions import compile_expr
from cxlens.semantic.model import Measure, Metric
from cxlens.semantic.registry import Catalog
from cxlens.semantic.sources import Context, valid_orders
from cxlens.stats.effects import estimate_effects
from cxlens.stats.sums import Sums, column_names

COST_KIND = "personalization"

MARGIN = Metric(
    id="margin", label="Margin", description="Revenue minus cost of goods of valid orders (revenue where an order has no cost).",
    unit="currency", direction="up", timing="lagging", measure=Measure("orders", "sum", "margin"), test="total",
    category="Value and loyalty",
)
"""Margin per unit, added to a copy of the catalogue when it declares none."""

OUTCOMES: dict[str, str] = {
    "active_customers": "incremental_buyers", "orders": "incremental_orders",
    "revenue": "incremental_revenue", "margin": "incremental_margin",
}
"""Experiment metric -> the incremental total it gives (per-unit effect × treated units)."""

CHANNEL_ALIASES: dict[str, tuple[str, ...]] = {"online": ("web",), "web": ("online",)}
"""Cost channels charged to a result channel besides its own name (web-shop orders are `online`,
a web personalization platform is booked to `web`)."""

SEND_CLICK: dict[str, tuple[str, str]] = {
    "message": ("message_sent", "message_clicked"),
    "recommendation": ("recommendation_shown", "recommendation_clicked"),
}
"""Content families: the event that counts a send (an impression) and the one that counts a click."""

LANDING = "page_view:landing"
"""A page_view with a referrer or UTM tag: an entry from outside, hence awareness."""
INTERACTION = "interaction"
"""A row of `interactions` (a support contact)."""

JOURNEY_STAGES: dict[str, tuple[str, ...]] = {
    "awareness": ("ad_impression", "ad_click", LANDING, "signup", "lead"),
    "consideration": ("page_view", "product_view", "search", "add_to_cart", "remove_from_cart", "store_visit",
                      "recommendation_shown", "recommendation_clicked"),
    "purchase": ("checkout_started", "purchase"),
    "service": (INTERACTION,),
    "loyalty": ("message_sent", "message_opened", "message_clicked", "message_unsubscribed", "coupon_redeemed",
                "loyalty_enrolled"),
}
"""Journey stage of each event type; other types go to `other`. Rules: LANDING and INTERACTION."""

Status = Literal["pays", "does_not_pay", "unproven", "no_result", "baseline"]
RATIO = ("y", "d")


def _num(v: Any) -> float | None:
    """A finite float or None (never NaN)."""
    if v is None:
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def _interval(value: Any, low: Any, high: Any, scale: float = 1.0) -> dict[str, float | None]:
    """A value with its interval, each multiplied by ``scale`` (None stays None)."""
    out: dict[str, float | None] = {}
    for key, v in (("value", value), ("ci_low", low), ("ci_high", high)):
        f = _num(v)
        out[key] = None if f is None else f * scale
    return out


def judge(margin: dict[str, float | None], cost: float | None, what: str) -> dict[str, Any]:
    """ROI = (incremental margin − cost) / cost with its interval, a status, and a flag sentence.

    The cost is taken as known, so the ROI interval is the margin interval shifted and scaled.
    ``pays`` only when the whole interval is above 0; ``does_not_pay`` when it is all below.
    """
    if margin["value"] is None:
        return {"cost": cost, "roi": _interval(None, None, None), "code": "no_effect", "status": "no_result", "pays": False,
                "flag": None}
    if cost is None or cost <= 0:
        return {"cost": cost or 0.0, "roi": _interval(None, None, None), "code": "no_cost", "status": "no_result",
                "pays": False, "flag": None}
    roi = {k: None if v is None else (v - cost) / cost for k, v in margin.items()}
    low, high = roi["ci_low"], roi["ci_high"]
    code = "ok" if low is not None and high is not None else "no_interval"
    if high is not None and high < 0:
        status: Status = "does_not_pay"
        flag = (f"{what} does not pay: ROI {roi['value']:+.0%} (interval {low:+.0%} to {high:+.0%}); its incremental "
                f"margin {margin['value']:,.0f} does not cover its cost {cost:,.0f}.")
    elif low is not None and low > 0:
        status, flag = "pays", None
    else:
        status = "unproven"
        span = f"the ROI interval {low:+.0%} to {high:+.0%} spans 0" if code == "ok" else "it has no interval"
        flag = f"{what} is unproven: ROI {roi['value']:+.0%}, but {span}."
    return {"cost": cost, "roi": roi, "code": code, "status": status, "pays": status == "pays", "flag": flag}


# --- experiment ROI (randomized) -------------------------------------------------------------


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
        row[name] = _interval(r.get("abs_effect"), r.get("ci_low"), r.get("ci_high"), n)
        per_unit[metric] = {k: _num(r.get(k)) for k in ("mean", "control_mean", "abs_effect", "rel_effect", "rel_ci_low",
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


def _valid_orders(ws: Any) -> ir.Table:
    """Valid orders with their `margin`, as the semantic layer defines them, with a profile."""
    o = valid_orders(Context(ws.table))
    return o.filter(o.profile_id.notnull())


# --- content ROI (observational unless content was randomized) --------------------------------


@dataclass
class ContentRoiResult:
    """Per content piece: sends, clicks, CTR, uplift over generic, incremental margin, cost, ROI."""

    content: list[dict[str, Any]]
    pooled: list[dict[str, Any]]
    """All personalized content of a family and channel against its generic content."""
    click_value: list[dict[str, Any]]
    click_days: float
    alpha: float
    flags: list[str]
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"content": self.content, "pooled": self.pooled, "click_value": self.click_value,
                "click_days": self.click_days, "alpha": self.alpha, "flags": self.flags, "warnings": self.warnings}


def content_roi(ws: Any, *, click_days: float = 7, alpha: float = 0.05, since: str | None = None,
                until: str | None = None) -> ContentRoiResult:
    """ROI of each personalized content piece, and of all personalized content per channel.

    CTR is clicks per send with the recipient as the unit (delta method, so repeat sends to a
    person are not taken as independent). A personalized piece is compared with the generic
    sends of the same piece when it has some (randomized content), else with all generic content
    of its family and channel (observational: other weeks, other audiences). Incremental clicks
    = CTR difference × the piece's sends. A click is worth the mean margin of the orders its
    clicker placed within ``click_days`` after a **generic** click of the same family and channel
    (an order after several clicks counts for the last one), so personalized content cannot
    inflate its own value; that value's sampling error widens the interval. The cost is the
    personalization cost booked to the piece's campaigns (events.campaign_id, campaigns.content_id),
    split across a campaign's pieces by sends. Content without a content_id (recommendations) is
    grouped as ``<family>:<channel>:<personalized|generic>``.
    """
    if click_days <= 0:
        raise UsageError(f"--click-days must be > 0, got {click_days}.")
    t = _content_touches(ws, since, until)
    per_content = _ratio_sums(t, ["content", "family", "channel", "label"])
    pooled_sums = _ratio_sums(t, ["family", "channel", "label"])
    values = _click_values(ws, t, click_days)
    costs = _content_costs(ws, t, per_content)
    z = NormalDist().inv_cdf(1 - alpha / 2)
    generic = pooled_sums[pooled_sums.label == "generic"].set_index(["family", "channel"])
    value_of = {(v["family"], v["channel"]): v for v in values}

    content: list[dict[str, Any]] = []
    pieces = per_content.groupby(["content", "family", "channel"], sort=True)
    for (cid, family, channel), g in pieces:
        labels = g.set_index("label")
        base = f"generic sends of {cid}" if "generic" in labels.index and "personalized" in labels.index else None
        row = _base_row(g, {"content_id": cid, "family": family, "channel": channel})
        row["label"] = "personalized" if "personalized" in labels.index else str(labels.index[0])
        if "personalized" not in labels.index:
            content.append(row | {"baseline": None, "uplift": None, "incremental_clicks": None, "incremental_margin": None,
                                  "cost": costs.get(cid, 0.0), "roi": None, "code": row["label"],
                                  "status": "baseline" if row["label"] == "generic" else "no_result", "pays": False,
                                  "flag": None})
            continue
        control = labels.loc["generic"] if base else (generic.loc[(family, channel)] if (family, channel) in generic.index else None)
        row["baseline"] = base or f"generic {family} content, {channel}"
        row |= _uplift(labels.loc["personalized"], control, value_of.get((family, channel)), costs.get(cid, 0.0), alpha, z,
                       f"Content {cid}")
        content.append(row)
    pooled = []
    for (family, channel), g in pooled_sums.groupby(["family", "channel"], sort=True):
        labels = g.set_index("label")
        if "personalized" not in labels.index:
            continue
        mine = [r for r in content if r["family"] == family and r["channel"] == channel and r["label"] == "personalized"]
        cost = round(sum(r.get("cost") or 0.0 for r in mine), 2)
        row = {"family": family, "channel": channel, "pieces": len(mine), "baseline": f"generic {family} content, {channel}"}
        row |= _uplift(labels.loc["personalized"], generic.loc[(family, channel)] if (family, channel) in generic.index else None,
                       value_of.get((family, channel)), cost, alpha, z, f"Personalized {family} content in {channel}")
        pooled.append(row)
    flags = [r["flag"] for r in content if r.get("status") == "does_not_pay"]
    return ContentRoiResult(content=content, pooled=pooled, click_value=values, click_days=click_days, alpha=alpha, flags=flags)


def _content_touches(ws: Any, since: str | None, until: str | None) -> ir.Table:
    e = ws.table("events")
    types = [t for pair in SEND_CLICK.values() for t in pair]
    e = e.filter(e.event_type.isin(types))
    if since:
        e = e.filter(e.occurred_at >= ibis.literal(since).cast("timestamp"))
    if until:
        e = e.filter(e.occurred_at < ibis.literal(until).cast("timestamp") + ibis.interval(days=1))
    family = ibis.cases(*((e.event_type.isin(list(pair)), name) for name, pair in SEND_CLICK.items()))
    label = ibis.cases((e.personalized == True, "personalized"), (e.personalized == False, "generic"),
                       else_="untagged")
    channel = e.channel.fill_null("(none)")
    sends = [pair[0] for pair in SEND_CLICK.values()]
    return e.select(
        content=ibis.coalesce(e.content_id, family + ":" + channel + ":" + label), family=family, channel=channel,
        label=label, unit=ibis.coalesce(e.profile_id, e.anonymous_id, e.customer_id, e.event_id), profile_id=e.profile_id,
        campaign_id=e.campaign_id, ts=e.occurred_at, event_id=e.event_id,
        send=e.event_type.isin(sends).cast("float64"), click=(~e.event_type.isin(sends)).cast("float64"),
    )


def _ratio_sums(t: ir.Table, keys: list[str]) -> pd.DataFrame:
    """``click`` (y) per ``send`` (d) with ``unit`` as the unit: n, sums and cross products per group."""
    per = t.group_by([*keys, "unit"]).aggregate(y=t.click.sum(), d=t.send.sum())
    out = per.group_by(keys).aggregate(
        n=per.count(), sum_y=per.y.sum(), sum_d=per.d.sum(), sum_y_y=(per.y * per.y).sum(),
        sum_y_d=(per.y * per.d).sum(), sum_d_d=(per.d * per.d).sum(),
    )
    return out.to_pyarrow().to_pandas()


def _base_row(g: pd.DataFrame, head: dict[str, Any]) -> dict[str, Any]:
    sends, clicks = float(g.sum_d.sum()), float(g.sum_y.sum())
    return head | {"recipients": int(g.n.sum()), "sends": int(sends), "clicks": int(clicks),
                   "ctr": clicks / sends if sends else None}


def _uplift(treated: pd.Series, control: pd.Series | None, value: dict[str, Any] | None, cost: float, alpha: float,
            z: float, what: str) -> dict[str, Any]:
    """CTR uplift over the control, incremental clicks and margin, and the ROI judgement."""
    sends = float(treated.sum_d)
    if control is None:
        out = {"uplift": None, "incremental_clicks": _interval(None, None, None), "incremental_margin": _interval(None, None, None)}
        return out | judge(out["incremental_margin"], cost, what) | {"code": "no_baseline"}
    e = estimate_effects(_sums([control]), _sums([treated]), kind="ratio", alpha=alpha).records()[0]
    uplift = {"ctr": _num(e["mean"]), "baseline_ctr": _num(e["control_mean"]), "abs_effect": _num(e["abs_effect"]),
              "rel_effect": _num(e["rel_effect"]), "rel_ci_low": _num(e["rel_ci_low"]), "rel_ci_high": _num(e["rel_ci_high"]),
              "p_value": _num(e["p_value"]), "code": e["code"]}
    clicks = _interval(e["abs_effect"], e["ci_low"], e["ci_high"], sends)
    out = {"uplift": uplift, "incremental_clicks": clicks}
    if value is None or value["margin_per_click"] is None or clicks["value"] is None:
        out["incremental_margin"] = _interval(None, None, None)
        return out | judge(out["incremental_margin"], cost, what) | {"code": "no_click_value" if clicks["value"] is not None else e["code"]}
    v, se_v = value["margin_per_click"], value["margin_per_click_se"] or 0.0
    m = clicks["value"] * v
    half_clicks = (clicks["ci_high"] - clicks["value"]) if clicks["ci_high"] is not None else None
    if half_clicks is None:
        out["incremental_margin"] = _interval(m, None, None)
    else:
        half = math.sqrt((half_clicks * v) ** 2 + (z * se_v * clicks["value"]) ** 2 + (half_clicks * z * se_v) ** 2)
        out["incremental_margin"] = _interval(m, m - half, m + half)
    return out | judge(out["incremental_margin"], cost, what)


def _sums(rows: list[pd.Series]) -> Sums:
    return Sums.from_columns({c: [float(r[c]) for r in rows] for c in column_names(RATIO)}, RATIO)


def _click_values(ws: Any, t: ir.Table, click_days: float) -> list[dict[str, Any]]:
    """Margin and revenue of the orders that follow a click, per click, by family, channel and label.

    Clicks and valid orders of each person form one timeline; an order is credited to the last
    click before it when it comes within ``click_days``.
    """
    clicks = t.filter((t.click == 1) & t.profile_id.notnull())
    o = _valid_orders(ws)
    none = ibis.null("string")
    line = ibis.union(
        clicks.select(pid=clicks.profile_id, ts=clicks.ts, kind=ibis.literal(0), tie=clicks.event_id, family=clicks.family,
                      channel=clicks.channel, label=clicks.label, margin=ibis.literal(0.0), revenue=ibis.literal(0.0)),
        o.select(pid=o.profile_id, ts=o.ordered_at, kind=ibis.literal(1), tie=o.order_id, family=none, channel=none,
                 label=none, margin=o.margin.cast("float64"), revenue=o.revenue.cast("float64")),
    )
    w = ibis.window(group_by=line.pid, order_by=[line.ts, line.kind, line.tie], preceding=None, following=0)
    line = line.mutate(seq=(line.kind == 0).cast("int64").sum().over(w))
    cl = line.filter(line.kind == 0).select("pid", "seq", "family", "channel", "label", click_ts=line.ts)
    od = line.filter((line.kind == 1) & (line.seq > 0)).select(o_pid=line.pid, o_seq=line.seq, o_ts=line.ts,
                                                                margin=line.margin, revenue=line.revenue)
    j = od.join(cl, [od.o_pid == cl.pid, od.o_seq == cl.seq])
    j = j.filter(j.o_ts <= j.click_ts + ibis.interval(seconds=int(click_days * 86400)))
    credit = j.group_by(c_pid=j.pid, c_seq=j.seq).aggregate(m=j.margin.sum(), r=j.revenue.sum())
    per = cl.left_join(credit, [cl.pid == credit.c_pid, cl.seq == credit.c_seq])
    per = per.mutate(m=per.m.fill_null(0.0), r=per.r.fill_null(0.0))
    agg = per.group_by(["family", "channel", "label"]).aggregate(
        clicks=per.count(), sum_m=per.m.sum(), sum_mm=(per.m * per.m).sum(), sum_r=per.r.sum(),
        ordered=(per.r > 0).cast("int64").sum(),
    ).to_pyarrow().to_pylist()
    out = []
    for r in sorted(agg, key=lambda r: (r["family"], r["channel"], r["label"])):
        if r["label"] != "generic":
            continue
        n, s, ss = int(r["clicks"]), float(r["sum_m"]), float(r["sum_mm"])
        mean = s / n if n else None
        se = math.sqrt(max(ss - n * mean * mean, 0.0) / (n - 1) / n) if n > 1 and mean is not None else None
        out.append({"family": r["family"], "channel": r["channel"], "measured_on": "generic clicks", "clicks": n,
                    "clicks_followed_by_order": int(r["ordered"]), "margin_per_click": mean, "margin_per_click_se": se,
                    "revenue_per_click": float(r["sum_r"]) / n if n else None})
    return out


def _content_costs(ws: Any, t: ir.Table, per_content: pd.DataFrame) -> dict[str, float]:
    """Personalization cost per content piece through its campaigns, split across a campaign's pieces by sends."""
    from_events = t.filter(t.campaign_id.notnull()).select("content", "campaign_id").distinct()
    c = ws.table("campaigns")
    from_register = c.filter(c.content_id.notnull() & c.campaign_id.notnull()).select(content=c.content_id, campaign_id=c.campaign_id)
    links = ibis.union(from_events, from_register, distinct=True).to_pyarrow().to_pandas()
    costs = ws.table("costs")
    costs = costs.filter((costs.kind.lower() == COST_KIND) & costs.campaign_id.notnull())
    booked = costs.group_by("campaign_id").aggregate(amount=costs.amount.sum()).to_pyarrow().to_pandas()
    sends = per_content.groupby("content").sum_d.sum()
    links = links[links.content.isin(sends.index)].merge(booked, on="campaign_id")
    if links.empty:
        return {}
    links["sends"] = links.content.map(sends).astype(float)
    total = links.groupby("campaign_id").sends.transform("sum")
    pieces = links.groupby("campaign_id").content.transform("count")
    links["charged"] = links.amount * (links.sends / total).where(total > 0, 1 / pieces)
    return {str(k): round(float(v), 2) for k, v in links.groupby("content").charged.sum().items()}


# --- journey stages (observational) -------------------------------------------------------------


@dataclass
class StageReport:
    """Per journey stage: touches by personalized/generic/untagged and the order-follow-up comparison."""

    stages: list[dict[str, Any]]
    days: float
    alpha: float
    mapping: dict[str, list[str]]

    def to_json(self) -> dict[str, Any]:
        return {"stages": self.stages, "days": self.days, "alpha": self.alpha, "mapping": self.mapping,
                "outcome": f"share of touches followed by a valid order of the same person within {self.days:g} days"}


def stage_report(ws: Any, *, days: float = 7, alpha: float = 0.05) -> StageReport:
    """Personalized vs generic touches per journey stage, and how often each is followed by an order.

    A touch is converted when the same person places a valid order within ``days`` after it;
    the rate is converted touches / touches with the person as the unit (delta method). Only
    touches that carry `events.personalized` are compared (messages and recommendations in
    most data), and the comparison is observational: who gets personalized touches is not random.
    """
    if days <= 0:
        raise UsageError(f"--days must be > 0, got {days}.")
    e = ws.table("events")
    landing = (e.event_type == "page_view") & (e.referrer.notnull() | e.utm_source.notnull() | e.utm_campaign.notnull())
    plain = {stage: [t for t in types if t not in (LANDING, INTERACTION)] for stage, types in JOURNEY_STAGES.items()}
    rules = [(landing, "awareness")] + [(e.event_type.isin(types), stage) for stage, types in plain.items() if types]
    label = ibis.cases((e.personalized == True, "personalized"), (e.personalized == False, "generic"),
                       else_="untagged")
    ev = e.select(pid=e.profile_id, ts=e.occurred_at, stage=ibis.cases(*rules, else_="other"), label=label)
    i = ws.table("interactions")
    it = i.select(pid=i.profile_id, ts=i.started_at, stage=ibis.literal("service"), label=ibis.literal("untagged"))
    touches = ibis.union(ev, it)
    counts = touches.group_by(["stage", "label"]).aggregate(touches=touches.count()).to_pyarrow().to_pandas()

    o = _valid_orders(ws)
    tagged = touches.filter(touches.pid.notnull() & (touches.label != "untagged"))
    line = ibis.union(
        tagged.mutate(kind=ibis.literal(0)),
        o.select(pid=o.profile_id, ts=o.ordered_at, stage=ibis.null("string"), label=ibis.null("string"),
                 kind=ibis.literal(1)),
    )
    w = ibis.window(group_by=line.pid, order_by=[line.ts, line.kind], preceding=0, following=None)
    line = line.mutate(next_order=ibis.ifelse(line.kind == 1, line.ts, ibis.null("timestamp")).min().over(w))
    line = line.filter(line.kind == 0)
    within = line.next_order <= line.ts + ibis.interval(seconds=int(days * 86400))
    line = line.mutate(hit=(line.next_order.notnull() & within).cast("float64"), one=ibis.literal(1.0))
    sums = _ratio_sums(line.rename(unit="pid", click="hit", send="one"), ["stage", "label"]).set_index(["stage", "label"])

    out = []
    for stage in [*JOURNEY_STAGES, "other"]:
        mine = counts[counts.stage == stage].set_index("label")
        if stage == "other" and mine.empty:
            continue
        row: dict[str, Any] = {"stage": stage, "event_types": list(JOURNEY_STAGES.get(stage, ()))}
        row["touches"] = {lab: int(mine.touches.get(lab, 0)) for lab in ("personalized", "generic", "untagged")}
        rates = {}
        for lab in ("personalized", "generic"):
            s = sums.loc[(stage, lab)] if (stage, lab) in sums.index else None
            rates[lab] = {"people": int(s.n) if s is not None else 0,
                          "rate": _num(s.sum_y / s.sum_d) if s is not None and s.sum_d else None}
        row["conversion"] = rates
        if rates["personalized"]["people"] == 0 or rates["generic"]["people"] == 0:
            side = "personalized" if rates["personalized"]["people"] == 0 else "generic"
            row["effect"], row["code"] = None, f"no_{side}_touches"
        else:
            rec = estimate_effects(_sums([sums.loc[(stage, "generic")]]), _sums([sums.loc[(stage, "personalized")]]),
                                   kind="ratio", alpha=alpha).records()[0]
            row["effect"] = {k: _num(rec[k]) for k in ("abs_effect", "ci_low", "ci_high", "rel_effect", "rel_ci_low",
                                                        "rel_ci_high", "p_value")}
            row["code"] = rec["code"]
        out.append(row)
    return StageReport(stages=out, days=days, alpha=alpha, mapping={k: list(v) for k, v in JOURNEY_STAGES.items()})
