"""RFM: per-profile recency, frequency and monetary value, quintile scores and the named R x FM segments.

RFM is the oldest customer-value lens marketers use (Hughes, "Strategic Database Marketing",
1994): who bought recently, often and for much. Everything is computed in the engine over valid
orders (status completed or missing, with a resolved profile_id) up to the as-of day; Python only
ever sees one row per profile.

Definitions (whole UTC days, orders after the as-of day are ignored):

- ``recency_days``: days from the last valid order's day to the as-of day (default: the day of the
  latest valid order in the workspace).
- ``frequency``: number of valid orders.
- ``monetary``: their summed margin (revenue - cost, a missing cost counting as 0) when any order
  carries a cost, else their summed revenue.

Scores (1 = worst, 5 = best) are quintiles by rank with ties kept together: with n profiles and
``rank`` the number of profiles strictly worse on that measure (SQL ``RANK() - 1`` over the
measure ordered from worst to best), ``score = 1 + floor(5 * rank / n)``. Equal values always get
the same score, which is the score of the tied group's lowest position; so when 60 % of customers
bought once, they all get F = 1 and the next value starts at F = 4. Worst is the largest recency
and the smallest frequency or monetary value.

Segments come from R and FM = ceil((F + M) / 2) on the 5 x 5 grid used by most RFM tools
(rows R, columns FM):

====  ==============  ===================  ===================  ===============  ===============
R     FM 1            FM 2                 FM 3                 FM 4             FM 5
====  ==============  ===================  ===================  ===============  ===============
5     new customers   potential loyalists  potential loyalists  champions        champions
4     promising       potential loyalists  potential loyalists  loyal            loyal
3     about to sleep  about to sleep       need attention       loyal            loyal
2     hibernating     hibernating          at risk              at risk          cannot lose them
1     lost            hibernating          at risk              at risk          cannot lose them
====  ==============  ===================  ===================  ===============  ===============
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING

import ibis
import ibis.expr.types as ir

from cxlens.errors import UsageError

if TYPE_CHECKING:
    import pandas as pd

SEGMENTS: tuple[str, ...] = (
    "champions", "loyal", "potential loyalists", "new customers", "promising", "need attention",
    "about to sleep", "at risk", "cannot lose them", "hibernating", "lost",
)
"""Named RFM segments, best first (the order reports list them in)."""

GRID: dict[int, tuple[str, str, str, str, str]] = {
    5: ("new customers", "potential loyalists", "potential loyalists", "champions", "champions"),
    4: ("promising", "potential loyalists", "potential loyalists", "loyal", "loyal"),
    3: ("about to sleep", "about to sleep", "need attention", "loyal", "loyal"),
    2: ("hibernating", "hibernating", "at risk", "at risk", "cannot lose them"),
    1: ("lost", "hibernating", "at risk", "at risk", "cannot lose them"),
}
"""Segment by R score (key) and FM score (position 1..5)."""

SEGMENT_HELP: dict[str, str] = {
    "champions": "bought recently, often and for much: reward them, ask for reviews and referrals",
    "loyal": "buy often and for much, not always the most recently: upsell, loyalty programme",
    "potential loyalists": "recent customers with average frequency and value: offer membership",
    "new customers": "bought recently for the first time and little so far: onboarding",
    "promising": "fairly recent, little value yet: build the relationship",
    "need attention": "average on every measure: limited-time offers before they slip",
    "about to sleep": "below average recency and value: re-activate with something relevant",
    "at risk": "valuable before, not seen for a while: personal re-engagement",
    "cannot lose them": "among the most valuable, silent for long: win them back first",
    "hibernating": "low value and long gone: cheap, broad re-activation only",
    "lost": "lowest on every measure: do not spend on them",
}
"""What each segment means and the usual action, for tables and docs."""

_EPOCH = date(1970, 1, 1)


@dataclass(frozen=True)
class AsOf:
    """The as-of day of an analysis as a day number (days since 1970-01-01) and as a date."""

    day: int

    @property
    def date(self) -> date:
        return date.fromordinal(_EPOCH.toordinal() + self.day)


def parse_as_of(value: date | datetime | str | None) -> int | None:
    """A user's as-of date as a day number; None stays None (meaning: the latest order day)."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value.strip())
        except ValueError:
            raise UsageError(f"--as-of {value!r} is not a date; write it as YYYY-MM-DD, e.g. 2025-12-31.") from None
    if isinstance(value, datetime):
        value = value.date()
    return (value - _EPOCH).days


