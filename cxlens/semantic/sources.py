"""Semantic sources: the row sets metrics aggregate, each with a time column `ts`.

Most are a canonical table with a filter (valid orders, survey answers); some are built in the
engine from several tables (sessions, support cases, acquisition cohorts, period-over-period
retention, engagement). Definitions are in docs/metric-definitions.md; this module is the one
place that turns them into Ibis.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import ibis
import ibis.expr.types as ir
import pandas as pd

from cxlens.semantic.expressions import compile_expr
from cxlens.semantic.ordered import first, last, order_key
from cxlens.semantic.model import TRUNCATE_UNIT, EngagementSettings
from cxlens.semantic.kept import kept_sessions, kept_table
from cxlens.semantic.sessions import build_sessions


@dataclass(frozen=True)
class Request:
    """What a source is built for: the grain (for period-based sources) and the row dimensions asked."""

    grain: str
    row_dims: tuple[tuple[str, str], ...] = ()
    """(dimension id, column) pairs the source must carry from the rows it derives from."""
    window: tuple[datetime, datetime] | None = None
    """For a baseline window [start, end): period-based sources treat it as the one period."""


Scalar = Callable[["Context"], object]
"""A value read from the data while building expressions (it then enters them as a literal)."""
Deps = dict[str, tuple[Scalar, object]]
"""The scalars an expression was built with: name -> (how to read it again, the value it had)."""


class Context:
    """The workspace's tables plus settings and a cache of the sources built so far.

    Values read from the data while building an expression (the latest activity, whether orders
    have a cost, ...) go through `scalar`; inside `recording()` each one an expression used is
    noted, also through the sources it reads, so compiled SQL can be reused while they hold
    (cxlens.semantic.templates).
    """

    def __init__(self, table: Callable[[str], ir.Table], engagement: EngagementSettings | None = None,
                 lifespan_days: int = 365, *, materialize: bool = False, workspace: object | None = None):
        self.table = table
        self.workspace = workspace
        """The workspace `table` reads, when there is one: derived tables it keeps are used."""
        self.kept_sources: set[str] = set()
        """Sources read from a table the workspace keeps (materializing them would only copy them)."""
        self.materialize = materialize
        self.engagement = engagement or EngagementSettings()
        self.lifespan_days = lifespan_days
        self._cache: dict[tuple[str, Request], ir.Table] = {}
        self._scalars: dict[str, object] = {}
        self._kept: list[ir.Table] = []
        self._deps: dict[tuple[str, Request], Deps] = {}
        self._recorders: list[Deps] = []
        self._lazy: Context | None = None

    def lazy(self) -> Context:
        """A context on the same tables and scalars that materializes nothing: its expressions
        are whole SQL, reading no table that lives only in this context's connection."""
        if not self.materialize:
            return self
        if self._lazy is None:
            self._lazy = Context(self.table, self.engagement, self.lifespan_days, workspace=self.workspace)
            self._lazy._scalars = self._scalars
        return self._lazy

    def source(self, name: str, request: Request) -> ir.Table:
        key = (name, request if SOURCES[name].periodic or SOURCES[name].derived_dims else Request("all"))
        if key not in self._cache:
            with self.recording() as deps:  # noted to the outer recordings when it ends
                built = SOURCES[name].build(self, request)
                if self.materialize and SOURCES[name].costly and name not in self.kept_sources:
                    built = built.cache()
            self._cache[key], self._deps[key] = built, deps
        else:
            self._note(self._deps[key])
        return self._cache[key]

    def remember(self, name: str, build: Callable[[], ir.Table]) -> ir.Table:
        """A derived table built once per context (materialized when the context materializes)."""
        key = (name, Request("all"))
        if key not in self._cache:
            with self.recording() as deps:
                self._cache[key] = self.keep(build())
            self._deps[key] = deps
        else:
            self._note(self._deps[key])
        return self._cache[key]

    def keep(self, t: ir.Table) -> ir.Table:
        """Materialize an intermediate result when this context materializes (else leave it lazy)."""
        if not self.materialize:
            return t
        kept = t.cache()
        self._kept.append(kept)
        return kept

    def release(self) -> None:
        """Drop the tables materialized for this context (before the workspace closes)."""
        for t in dict.fromkeys([*self._cache.values(), *self._kept]):
            release = getattr(t, "release", None)
            if release is not None:
                with contextlib.suppress(Exception):
                    release()
        self._cache.clear()
        self._kept.clear()

    def scalar(self, name: str, compute: Scalar) -> object:
        """A small value read from the data once per context (e.g. whether any order has a cost).
        `compute` takes the context only, so the value can be read again on another one."""
        if name not in self._scalars:
            self._scalars[name] = compute(self)
        value = self._scalars[name]
        self._note({name: (compute, value)})
        return value

    @contextlib.contextmanager
    def recording(self) -> Iterator[Deps]:
        """Note the scalars the expressions built inside use (see `Deps`)."""
        deps: Deps = {}
        self._recorders.append(deps)
        try:
            yield deps
        finally:
            popped = self._recorders.pop()
        assert popped is deps, "recordings nest"
        self._note(deps)

    def _note(self, deps: Deps) -> None:
        for r in self._recorders:
            r.update(deps)


