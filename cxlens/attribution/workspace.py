"""Conversion paths built in the engine from the workspace's sessions, clicks and orders.

Touches. Every web/app session of a resolved profile is a touch, with the session's channel group
(cxlens.semantic.sessions: paid, email, social, organic, referral, direct) and its utm_campaign.
A message click (message_clicked; channel email/sms/push) or an ad click (ad_click, channel
paid) is a touch too, but only when no session of the same profile starts within 30 minutes after
it: a click that lands on the site opens a tagged session, and counting both would credit the
channel twice. A touch's campaign is the campaign_id the events give its utm_campaign (or the
click's campaign_id), else the utm_campaign itself; it is personalized or generic as the event or
the `campaigns` table says.

Conversions. A conversion is a valid order (status NULL or 'completed') of a resolved profile, worth
its revenue. Its path is the profile's touches in the lookback window (default 30 days) before the
order and after the profile's previous conversion, in time order. A profile's touches after its
last conversion (all of them if it never converted) that lie within the lookback window of its
last touch form one non-converting path. Orders with no touch in their window are counted as
unattributed, not forced onto a channel.

Everything up to the path counts (one row per distinct path) runs in the engine; time decay is
computed in the engine at the touch level because it needs each touch's age.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, Self

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from cxlens.attribution.models import attribute, check_model
from cxlens.attribution.paths import PathCounts, touch_counts
from cxlens.attribution.result import AttributionResult, make_result
from cxlens.errors import NotFoundError, UsageError
from cxlens.semantic.kept import kept_sessions
from cxlens.semantic.sessions import build_sessions, channel_group

By = Literal["channel", "campaign", "personalized", "channel-personalized"]
BY: tuple[str, ...] = ("channel", "campaign", "personalized", "channel-personalized")
KIND_SEPARATOR = " / "
"""Joins channel and kind in the channel-personalized grouping, e.g. "email / personalized"."""
CLICK_EVENTS = ("message_clicked", "ad_click")
LANDING_SECONDS = 1_800
"""A session starting this soon after a click is the click's landing; the click is then no separate touch."""
NO_CAMPAIGN = "(no campaign)"
COST_KINDS = ("media", "personalization")
PATH_SEPARATOR = "\x1f"


@dataclass(frozen=True)
class WorkspacePaths:
    """The workspace's path counts and the valid orders no touch could be credited with."""

    paths: PathCounts
    orders: int
    revenue: float
    unattributed_orders: int
    unattributed_revenue: float


def _check_by(by: str) -> None:
    if by not in BY:
        raise UsageError(f"Attribution cannot group touches by {by!r}; choose channel, campaign, personalized or "
                         "channel-personalized.")


def _campaign_lookup(events: ir.Table) -> ir.Table:
    """utm_campaign -> campaign_id as the events pair them (the smallest id when a utm names several)."""
    tagged = events.filter(events.utm_campaign.notnull() & events.campaign_id.notnull())
    return tagged.group_by(_utm=tagged.utm_campaign).aggregate(_campaign_id=tagged.campaign_id.min()).view()


def all_touches(ws: Any) -> ir.Table:
    """(profile_id, ts, channel, campaign, personalized): one row per touch of a resolved profile."""
    events = ws.table("events")
    sessions = kept_sessions(ws)  # the workspace's kept sessions while they match the events
    if sessions is None:
        sessions = build_sessions(events)
    sessions = sessions.filter(sessions.profile_id.notnull())
    lookup = _campaign_lookup(events)
    s = sessions.left_join(lookup, sessions.utm_campaign == lookup._utm)
    s = s.select(profile_id=s.profile_id, ts=s.ts, channel=s.channel_group,
                 campaign=ibis.coalesce(s._campaign_id, s.utm_campaign.nullif("")),
                 personalized=ibis.literal(None, "boolean"))
    clicks = events.filter(events.event_type.isin(CLICK_EVENTS) & events.profile_id.notnull())
    clicks = clicks.left_join(lookup, clicks.utm_campaign == lookup._utm)
    clicks = clicks.select(
        profile_id=clicks.profile_id, ts=clicks.occurred_at,
        channel=ibis.ifelse(clicks.event_type == "ad_click", "paid", clicks.channel.lower().fill_null("email")),
        campaign=ibis.coalesce(clicks.campaign_id.nullif(""), clicks._campaign_id, clicks.utm_campaign.nullif("")),
        personalized=clicks.personalized)
    landings = s.select(_pid=s.profile_id, _ts=s.ts).view()
    clicks = clicks.anti_join(landings, [clicks.profile_id == landings._pid, landings._ts >= clicks.ts,
                                         landings._ts.epoch_seconds() <= clicks.ts.epoch_seconds() + LANDING_SECONDS])
    touches = ibis.union(s, clicks)
    campaigns = ws.table("campaigns").select(_cid="campaign_id", _pers="personalized").distinct(on="_cid", keep="first").view()
    touches = touches.left_join(campaigns, touches.campaign == campaigns._cid)
    return touches.select("profile_id", "ts", "channel", "campaign",
                          personalized=ibis.coalesce(touches.personalized, touches._pers))


