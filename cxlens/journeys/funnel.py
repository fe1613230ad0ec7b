"""Funnels over declared steps: who enters, who reaches each next step in order, and how fast.

A profile enters at its first touchpoint named like step 1 and reaches step k at its first
step-k touchpoint at or after the time it reached step k-1 (and, with a window, at most
`window_days` after it entered). This is the ordered "first entry" funnel of web analytics
tools (e.g. PostHog's ordered funnels): each step is one join and one group-by in the engine,
and Python receives one row per group and step. Steps are touchpoint names
(cxlens.journeys.touchpoints): event types such as product_view, `order`, `support:billing`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ibis
import ibis.expr.types as ir
import pandas as pd

from cxlens.errors import UsageError
from cxlens.journeys.touchpoints import build_touchpoints
from cxlens.semantic.ordered import first, order_key

DEFAULT_STEPS: tuple[str, ...] = ("product_view", "add_to_cart", "checkout_started", "purchase")
PROFILE_DIMENSIONS: tuple[str, ...] = ("country", "region", "city", "gender", "loyalty_member", "loyalty_tier",
                                       "acquisition_channel", "cohort", "value_class", "rfm_segment")
BY_CHOICES: tuple[str, ...] = ("channel", "segment", *PROFILE_DIMENSIONS)
"""`channel` is the channel of the entering touchpoint; `segment` the definitions file's
segments (a profile can be in several); the rest are the semantic layer's profile dimensions."""

COLUMNS = ["group", "step_index", "step", "profiles", "conversion_from_previous", "conversion_from_start", "drop_off",
           "drop_off_rate", "median_seconds_from_previous"]


@dataclass(frozen=True)
class FunnelResult:
    """One row per group and step (COLUMNS); `group` is "all" without a breakdown."""

    steps: tuple[str, ...]
    window_days: float | None
    by: str | None
    frame: pd.DataFrame


def _check(steps: tuple[str, ...], window_days: float | None, by: str | None) -> None:
    if len(steps) < 2:
        raise UsageError(f"A funnel needs at least two steps; got {len(steps)} ({', '.join(steps) or 'none'}).")
    if len(set(steps)) != len(steps):
        raise UsageError(f"Funnel steps must differ; {', '.join(steps)} repeats one.")
    if window_days is not None and not window_days > 0:
        raise UsageError(f"The funnel window is {window_days} days; it must be a positive number of days.")
    if by is not None and by not in BY_CHOICES:
        raise UsageError(f"Unknown funnel breakdown {by!r}; use one of {', '.join(BY_CHOICES)}.")


def _groups(ws: Any, by: str, catalog: Any) -> ir.Table:
    """(_gp, group) for a profile breakdown."""
    from cxlens.semantic.api import catalog_for
    from cxlens.semantic.dimensions import profile_attributes

    cat = catalog if catalog is not None else catalog_for(ws)
    ctx = cat.context(ws)
    if by == "segment":
        m = cat.segment_members(ctx)
        return m.select(_gp=m.profile_id, group=m.segment.cast("string"))
    attrs = profile_attributes(ctx)
    return attrs.select(_gp=attrs.profile_id, group=attrs[by].cast("string"))


def funnel(ws: Any, steps: tuple[str, ...] | list[str] = DEFAULT_STEPS, *, window_days: float | None = None,
           by: str | None = None, catalog: Any = None, touchpoints: ir.Table | None = None) -> FunnelResult:
    """Profiles reaching each step in order, conversion and drop-off per step, median time between steps."""
    steps = tuple(s.strip() for s in steps)
    _check(steps, window_days, by)
    tp = build_touchpoints(ws) if touchpoints is None else touchpoints
    tp = tp.filter(tp.touchpoint.isin(steps)).select("profile_id", "occurred_at", "touchpoint", "channel", "ref_id")
    s1 = tp.filter(tp.touchpoint == steps[0])
    key = order_key(s1.occurred_at, s1.ref_id)
    reached = s1.group_by("profile_id").aggregate(t0=s1.occurred_at.min(), channel=first(s1.channel, key))
    prev = reached.select("profile_id", start="t0", at="t0")
    for k, name in enumerate(steps[1:], start=1):
        rows = tp.filter(tp.touchpoint == name).select(_p="profile_id", _at="occurred_at")
        cond = [prev.profile_id == rows._p, rows._at >= prev.at]
        if window_days is not None:
            cond.append(rows._at <= prev.start + ibis.interval(seconds=round(window_days * 86_400)))
        j = prev.join(rows, cond)
        nxt = j.group_by(["profile_id", "start"]).aggregate(at=j._at.min())
        col = nxt.select(_p=nxt.profile_id, **{f"t{k}": nxt.at}).view()
        reached = reached.left_join(col, reached.profile_id == col._p).drop("_p")
        prev = nxt.view()
    if by is None:
        reached = reached.mutate(group=ibis.literal("all"))
    elif by == "channel":
        reached = reached.mutate(group=reached.channel.fill_null("(none)"))
    else:
        g = _groups(ws, by, catalog).view()
        reached = reached.left_join(g, reached.profile_id == g._gp).drop("_gp")
        reached = reached.mutate(group=reached.group.fill_null("(none)"))
    aggs: dict[str, ir.Scalar] = {"n0": reached.count()}
    for k in range(1, len(steps)):
        t, p = reached[f"t{k}"], reached[f"t{k - 1}"]
        aggs[f"n{k}"] = t.count()
        aggs[f"m{k}"] = (t.epoch_seconds() - p.epoch_seconds()).cast("float64").median()
    counts = reached.group_by("group").aggregate(**aggs).order_by("group").to_pandas()
    return FunnelResult(steps, window_days, by, _rows(counts, steps))


def _rows(counts: pd.DataFrame, steps: tuple[str, ...]) -> pd.DataFrame:
    rows = []
    for r in counts.itertuples(index=False):
        d = r._asdict()
        start = int(d["n0"])
        for k, name in enumerate(steps):
            n = int(d[f"n{k}"])
            before = int(d[f"n{k - 1}"]) if k else n
            rows.append({"group": d["group"], "step_index": k + 1, "step": name, "profiles": n,
                         "conversion_from_previous": n / before if before else float("nan"),
                         "conversion_from_start": n / start if start else float("nan"),
                         "drop_off": before - n, "drop_off_rate": (before - n) / before if before else float("nan"),
                         "median_seconds_from_previous": float(d[f"m{k}"]) if k and pd.notna(d[f"m{k}"]) else float("nan")})
    return pd.DataFrame(rows, columns=COLUMNS)
