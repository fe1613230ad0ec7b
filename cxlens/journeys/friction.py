"""Friction in support journeys: what makes a case hard for the customer, and what it costs.

Each support case (the contacts sharing a case_id) gets friction counts built in the engine:
channel switches, repeat contacts, transfers, the same topic raised again in a new case
("repeated information"), long waits, and whether it ended unresolved. Their association with
CES, CSAT and NPS (answers linked to the case) and with churn is estimated by least squares with
HC1 standard errors (cxlens.journeys.regression), adjusting for the case's topic and first
channel (how hard and how slow the problem is anyway) and for the customer's tenure and prior
orders (how attached they were). Effort is the strongest driver of disloyalty (Dixon, Freeman &
Toman 2010, "Stop Trying to Delight Your Customers", HBR), so the result ranks the friction that
costs the most. Only the per-case and per-customer matrices come to Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from cxlens.errors import UsageError
from cxlens.journeys.regression import RobustFit, ols_hc1
from cxlens.journeys.touchpoints import case_key, shared_table, valid_orders
from cxlens.semantic.ordered import first, order_key

MEASURES: tuple[str, ...] = ("unresolved", "repeat_contacts", "transfers", "channel_switches", "repeat_topic", "long_waits")
"""Friction counts per case, in the order reports list them."""
LABELS: dict[str, str] = {
    "unresolved": "Left unresolved", "repeat_contacts": "Repeat contacts", "transfers": "Transfers",
    "channel_switches": "Channel switches", "repeat_topic": "Same topic again (repeated information)",
    "long_waits": "Long waits",
}
SCORES: tuple[str, ...] = ("ces", "csat", "nps")
OUTCOMES: tuple[str, ...] = (*SCORES, "churn")
DAY = 86_400


@dataclass(frozen=True)
class FrictionSettings:
    """Thresholds of the friction measures (docs/journeys.md, Friction)."""

    repeat_days: int = 7
    """A contact on the same case within this many days of the one before is a repeat contact."""
    topic_days: int = 14
    """A new case on the same topic within this many days of the last one's close repeats information."""
    long_wait_seconds: float = 900.0
    """A contact that waited longer than this is a long wait."""
    survey_days: int = 30
    """Answers without an interaction_id count for a case when given between its start and this many days after its end."""
    churn_days: int = 60
    """A customer with no activity in the last this-many days of the data has churned."""

    def __post_init__(self) -> None:
        for name in ("repeat_days", "topic_days", "survey_days", "churn_days", "long_wait_seconds"):
            if not getattr(self, name) > 0:
                raise UsageError(f"The friction setting {name} is {getattr(self, name)}; it must be a positive number.")


def _interactions(ws: Any) -> ir.Table:
    if "interactions" not in ws.backend.tables() or int(ws.table("interactions").count().execute()) == 0:
        raise UsageError("The workspace has no interactions (support contacts); ingest some to measure friction.")
    return ws.table("interactions")


CASE_INPUT = ("interaction_id", "started_at", "channel", "case_id", "topic", "transfers", "resolved", "wait_seconds",
              "profile_id", "source")
"""The contact columns case features read; selecting them first keeps the window sort narrow."""