def conversions(ws: Any) -> ir.Table:
    """(profile_id, conv_id, conv_ts, revenue, prev_ts): valid orders of resolved profiles, with the previous one's time."""
    o = ws.table("orders")
    o = o.filter(o.profile_id.notnull() & (o.status.isnull() | (o.status == "completed")))
    prev = o.ordered_at.lag().over(group_by=o.profile_id, order_by=[o.ordered_at, o.order_id])
    # order_id is unique within a source only: two exports may both have an order "1001".
    return o.select(profile_id=o.profile_id, conv_id=o.source.fill_null("") + ":" + o.order_id, conv_ts=o.ordered_at,
                    revenue=o.revenue.cast("float64").fill_null(0.0), prev_ts=prev)


def _ordered_path(t: ir.Table) -> ir.StringScalar:
    """The group's keys in time order (ties by key) joined by PATH_SEPARATOR.

    Sorting collected (ts, key) structs runs on DuckDB and Spark alike; an ordered string_agg
    (group_concat with order_by) is not supported by Ibis' Spark compiler.
    """
    touches = ibis.struct({"ts": t.ts, "key": t.key}).collect().sort()
    return touches.map(lambda s: s.key).join(PATH_SEPARATOR)


def _empty_paths() -> PathCounts:
    return PathCounts(pa.table({"channels": pa.array([], pa.list_(pa.string())), "conversions": pa.array([], pa.float64()),
                                "nulls": pa.array([], pa.float64()), "value": pa.array([], pa.float64())}))