def truncate(ts: ir.TimestampValue, grain: str) -> ir.TimestampValue:
    return ts.truncate(TRUNCATE_UNIT[grain])


def step(grain: str) -> ir.IntervalScalar:
    """One period of a grain as an interval (a quarter is three months)."""
    return {
        "day": ibis.interval(days=1), "week": ibis.interval(days=7), "month": ibis.interval(months=1),
        "quarter": ibis.interval(months=3), "year": ibis.interval(years=1),
    }[grain]


def valid_orders(ctx: Context) -> ir.Table:
    o = ctx.table("orders")
    o = o.filter(o.status.isnull() | (o.status == "completed"))
    return o.mutate(ts=o.ordered_at, margin=o.revenue - o.cost.fill_null(0), has_coupon=(o.coupon_code.notnull() & (o.coupon_code != "")).cast("int64"),
                    is_store=(o.channel == "store").fill_null(False).cast("int64"))


def _orders(ctx: Context, req: Request) -> ir.Table:
    return valid_orders(ctx)


def _order_outcomes(ctx: Context, req: Request) -> ir.Table:
    o = ctx.table("orders")
    o = o.filter(o.status.isnull() | o.status.isin(["completed", "returned"]))
    return o.mutate(ts=o.ordered_at, returned=(o.status == "returned").fill_null(False).cast("int64"))


def _events(ctx: Context, req: Request) -> ir.Table:
    e = ctx.table("events")
    return e.mutate(ts=e.occurred_at)


def _sessions_kept(ctx: Context) -> bool:
    """Whether the workspace keeps sessions that match its events now."""
    return ctx.workspace is not None and kept_sessions(ctx.workspace) is not None  # type: ignore[arg-type]


def _sessions(ctx: Context, req: Request) -> ir.Table:
    if not ctx.scalar("sessions_kept", _sessions_kept):
        return build_sessions(ctx.table("events"))
    ctx.kept_sources.add("sessions")
    return kept_table(ctx.workspace)  # type: ignore[arg-type]


def _surveys(ctx: Context, req: Request) -> ir.Table:
    s = ctx.table("survey_responses")
    nps = ibis.cases((s.score >= 9, 1), (s.score <= 6, -1), else_=0)
    return s.mutate(ts=s.responded_at, nps_y=nps, satisfied=(s.score >= 4).cast("int64"),
                    promoter=(s.score >= 9).cast("int64"), detractor=(s.score <= 6).cast("int64"),
                    passive=((s.score > 6) & (s.score < 9)).cast("int64"))


def _interactions(ctx: Context, req: Request) -> ir.Table:
    i = ctx.table("interactions")
    return i.mutate(ts=i.started_at, transferred=(i.transfers.fill_null(0) > 0).cast("int64"))


def _cases(ctx: Context, req: Request) -> ir.Table:
    i = ctx.table("interactions")
    i = i.mutate(case_key=i.source + ":" + ibis.coalesce(i.case_id, i.interaction_id))
    key = order_key(i.started_at, i.interaction_id)
    agg = i.group_by(i.case_key).aggregate(
        ts=i.started_at.min(),
        contacts=i.count(),
        channels=i.channel.nunique(),
        transfers=i.transfers.fill_null(0).sum(),
        channel=first(i.channel, key),
        topic=first(i.topic, key),
        resolved=last(i.resolved, key).cast("int64"),
        profile_id=first(i.profile_id, key, skip_null=True),
    )
    return agg.mutate(
        fcr=((agg.contacts == 1) & (agg.resolved.fill_null(0) == 1)).cast("int64"),
        repeat=(agg.contacts >= 2).cast("int64"),
        switched=(agg.channels >= 2).cast("int64"),
    )