def case_features(ws: Any, settings: FrictionSettings = FrictionSettings()) -> ir.Table:
    """One row per case: profile, topic, first channel, times and every friction count (engine-side).

    The case's profile is its contacts' (the greatest id if they disagree); topic and channel are
    its first contact's.

    unresolved is 1 when no contact of the case is marked resolved (0 when resolution is unknown
    for all of them: no evidence of friction); repeat_contacts counts contacts after the first
    within repeat_days of the one before; channel_switches counts contacts in another channel
    than the one before; repeat_topic is 1 when the customer's previous case on the same topic
    closed at most topic_days before this one opened.
    """
    i = _interactions(ws).select(*CASE_INPUT)
    # The case is grouped on (source, case id) columns; its text key is built once per case, not per contact.
    i = i.mutate(_k=ibis.ifelse(i.case_id.isnull(), "~" + i.interaction_id, i.case_id), _ch=i.channel.lower())
    w = ibis.window(group_by=[i.source, i._k], order_by=[i.started_at, i.interaction_id])
    i = i.mutate(_prev_ch=i._ch.lag().over(w), _prev_t=i.started_at.lag().over(w))
    gap = i.started_at.epoch_seconds() - i._prev_t.epoch_seconds()
    i = i.mutate(
        _switch=(i._prev_ch.notnull() & (i._ch != i._prev_ch)).cast("int64"),
        _repeat=(i._prev_t.notnull() & (gap <= settings.repeat_days * DAY)).cast("int64"),
        _long=(i.wait_seconds > settings.long_wait_seconds).fill_null(False).cast("int64"),
    )
    # The first contact's topic and channel come from one arg_min of a struct (one comparison per row).
    opening = first(ibis.struct({"topic": i.topic, "channel": i._ch}), order_key(i.started_at, i.interaction_id))
    c = i.group_by(["source", "_k"]).aggregate(
        profile_id=i.profile_id.max(), _first=opening,
        opened_at=i.started_at.min(), closed_at=i.started_at.max(), contacts=i.count(),
        channel_switches=i._switch.sum(), repeat_contacts=i._repeat.sum(), transfers=i.transfers.fill_null(0).sum(),
        _resolved=i.resolved.cast("int64").max(), long_waits=i._long.sum(), wait_seconds=i.wait_seconds.sum(),
        max_wait_seconds=i.wait_seconds.max(),
    )
    c = c.mutate(case_id=c.source + ":" + c._k, topic=c._first["topic"].lower().fill_null("other"),
                 channel=c._first["channel"]).drop("source", "_k", "_first")
    c = c.mutate(unresolved=(1 - c._resolved.fill_null(1)).cast("int64")).drop("_resolved")
    wt = ibis.window(group_by=[c.profile_id, c.topic], order_by=[c.opened_at, c.case_id])
    prev_closed = c.closed_at.lag().over(wt)
    since = c.opened_at.epoch_seconds() - prev_closed.epoch_seconds()
    c = c.mutate(repeat_topic=(c.profile_id.notnull() & prev_closed.notnull() & (since <= settings.topic_days * DAY))
                 .cast("int64"))
    return c.mutate(friction=(ibis.greatest(*[c[m] for m in MEASURES]) > 0).cast("int64"))


def case_scores(ws: Any, cases: ir.Table, settings: FrictionSettings = FrictionSettings()) -> ir.Table:
    """(case_id, ces, csat, nps): the mean answer of each kind linked to the case.

    An answer is linked by its interaction_id to that contact's case; an answer with neither an
    interaction_id nor an order_id is linked to the respondent's cases that started before it and
    ended at most survey_days before it (a relationship NPS soon after a case).
    """
    if "survey_responses" not in ws.backend.tables():
        return cases.select("case_id").mutate(**{s: ibis.null("float64") for s in SCORES}).limit(0)
    r = ws.table("survey_responses")
    r = r.mutate(_kind=r.survey_type.lower())
    i = _interactions(ws)
    ids = i.select(_iid=i.interaction_id, _case=case_key(i)).view()
    by_id = r.filter(r.interaction_id.notnull())
    by_id = by_id.join(ids, by_id.interaction_id == ids._iid).select(case_id="_case", kind="_kind", score="score")
    loose = r.filter(r.interaction_id.isnull() & r.order_id.isnull() & r.profile_id.notnull())
    cs = cases.select(_cid=cases.case_id, _pid=cases.profile_id, _open=cases.opened_at, _close=cases.closed_at).view()
    by_time = loose.join(cs, [loose.profile_id == cs._pid, loose.responded_at >= cs._open,
                              loose.responded_at <= cs._close + ibis.interval(days=settings.survey_days)])
    by_time = by_time.select(case_id="_cid", kind="_kind", score="score")
    linked = ibis.union(by_id, by_time)
    return linked.group_by("case_id").aggregate(**{s: linked.score.mean(where=linked.kind == s) for s in SCORES})


