"""Per-profile evidence for the value classes, computed in the engine.

A label such as "high-value customer" is only useful when the analyst can see why it was given,
so every input of a rule is a column here: value and its percentile, price sensitivity (coupon
share of orders, full-price share of items), basket size, advocacy (latest NPS), purchase rhythm
(usual gap between purchase days, days silent), and the same measures in an earlier and a recent
window, whose comparison shows customers whose behaviour is changing.

Conventions:

- Orders are valid orders with a profile up to the as-of day; ``value`` is margin when any order
  carries a cost, else revenue (the RFM monetary value).
- The recent window is the last ``recent_days`` days up to the as-of day (default: the later half
  of the days from the first order in the workspace to the as-of day); the earlier window is
  everything before it. Spend rates are value per 30 days of each window, so unequal windows compare.
- A product's regular price is the highest unit price it was sold at; an item is at full price
  when its unit price is at least 95 % of that (sale prices and markdowns sit below it). Without
  order lines the full-price share is missing, never invented.
- ``usual_gap_days`` is the customer's mean time between purchase days, (last - first purchase
  day) / (purchase days - 1), missing with one purchase day; ``days_silent`` the days from the
  last purchase day to the as-of day; ``days_inactive`` the days since any activity the customer
  started (an order, a visit or other event, a support contact, a survey answer). Messages the
  company sent, opened or not, and ad impressions are not activity: a lapsed customer still
  receives newsletters. ``active_days`` counts the distinct days with such activity and
  ``activity_gap_days`` is their mean gap, (last - first active day) / (active days - 1): the
  customer's rhythm across every channel, so a silence can be weighed against how often this
  customer usually shows up at all (a weekly visitor quiet for three months has gone; a store
  shopper who buys every six weeks and does nothing else has only skipped a few visits).
- ``days_since_unresolved_case`` is the days since the last contact of the customer's latest
  support case that no contact marked resolved (cases grouped by source and case id, a contact
  without a case id its own case; resolution unknown for every contact is no evidence): an
  unresolved complaint is the classic reason a good customer stops buying.
- ``first_seen_day`` is the earliest record of the profile of any kind (CRM sign-up, order, event,
  contact, survey answer): a customer known before the recent window has an earlier pattern to
  depart from even when it held few orders.
- Percentiles are SQL ``PERCENT_RANK`` (share of profiles strictly below, 0..1) among profiles with
  orders (recent and earlier ones among profiles that ordered in that window).
"""

from __future__ import annotations

from dataclasses import dataclass

import ibis
import ibis.expr.types as ir

from cxlens.semantic.ordered import last, order_key
from cxlens.value.rfm import AsOf, day_number

FULL_PRICE_RATIO = 0.95
"""An item sold at >= 95 % of its product's highest observed unit price counts as full price."""

MIN_EXPOSURE_DAYS = 30
"""Shortest time a window's value pace is measured over (a first order yesterday is not a pace)."""

NOT_ACTIVITY: tuple[str, ...] = ("message_sent", "message_opened", "message_clicked", "message_unsubscribed",
                                 "ad_impression", "recommendation_shown", "loyalty_enrolled")
"""Event types that happen to a customer rather than being started by them."""


@dataclass(frozen=True)
class Windows:
    """The as-of day and the first day of the recent window (days since 1970-01-01)."""

    as_of: int
    recent_from: int
    first_day: int

    @property
    def earlier_days(self) -> int:
        return max(self.recent_from - self.first_day, 1)

    @property
    def recent_days(self) -> int:
        return self.as_of - self.recent_from + 1