def _store_traffic(ctx: Context, req: Request) -> ir.Table:
    s = ctx.table("store_traffic")
    return s.mutate(ts=s.day.cast("timestamp"))


def _acquisition_costs(ctx: Context, req: Request) -> ir.Table:
    c = ctx.table("costs")
    c = c.filter(c.kind == "acquisition")
    return c.mutate(ts=c.incurred_on.cast("timestamp"))


def _subscriptions(ctx: Context, req: Request) -> ir.Table:
    """Units of contractual churn: (subscription, period) for subscriptions active at the period's start."""
    s = ctx.table("subscriptions")
    if req.window is not None:
        periods = ibis.memtable({"ts": [req.window[0]], "next_ts": [req.window[1]]})
        periods = periods.mutate(ts=periods.ts.cast("timestamp"), next_ts=periods.next_ts.cast("timestamp"))
        j = s.join(periods, [s.started_at < periods.ts, s.ended_at.isnull() | (s.ended_at >= periods.ts)])
        return j.mutate(ended=(j.ended_at.notnull() & (j.ended_at < j.next_ts)).cast("int64")).drop("next_ts")
    bounds = ctx.scalar("subscription_bounds", _subscription_bounds)
    if bounds is None:
        return s.mutate(ts=s.started_at, ended=ibis.literal(0)).filter(ibis.literal(False))
    lo, hi = bounds  # type: ignore[misc]
    starts = _period_starts(lo, hi, req.grain)
    periods = ibis.memtable({"ts": starts}).mutate(ts=ibis._.ts.cast("timestamp"))
    periods = periods.mutate(next_ts=periods.ts + step(req.grain))
    j = s.join(periods, [s.started_at < periods.ts, s.ended_at.isnull() | (s.ended_at >= periods.ts)])
    return j.mutate(ended=(j.ended_at.notnull() & (j.ended_at < j.next_ts)).cast("int64")).drop("next_ts")


def _subscription_bounds(ctx: Context) -> tuple[datetime, datetime] | None:
    """The first start and the last start or end of any subscription (None without subscriptions)."""
    s = ctx.table("subscriptions")
    bounds = s.aggregate(lo=s.started_at.min(), hi=ibis.greatest(s.started_at.max(), s.ended_at.max())).execute()
    if bounds.empty or bounds.lo.isnull().iloc[0]:
        return None
    return bounds.lo.iloc[0].to_pydatetime(), bounds.hi.iloc[0].to_pydatetime()