def activity(ws: Any) -> ir.Table:
    """(profile_id, at) of everything a customer did themselves: valid orders, support contacts,
    web/app events (not messages, ads or recommendations shown to them), store visits, coupons.
    Messages keep arriving after a customer has gone, so they do not count as activity."""
    have = set(ws.backend.tables())
    parts = []
    if "orders" in have:
        o = valid_orders(ws.table("orders"))
        parts.append(o.select(profile_id=o.profile_id, at=o.ordered_at))
    if "interactions" in have:
        i = ws.table("interactions")
        parts.append(i.filter(i.profile_id.notnull()).select(profile_id=i.profile_id, at=i.started_at))
    if "events" in have:
        e = ws.table("events")
        passive = ("message_sent", "message_opened", "ad_impression", "recommendation_shown", "survey_sent")
        e = e.filter(e.profile_id.notnull() & ~e.event_type.isin(passive))
        parts.append(e.select(profile_id=e.profile_id, at=e.occurred_at))
    if not parts:
        raise UsageError("The workspace has no orders, interactions or events; ingest some to follow customers.")
    return ibis.union(*parts) if len(parts) > 1 else parts[0]


def activity_spans(ws: Any) -> ir.Table:
    """(profile_id, first_at, last_at) of every customer's own activity; computed once per
    shared_touchpoints block (journeys.touchpoints.shared_table)."""
    def build() -> ir.Table:
        a = activity(ws)
        return a.group_by("profile_id").aggregate(first_at=a.at.min(), last_at=a.at.max())

    return shared_table(ws, "activity_spans", build)


@dataclass(frozen=True)
class ChurnWindow:
    """Churned = no activity after `cutoff` = the last activity in the data minus churn_days."""

    end: pd.Timestamp
    cutoff: pd.Timestamp


def churn_window(ws: Any, settings: FrictionSettings) -> tuple[ir.Table, ChurnWindow]:
    """Per profile: first and last activity and churned (0/1); customers who started before the cutoff."""
    per = activity_spans(ws)
    end = per.last_at.max().execute()
    if end is None or pd.isna(end):
        raise UsageError("No customer activity with a resolved profile; run identity resolution after ingesting.")
    end = pd.Timestamp(end)
    cutoff = end - timedelta(days=settings.churn_days)
    per = per.filter(per.first_at < cutoff)
    per = per.mutate(churned=(per.last_at < cutoff).cast("int64"),
                     tenure_days=(ibis.literal(cutoff.to_pydatetime()).epoch_seconds() - per.first_at.epoch_seconds()) / DAY)
    return per, ChurnWindow(end, cutoff)


def customer_features(ws: Any, settings: FrictionSettings = FrictionSettings(), cases: ir.Table | None = None
                      ) -> tuple[ir.Table, ChurnWindow]:
    """Per customer with a case opened before the churn cutoff: friction totals over those cases,
    cases, prior orders and tenure (confounders), and churned."""
    cases = case_features(ws, settings) if cases is None else cases
    per, window = churn_window(ws, settings)
    cut = ibis.literal(window.cutoff.to_pydatetime())
    c = cases.filter(cases.profile_id.notnull() & (cases.opened_at < cut))
    agg = c.group_by("profile_id").aggregate(cases=c.count(), contacts=c.contacts.sum(), friction_cases=c.friction.sum(),
                                             **{m: c[m].sum() for m in MEASURES})
    j = agg.join(per, "profile_id")
    if "orders" in ws.backend.tables():
        o = valid_orders(ws.table("orders"))
        o = o.filter(o.ordered_at < cut)
        prior = o.group_by(_op=o.profile_id).aggregate(orders=o.count(), revenue=o.revenue.sum())
        j = j.left_join(prior, j.profile_id == prior._op).drop("_op")
        j = j.mutate(orders=j.orders.fill_null(0), revenue=j.revenue.fill_null(0.0))
    else:
        j = j.mutate(orders=ibis.literal(0, "int64"), revenue=ibis.literal(0.0))
    return j, window