class Journeys:
    """A workspace's touches and conversions, materialized once in the engine; release() (or `with`) frees them.

    Building sessions from events is the costly step, and every model, grouping and cost match
    reads the same touches, so they are computed once per Journeys.
    """

    def __init__(self, ws: Any, *, lookback_days: float = 30):
        if not lookback_days > 0:
            raise UsageError(f"The lookback window must be a positive number of days, not {lookback_days!r}.")
        tables = ws.backend.tables()
        for name in ("orders", "events"):
            if name not in tables or ws.table(name).count().to_pyarrow().as_py() == 0:
                raise NotFoundError(f"The workspace has no {name}; attribution needs orders (conversions) and events "
                                    "(sessions and clicks) of the same profiles.")
        self.ws = ws
        self.lookback_days = lookback_days
        self.touches = all_touches(ws).cache()
        self.conversions = conversions(ws).cache()

    def release(self) -> None:
        self.touches.release()
        self.conversions.release()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def keyed(self, by: By = "channel") -> ir.Table:
        """(profile_id, ts, key): key is the touch's channel group, campaign, personalized/generic, or both
        channel and kind ("email / personalized")."""
        _check_by(by)
        t = self.touches
        kind = ibis.cases((t.personalized, "personalized"), (~t.personalized, "generic"), else_=NO_CAMPAIGN)
        if by == "channel":
            key = t.channel
        elif by == "campaign":
            key = t.campaign.fill_null(NO_CAMPAIGN)
        elif by == "personalized":
            key = kind
        else:
            key = t.channel + KIND_SEPARATOR + kind
        return t.select("profile_id", "ts", key=key)

    def assigned(self, by: By = "channel") -> ir.Table:
        """Touches with the conversion they lead to: (profile_id, conv_id, conv_ts, revenue, ts, key)."""
        t = self.keyed(by).view()
        c = self.conversions.view()
        seconds = self.lookback_days * 86_400.0
        j = t.inner_join(c, [t.profile_id == c.profile_id, t.ts <= c.conv_ts,
                             t.ts.epoch_seconds() >= c.conv_ts.epoch_seconds() - seconds,
                             c.prev_ts.isnull() | (t.ts > c.prev_ts)])
        return j.select("profile_id", "conv_id", "conv_ts", "revenue", "ts", "key")

    def non_converting(self, by: By = "channel") -> ir.Table:
        """Each profile's touches after its last conversion, within the lookback window of its last touch."""
        t = self.keyed(by).view()
        c = self.conversions
        last = c.group_by(_pid=c.profile_id).aggregate(_last_conv=c.conv_ts.max()).view()
        t = t.left_join(last, t.profile_id == last._pid)
        t = t.filter(t._last_conv.isnull() | (t.ts > t._last_conv)).select("profile_id", "ts", "key")
        t = t.mutate(_end=t.ts.max().over(group_by=t.profile_id))
        return t.filter(t.ts.epoch_seconds() >= t._end.epoch_seconds() - self.lookback_days * 86_400.0).drop("_end")

    def paths(self, by: By = "channel") -> WorkspacePaths:
        """Path counts (distinct paths with conversions, nulls and revenue), built in the engine."""
        a = self.assigned(by)
        conv = a.group_by(["profile_id", "conv_id"]).aggregate(path=_ordered_path(a), revenue=a.revenue.max())
        conv = conv.group_by("path").aggregate(conversions=conv.count().cast("float64"), nulls=ibis.literal(0.0),
                                               value=conv.revenue.sum().cast("float64"))
        n = self.non_converting(by)
        nul = n.group_by("profile_id").aggregate(path=_ordered_path(n))
        nul = nul.group_by("path").aggregate(conversions=ibis.literal(0.0), nulls=nul.count().cast("float64"),
                                             value=ibis.literal(0.0))
        counts = ibis.union(conv, nul).to_pyarrow()
        paths = (PathCounts.from_paths(counts["path"].to_pylist(), counts["conversions"].to_pylist(),
                                       counts["nulls"].to_pylist(), counts["value"].to_pylist(), separator=PATH_SEPARATOR)
                 if counts.num_rows else _empty_paths())
        c = self.conversions
        totals = c.aggregate(n=c.count(), revenue=c.revenue.sum()).to_pyarrow().to_pylist()[0]
        orders, revenue = int(totals["n"] or 0), float(totals["revenue"] or 0.0)
        return WorkspacePaths(paths=paths, orders=orders, revenue=revenue,
                              unattributed_orders=orders - round(paths.total_conversions),
                              unattributed_revenue=revenue - paths.total_value)

    def time_decay(self, *, half_life_days: float = 7.0, by: By = "channel") -> AttributionResult:
        """Each conversion split over its touches with weights 2^(-age / half-life), age = days from touch to order.

        The exponential decay with a half-life is Google Analytics' time-decay model (default
        half-life 7 days); the weights of a conversion's touches are normalized to sum to 1.
        """
        if not half_life_days > 0:
            raise UsageError(f"The time-decay half-life must be a positive number of days, not {half_life_days!r}.")
        a = self.assigned(by)
        age = (a.conv_ts.epoch_seconds() - a.ts.epoch_seconds()).cast("float64") / 86_400.0
        a = a.mutate(_w=(-math.log(2.0) / half_life_days * age).exp())
        a = a.mutate(_f=a._w / a._w.sum().over(group_by=[a.profile_id, a.conv_id]))
        rows = a.group_by("key").aggregate(conversions=a._f.sum(), value=(a._f * a.revenue).sum()).to_pyarrow().to_pylist()
        credits = {r["key"]: (float(r["conversions"]), float(r["value"])) for r in rows}
        total = sum(c for c, _ in credits.values())
        value = sum(v for _, v in credits.values())
        return make_result("time-decay", credits, total, value, extra={"half_life_days": half_life_days})

    def attribute(self, model: str, *, order: int = 1, by: By = "channel", half_life_days: float = 7.0,
                  built: WorkspacePaths | None = None) -> AttributionResult:
        """One model on the conversion paths; the result says how many orders stayed unattributed."""
        check_model(model)
        built = built or self.paths(by)
        if model == "time-decay":
            result = self.time_decay(half_life_days=half_life_days, by=by)
        else:
            result = attribute(built.paths, model, order=order)
        extra = {**result.extra, "by": by, "lookback_days": self.lookback_days, "orders": built.orders,
                 "unattributed_conversions": built.unattributed_orders, "unattributed_revenue": built.unattributed_revenue,
                 "paths": len(built.paths), "non_converting_paths": built.paths.total_nulls}
        return AttributionResult(model=result.model, total_conversions=result.total_conversions,
                                 total_revenue=result.total_revenue, channels=result.channels, extra=extra)

    def personalized(self, model: str, *, order: int = 1, half_life_days: float = 7.0,
                     within_channels: bool = False) -> list[dict[str, Any]]:
        """Credited conversions and revenue of personalized, generic and campaign-less touches under one model.

        Touches are counted over all paths (converting or not), so the credit per 100 touches compares
        the two kinds of content on an equal footing even when one is sent far more often. With
        `within_channels` the touches are told apart by channel and kind together (email
        personalized vs email generic), so a kind is not credited for the channel it is mostly sent in.
        """
        by: By = "channel-personalized" if within_channels else "personalized"
        built = self.paths(by)
        result = self.attribute(model, order=order, by=by, half_life_days=half_life_days, built=built)
        counts = touch_counts(built.paths)
        rows = []
        for c in result.channels:
            where = {"kind": c.channel}
            if within_channels:
                channel, kind = c.channel.split(KIND_SEPARATOR, 1)
                where = {"channel": channel, "kind": kind}
            rows.append({**where, "touches": counts.get(c.channel, 0.0),
                         **{k: v for k, v in c.to_dict().items() if k != "channel"},
                         "conversions_per_100_touches": 100 * c.conversions / counts[c.channel] if counts.get(c.channel) else None})
        return rows

    def costs(self, by: By = "channel") -> dict[str, float]:
        """Media and personalization costs per campaign, or per channel group (the group most of the cost's
        campaign's touches have; else the cost's own channel read as a medium, e.g. paid_search -> paid)."""
        ws = self.ws
        if "costs" not in ws.backend.tables() or by not in ("channel", "campaign"):
            return {}
        k = ws.table("costs")
        k = k.filter(k.kind.lower().isin(COST_KINDS))
        if by == "campaign":
            k = k.filter(k.campaign_id.notnull())
            rows = k.group_by(key=k.campaign_id).aggregate(cost=k.amount.sum()).to_pyarrow().to_pylist()
            return {r["key"]: float(r["cost"]) for r in rows}
        t = self.touches.filter(self.touches.campaign.notnull())
        counts = t.group_by(["campaign", "channel"]).aggregate(n=t.count())
        best = counts.group_by(_cmp=counts.campaign).aggregate(
            _group=counts.channel.argmax(ibis.struct({"n": counts.n, "c": counts.channel}))).view()
        k = k.left_join(best, k.campaign_id == best._cmp)
        own = channel_group(k.channel, k.channel, ibis.literal(""), ibis.literal(""))
        own = ibis.ifelse((own == "direct") & (k.channel.lower() != "direct"), ibis.literal(None, "string"), own)
        k = k.mutate(key=ibis.coalesce(k._group, own, k.channel.lower()))
        rows = k.group_by("key").aggregate(cost=k.amount.sum()).to_pyarrow().to_pylist()
        return {r["key"]: float(r["cost"]) for r in rows if r["key"] is not None}


