"""The journey map: which touchpoints feel good or bad, and which micro-journeys lose customers.

Touchpoints are ranked by experience: the answers linked to them (a survey's interaction_id
points at a support contact, its order_id at an order, else its own `touchpoint` column), each
scaled to 0..1 on its survey's scale so NPS, CSAT and CES can be averaged; beside it the share of
support cases with friction and the drop-off (the share of the customers who had the touchpoint
whose last activity it was before they churned). Micro-journeys are the sub-journeys: a support
case written as its contact channels and outcome ("support: phone > email (unresolved)") and a
visit as its channel and how far it got ("web visit: abandoned cart"). Each one's effect on
retention is the churn rate of the customers who had it minus the churn rate of those who did
not, with a normal-approximation 95% interval for a difference of proportions (Newcombe 1998
compares it with better intervals; with dozens of customers per group it is adequate).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from cxlens.journeys.friction import FrictionSettings, case_features, churn_window
from cxlens.journeys.paths import joined_steps, step_columns
from cxlens.journeys.touchpoints import build_touchpoints, case_key
from cxlens.semantic.ordered import last, order_key
from cxlens.workspace.schema import SURVEY_SCALES

Z95 = 1.959963984540054
CASE_STEPS = 6
"""Channel changes written out per case; a longer case ends in "> …"."""
TOUCHPOINT_COLUMNS = ["touchpoint", "occurrences", "profiles", "answers", "experience", "friction_share", "drop_off"]
MICRO_COLUMNS = ["micro_journey", "kind", "customers", "churned", "churn_rate", "churn_rate_without", "effect", "ci_low",
                 "ci_high"]


@dataclass(frozen=True)
class JourneyMap:
    """Touchpoints ranked by experience (0..1, higher is better) and micro-journeys by harm to retention."""

    touchpoints: pd.DataFrame
    micro_journeys: pd.DataFrame
    churn_rate: float
    customers: int

    def best(self, n: int = 5) -> pd.DataFrame:
        t = self.touchpoints[self.touchpoints.experience.notna()]
        return t.sort_values(["experience", "answers"], ascending=[False, False]).head(n).reset_index(drop=True)

    def worst(self, n: int = 5) -> pd.DataFrame:
        t = self.touchpoints[self.touchpoints.experience.notna()]
        return t.sort_values(["experience", "answers"], ascending=[True, False]).head(n).reset_index(drop=True)


def _scaled(kind: ir.StringValue, score: ir.FloatingValue) -> ir.FloatingValue:
    lo = kind.substitute({k: float(v[0]) for k, v in SURVEY_SCALES.items()}, else_=ibis.null("float64"))
    hi = kind.substitute({k: float(v[1]) for k, v in SURVEY_SCALES.items()}, else_=ibis.null("float64"))
    return (score - lo) / (hi - lo)


def answers_by_touchpoint(ws: Any) -> ir.Table:
    """(touchpoint, experience, answers): mean scaled score of the answers linked to each touchpoint."""
    r = ws.table("survey_responses")
    r = r.mutate(_scaled=_scaled(r.survey_type.lower(), r.score))
    if "interactions" in ws.backend.tables():
        i = ws.table("interactions")
        i = i.select(_iid=i.interaction_id, _itp="support:" + i.topic.lower().fill_null("other")).view()
        r = r.left_join(i, r.interaction_id == i._iid)
    else:
        r = r.mutate(_itp=ibis.null("string"))
    tp = ibis.coalesce(r._itp, ibis.ifelse(r.order_id.notnull(), "order", ibis.null("string")), r.touchpoint.lower())
    r = r.mutate(_tp=tp).filter(tp.notnull())
    return r.group_by(touchpoint=r._tp).aggregate(experience=r._scaled.mean(), answers=r.count())


def journey_map(ws: Any, settings: FrictionSettings | None = None, *, min_customers: int = 20,
                touchpoints: ir.Table | None = None) -> JourneyMap:
    """Rank touchpoints by experience and micro-journeys by their effect on churn."""
    settings = settings or FrictionSettings()
    tp = build_touchpoints(ws) if touchpoints is None else touchpoints
    per, _ = churn_window(ws, settings)
    with per.cache() as cached:
        return _map(ws, tp, cached, settings, min_customers)


def _map(ws: Any, tp: ir.Table, per: ir.Table, settings: FrictionSettings, min_customers: int) -> JourneyMap:
    tps = tp.filter(tp.source != "surveys")
    usage = tps.group_by("touchpoint").aggregate(occurrences=tps.count(), profiles=tps.profile_id.nunique())
    frames = usage
    have = set(ws.backend.tables())
    if "survey_responses" in have:
        a = answers_by_touchpoint(ws).rename(_t="touchpoint").view()
        frames = frames.left_join(a, frames.touchpoint == a._t).drop("_t")
    else:
        frames = frames.mutate(experience=ibis.null("float64"), answers=ibis.literal(0, "int64"))
    if "interactions" in have:
        c = case_features(ws, settings)
        f = c.group_by(_t="support:" + c.topic).aggregate(friction_share=c.friction.mean())
        frames = frames.left_join(f, frames.touchpoint == f._t).drop("_t")
    else:
        frames = frames.mutate(friction_share=ibis.null("float64"))
    # Drop-off: the customer's last self-initiated touchpoint, among churned customers.
    active = tps.filter(tps.touchpoint.notin(("message_sent", "message_opened", "ad_impression", "recommendation_shown")))
    lasts = active.group_by("profile_id").aggregate(_last=last(active.touchpoint, order_key(active.occurred_at, active.ref_id)))
    lasts = _churned_last(lasts, per)
    exits = lasts.group_by(_t="_last").aggregate(_exits=lasts.count())
    frames = frames.left_join(exits, frames.touchpoint == exits._t).drop("_t")
    frames = frames.mutate(drop_off=frames._exits.fill_null(0) / frames.profiles, answers=frames.answers.fill_null(0)).drop("_exits")
    table = frames.select(*TOUCHPOINT_COLUMNS).order_by([ibis.desc("occurrences"), "touchpoint"]).to_pandas()
    micro = _micro_journeys(ws, tp, per, settings, min_customers)
    base = per.aggregate(n=per.count(), churned=per.churned.sum()).to_pandas().iloc[0]
    n = int(base["n"])
    return JourneyMap(table, micro, float(base["churned"]) / n if n else float("nan"), n)


def _churned_last(lasts: ir.Table, per: ir.Table) -> ir.Table:
    churned = per.filter(per.churned == 1).select(_cp=per.profile_id).view()
    return lasts.join(churned, lasts.profile_id == churned._cp)


def micro_journey_table(ws: Any, tp: ir.Table) -> ir.Table:
    """(profile_id, micro_journey, kind): every case and visit of a profile written as a short pattern."""
    parts = []
    if "interactions" in ws.backend.tables():
        i = ws.table("interactions")
        i = i.filter(i.profile_id.notnull()).mutate(_case=case_key(i), _ch=i.channel.lower())
        w = ibis.window(group_by=i._case, order_by=[i.started_at, i.interaction_id])
        i = i.mutate(_prev=i._ch.lag().over(w))
        # The outcome comes from every contact; the channel path from the contacts where the channel changes.
        res = i.group_by(_rc="_case").aggregate(_res=i.resolved.cast("int64").max())
        i = i.filter(i._prev.isnull() | (i._prev != i._ch))
        i = i.mutate(_pos=ibis.row_number().over(ibis.window(group_by=i._case, order_by=[i.started_at, i.interaction_id])) + 1)
        cases = i.group_by("_case").aggregate(profile_id=i.profile_id.max(), _n=i.count(),
                                              **step_columns(i._ch, i._pos, CASE_STEPS))
        cases = cases.join(res, cases._case == res._rc)
        path = joined_steps(cases, CASE_STEPS) + ibis.ifelse(cases._n > CASE_STEPS, " > …", "")
        outcome = ibis.ifelse(cases._res.fill_null(1) == 1, " (resolved)", " (unresolved)")
        parts.append(cases.select("profile_id", micro_journey="support: " + path + outcome, kind=ibis.literal("case")))
    s = tp.filter(tp.session_id.notnull())
    t = s.touchpoint
    visits = s.group_by("session_id").aggregate(
        profile_id=s.profile_id.max(), _ch=s.channel.max(), _n=s.count(), _buy=(t == "purchase").any(),
        _checkout=(t == "checkout_started").any(), _cart=(t == "add_to_cart").any(), _view=(t == "product_view").any())
    furthest = ibis.cases((visits._buy, "purchased"), (visits._checkout, "abandoned checkout"),
                          (visits._cart, "abandoned cart"), (visits._view, "viewed products"), (visits._n == 1, "bounced"),
                          else_="browsed")
    parts.append(visits.select("profile_id", micro_journey=visits._ch + " visit: " + furthest, kind=ibis.literal("visit")))
    return ibis.union(*parts) if len(parts) > 1 else parts[0]


def _micro_journeys(ws: Any, tp: ir.Table, per: ir.Table, settings: FrictionSettings, min_customers: int) -> pd.DataFrame:
    m = micro_journey_table(ws, tp).distinct()
    cut = per.select(_p=per.profile_id, churned=per.churned, _last=per.last_at).view()
    j = m.join(cut, m.profile_id == cut._p)
    g = j.group_by(["micro_journey", "kind"]).aggregate(customers=j.profile_id.nunique(), churned=j.churned.sum())
    g = g.filter(g.customers >= min_customers).to_pandas()
    base = per.aggregate(n=per.count(), churned=per.churned.sum()).to_pandas().iloc[0]
    n, c = int(base["n"]), int(base["churned"])
    if g.empty:
        return pd.DataFrame(columns=MICRO_COLUMNS)
    n1 = g.customers.to_numpy(float)
    c1 = g.churned.to_numpy(float)
    n0, c0 = n - n1, c - c1
    p1 = c1 / n1
    with np.errstate(divide="ignore", invalid="ignore"):
        p0 = np.where(n0 > 0, c0 / n0, np.nan)
        se = np.sqrt(p1 * (1 - p1) / n1 + np.where(n0 > 0, p0 * (1 - p0) / n0, np.nan))
    g["churn_rate"], g["churn_rate_without"] = p1, p0
    g["effect"] = p1 - p0
    g["ci_low"], g["ci_high"] = g.effect - Z95 * se, g.effect + Z95 * se
    g["churned"] = g.churned.astype("int64")
    g = g.sort_values(["effect", "customers", "micro_journey"], ascending=[False, False, True]).reset_index(drop=True)
    return g[MICRO_COLUMNS]


__all__ = ["JourneyMap", "answers_by_touchpoint", "journey_map", "micro_journey_table"]