def windows(orders: ir.Table, at: AsOf, recent_days: int | None) -> Windows:
    """The earlier/recent split: the last `recent_days` days, by default the later half of the order history."""
    first = int(orders.day.min().execute())
    if recent_days is None:
        recent_days = max((at.day - first + 1) // 2, 1)
    return Windows(as_of=at.day, recent_from=at.day - recent_days + 1, first_day=first)


def percentile(value: ir.NumericColumn, where: ir.BooleanValue | None = None) -> ir.FloatingColumn:
    """PERCENT_RANK of value among rows where it is known (and `where` holds); NULL elsewhere.

    A signal that does not vary (no customer ever used a coupon) ranks nobody: it is NULL for all,
    not 0, so scores that average percentiles skip it instead of being pulled down by it.
    """
    where = value.notnull() if where is None else (where & value.notnull())
    group = ibis.window(group_by=where)
    varies = value.max().over(group) > value.min().over(group)
    grouped = ibis.percent_rank().over(ibis.window(group_by=where, order_by=value)).cast("float64")
    return ibis.ifelse(where & varies, grouped, ibis.null("float64"))


def _share(flag: ir.BooleanValue, weight: ir.NumericValue, where: ir.BooleanValue | None = None) -> ir.FloatingScalar:
    w = weight if where is None else ibis.ifelse(where, weight, 0.0)
    total = w.sum()
    return ibis.ifelse(total > 0, ibis.ifelse(flag, w, 0.0).sum() / total, ibis.null("float64"))


def order_evidence(orders: ir.Table, win: Windows, use_margin: bool) -> ir.Table:
    """Per-profile order measures over the whole history and per window."""
    o = orders.filter(orders.day <= win.as_of)
    o = o.mutate(value=(o.margin if use_margin else o.revenue).fill_null(0).cast("float64"),
                 recent=o.day >= win.recent_from, one=ibis.literal(1.0))
    earlier = ~o.recent
    coupon = o.has_coupon == 1
    per = o.group_by(o.profile_id).aggregate(
        orders=o.count(), value=o.value.sum(), first_day=o.day.min(), last_day=o.day.max(),
        coupon_share=_share(coupon, o.one), items_per_order=o.items_count.cast("float64").mean(),
        orders_earlier=earlier.cast("int64").sum(), orders_recent=o.recent.cast("int64").sum(),
        value_earlier=ibis.ifelse(earlier, o.value, 0.0).sum(), value_recent=ibis.ifelse(o.recent, o.value, 0.0).sum(),
        coupon_share_earlier=_share(coupon, o.one, earlier), coupon_share_recent=_share(coupon, o.one, o.recent),
    )
    days = o.select("profile_id", "day").distinct()
    days = days.group_by(days.profile_id).aggregate(purchase_days=days.count()).rename(_gp="profile_id")
    per = per.join(days, per.profile_id == days._gp).drop("_gp")
    span = (per.last_day - per.first_day).cast("float64")
    return per.mutate(usual_gap_days=ibis.ifelse(per.purchase_days > 1, span / (per.purchase_days - 1).cast("float64"),
                                                 ibis.null("float64")))


def item_evidence(ws: object, orders: ir.Table, win: Windows) -> ir.Table:
    """Per-profile full-price share and category breadth from order lines of valid orders (lazy)."""
    items = ws.table("order_items")  # type: ignore[attr-defined]
    o = orders.filter(orders.day <= win.as_of).select(_src="source", _oid="order_id", pid="profile_id", oday="day")
    i = items.join(o, [items.source == o._src, items.order_id == o._oid])
    i = i.mutate(qty=ibis.greatest(i.quantity.fill_null(1.0), 0.0), recent=i.oday >= win.recent_from)
    i = i.mutate(regular=i.unit_price.max().over(ibis.window(group_by=i.product_id)))
    full = i.unit_price >= i.regular * FULL_PRICE_RATIO
    return i.group_by(profile_id=i.pid).aggregate(
        full_price_share=_share(full, i.qty),
        full_price_share_earlier=_share(full, i.qty, ~i.recent), full_price_share_recent=_share(full, i.qty, i.recent),
        categories=i.category.nunique(),
        categories_earlier=ibis.ifelse(~i.recent, i.category, None).nunique(),
        categories_recent=ibis.ifelse(i.recent, i.category, None).nunique(),
    )


def nps_evidence(ws: object, win: Windows) -> ir.Table:
    """Per-profile latest NPS answer (0-10) on or before the as-of day."""
    s = ws.table("survey_responses")  # type: ignore[attr-defined]
    s = s.filter(s.profile_id.notnull() & (s.survey_type == "nps") & (day_number(s.responded_at) <= win.as_of))
    return s.group_by("profile_id").aggregate(latest_nps=last(s.score, order_key(s.responded_at, s.response_id)))


def activity_evidence(ws: object, win: Windows) -> ir.Table:
    """Per-profile first record day of any kind, and first and last day and number of days of customer-started
    activity, up to the as-of day."""
    t = ws.table  # type: ignore[attr-defined]
    e, i, s, c, o = t("events"), t("interactions"), t("survey_responses"), t("customers"), t("orders")

    def rows(table: ir.Table, at: ir.TimestampColumn, active: ir.BooleanValue) -> ir.Table:
        return table.select(profile_id=table.profile_id, day=day_number(at), active=active)

    everything = ibis.union(
        rows(e, e.occurred_at, ~e.event_type.isin(NOT_ACTIVITY)), rows(i, i.started_at, ibis.literal(True)),
        rows(s, s.responded_at, ibis.literal(True)), rows(o, o.ordered_at, ibis.literal(True)),
        rows(c, c.signup_at, ibis.literal(False)),
    )
    everything = everything.filter(everything.profile_id.notnull() & everything.day.notnull() & (everything.day <= win.as_of))
    active_day = ibis.ifelse(everything.active, everything.day, None)
    per = everything.group_by("profile_id").aggregate(
        first_seen_day=everything.day.min(), first_activity_day=active_day.min(), last_activity_day=active_day.max(),
        active_days=active_day.nunique())
    span = (per.last_activity_day - per.first_activity_day).cast("float64")
    return per.mutate(activity_gap_days=ibis.ifelse(per.active_days > 1, span / (per.active_days - 1).cast("float64"),
                                                    ibis.null("float64"))).drop("first_activity_day")


def support_evidence(ws: object, win: Windows) -> ir.Table:
    """Per-profile day of the last contact of the latest unresolved support case, contacts up to the as-of day."""
    i = ws.table("interactions")  # type: ignore[attr-defined]
    i = i.filter(i.profile_id.notnull() & (day_number(i.started_at) <= win.as_of))
    i = i.mutate(_case=ibis.ifelse(i.case_id.isnull(), "~" + i.interaction_id, i.case_id), _day=day_number(i.started_at))
    cases = i.group_by([i.source, i._case]).aggregate(profile_id=i.profile_id.max(), last_day=i._day.max(),
                                                      resolved=i.resolved.cast("int64").max())
    cases = cases.filter(cases.resolved == 0)
    return cases.group_by("profile_id").aggregate(last_unresolved_day=cases.last_day.max())


@dataclass(frozen=True)
class Available:
    """Which optional signals the workspace's data carries at all."""

    coupons: bool
    """Some valid order has a coupon code; without any, coupon shares are unknown, not 0."""
    categories: bool
    """Some order line has a category; without any, category breadth is unknown, not 0."""


def available(ws: object, orders: ir.Table) -> Available:
    """Two small queries: whether coupon codes and product categories exist in the data."""
    items = ws.table("order_items")  # type: ignore[attr-defined]
    return Available(coupons=bool(orders.has_coupon.max().execute() or 0),
                     categories=int(items.category.count().execute() or 0) > 0)


def evidence_table(ws: object, orders: ir.Table, win: Windows, use_margin: bool, have: Available) -> ir.Table:
    """All evidence columns per profile with orders, percentiles and rates included (lazy)."""
    t = order_evidence(orders, win, use_margin)
    parts = (item_evidence(ws, orders, win), nps_evidence(ws, win), activity_evidence(ws, win), support_evidence(ws, win))
    for n, part in enumerate(parts):
        part = part.rename(**{f"_p{n}": "profile_id"})
        t = t.left_join(part, t.profile_id == part[f"_p{n}"]).drop(f"_p{n}")
    unknown = ibis.null("float64")
    if not have.coupons:
        t = t.mutate(coupon_share=unknown, coupon_share_earlier=unknown, coupon_share_recent=unknown)
    if not have.categories:
        t = t.mutate(categories=unknown, categories_earlier=unknown, categories_recent=unknown)
    ordered_earlier, ordered_recent = t.orders_earlier > 0, t.orders_recent > 0
    t = t.mutate(
        aov=t.value / t.orders.cast("float64"),
        days_silent=(ibis.literal(win.as_of) - t.last_day).cast("int64"),
        days_inactive=(ibis.literal(win.as_of) - ibis.greatest(t.last_day, t.last_activity_day.fill_null(t.last_day))).cast("int64"),
        first_seen_day=ibis.least(t.first_seen_day.fill_null(t.first_day), t.first_day),
        days_since_unresolved_case=(ibis.literal(win.as_of) - t.last_unresolved_day).cast("int64"),
        aov_earlier=ibis.ifelse(ordered_earlier, t.value_earlier / t.orders_earlier.cast("float64"), ibis.null("float64")),
        aov_recent=ibis.ifelse(ordered_recent, t.value_recent / t.orders_recent.cast("float64"), ibis.null("float64")),
        spend_rate_earlier=t.value_earlier * 30.0 / win.earlier_days,
        spend_rate_recent=t.value_recent * 30.0 / win.recent_days,
        value_pct=percentile(t.value), orders_pct=percentile(t.orders),
    )
    # value per 30 days of the customer's own time in each window (at least MIN_EXPOSURE_DAYS), so a
    # customer who arrived late in a window is compared by pace, not by how long they had
    exposure_earlier = ibis.greatest(win.recent_from - ibis.greatest(t.first_day, win.first_day), MIN_EXPOSURE_DAYS)
    exposure_recent = ibis.greatest(win.as_of + 1 - ibis.greatest(t.first_day, win.recent_from), MIN_EXPOSURE_DAYS)
    t = t.mutate(
        value_pct_earlier=percentile(t.value_earlier * 30.0 / exposure_earlier.cast("float64"), t.orders_earlier > 0),
        value_pct_recent=percentile(t.value_recent * 30.0 / exposure_recent.cast("float64"), t.orders_recent > 0),
    )
    return t.mutate(aov_pct=percentile(t.aov))
