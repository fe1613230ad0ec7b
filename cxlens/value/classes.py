"""Customer value classes: high-value (HVC), high-volume, lapsing HVC and emerging HVC, with their evidence.

Revenue alone confuses two kinds of good customer: a high-value customer is worth a lot and stays
so without being bought (few coupons, full prices, broad baskets, recommends the brand); a
high-volume customer buys often but little each time, and often on deals. Retention money is
best spent on HVCs who are slipping away, and upgrade attention on customers turning into HVCs,
so those are classes of their own. Every label is a rule over evidence columns the analyst can
read (cxlens.value.evidence), never a black box.

The HVC score of a window (whole history, earlier or recent window) is the mean of the
percentiles (0..1, among customers who ordered in that window) of five signals, each skipped
when unknown:

1. value: historical margin (or revenue); for the whole history the better of historical and
   predicted 52-week CLV percentile, so a strong new customer is not held back by a short history;
2. category breadth: distinct product categories bought;
3. full-price share of items;
4. coupon avoidance: 1 - share of orders with a coupon;
5. average order value.

Rules (thresholds are ``ValueSettings`` fields):

- ``hvc``: HVC score >= ``hvc_score`` over the whole history and at least ``min_orders`` orders,
  unless the customer is an emerging HVC.
- ``emerging_hvc``: recent-window score >= ``emerging_score``, earlier-window score below it and
  at least ``min_rise`` lower, at least one order in the earlier window and known for at least
  ``known_days`` before the recent window (emerging means departing from an earlier purchase
  pattern: a customer whose first order is recent and HVC-like is an HVC from the start), and
  the shift is visible: category breadth grew by at least ``breadth_gain`` categories (without
  category data: spend per 30 days at least doubled). The rise guards against HVCs whose one or
  two earlier orders put their earlier score just under the bar by chance.
- ``lapsing_hvc``: an HVC silent for at least ``min_silent_days`` and either for more than ``k``
  times their own usual gap between purchases (trusted from ``min_purchase_days`` purchase days)
  or with P(alive) below ``p_alive_below``; with no activity of any kind (visit, contact, survey)
  for ``min_silent_days`` and longer than one usual purchase gap; and with a sign that they have
  gone rather than paused: no activity of any kind for more than ``quiet_gaps`` of their usual
  gaps between active days, or an unresolved support case since their last purchase. Still an HVC.
  A silence of purchases alone is weak evidence for a customer who does nothing but buy every
  few weeks (a few skipped purchases happen by chance), strong for one who also visited weekly;
  measuring the quiet in the customer's own rhythm across all channels tells the two apart, and
  a complaint left unresolved is the classic reason a good customer stops.
- ``high_volume``: order count in the top ``volume_share`` of customers with an average order
  value below the median, and not an HVC of any kind.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime

import ibis
import ibis.expr.types as ir
import pandas as pd

from cxlens.errors import UsageError
from cxlens.value.evidence import (
    Windows,
    available,
    evidence_table,
    percentile,
    windows,
)
from cxlens.value.predicted import predicted_value
from cxlens.value.rfm import AsOf, profile_orders, resolve_as_of, rfm_table, uses_margin

TABLE = "customer_value"
CLASSES: tuple[str, ...] = ("hvc", "lapsing_hvc", "emerging_hvc", "high_volume")
"""Label columns of customer_value, in the order they are reported."""


@dataclass(frozen=True)
class ValueSettings:
    """Thresholds of the value classes; defaults are general-purpose starting points."""

    hvc_score: float = 0.65
    """Minimum HVC score (mean signal percentile) over the whole history for `hvc`."""
    min_orders: int = 2
    """Minimum valid orders for `hvc`: one purchase shows no loyalty yet."""
    emerging_score: float = 0.6
    """Recent-window HVC score an emerging HVC reaches and its earlier-window score stays below."""
    min_rise: float = 0.15
    """How much higher an emerging HVC's recent-window score is than its earlier-window score."""
    known_days: int = 30
    """Days a customer must have been known before the recent window to count as emerging."""
    breadth_gain: int = 2
    """Categories an emerging HVC's recent window must add over the earlier one."""
    recent_days: int | None = None
    """Length of the recent window in days (default: the later half of the order history)."""
    k: float = 3.0
    """Silence longer than k x the customer's usual gap between purchases marks a lapsing HVC."""
    min_silent_days: int = 30
    """Silence shorter than this is never lapsing, whatever the usual gap."""
    min_purchase_days: int = 2
    """Purchase days a usual gap needs (two give one gap; raise it to trust only longer histories)."""
    p_alive_below: float = 0.3
    """P(alive) below this (BG/NBD) also marks a silent HVC as lapsing."""
    quiet_gaps: float = 6.0
    """A lapsing HVC has done nothing at all for more than this many of their usual gaps between active days
    (unless a support case of theirs is unresolved since their last purchase): a customer still around, active
    at that rhythm, stays so quiet by chance about once in e^6 = 400 times."""
    volume_share: float = 0.2
    """High-volume customers are in this top share by number of orders."""
    predict: bool = True
    """Fit BG/NBD + Gamma-Gamma for predicted CLV and P(alive) (skipped when they cannot be fitted)."""

    def __post_init__(self) -> None:
        for name in ("hvc_score", "emerging_score", "min_rise", "p_alive_below", "volume_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise UsageError(f"{name} {value!r} is not a share; use a number from 0 to 1.")
        if self.k <= 0:
            raise UsageError(f"k {self.k!r} must be a positive number of usual purchase gaps, e.g. 3.")
        if self.quiet_gaps <= 0:
            raise UsageError(f"quiet_gaps {self.quiet_gaps!r} must be a positive number of usual gaps between "
                             "active days, e.g. 6.")
        for name in ("min_orders", "known_days", "breadth_gain", "min_silent_days", "min_purchase_days"):
            if getattr(self, name) < 0:
                raise UsageError(f"{name} {getattr(self, name)!r} must not be negative.")
        if self.recent_days is not None and self.recent_days < 1:
            raise UsageError(f"recent_days {self.recent_days!r} must be a positive number of days.")

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class ValueResult:
    """customer_value as a frame, with the as-of day, value basis and settings it was computed with."""

    frame: pd.DataFrame
    as_of: date
    value_basis: str
    settings: ValueSettings
    windows: Windows
    predicted: bool


def _mean_known(*parts: ir.FloatingValue) -> ir.FloatingValue:
    """Mean of the non-null values; NULL when all are unknown."""
    total = sum((p.fill_null(0.0) for p in parts), ibis.literal(0.0))
    known = sum((p.notnull().cast("int64") for p in parts), ibis.literal(0))
    return ibis.ifelse(known > 0, total / known.cast("float64"), ibis.null("float64"))


def _score(t: ir.Table, suffix: str, value_pct: ir.FloatingValue, ordered: ir.BooleanValue) -> ir.FloatingValue:
    """The HVC score of one window: mean percentile of value, breadth, full price, coupon avoidance, AOV."""
    return ibis.ifelse(ordered, _mean_known(
        value_pct,
        percentile(t[f"categories{suffix}"].cast("float64"), ordered),
        percentile(t[f"full_price_share{suffix}"], ordered),
        percentile(-t[f"coupon_share{suffix}"], ordered),
        percentile(t[f"aov{suffix}"], ordered),
    ), ibis.null("float64"))


def classify(t: ir.Table, win: Windows, s: ValueSettings, *, has_categories: bool) -> ir.Table:
    """Add HVC scores and the four labels to an evidence table (lazy)."""
    t = t.mutate(clv_pct=percentile(t.predicted_clv))
    value_signal = ibis.greatest(t.value_pct, t.clv_pct.fill_null(0.0))
    t = t.mutate(hvc_score=_score(t, "", value_signal, t.orders > 0),
                 hvc_score_earlier=_score(t, "_earlier", t.value_pct_earlier, t.orders_earlier > 0),
                 hvc_score_recent=_score(t, "_recent", t.value_pct_recent, t.orders_recent > 0))
    if has_categories:
        shift = t.categories_recent.fill_null(0) >= t.categories_earlier.fill_null(0) + s.breadth_gain
    else:
        shift = t.spend_rate_recent >= 2.0 * t.spend_rate_earlier
    emerging = ((t.hvc_score_recent >= s.emerging_score).fill_null(False)
                & (t.hvc_score_earlier < s.emerging_score).fill_null(False)
                & (t.hvc_score_recent - t.hvc_score_earlier >= s.min_rise).fill_null(False)
                & (t.orders_earlier > 0).fill_null(False) & (t.first_seen_day < win.recent_from - s.known_days) & shift)
    hvc = (t.hvc_score >= s.hvc_score).fill_null(False) & (t.orders >= s.min_orders) & ~emerging
    gap = t.usual_gap_days
    overdue = (t.purchase_days >= s.min_purchase_days) & (t.days_silent > s.k * gap).fill_null(False)
    silent = (t.days_silent >= s.min_silent_days) & (overdue | (t.p_alive < s.p_alive_below).fill_null(False))
    quiet = (t.days_inactive >= s.min_silent_days) & (t.days_inactive > gap).fill_null(False)
    gone = ((t.days_inactive > s.quiet_gaps * t.activity_gap_days).fill_null(False)
            | (t.days_since_unresolved_case <= t.days_silent).fill_null(False))
    lapsing = hvc & silent & quiet & gone
    volume = ((t.orders_pct >= 1.0 - s.volume_share) & (t.aov_pct < 0.5)).fill_null(False) & ~hvc & ~emerging
    t = t.mutate(hvc=hvc, lapsing_hvc=lapsing, emerging_hvc=emerging, high_volume=volume)
    return t.mutate(value_class=ibis.cases((t.lapsing_hvc, "lapsing hvc"), (t.hvc, "hvc"), (t.emerging_hvc, "emerging hvc"),
                                           (t.high_volume, "high volume"), else_="other"))


COLUMNS: tuple[str, ...] = (
    "profile_id", "as_of", "recency_days", "frequency", "monetary", "r_score", "f_score", "m_score", "fm_score",
    "rfm_score", "rfm_segment", "value_class", "hvc", "lapsing_hvc", "emerging_hvc", "high_volume", "evidence",
    "value_basis", "hvc_score", "hvc_score_earlier", "hvc_score_recent", "value_pct", "predicted_clv", "clv_pct",
    "p_alive", "aov", "aov_pct", "orders_pct", "coupon_share", "full_price_share", "items_per_order", "categories",
    "latest_nps", "purchase_days", "usual_gap_days", "days_silent", "days_inactive", "orders_earlier", "orders_recent",
    "spend_rate_earlier", "spend_rate_recent", "categories_earlier", "categories_recent", "coupon_share_earlier",
    "coupon_share_recent", "full_price_share_earlier", "full_price_share_recent", "first_order", "last_order",
    "active_days", "activity_gap_days", "days_since_unresolved_case",
)
"""Columns of the customer_value table, in order."""


def customer_value(ws: object, *, as_of: date | datetime | str | None = None,
                   settings: ValueSettings | None = None) -> ValueResult:
    """RFM, evidence and value classes per profile with valid orders, computed in the engine."""
    from cxlens.value.sentences import evidence_sentences

    s = settings or ValueSettings()
    orders = profile_orders(ws)
    at: AsOf = resolve_as_of(orders, as_of)
    margin = uses_margin(orders)
    win = windows(orders.filter(orders.day <= at.day), at, s.recent_days)
    have = available(ws, orders)
    ev = evidence_table(ws, orders, win, margin, have)
    predicted = predicted_value(ws, at.date.isoformat(), use_margin=margin) if s.predict else None
    if predicted is None:
        pred = ibis.memtable({"_pp": [], "predicted_clv": [], "p_alive": []},
                             schema={"_pp": "string", "predicted_clv": "float64", "p_alive": "float64"})
    else:
        pred = ibis.memtable(predicted.rename(columns={"profile_id": "_pp"}))
    ev = ev.left_join(pred, ev.profile_id == pred._pp).drop("_pp")
    t = classify(ev, win, s, has_categories=have.categories)
    rfm, _, _ = rfm_table(ws, as_of=at.date, use_margin=margin)
    rfm = rfm.rename(_rp="profile_id")
    t = t.join(rfm, t.profile_id == rfm._rp).drop("_rp")
    t = t.mutate(value_basis=ibis.literal("margin" if margin else "revenue"), first_order=t.first_day,
                 last_order=t.last_day, as_of=ibis.literal(at.day), evidence=ibis.literal(""))
    frame = t.select(*COLUMNS).order_by("profile_id").execute()
    for c in ("first_order", "last_order", "as_of"):
        frame[c] = pd.to_datetime(frame[c].astype("int64"), unit="D").dt.date
    for c in CLASSES:
        frame[c] = frame[c].astype(bool)
    frame["evidence"] = evidence_sentences(frame)
    return ValueResult(frame=frame, as_of=at.date, value_basis="margin" if margin else "revenue", settings=s,
                       windows=win, predicted=predicted is not None)


def write_customer_value(ws: object, result: ValueResult) -> None:
    """Replace the workspace table customer_value with the result in one step."""
    frame = result.frame
    with ws.transaction():  # type: ignore[attr-defined]
        ws.backend.replace_table(TABLE, frame)  # type: ignore[attr-defined]
