"""Profile features: one row per profile that segment definitions and `--where` filter on.

A segment is a condition over these columns ("unresolved_cases_90d >= 2",
"loyalty_member and region = 'North'"), translated to Ibis by the expression language, so it can
never run arbitrary SQL. Windowed features ("_90d") count back from the workspace's latest
activity, so a segment means the same thing whenever the report is run on the same data.
"""

from __future__ import annotations

from datetime import datetime

import ibis
import ibis.expr.types as ir

from cxlens.semantic.ordered import last, order_key
from cxlens.semantic.sources import Context, valid_orders

FEATURES: dict[str, str] = {
    "country": "Country (CRM).", "region": "Region (CRM).", "city": "City (CRM).", "gender": "Gender (CRM).",
    "loyalty_member": "Loyalty member (true/false).", "loyalty_tier": "Loyalty tier.",
    "acquisition_channel": "Acquisition channel.", "cohort": "Month of the first valid order, YYYY-MM.",
    "orders": "Valid orders, all time.", "revenue": "Revenue of valid orders, all time.",
    "aov": "Average order value, all time.", "days_since_last_order": "Days from the last valid order to the latest activity.",
    "orders_90d": "Valid orders in the last 90 days.", "revenue_90d": "Revenue in the last 90 days.",
    "contacts_90d": "Support contacts in the last 90 days.",
    "unresolved_cases_90d": "Support cases opened in the last 90 days whose last contact is not resolved.",
    "contacted_after_last_order": "Contacted support at or after the last valid order (then bought nothing more).",
    "latest_nps": "Latest NPS score (0–10).", "latest_csat": "Latest CSAT score (1–5).", "latest_ces": "Latest CES score (1–7).",
}
"""Columns a segment condition can use, with what they mean (shown by `cxlens metrics segments`)."""

VALUE_FEATURES: dict[str, tuple[str, str]] = {
    "rfm_segment": ("string", "RFM segment (champions, loyal, at risk, hibernating, ...), from `cxlens rfm`/`cxlens hvc`."),
    "value_class": ("string", "Value class: hvc, lapsing_hvc, emerging_hvc, high_volume or other, from `cxlens hvc`."),
    "hvc": ("boolean", "High-value customer (`cxlens hvc`)."),
    "lapsing_hvc": ("boolean", "High-value customer gone silent for longer than their usual gap x k (`cxlens hvc`)."),
    "emerging_hvc": ("boolean", "Customer becoming a high-value customer (`cxlens hvc`)."),
    "high_volume": ("boolean", "Buys often, low value per order (`cxlens hvc`)."),
    "predicted_clv": ("float64", "Predicted 52-week CLV (`cxlens hvc`)."),
    "p_alive": ("float64", "Probability the customer is still active (`cxlens hvc`)."),
}
"""Features from the `customer_value` table; NULL for everyone until `cxlens hvc` (or `cxlens rfm`)
has written it, so a segment such as "lapsing_hvc" is valid before and selects no one."""
FEATURES.update({k: meaning for k, (_, meaning) in VALUE_FEATURES.items()})

WINDOW_DAYS = 90


def _latest(*columns: ir.TimestampColumn) -> object:
    """The latest time stamp among the columns (one small query each), None when all are empty."""
    values = [c.max().execute() for c in columns]
    values = [v for v in values if v is not None and v == v]
    return max(values) if values else None


def _personal_rows(ctx: Context) -> tuple[ir.Table, ir.Table, ir.Table]:
    """Valid orders, interactions and survey answers that belong to a profile."""
    return (valid_orders(ctx).filter(lambda t: t.profile_id.notnull()),
            ctx.table("interactions").filter(lambda t: t.profile_id.notnull()),
            ctx.table("survey_responses").filter(lambda t: t.profile_id.notnull()))


def _features_as_of(ctx: Context) -> object:
    """The latest order, contact, survey answer or event: the day profile features are as of."""
    o, i, s = _personal_rows(ctx)
    return _latest(o.ts, i.started_at, s.responded_at, ctx.table("events").occurred_at)


def profile_features(ctx: Context, catalog: object) -> ir.Table:
    """profile_id plus FEATURES, computed in the engine."""
    from cxlens.semantic.dimensions import profile_attributes, with_customer_value
    from cxlens.semantic.sources import Request

    attrs = profile_attributes(ctx).view()
    o, i, s = _personal_rows(ctx)
    as_of = ctx.scalar("features_as_of", _features_as_of)
    if as_of is None:
        as_of = datetime(1970, 1, 1)
    cutoff = ibis.literal(as_of) - ibis.interval(days=WINDOW_DAYS)
    recent = o.ts >= cutoff
    orders = o.group_by(o.profile_id).aggregate(
        orders=o.count(), revenue=o.revenue.sum(), aov=o.revenue.mean(), last_order=o.ts.max(),
        orders_90d=recent.cast("int64").sum(), revenue_90d=ibis.ifelse(recent, o.revenue, 0.0).sum(),
    )
    contacts = i.group_by("profile_id").aggregate(contacts_90d=(i.started_at >= cutoff).cast("int64").sum(),
                                                  last_contact=i.started_at.max())
    cases = ctx.source("cases", Request("all"))
    cases = cases.filter(cases.profile_id.notnull() & (cases.ts >= cutoff))
    cases = cases.group_by("profile_id").aggregate(unresolved_cases_90d=(cases.resolved.fill_null(0) == 0).cast("int64").sum())
    latest_score = {}
    for kind in ("nps", "csat", "ces"):
        k = s.filter(s.survey_type == kind)
        latest_score[kind] = k.group_by("profile_id").aggregate(**{f"latest_{kind}": last(k.score, order_key(k.responded_at, k.response_id))})
    t = attrs
    for n, part in enumerate((orders, contacts, cases, *latest_score.values())):
        part = part.rename(**{f"_pid{n}": "profile_id"})
        part = part.view()
        t = t.left_join(part, attrs.profile_id == part[f"_pid{n}"])
    t = t.drop(*[c for c in t.columns if c.startswith("_pid")])
    t = with_customer_value(ctx, t, {k: kind for k, (kind, _) in VALUE_FEATURES.items() if k not in t.columns})
    days = (ibis.literal(as_of).epoch_seconds() - t.last_order.epoch_seconds()) / 86_400.0
    return t.mutate(
        orders=t.orders.fill_null(0), revenue=t.revenue.fill_null(0.0), orders_90d=t.orders_90d.fill_null(0),
        revenue_90d=t.revenue_90d.fill_null(0.0), contacts_90d=t.contacts_90d.fill_null(0),
        unresolved_cases_90d=t.unresolved_cases_90d.fill_null(0), days_since_last_order=days,
        contacted_after_last_order=(t.last_contact >= t.last_order).fill_null(False),
    ).select("profile_id", *FEATURES)
