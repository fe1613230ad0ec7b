"""Every profile's touchpoints across all sources, as one table built in the engine.

A journey is the time-ordered touchpoints of one profile: web and app events, messages
(message_* events), ads (ad_*), store visits, orders, support contacts and survey answers. Each
touchpoint carries its channel and a journey stage (docs/journeys.md, Stages), so paths, funnels
and the journey map read one table instead of seven. Sessions and support cases are the
sub-journeys: web/app events keep their session (the sessions module's 30-minute rule where the
source gives none) and contacts keep their case.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

import ibis
import ibis.expr.types as ir

from cxlens.semantic.sessions import NON_SESSION_EVENTS, _visit_numbers

Stage = Literal["awareness", "consideration", "purchase", "service", "loyalty"]
STAGES: tuple[Stage, ...] = ("awareness", "consideration", "purchase", "service", "loyalty")

EVENT_STAGES: dict[str, Stage] = {
    "ad_impression": "awareness", "ad_click": "awareness", "message_sent": "awareness", "message_opened": "awareness",
    "page_view": "awareness", "recommendation_shown": "awareness",
    "message_clicked": "consideration", "product_view": "consideration", "search": "consideration",
    "add_to_cart": "consideration", "remove_from_cart": "consideration", "recommendation_clicked": "consideration",
    "store_visit": "consideration", "lead": "consideration",
    "checkout_started": "purchase", "purchase": "purchase", "coupon_redeemed": "purchase",
    "signup": "loyalty", "loyalty_enrolled": "loyalty", "message_unsubscribed": "loyalty",
}
"""Stage of each standard event type; other event types are `consideration` (something the customer did)."""

SURVEY_STAGES: dict[str, Stage] = {"nps": "loyalty", "csat": "service", "ces": "service"}
"""Survey answers: CSAT and CES rate a service moment, NPS the relationship."""

SOURCES: tuple[str, ...] = ("events", "orders", "interactions", "surveys")

COLUMNS: dict[str, str] = {
    "profile_id": "string", "occurred_at": "timestamp", "source": "string", "channel": "string", "stage": "string",
    "touchpoint": "string", "ref_id": "string", "session_id": "string", "case_id": "string", "campaign_id": "string",
    "personalized": "boolean", "value": "float64", "score": "float64",
}
"""The touchpoint table's columns: `source` is the kind of record (events, orders, interactions,
surveys), `ref_id` its id there (event_id, order_id, interaction_id, response_id)."""

CONVERSION = ("order", "purchase")
"""Touchpoint names that are a conversion: a valid order, or a purchase event."""


def _null(kind: str) -> ir.Value:
    return ibis.null(kind)


def _events(events: ir.Table) -> ir.Table:
    e = events.filter(events.profile_id.notnull())
    t = e.event_type
    stage = t.substitute(EVENT_STAGES, else_="consideration")
    channel = e.channel.lower().fill_null(ibis.ifelse(t.startswith("ad_"), "ads", "web"))
    in_session = ~t.isin(NON_SESSION_EVENTS)
    # Events without a session id get the sessions module's visits (30 minutes of inactivity).
    visitor = ibis.coalesce(e.anonymous_id, e.source + ":" + e.customer_id, e.profile_id)
    e = e.mutate(_visitor=visitor, _in_session=in_session, _stage=stage, _channel=channel)
    loose = e.filter(e.session_id.isnull() & e._in_session).select(visitor="_visitor", occurred_at="occurred_at")
    visits = _visit_numbers(loose)
    e = e.left_join(visits, [e._visitor == visits.visitor, e.occurred_at == visits.occurred_at]).view()
    session = ibis.cases(
        (~e._in_session, _null("string")),
        (e.session_id.notnull(), e.source + ":" + e.session_id),
        else_="~" + e._visitor + ":" + e._visit.cast("string"),
    )
    return e.select(
        profile_id=e.profile_id, occurred_at=e.occurred_at, source=ibis.literal("events"), channel=e._channel,
        stage=e._stage, touchpoint=e.event_type, ref_id=e.event_id, session_id=session, case_id=_null("string"),
        campaign_id=ibis.coalesce(e.campaign_id, e.utm_campaign), personalized=e.personalized, value=e.value,
        score=_null("float64"),
    )


def valid_orders(orders: ir.Table) -> ir.Table:
    """Orders that count: not cancelled or returned, with a profile."""
    return orders.filter(orders.profile_id.notnull() & (orders.status.isnull() | (orders.status == "completed")))


def _orders(orders: ir.Table) -> ir.Table:
    o = valid_orders(orders)
    return o.select(
        profile_id=o.profile_id, occurred_at=o.ordered_at, source=ibis.literal("orders"),
        channel=o.channel.lower().fill_null("online"), stage=ibis.literal("purchase"), touchpoint=ibis.literal("order"),
        ref_id=o.order_id, session_id=_null("string"), case_id=_null("string"), campaign_id=o.campaign_id,
        personalized=_null("boolean"), value=o.revenue, score=_null("float64"),
    )


def case_key(interactions: ir.Table) -> ir.StringValue:
    """A case's key: source and case_id, or the contact itself when it names no case."""
    i = interactions
    return ibis.ifelse(i.case_id.notnull(), i.source + ":" + i.case_id, i.source + ":~" + i.interaction_id)


