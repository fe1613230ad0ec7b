"""One short sentence per customer saying why they carry their value label.

A list of "lapsing HVCs" is only acted on when a marketer can see, per customer, what the label
rests on ("silent 156 days, 5.5x their usual 28-day gap; no activity for 150 days, 30.0x their
usual 5-day gap between active days; was HVC score 0.78: top 4% historical margin, 0% of orders
with a coupon, NPS 10"). The numbers come from the customer_value evidence columns; the wording is fixed so
scripts can show it as is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd


def _known(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v)) and v is not pd.NA


def _top(pct: Any) -> str:
    share = max(1, math.ceil(100 * (1 - float(pct))))
    return f"top {share}%"


def _share(v: Any) -> str:
    return f"{100 * float(v):.0f}%"


def _money(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.2f}"


def _value_part(r: Mapping[str, Any]) -> list[str]:
    basis = r["value_basis"]
    parts = [f"{_top(r['value_pct'])} historical {basis} ({_money(float(r['monetary']))})"]
    if _known(r.get("clv_pct")) and _known(r.get("predicted_clv")) and r["clv_pct"] > r["value_pct"]:
        parts.append(f"{_top(r['clv_pct'])} predicted CLV ({_money(float(r['predicted_clv']))})")
    return parts


def _price_part(r: Mapping[str, Any]) -> list[str]:
    parts = []
    if _known(r.get("coupon_share")):
        parts.append(f"{_share(r['coupon_share'])} of orders with a coupon")
    if _known(r.get("full_price_share")):
        parts.append(f"{_share(r['full_price_share'])} of items at full price")
    if _known(r.get("categories")) and r["categories"]:
        parts.append(f"{int(r['categories'])} categories")
    if _known(r.get("latest_nps")):
        parts.append(f"NPS {int(r['latest_nps'])}")
    return parts


def hvc_sentence(r: Mapping[str, Any]) -> str:
    score = f"HVC score {r['hvc_score']:.2f}: " if _known(r.get("hvc_score")) else ""
    return score + ", ".join([*_value_part(r), f"{int(r['frequency'])} orders", *_price_part(r)])


def lapsing_sentence(r: Mapping[str, Any]) -> str:
    parts = [f"silent {int(r['days_silent'])} days"]
    if _known(r.get("usual_gap_days")) and r["usual_gap_days"] > 0:
        parts[0] += f", {r['days_silent'] / r['usual_gap_days']:.1f}x their usual {r['usual_gap_days']:.0f}-day gap"
    if _known(r.get("activity_gap_days")) and r["activity_gap_days"] > 0:
        parts.append(f"no activity for {int(r['days_inactive'])} days, {r['days_inactive'] / r['activity_gap_days']:.1f}x "
                     f"their usual {r['activity_gap_days']:.0f}-day gap between active days")
    unresolved = r.get("days_since_unresolved_case")
    if _known(unresolved) and unresolved <= r["days_silent"]:
        parts.append(f"a support case left unresolved {int(unresolved)} days ago, after their last purchase")
    if _known(r.get("p_alive")):
        parts.append(f"P(alive) {r['p_alive']:.2f}")
    return "; ".join(parts) + "; was " + hvc_sentence(r)


def _change(label: str, before: Any, after: Any, fmt: Any) -> str | None:
    if not _known(after):
        return None
    return f"{label} {fmt(before) if _known(before) else '-'} -> {fmt(after)}"


def emerging_sentence(r: Mapping[str, Any]) -> str:
    parts = [f"HVC score {r['hvc_score_recent']:.2f} recently vs {r['hvc_score_earlier']:.2f} before"]  # emerging needs an earlier order
    for change in (
        _change("categories", r.get("categories_earlier"), r.get("categories_recent"), lambda v: f"{int(v)}"),
        _change("spend per 30 days", r.get("spend_rate_earlier"), r.get("spend_rate_recent"), lambda v: _money(float(v))),
        _change("coupon orders", r.get("coupon_share_earlier"), r.get("coupon_share_recent"), _share),
        _change("full-price items", r.get("full_price_share_earlier"), r.get("full_price_share_recent"), _share),
    ):
        if change:
            parts.append(change)
    return ", ".join(parts)


def volume_sentence(r: Mapping[str, Any]) -> str:
    parts = [f"{int(r['frequency'])} orders ({_top(r['orders_pct'])})",
             f"average order {_money(float(r['aov']))} (below the median)"]
    if _known(r.get("coupon_share")):
        parts.append(f"{_share(r['coupon_share'])} of orders with a coupon")
    return ", ".join(parts)


def evidence_sentence(r: Mapping[str, Any]) -> str:
    """The sentence for a customer_value row's class ('' for customers in no class)."""
    if r["lapsing_hvc"]:
        return lapsing_sentence(r)
    if r["hvc"]:
        return hvc_sentence(r)
    if r["emerging_hvc"]:
        return emerging_sentence(r)
    if r["high_volume"]:
        return volume_sentence(r)
    return ""


def evidence_sentences(frame: pd.DataFrame) -> list[str]:
    """evidence_sentence for every row of a customer_value frame."""
    return [evidence_sentence(r) for r in frame.to_dict("records")]
