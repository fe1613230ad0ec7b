"""Summaries of customer_value for people and scripts: RFM segment sizes and value, class sizes and evidence.

The per-customer table can have millions of rows; what a report or the CLI shows is a handful of
numbers per segment or class, aggregated in the engine from the written customer_value table.
"""

from __future__ import annotations

import math
from typing import Any

import ibis
import ibis.expr.types as ir
import pandas as pd

from cxlens.value.classes import CLASSES, TABLE, ValueResult
from cxlens.value.rfm import GRID, SEGMENT_HELP, SEGMENTS, AsOf

CLASS_LABELS: dict[str, str] = {
    "hvc": "High-value customers",
    "lapsing_hvc": "Lapsing high-value customers",
    "emerging_hvc": "Emerging high-value customers",
    "high_volume": "High-volume customers",
}
"""Human names of the label columns."""

CLASS_HELP: dict[str, str] = {
    "hvc": "high value (historical or predicted), repeat buyers, little price sensitivity, broad baskets",
    "lapsing_hvc": ("HVCs silent for longer than k x their own usual gap between purchases (or P(alive) low), and quiet in "
                    "every channel for longer than quiet_gaps x their usual gap between active days (or with a support "
                    "case unresolved since their last purchase)"),
    "emerging_hvc": "recently HVC-like, not before: widening category breadth, rising spend, fewer deals",
    "high_volume": "many orders (top share) with a below-median order value; not HVCs",
}

CLASS_ORDER: dict[str, list[tuple[str, bool]]] = {
    "hvc": [("monetary", False), ("profile_id", True)],
    "lapsing_hvc": [("monetary", False), ("profile_id", True)],
    "emerging_hvc": [("hvc_score_recent", False), ("profile_id", True)],
    "high_volume": [("frequency", False), ("profile_id", True)],
}
"""How each class's top members are ranked: most valuable, most clearly emerging, most frequent."""

EVIDENCE_MEDIANS: tuple[str, ...] = (
    "frequency", "monetary", "aov", "value_pct", "predicted_clv", "p_alive", "coupon_share", "full_price_share",
    "items_per_order", "categories", "latest_nps", "usual_gap_days", "days_silent", "days_inactive", "activity_gap_days",
    "hvc_score",
    "hvc_score_earlier", "hvc_score_recent",
)
"""Evidence columns summarized (as medians) per class."""

TOP_COLUMNS: tuple[str, ...] = (
    "profile_id", "evidence", "rfm_segment", "frequency", "monetary", "aov", "predicted_clv", "p_alive", "coupon_share",
    "full_price_share", "latest_nps", "usual_gap_days", "days_silent", "hvc_score", "hvc_score_recent",
)
"""Columns listed for a class's top members."""


def _plain(v: Any) -> Any:
    """A numpy scalar as a Python value; NaN and NA (the median of no rows) as None."""
    v = v.item() if hasattr(v, "item") else v
    return None if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) else v


def _records(t: ir.Table) -> list[dict[str, Any]]:
    return [{k: _plain(v) for k, v in r.items()} for r in t.execute().to_dict("records")]


def rfm_segment_summary(cv: ir.Table) -> list[dict[str, Any]]:
    """One row per RFM segment (all eleven, best first): customers, share, value and averages."""
    total = int(cv.count().execute())
    per = cv.group_by("rfm_segment").aggregate(
        customers=cv.count(), monetary=cv.monetary.sum(), mean_monetary=cv.monetary.mean(),
        mean_frequency=cv.frequency.cast("float64").mean(), median_recency_days=cv.recency_days.median(),
    )
    per = per.mutate(share=per.customers.cast("float64") / max(total, 1))
    found = {r["rfm_segment"]: r for r in _records(per)}
    rows = []
    for name in SEGMENTS:
        r = found.get(name, {"customers": 0, "monetary": 0.0, "mean_monetary": None, "mean_frequency": None,
                             "median_recency_days": None, "share": 0.0})
        rows.append({"segment": name, "customers": int(r["customers"]), "share": float(r["share"] or 0.0),
                     "monetary": float(r["monetary"] or 0.0), "mean_monetary": r["mean_monetary"],
                     "mean_frequency": r["mean_frequency"], "median_recency_days": r["median_recency_days"],
                     "description": SEGMENT_HELP[name]})
    return rows


def grid() -> dict[str, list[str]]:
    """The R x FM grid as {R score: [segment for FM 1..5]}, for JSON and docs."""
    return {str(r): list(row) for r, row in GRID.items()}


def class_summary(cv: ir.Table, *, limit: int) -> list[dict[str, Any]]:
    """Per class: members, share of customers and of value, median evidence, and the top `limit` members."""
    total = cv.aggregate(n=cv.count(), value=cv.monetary.sum()).execute()
    n, value = int(total.n.iloc[0]), float(total.value.iloc[0] or 0.0)
    out = []
    for name in CLASSES:
        members = cv.filter(cv[name])
        agg = members.aggregate(_customers=members.count(), _value=members.monetary.sum(),
                                **{c: members[c].cast("float64").median() for c in EVIDENCE_MEDIANS})
        (row,) = _records(agg)
        keys = [ibis.desc(c) if not asc else ibis.asc(c) for c, asc in CLASS_ORDER[name]]
        top = _records(members.order_by(keys).limit(limit).select(*TOP_COLUMNS)) if limit else []
        count = int(row.pop("_customers"))
        money = float(row.pop("_value") or 0.0)
        out.append({"class": name, "label": CLASS_LABELS[name], "definition": CLASS_HELP[name], "customers": count,
                    "share": count / n if n else 0.0, "value_share": money / value if value else 0.0,
                    "evidence": row, "top": top})
    return out


def header_json(result: ValueResult) -> dict[str, Any]:
    """What both `cxlens rfm` and `cxlens hvc` JSON start with: the as-of day, basis, customers and windows."""
    return {"as_of": result.as_of.isoformat(), "value_basis": result.value_basis, "customers": len(result.frame),
            "table": TABLE, "recent_from": AsOf(result.windows.recent_from).date.isoformat(),
            "predicted": result.predicted}


def rfm_json(result: ValueResult, cv: ir.Table) -> dict[str, Any]:
    """The `cxlens rfm --format json` document, summarized from `cv` (customer_value or the unsaved result)."""
    return {**header_json(result), "grid": grid(), "segments": rfm_segment_summary(cv)}


def hvc_json(result: ValueResult, cv: ir.Table, *, limit: int) -> dict[str, Any]:
    """The `cxlens hvc --format json` document, summarized from `cv` (customer_value or the unsaved result)."""
    return {**header_json(result), "settings": result.settings.as_dict(), "classes": class_summary(cv, limit=limit)}


def unsaved(result: ValueResult) -> ir.Table:
    """The result as a table the summaries can read without writing customer_value (the read API's GETs)."""
    return ibis.memtable(result.frame)