def attribute_workspace(ws: Any, model: str, *, order: int = 1, by: By = "channel", lookback_days: float = 30,
                        half_life_days: float = 7.0) -> AttributionResult:
    """One model on the workspace's conversion paths (see the module docstring for touches and windows)."""
    check_model(model)
    _check_by(by)
    with Journeys(ws, lookback_days=lookback_days) as journeys:
        return journeys.attribute(model, order=order, by=by, half_life_days=half_life_days)


def roi(result: AttributionResult, costs: dict[str, float]) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """(credited revenue - cost) / cost for every credited key with a positive cost; costs of other keys apart."""
    credited = {c.channel: c.revenue for c in result.channels}
    rows = [{"channel": key, "cost": cost, "revenue": credited[key], "roi": (credited[key] - cost) / cost}
            for key, cost in sorted(costs.items()) if cost > 0 and key in credited]
    unmatched = {key: cost for key, cost in sorted(costs.items()) if key not in credited and cost}
    return rows, unmatched


@dataclass(frozen=True)
class WorkspaceAttribution:
    """One model's credits on the workspace with what the CLI and the read API show beside them:
    ROI against costs, personalized vs generic touches overall and within each channel."""

    result: AttributionResult
    roi: list[dict[str, Any]]
    unmatched_costs: dict[str, float]
    personalized: list[dict[str, Any]]
    personalized_by_channel: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        """The `cxlens attribution --format json` document (on the workspace)."""
        return {**self.result.to_dict(), "roi": self.roi, "unmatched_costs": self.unmatched_costs,
                "personalized": self.personalized, "personalized_by_channel": self.personalized_by_channel}


def attribution_report(ws: Any, model: str, *, order: int = 1, by: By = "channel", lookback_days: float = 30,
                       half_life_days: float = 7.0) -> WorkspaceAttribution:
    """Credits, ROI and (grouped by channel) the personalized vs generic comparison, from one set of journeys."""
    with Journeys(ws, lookback_days=lookback_days) as journeys:
        result = journeys.attribute(model, order=order, by=by, half_life_days=half_life_days)
        roi_rows, unmatched = roi(result, journeys.costs(by))
        personal = journeys.personalized(model, order=order, half_life_days=half_life_days) if by == "channel" else []
        within = (journeys.personalized(model, order=order, half_life_days=half_life_days, within_channels=True)
                  if by == "channel" else [])
    return WorkspaceAttribution(result, roi_rows, unmatched, personal, within)