def _period_starts(lo: datetime, hi: datetime, grain: str) -> list[datetime]:
    """Every period start from lo's period to hi's period, computed in Python (a handful of values)."""
    def floor(d: datetime) -> datetime:
        d = d.replace(hour=0, minute=0, second=0, microsecond=0)
        if grain == "week":
            return d - timedelta(days=d.weekday())
        if grain in ("month", "quarter", "year"):
            month = 1 if grain == "year" else (d.month if grain == "month" else 3 * ((d.month - 1) // 3) + 1)
            return d.replace(month=month, day=1)
        return d

    def advance(d: datetime) -> datetime:
        if grain == "day":
            return d + timedelta(days=1)
        if grain == "week":
            return d + timedelta(days=7)
        months = {"month": 1, "quarter": 3, "year": 12}[grain]
        m = d.month - 1 + months
        return d.replace(year=d.year + m // 12, month=m % 12 + 1)

    out, cur, end = [], floor(lo), floor(hi)
    while cur <= end:
        out.append(cur)
        cur = advance(cur)
    return out


def _orders_have_cost(ctx: Context) -> bool:
    o = valid_orders(ctx)
    return int(o.filter(o.profile_id.notnull()).cost.count().execute()) > 0


def _cohorts(ctx: Context, req: Request) -> ir.Table:
    """One row per customer at their first valid order, with lifespan and historical CLV."""
    o = valid_orders(ctx)
    o = o.filter(o.profile_id.notnull())
    use_margin = bool(ctx.scalar("orders_have_cost", _orders_have_cost))
    amount = o.margin if use_margin else o.revenue
    order = [o.ordered_at, o.order_id]
    w = ibis.window(group_by=o.profile_id)
    o = o.mutate(first_at=o.ordered_at.min().over(w), amount=amount,
                 rn=ibis.row_number().over(group_by=o.profile_id, order_by=order))
    horizon = o.first_at + ibis.interval(days=ctx.lifespan_days)
    per = o.group_by(o.profile_id).aggregate(
        ts=o.ordered_at.min(),
        last_at=o.ordered_at.max(),
        clv=ibis.ifelse(o.ordered_at < horizon, o.amount.fill_null(0), 0).sum(),
    )
    firsts = o.filter(o.rn == 0)
    dims = {dim: compile_expr(col, firsts, where=f"dimension {dim}") for dim, col in req.row_dims}
    firsts = firsts.select(profile_id=firsts.profile_id, **dims)
    per = per.join(firsts, "profile_id")
    return per.mutate(lifespan_days=(per.last_at.epoch_seconds() - per.ts.epoch_seconds()) / 86_400.0).drop("last_at")


def _retention(ctx: Context, req: Request) -> ir.Table:
    """(customer, period P) for customers active in the period before P: retained in P or not."""
    o = valid_orders(ctx)
    o = o.filter(o.profile_id.notnull())
    if req.window is not None:
        return _retention_window(o, req)
    o = o.mutate(period=truncate(o.ts, req.grain))
    dim_cols = {dim: compile_expr(col, o, where=f"dimension {dim}") for dim, col in req.row_dims}
    prev = o.select(profile_id=o.profile_id, period=o.period, **dim_cols).distinct()
    cur = o.select(cur_profile=o.profile_id, cur_period=o.period).distinct()
    last = o.aggregate(last=o.period.max())
    prev = prev.mutate(ts=prev.period + step(req.grain)).drop("period")
    prev = prev.cross_join(last).filter(lambda t: t.ts <= t.last).drop("last")
    j = prev.left_join(cur, [prev.profile_id == cur.cur_profile, prev.ts == cur.cur_period])
    return j.mutate(retained=j.cur_profile.notnull().cast("int64")).drop("cur_profile", "cur_period")


def _retention_window(o: ir.Table, req: Request) -> ir.Table:
    """Retention for one window [s, e): customers active in the equally long window before it."""
    assert req.window is not None
    s, e = req.window
    before = s - (e - s)
    prev = o.filter((o.ts >= before) & (o.ts < s))
    prev = prev.select(profile_id=prev.profile_id, **{dim: compile_expr(col, prev, where=f"dimension {dim}") for dim, col in req.row_dims}).distinct()
    cur = o.filter((o.ts >= s) & (o.ts < e)).select(cur_profile=o.profile_id).distinct()
    j = prev.left_join(cur, prev.profile_id == cur.cur_profile)
    return j.mutate(ts=ibis.literal(s).cast("timestamp"), retained=j.cur_profile.notnull().cast("int64")).drop("cur_profile")


def _activities(ctx: Context, req: Request) -> ir.Table:
    """Customer activity rows (sessions, message events, valid orders) for the engagement score.

    Each row carries `ref_epoch`, the reference time of its period (the period's end or the
    workspace's last activity, whichever is earlier), so the score is a per-customer formula over
    these rows (catalogue: engagement_score) and date filters apply to activities themselves.
    """
    g = req.grain
    acts = _activity_rows(ctx)
    # The last activity is one value per context: computed once, it enters every query as a
    # literal (a cross join with its aggregate made the engine build the union twice).
    last = ctx.scalar("latest_activity", _latest_activity)
    acts = acts.filter(acts.profile_id.notnull())
    if last is None or last is pd.NaT or (isinstance(last, float) and math.isnan(last)):
        return acts.mutate(ts_epoch=ibis.literal(0.0), ref_epoch=ibis.literal(0.0)).filter(ibis.literal(False))
    latest = ibis.literal(pd.Timestamp(last).to_pydatetime()).cast("timestamp")  # type: ignore[arg-type]
    if req.window is not None:
        ref = ibis.least(ibis.literal(req.window[1]).cast("timestamp"), latest)
    elif g == "all":
        ref = latest
    else:
        ref = ibis.least(truncate(acts.ts, g) + step(g), latest)
    return acts.mutate(ts_epoch=acts.ts.epoch_seconds().cast("float64"), ref_epoch=ref.epoch_seconds().cast("float64"))


def _latest_activity(ctx: Context) -> object:
    return _activity_rows(ctx).ts.max().execute()


def _activity_rows(ctx: Context) -> ir.Table:
    """Sessions, message events and valid orders as rows of one shape (profile, time, counts)."""
    sessions = ctx.source("sessions", Request("all"))
    ev = ctx.table("events")
    msgs = ev.filter(ev.event_type.isin(["message_sent", "message_opened", "message_clicked", "message_unsubscribed"]))
    orders = valid_orders(ctx)
    zero = ibis.literal(0, "int64")
    acts = ibis.union(
        sessions.select(profile_id=sessions.profile_id, ts=sessions.ts, sessions=ibis.literal(1, "int64"),
                        pages=sessions.pages.cast("int64"), sent=zero, engaged=zero),
        msgs.select(profile_id=msgs.profile_id, ts=msgs.occurred_at, sessions=zero, pages=zero,
                    sent=(msgs.event_type == "message_sent").cast("int64"),
                    engaged=msgs.event_type.isin(["message_opened", "message_clicked"]).cast("int64")),
        orders.select(profile_id=orders.profile_id, ts=orders.ts, sessions=zero, pages=zero, sent=zero, engaged=zero),
    )
    return acts


def engagement_formula(e: EngagementSettings) -> str:
    """The per-customer engagement score (0–100) as an expression over a customer's activity rows."""
    total = e.recency + e.frequency + e.depth + e.messages
    recency = f"exp(-{math.log(2)!r} * (max(ref_epoch) - max(ts_epoch)) / 86400.0 / {e.half_life_days!r})"
    frequency = f"least(sum(sessions) / {e.sessions_cap!r}, 1.0)"
    depth = f"least(CASE WHEN sum(sessions) > 0 THEN sum(pages) / sum(sessions) ELSE 0.0 END / {e.pages_cap!r}, 1.0)"
    messages = "CASE WHEN sum(sent) > 0 THEN least(sum(engaged) / sum(sent), 1.0) ELSE 0.0 END"
    return (f"100.0 * ({e.recency!r} * {recency} + {e.frequency!r} * {frequency} + {e.depth!r} * {depth} "
            f"+ {e.messages!r} * {messages}) / {total!r}")


@dataclass(frozen=True)
class Source:
    """A named row set metrics can aggregate, with what it is and which dimensions it carries."""

    name: str
    description: str
    build: Callable[[Context, Request], ir.Table]
    person: bool = True
    periodic: bool = False
    """Built per grain (period-over-period units)."""
    derived_dims: bool = False
    """Row dimensions must be requested at build time (they come from rows the source derives from)."""
    costly: bool = False
    """Worth materializing once when many metrics are measured together (a Measurer)."""


SOURCES: dict[str, Source] = {s.name: s for s in (
    Source("orders", "Valid orders (status completed or missing); time = ordered_at.", _orders),
    Source("order_outcomes", "Completed and returned orders; time = ordered_at.", _order_outcomes),
    Source("events", "All events; time = occurred_at.", _events),
    Source("sessions", "Web and app sessions built from events; time = first event.", _sessions, costly=True),
    Source("surveys", "Survey answers; time = responded_at.", _surveys),
    Source("interactions", "Support contacts; time = started_at.", _interactions),
    Source("cases", "Support cases (case_id, or one interaction); time = first contact.", _cases, costly=True),
    Source("store_traffic", "Store door counts; time = day.", _store_traffic, person=False),
    Source("acquisition_costs", "Costs of kind acquisition; time = incurred_on.", _acquisition_costs, person=False),
    Source("subscriptions", "Subscriptions active at a period's start, per period.", _subscriptions, periodic=True),
    Source("cohorts", "Customers at their first valid order, with lifespan and historical CLV.", _cohorts, derived_dims=True),
    Source("retention", "Customers active in the previous period, per period.", _retention, periodic=True, derived_dims=True),
    Source("activities", "Customer activity (sessions, message events, valid orders) with the period's reference time.",
           _activities, periodic=True),
)}