def _interactions(interactions: ir.Table) -> ir.Table:
    i = interactions.filter(interactions.profile_id.notnull())
    return i.select(
        profile_id=i.profile_id, occurred_at=i.started_at, source=ibis.literal("interactions"), channel=i.channel.lower(),
        stage=ibis.literal("service"), touchpoint="support:" + i.topic.lower().fill_null("other"), ref_id=i.interaction_id,
        session_id=_null("string"), case_id=case_key(i), campaign_id=_null("string"), personalized=_null("boolean"),
        value=_null("float64"), score=_null("float64"),
    )


def _surveys(responses: ir.Table) -> ir.Table:
    r = responses.filter(responses.profile_id.notnull())
    kind = r.survey_type.lower()
    return r.select(
        profile_id=r.profile_id, occurred_at=r.responded_at, source=ibis.literal("surveys"),
        channel=r.channel.lower().fill_null("survey"), stage=kind.substitute(SURVEY_STAGES, else_="service"),
        touchpoint="survey:" + kind, ref_id=r.response_id, session_id=_null("string"), case_id=_null("string"),
        campaign_id=_null("string"), personalized=_null("boolean"), value=_null("float64"), score=r.score,
    )


_BUILDERS = {"events": ("events", _events), "orders": ("orders", _orders), "interactions": ("interactions", _interactions),
             "surveys": ("survey_responses", _surveys)}


_SHARED: dict[int, ir.Table] = {}
"""Touchpoint tables cached in the engine for the duration of `shared_touchpoints`, by id(ws)."""
_KEPT: dict[int, dict[str, ir.Table]] = {}
"""Other tables kept for the duration of `shared_touchpoints` (see `shared_table`), by id(ws)."""


@contextmanager
def shared_touchpoints(ws: Any) -> Iterator[ir.Table]:
    """Build every source's touchpoints once, in the engine, for everything run inside the block.

    Paths to conversion and to churn, the funnel and the journey map each start from the
    touchpoints, whose sessions are the costly part; inside this block `build_touchpoints(ws)`
    returns the one cached table instead of building it again (or, uncached, once per query).
    """
    if id(ws) in _SHARED:
        yield _SHARED[id(ws)]
        return
    with build_touchpoints(ws).cache() as tp:
        _SHARED[id(ws)], _KEPT[id(ws)] = tp, {}
        try:
            yield tp
        finally:
            _SHARED.pop(id(ws), None)
            for table in _KEPT.pop(id(ws), {}).values():
                table.release()


def shared_table(ws: Any, name: str, build: Callable[[], ir.Table]) -> ir.Table:
    """`build()`, kept in the engine once for the rest of a `shared_touchpoints` block (outside
    one, `build()` itself): every customer's activity span is read by the churn window of the
    paths to churn, of friction and of the journey map, and by friction's tenure."""
    kept = _KEPT.get(id(ws))
    if kept is None:
        return build()
    if name not in kept:
        kept[name] = build().cache()
    return kept[name]


def build_touchpoints(ws: Any, sources: tuple[str, ...] = SOURCES) -> ir.Table:
    """One row per touchpoint of every resolved profile (COLUMNS), across the given sources.

    Rows without a profile are left out: a journey belongs to a person. Channels are lower case;
    a web/app event's session_id is `source:session_id`, or the visit the sessions module would
    give it (`~visitor:n`), and a contact's case_id is `source:case_id` (the contact alone when it
    names no case), so sub-journeys never mix two sources' ids.
    """
    if sources == SOURCES and id(ws) in _SHARED:
        return _SHARED[id(ws)]
    have = set(ws.backend.tables())
    parts = []
    for name in sources:
        table, build = _BUILDERS[name]
        if table in have:
            part = build(ws.table(table))
            parts.append(part.select(*[part[c].cast(kind).name(c) for c, kind in COLUMNS.items()]))
    if not parts:
        return ibis.memtable({c: [] for c in COLUMNS}, schema=COLUMNS)
    return ibis.union(*parts) if len(parts) > 1 else parts[0]
