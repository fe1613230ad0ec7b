"""Web and app sessions built in the engine from events (docs/metric-definitions.md, Sessions).

A session is the events sharing a `session_id`, or, where the source gives none, a visitor's
events with no gap longer than 30 minutes. Everything is window functions and group-bys in the
engine, so it runs the same on DuckDB and Spark and never pulls events into Python.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from cxlens.semantic.ordered import first, order_key

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
    """Host name of a referrer URL, lower case, without a leading `www.` (one regex per value)."""
    return referrer.lower().re_extract(r"^[a-z][a-z0-9+.\-]*://(?:www\.)?([^/:?#]+)", 1).nullif("")


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
    """One row per session with its time, visitor, first-touch attributes and outcomes.

    One engine query: the per-session group-by, then a window over the sessions for each
    visitor's first one (nothing is read twice, nothing needs materializing in between).
    """
    return mark_new(session_rows(events).drop(*SESSION_KEY))


def session_events(events: ir.Table) -> ir.Table:
    """The events that belong to visits, narrowed to the columns sessions read, with `visitor`."""
    ev = events.filter(~events.event_type.isin(NON_SESSION_EVENTS))
    return ev.select(*SESSION_COLUMNS, visitor=visitor_of(ev))


def visitor_of(ev: ir.Table) -> ir.StringValue:
    """Who made an event: the anonymous id, else the source's customer id, else the profile."""
    return ibis.coalesce(ev.anonymous_id, ev.source + ":" + ev.customer_id, ev.profile_id)


def session_rows(events: ir.Table) -> ir.Table:
    """Sessions without the visitor-level `new` flag, keyed by (`_k1`, `_k2`, `_k3`).

    The key is (source, session_id, 0) for a session the source named and ("~", visitor, visit
    number) for one cut by inactivity; the kept sessions table (semantic/kept.py) stores these
    rows and replaces them per visitor, so this must depend only on the events it is given.
    """
    ev = session_events(events)
    # Sessions are grouped on (k1, k2, k3) columns rather than a concatenated key: building a
    # string per event costs more than the grouping itself. The key text is made per session.
    with_id = ev.filter(ev.session_id.notnull())
    with_id = with_id.mutate(k1=with_id.source, k2=with_id.session_id, k3=ibis.literal(0, "int64"))
    loose = ev.filter(ev.session_id.isnull() & ev.visitor.notnull())
    loose = loose.inner_join(_visit_numbers(loose), ["visitor", "occurred_at"])
    loose = loose.mutate(k1=ibis.literal("~"), k2=loose.visitor, k3=loose._visit)
    rows = ibis.union(with_id, loose.select(*with_id.columns))

    t = rows.event_type
    key = order_key(rows.occurred_at, rows.event_id)
    # Counts, not sums of 0/1: a sum is a HUGEINT in DuckDB, and a HUGEINT column of the kept
    # sessions scanned ~40x slower than a BIGINT one (0.13 s vs 3 ms for 1M sessions).
    pages = rows.count(where=t.isin(PAGE_EVENTS))
    # The first-touch columns come from one arg_min of a struct: the sort key is compared once
    # per row instead of once per column (a third of the group-by's time on 10M events).
    touch = ibis.struct({c: rows[c] for c in FIRST_TOUCH})
    s = rows.group_by(["k1", "k2", "k3"]).aggregate(
        ts=rows.occurred_at.min(),
        ended=rows.occurred_at.max(),
        events=rows.count(),
        pages=pages,
        page_events=pages,
        purchases=rows.count(where=t == "purchase"),
        carts=rows.count(where=t == "add_to_cart"),
        leads=rows.count(where=t.isin(LEAD_EVENTS)),
        revenue=ibis.ifelse(t == "purchase", rows.value.fill_null(0), 0).sum(),
        profile_id=first(rows.profile_id, key, skip_null=True),
        _touch=first(touch, key),
    )
    s = s.mutate(**{c: s._touch[c] for c in FIRST_TOUCH})
    s = s.mutate(session_key=ibis.ifelse(s.k1 == "~", "~" + s.k2 + ":" + s.k3.cast("string"), s.k1 + ":" + s.k2),
                 _host=referrer_host(s.referrer)).drop("_touch")
    s = s.mutate(
        channel_group=channel_group(s.utm_medium, s.utm_source, s._host, s.referrer),
        traffic_source=ibis.coalesce(s.utm_source.nullif(""), s._host, ibis.literal("(direct)")),
        device=s.properties.cast("string").re_extract(r'"device"\s*:\s*"([^"]*)"', 1).nullif(""),
        duration=(s.ended.epoch_seconds() - s.ts.epoch_seconds()).cast("float64"),
        bounced=((s.events == 1) & (s.page_events == 1)).cast("int64"),
        converted=(s.purchases > 0).cast("int64"),
        carted=(s.carts > 0).cast("int64"),
        lead=(s.leads > 0).cast("int64"),
    ).drop("_host", "properties", "ended", "page_events", "purchases", "carts", "leads")
    return s.rename(_k1="k1", _k2="k2", _k3="k3")


def mark_new(s: ir.Table) -> ir.Table:
    """`new` = 1 on each visitor's first session ever (and on sessions without a visitor).

    One window over the sessions (a group-by of the sessions joined back would read them twice
    and needs them materialized in between).
    """
    first_of_visitor = ibis.row_number().over(group_by=s.visitor, order_by=[s.ts, s.session_key]) == 0
    return s.mutate(new=ibis.ifelse(s.visitor.isnull() | first_of_visitor, 1, 0))


def _visit_numbers(loose: ir.Table) -> ir.Table:
    """(visitor, occurred_at, _visit): the visit number of each distinct time of a visitor.

    A visit starts at a visitor's first event or after more than 30 minutes without one. The
    number depends only on the time, so the window sorts run on the distinct (visitor, time)
    pairs, two narrow columns, rather than on whole event rows; events at the same time share
    their number whatever their order.
    """
    times = loose.select("visitor", "occurred_at").distinct()
    prev = times.occurred_at.lag().over(group_by=times.visitor, order_by=times.occurred_at)
    gap = times.occurred_at.epoch_seconds() - prev.epoch_seconds()
    times = times.mutate(_starts=ibis.ifelse(gap.isnull() | (gap > INACTIVITY_SECONDS), 1, 0).cast("int64"))
    number = times._starts.sum().over(ibis.cumulative_window(group_by=times.visitor, order_by=times.occurred_at))
    return times.mutate(_visit=number).drop("_starts").rename(visitor="visitor").view()


FIRST_TOUCH = ("visitor", "channel", "referrer", "utm_source", "utm_medium", "utm_campaign", "properties")
"""Session columns taken from its first event."""
SESSION_COLUMNS = ("event_id", "occurred_at", "event_type", "anonymous_id", "customer_id", "session_id", "channel",
                   "referrer", "utm_source", "utm_medium", "utm_campaign", "properties", "value", "profile_id", "source")
"""The event columns sessions read; selecting them first keeps the window sorts narrow."""
SESSION_KEY = ("_k1", "_k2", "_k3")
"""The columns of `session_rows` that identify a session; dropped from `build_sessions`."""
