"""Web and app sessions built in the engine from events (docs/metric-definitions.md, Sessions).

A session is the events sharing a `session_id`, or, where the source gives none, a visitor's
events with no gap longer than 30 minutes. Everything is window functions and group-bys in the
engine, so it runs the same on DuckDB and Spark and never pulls events into Python.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from cxlens.semantic.ordered import first_values

NON_SESSION_EVENTS: tuple[str, ...] = (
    "message_sent", "message_opened", "message_clicked", "message_unsubscribed", "ad_impression", "ad_click",
    "store_visit", "coupon_redeemed", "loyalty_enrolled", "survey_sent",
)
"""Event types that happen outside a visit (messages, ads, stores, surveys)."""
INACTIVITY_SECONDS = 1_800
PAGE_EVENTS: tuple[str, ...] = ("page_view", "product_view")
LEAD_EVENTS: tuple[str, ...] = ("lead", "signup")

PAID_MEDIUMS = ("cpc", "ppc", "paid", "paidsearch", "paid_search", "paid_social", "display", "cpm", "cpv", "affiliate")
EMAIL_MEDIUMS = ("email", "e-mail")
EMAIL_SOURCES = ("email", "newsletter")
SOCIAL_MEDIUMS = ("social", "social-network", "social_media", "sm")
SOCIAL_HOSTS = ("facebook.com", "instagram.com", "twitter.com", "x.com", "t.co", "linkedin.com", "pinterest.com",
                "tiktok.com", "youtube.com", "reddit.com")
SEARCH_HOSTS = ("google.", "bing.", "duckduckgo.", "yahoo.", "baidu.", "yandex.", "ecosia.")
CHANNEL_GROUPS: tuple[str, ...] = ("paid", "email", "social", "organic", "referral", "direct")


def referrer_host(referrer: ir.StringValue) -> ir.StringValue:
    """Host name of a referrer URL, lower case, without a leading `www.`."""
    host = referrer.lower().re_extract(r"^[a-z][a-z0-9+.\-]*://([^/:?#]+)", 1)
    host = ibis.ifelse(host == "", ibis.null("string"), host)
    return ibis.ifelse(host.startswith("www."), host.substr(4), host)


def channel_group(medium: ir.StringValue, source: ir.StringValue, host: ir.StringValue, referrer: ir.StringValue) -> ir.StringValue:
    """The default channel grouping from utm_medium, utm_source and the referrer's host."""
    m = medium.lower()
    s = source.lower()
    social_host = ibis.or_(*[(host == h) | host.endswith("." + h) for h in SOCIAL_HOSTS])
    search_host = ibis.or_(*[host.contains(h) for h in SEARCH_HOSTS])
    return ibis.cases(
        (m.isin(PAID_MEDIUMS) | m.startswith("paid"), "paid"),
        (m.isin(EMAIL_MEDIUMS) | s.isin(EMAIL_SOURCES), "email"),
        (m.isin(SOCIAL_MEDIUMS) | social_host, "social"),
        ((m == "organic") | search_host, "organic"),
        (referrer.notnull() & (referrer != "") | (m == "referral"), "referral"),
        else_="direct",
    ).fill_null("direct")


def build_sessions(events: ir.Table) -> ir.Table:
    """One row per session with its time, visitor, first-touch attributes and outcomes."""
    ev = events.filter(~events.event_type.isin(NON_SESSION_EVENTS))
    ev = ev.select(*SESSION_COLUMNS, visitor=ibis.coalesce(ev.anonymous_id, ev.source + ":" + ev.customer_id, ev.profile_id))
    with_id = ev.filter(ev.session_id.notnull())
    with_id = with_id.mutate(session_key=with_id.source + ":" + with_id.session_id)
    rank = ibis.row_number().over(group_by=with_id.session_key, order_by=[with_id.occurred_at, with_id.event_id])
    with_id = with_id.mutate(first=(rank == 0).cast("int64"))
    loose = ev.filter(ev.session_id.isnull() & ev.visitor.notnull())
    order = [loose.occurred_at, loose.event_id]
    loose = loose.mutate(prev=loose.occurred_at.lag().over(group_by=loose.visitor, order_by=order))
    gap = loose.occurred_at.epoch_seconds() - loose.prev.epoch_seconds()
    loose = loose.mutate(first=ibis.ifelse(gap.isnull() | (gap > INACTIVITY_SECONDS), 1, 0).cast("int64")).drop("prev")
    number = loose.first.sum().over(ibis.cumulative_window(group_by=loose.visitor, order_by=[loose.occurred_at, loose.event_id]))
    loose = loose.mutate(session_key="~" + loose.visitor + ":" + number.cast("string"))
    rows = ibis.union(with_id, loose.select(*with_id.columns))

    first = rows.filter(rows.first == 1)
    host = referrer_host(first.referrer)
    first = first.select(
        session_key=first.session_key, visitor=first.visitor, channel=first.channel, referrer=first.referrer,
        utm_source=first.utm_source, utm_medium=first.utm_medium, utm_campaign=first.utm_campaign,
        channel_group=channel_group(first.utm_medium, first.utm_source, host, first.referrer),
        traffic_source=ibis.coalesce(first.utm_source.nullif(""), host, ibis.literal("(direct)")),
        device=first.properties.cast("string").re_extract(r'"device"\s*:\s*"([^"]*)"', 1).nullif(""),
    )
    t = rows.event_type
    totals = rows.group_by(rows.session_key).aggregate(
        ts=rows.occurred_at.min(),
        ended=rows.occurred_at.max(),
        events=rows.count(),
        pages=t.isin(PAGE_EVENTS).cast("int64").sum(),
        page_events=t.isin(PAGE_EVENTS).cast("int64").sum(),
        purchases=(t == "purchase").cast("int64").sum(),
        carts=(t == "add_to_cart").cast("int64").sum(),
        leads=t.isin(LEAD_EVENTS).cast("int64").sum(),
        revenue=ibis.ifelse(t == "purchase", rows.value.fill_null(0), 0).sum(),
    )
    profiles = first_values(rows, "session_key", {"profile_id": "profile_id"}, ["occurred_at", "event_id"], skip_null=True)
    profiles = profiles.rename(_pkey="session_key").view()
    s = totals.join(first, "session_key")
    s = s.left_join(profiles, s.session_key == profiles._pkey).drop("_pkey")
    s = s.mutate(
        duration=(s.ended.epoch_seconds() - s.ts.epoch_seconds()).cast("float64"),
        bounced=((s.events == 1) & (s.page_events == 1)).cast("int64"),
        converted=(s.purchases > 0).cast("int64"),
        carted=(s.carts > 0).cast("int64"),
        lead=(s.leads > 0).cast("int64"),
    )
    rank = ibis.row_number().over(group_by=s.visitor, order_by=[s.ts, s.session_key])
    s = s.mutate(new=ibis.ifelse(s.visitor.isnull() | (rank == 0), 1, 0))
    return s.drop("ended", "page_events", "purchases", "carts", "leads")


SESSION_COLUMNS = ("event_id", "occurred_at", "event_type", "anonymous_id", "customer_id", "session_id", "channel",
                   "referrer", "utm_source", "utm_medium", "utm_campaign", "properties", "value", "profile_id", "source")
"""The event columns sessions read; selecting them first keeps the window sorts narrow."""