def _case_matrix(ws: Any, cases: ir.Table, settings: FrictionSettings) -> pd.DataFrame:
    """Cases with any linked answer, their friction, topic, channel and the customer's tenure and
    prior orders at the case's start (the engine joins; Python gets one row per rated case)."""
    scores = case_scores(ws, cases, settings)
    c = cases.join(scores, "case_id")
    spans = activity_spans(ws)
    firsts = spans.select(_fp=spans.profile_id, _first=spans.first_at)
    c = c.left_join(firsts, c.profile_id == firsts._fp).drop("_fp")
    c = c.mutate(tenure_days=((c.opened_at.epoch_seconds() - c._first.epoch_seconds()) / DAY).fill_null(0.0))
    if "orders" in ws.backend.tables():
        o = valid_orders(ws.table("orders")).select(_op="profile_id", _at="ordered_at")
        pairs = c.select("case_id", "profile_id", "opened_at").join(o, [c.profile_id == o._op, o._at < c.opened_at])
        prior = pairs.group_by(_pc="case_id").aggregate(prior_orders=pairs.count())
        c = c.left_join(prior, c.case_id == prior._pc).drop("_pc")
        c = c.mutate(prior_orders=c.prior_orders.fill_null(0))
    else:
        c = c.mutate(prior_orders=ibis.literal(0, "int64"))
    cols = ["case_id", "topic", "channel", *MEASURES, "contacts", "tenure_days", "prior_orders", *SCORES]
    return c.select(*cols).order_by("case_id").to_pandas()


MIN_EXPOSED = 10
"""A friction measure present in fewer fitted rows than this is left out of the model: its
coefficient would rest on a handful of cases."""


def _design(frame: pd.DataFrame, categorical: tuple[str, ...], numeric: tuple[str, ...]) -> tuple[np.ndarray, list[str]]:
    """Intercept, the friction measures seen often enough, then confounders: numeric columns and
    dummies (first level dropped)."""
    measures = [m for m in MEASURES if int((frame[m] > 0).sum()) >= MIN_EXPOSED]
    cols = [np.ones(len(frame))] + [frame[m].to_numpy(float) for m in measures]
    names = ["intercept", *measures]
    for n in numeric:
        cols.append(frame[n].to_numpy(float))
        names.append(n)
    for cat in categorical:
        levels = sorted(frame[cat].fillna("(none)").astype(str).unique())
        for level in levels[1:]:
            cols.append((frame[cat].fillna("(none)").astype(str) == level).to_numpy(float))
            names.append(f"{cat}={level}")
    return np.column_stack(cols), names


CASE_CONFOUNDERS = ("topic", "first channel", "customer tenure (days)", "log(1 + prior orders)")
CUSTOMER_CONFOUNDERS = ("cases", "tenure (days)", "log(1 + prior orders)", "log(1 + prior revenue)")


@dataclass(frozen=True)
class FrictionResult:
    """Friction's prevalence and its estimated cost per outcome.

    `effects` has one row per (outcome, measure): the coefficient (points of the score per unit
    of friction, or churn probability per unit), its HC1 interval, the mean of the measure in the
    fitted sample and `impact` = estimate x that mean (the outcome's average shift due to the
    friction); `by_touchpoint` summarizes cases per first channel and topic; `customers` holds
    the per-customer friction and churn.
    """

    settings: FrictionSettings
    window: ChurnWindow
    effects: pd.DataFrame
    prevalence: dict[str, float]
    by_touchpoint: pd.DataFrame
    customers: pd.DataFrame
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def costliest(self, outcome: str = "churn") -> pd.DataFrame:
        """The outcome's friction measures, worst impact first."""
        e = self.effects[self.effects.outcome == outcome]
        return e.sort_values("impact", ascending=outcome != "churn").reset_index(drop=True)


def _effect_rows(outcome: str, fit: RobustFit, frame: pd.DataFrame) -> list[dict[str, Any]]:
    rows = []
    for m in MEASURES:
        c = fit.get(m)
        if c is None:
            continue
        mean = float(frame[m].mean())
        rows.append({"outcome": outcome, "measure": m, "label": LABELS[m], "estimate": c.estimate, "std_error": c.std_error,
                     "ci_low": c.ci_low, "ci_high": c.ci_high, "p_value": c.p_value, "n": fit.n, "mean_exposure": mean,
                     "impact": c.estimate * mean})
    return rows