def day_number(ts: ir.TimestampValue) -> ir.IntegerValue:
    """The UTC day of a time stamp as days since 1970-01-01."""
    return (ts.epoch_seconds() // 86_400).cast("int64")


def profile_orders(ws: object) -> ir.Table:
    """Valid orders with a profile: profile_id, order day, amount-relevant columns (lazy)."""
    from cxlens.semantic.sources import Context, valid_orders

    o = valid_orders(Context(ws.table))  # type: ignore[attr-defined]
    o = o.filter(o.profile_id.notnull())
    return o.mutate(day=day_number(o.ordered_at))


def uses_margin(orders: ir.Table) -> bool:
    """Whether monetary value is margin: true when any valid order carries a cost."""
    return int(orders.cost.count().execute()) > 0


def resolve_as_of(orders: ir.Table, as_of: date | datetime | str | None) -> AsOf:
    """The as-of day: the given date, or the latest valid order's day; an error when there are no orders."""
    from cxlens.errors import NotFoundError

    span = orders.aggregate(lo=orders.day.min(), hi=orders.day.max()).execute()
    if span.empty or span.hi.isnull().iloc[0]:
        raise NotFoundError("The workspace has no valid orders with a profile; ingest orders and run "
                            "`cxlens identity resolve` first.")
    lo, hi = int(span.lo.iloc[0]), int(span.hi.iloc[0])
    day = parse_as_of(as_of)
    if day is None:
        return AsOf(hi)
    if day < lo:
        first = AsOf(lo).date.isoformat()
        raise UsageError(f"--as-of {AsOf(day).date.isoformat()} is before the first order ({first}); "
                         f"choose a date from {first} on.")
    return AsOf(day)


def quintile(value: ir.NumericColumn, *, higher_is_better: bool = True) -> ir.IntegerColumn:
    """1..5 by rank with ties together: 1 + floor(5 * (profiles strictly worse) / profiles)."""
    order = value if higher_is_better else value.desc()
    rank = ibis.rank().over(ibis.window(order_by=order))
    n = value.count().over(ibis.window())
    return (1 + (5 * rank) // n).cast("int64")


def segment_of(r: ir.IntegerColumn, fm: ir.IntegerColumn) -> ir.StringColumn:
    """The named segment of an (R, FM) pair on GRID."""
    cases = [((r == rs) & (fm == f + 1), name) for rs, row in GRID.items() for f, name in enumerate(row)]
    return ibis.cases(*cases, else_=None)


def rfm_table(ws: object, *, as_of: date | datetime | str | None = None, use_margin: bool | None = None) -> tuple[ir.Table, AsOf, bool]:
    """Lazy per-profile RFM (profile_id, recency_days, frequency, monetary, r/f/m/fm scores, rfm_segment).

    Returns the expression, the as-of day and whether monetary is margin (``use_margin`` None:
    margin when any order has a cost).
    """
    o = profile_orders(ws)
    at = resolve_as_of(o, as_of)
    margin = uses_margin(o) if use_margin is None else use_margin
    o = o.filter(o.day <= at.day)
    amount = (o.margin if margin else o.revenue).fill_null(0).cast("float64")
    per = o.group_by(o.profile_id).aggregate(last_day=o.day.max(), frequency=o.count(), monetary=amount.sum())
    per = per.mutate(recency_days=(ibis.literal(at.day) - per.last_day).cast("int64"))
    per = per.mutate(r_score=quintile(per.recency_days, higher_is_better=False), f_score=quintile(per.frequency),
                     m_score=quintile(per.monetary))
    per = per.mutate(fm_score=((per.f_score + per.m_score + 1) // 2).cast("int64"))
    per = per.mutate(rfm_score=per.r_score.cast("string") + per.f_score.cast("string") + per.m_score.cast("string"),
                     rfm_segment=segment_of(per.r_score, per.fm_score))
    return per.select("profile_id", "recency_days", "frequency", "monetary", "r_score", "f_score", "m_score",
                      "fm_score", "rfm_score", "rfm_segment"), at, margin


def rfm_scores(ws: object, *, as_of: date | datetime | str | None = None, use_margin: bool | None = None) -> pd.DataFrame:
    """Per-profile RFM as a DataFrame, ordered by profile_id (see the module docstring for the rules)."""
    t, _, _ = rfm_table(ws, as_of=as_of, use_margin=use_margin)
    frame = t.order_by("profile_id").execute()
    for c in ("recency_days", "frequency", "r_score", "f_score", "m_score", "fm_score"):
        frame[c] = frame[c].astype("int64")
    return frame
