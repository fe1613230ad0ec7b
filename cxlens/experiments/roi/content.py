"""Content ROI: personalized content pieces against generic content (observational unless randomized)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import ibis
import ibis.expr.types as ir
import pandas as pd

from cxlens.errors import UsageError
from cxlens.experiments.roi.common import (
    COST_KIND,
    SEND_CLICK,
    interval,
    judge,
    number,
    ratio_sums,
    sums_of,
    valid_orders_of,
)
from cxlens.semantic.compile import parse_date
from cxlens.stats.effects import estimate_effects


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
    for option, day in (("--since", since), ("--until", until)):
        parse_date(day, option)  # a sentence for a non-date, not the engine's cast error
    t = _content_touches(ws, since, until)
    per_content = ratio_sums(t, ["content", "family", "channel", "label"])
    pooled_sums = ratio_sums(t, ["family", "channel", "label"])
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


def _base_row(g: pd.DataFrame, head: dict[str, Any]) -> dict[str, Any]:
    sends, clicks = float(g.sum_d.sum()), float(g.sum_y.sum())
    return head | {"recipients": int(g.n.sum()), "sends": int(sends), "clicks": int(clicks),
                   "ctr": clicks / sends if sends else None}


def _uplift(treated: pd.Series, control: pd.Series | None, value: dict[str, Any] | None, cost: float, alpha: float,
            z: float, what: str) -> dict[str, Any]:
    """CTR uplift over the control, incremental clicks and margin, and the ROI judgement."""
    sends = float(treated.sum_d)
    if control is None:
        out = {"uplift": None, "incremental_clicks": interval(None, None, None), "incremental_margin": interval(None, None, None)}
        return out | judge(out["incremental_margin"], cost, what) | {"code": "no_baseline"}
    e = estimate_effects(sums_of([control]), sums_of([treated]), kind="ratio", alpha=alpha).records()[0]
    uplift = {"ctr": number(e["mean"]), "baseline_ctr": number(e["control_mean"]), "abs_effect": number(e["abs_effect"]),
              "rel_effect": number(e["rel_effect"]), "rel_ci_low": number(e["rel_ci_low"]), "rel_ci_high": number(e["rel_ci_high"]),
              "p_value": number(e["p_value"]), "code": e["code"]}
    clicks = interval(e["abs_effect"], e["ci_low"], e["ci_high"], sends)
    out = {"uplift": uplift, "incremental_clicks": clicks}
    if value is None or value["margin_per_click"] is None or clicks["value"] is None:
        out["incremental_margin"] = interval(None, None, None)
        return out | judge(out["incremental_margin"], cost, what) | {"code": "no_click_value" if clicks["value"] is not None else e["code"]}
    v, se_v = value["margin_per_click"], value["margin_per_click_se"] or 0.0
    m = clicks["value"] * v
    half_clicks = (clicks["ci_high"] - clicks["value"]) if clicks["ci_high"] is not None else None
    if half_clicks is None:
        out["incremental_margin"] = interval(m, None, None)
    else:
        half = math.sqrt((half_clicks * v) ** 2 + (z * se_v * clicks["value"]) ** 2 + (half_clicks * z * se_v) ** 2)
        out["incremental_margin"] = interval(m, m - half, m + half)
    return out | judge(out["incremental_margin"], cost, what)


def _click_values(ws: Any, t: ir.Table, click_days: float) -> list[dict[str, Any]]:
    """Margin and revenue of the orders that follow a click, per click, by family, channel and label.

    Clicks and valid orders of each person form one timeline; an order is credited to the last
    click before it when it comes within ``click_days``.
    """
    clicks = t.filter((t.click == 1) & t.profile_id.notnull())
    o = valid_orders_of(ws)
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