MIN_ROWS = 30
"""Fewer complete rows than this give no model for an outcome (a note says so)."""


def friction_costs(ws: Any, settings: FrictionSettings = FrictionSettings()) -> FrictionResult:
    """Build the case and customer features in the engine and estimate each friction's cost."""
    with case_features(ws, settings).cache() as cases:
        return _costs(ws, settings, cases)


def _costs(ws: Any, settings: FrictionSettings, cases: ir.Table) -> FrictionResult:
    effects: list[dict[str, Any]] = []
    models: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    rated = _case_matrix(ws, cases, settings)
    rated["log_prior_orders"] = np.log1p(rated["prior_orders"].astype(float))
    for s in SCORES:
        frame = rated[rated[s].notna()]
        if len(frame) < MIN_ROWS:
            notes.append(f"{s.upper()}: {len(frame)} answers linked to cases, fewer than {MIN_ROWS}; no estimate.")
            continue
        X, names = _design(frame, ("topic", "channel"), ("tenure_days", "log_prior_orders"))
        fit = ols_hc1(X, frame[s].to_numpy(float), names)
        effects += _effect_rows(s, fit, frame)
        models[s] = {"n": fit.n, "r_squared": fit.r_squared, "dropped": list(fit.dropped) + _rare(frame),
                     "confounders": list(CASE_CONFOUNDERS)}
    per, window = customer_features(ws, settings, cases)
    customers = per.order_by("profile_id").to_pandas()
    if len(customers) >= MIN_ROWS:
        customers["log_orders"] = np.log1p(customers["orders"].astype(float))
        customers["log_revenue"] = np.log1p(customers["revenue"].astype(float).clip(lower=0))
        X, names = _design(customers, (), ("cases", "tenure_days", "log_orders", "log_revenue"))
        fit = ols_hc1(X, customers["churned"].to_numpy(float), names)
        effects += _effect_rows("churn", fit, customers)
        models["churn"] = {"n": fit.n, "r_squared": fit.r_squared, "dropped": list(fit.dropped) + _rare(customers),
                           "confounders": list(CUSTOMER_CONFOUNDERS), "churn_rate": float(customers["churned"].mean()),
                           "cutoff": window.cutoff.isoformat()}
    else:
        notes.append(f"Churn: {len(customers)} customers with a case before {window.cutoff:%Y-%m-%d}, fewer than {MIN_ROWS}; no estimate.")
    prevalence = _prevalence(cases)
    return FrictionResult(settings, window, pd.DataFrame(effects, columns=EFFECT_COLUMNS), prevalence,
                          by_touchpoint(cases), customers, models, tuple(notes))


def _rare(frame: pd.DataFrame) -> list[str]:
    return [m for m in MEASURES if int((frame[m] > 0).sum()) < MIN_EXPOSED]


EFFECT_COLUMNS = ["outcome", "measure", "label", "estimate", "std_error", "ci_low", "ci_high", "p_value", "n",
                  "mean_exposure", "impact"]


def _prevalence(cases: ir.Table) -> dict[str, float]:
    """Cases and the share of cases with each friction (engine aggregate)."""
    row = cases.aggregate(cases=cases.count(), contacts=cases.contacts.sum(), friction=cases.friction.mean(),
                          **{m: (cases[m] > 0).cast("float64").mean() for m in MEASURES}).to_pandas().iloc[0]
    return {k: (float(v) if pd.notna(v) else float("nan")) for k, v in row.items()}


def by_touchpoint(cases: ir.Table) -> pd.DataFrame:
    """Per first channel and topic: cases, share with any friction and the mean of each measure."""
    t = cases.group_by(["channel", "topic"]).aggregate(
        cases=cases.count(), contacts_per_case=cases.contacts.mean(), friction_share=cases.friction.mean(),
        **{m: cases[m].mean() for m in MEASURES})
    return t.order_by([ibis.desc("friction_share"), "channel", "topic"]).to_pandas()
