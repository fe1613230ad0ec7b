"""Shared parts of the ROI views: constants, the ROI judgement, intervals as plain values."""

from __future__ import annotations

import math
from typing import Any, Literal

import ibis.expr.types as ir
import pandas as pd

from cxlens.semantic.model import Measure, Metric
from cxlens.semantic.sources import Context, valid_orders
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


def number(v: Any) -> float | None:
    """A finite float or None (never NaN)."""
    if v is None:
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def interval(value: Any, low: Any, high: Any, scale: float = 1.0) -> dict[str, float | None]:
    """A value with its interval, each multiplied by ``scale`` (None stays None)."""
    out: dict[str, float | None] = {}
    for key, v in (("value", value), ("ci_low", low), ("ci_high", high)):
        f = number(v)
        out[key] = None if f is None else f * scale
    return out


def judge(margin: dict[str, float | None], cost: float | None, what: str) -> dict[str, Any]:
    """ROI = (incremental margin − cost) / cost with its interval, a status, and a flag sentence.

    The cost is taken as known, so the ROI interval is the margin interval shifted and scaled.
    ``pays`` only when the whole interval is above 0; ``does_not_pay`` when it is all below.
    """
    if margin["value"] is None:
        return {"cost": cost, "roi": interval(None, None, None), "code": "no_effect", "status": "no_result", "pays": False,
                "flag": None}
    if cost is None or cost <= 0:
        return {"cost": cost or 0.0, "roi": interval(None, None, None), "code": "no_cost", "status": "no_result",
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


def valid_orders_of(ws: Any) -> ir.Table:
    """Valid orders with their `margin`, as the semantic layer defines them, with a profile."""
    o = valid_orders(Context(ws.table))
    return o.filter(o.profile_id.notnull())


def ratio_sums(t: ir.Table, keys: list[str]) -> pd.DataFrame:
    """``click`` (y) per ``send`` (d) with ``unit`` as the unit: n, sums and cross products per group."""
    per = t.group_by([*keys, "unit"]).aggregate(y=t.click.sum(), d=t.send.sum())
    out = per.group_by(keys).aggregate(
        n=per.count(), sum_y=per.y.sum(), sum_d=per.d.sum(), sum_y_y=(per.y * per.y).sum(),
        sum_y_d=(per.y * per.d).sum(), sum_d_d=(per.d * per.d).sum(),
    )
    return out.to_pyarrow().to_pandas()


def sums_of(rows: list[pd.Series]) -> Sums:
    return Sums.from_columns({c: [float(r[c]) for r in rows] for c in column_names(RATIO)}, RATIO)
