"""The report's Customer value section: predicted CLV, its validation, CLV:CAC, value classes.

BG/NBD and Gamma-Gamma are fitted on all valid orders (margin when the orders carry costs) and
predict 52 weeks ahead; the same models are refitted with the last quarter of the order history
held out, and their predicted repeat purchases in it are set against the actual ones, so a reader
sees how far to trust the numbers. When `cxlens hvc` has written `customer_value`, the RFM
segments and value classes are summarized too. Numbers are formatted here; the template lays out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import ibis
import pandas as pd

from cxlens.errors import CxlensError
from cxlens.report.formatting import format_value

HORIZON = "52w"
HOLDOUT_SHARE = 0.25
"""Share of the order history (in days) held out to validate the fit."""
CLV_BANDS = 10


@dataclass(frozen=True)
class ValueSummary:
    """The Customer value section, formatted; `note` says why a part is missing."""

    headline: dict[str, str] = field(default_factory=dict)
    histogram: pd.DataFrame | None = None
    top: list[dict[str, str]] = field(default_factory=list)
    holdout: list[dict[str, str]] = field(default_factory=list)
    holdout_text: str | None = None
    cac: list[dict[str, str]] = field(default_factory=list)
    classes: list[dict[str, str]] = field(default_factory=list)
    segments: list[dict[str, str]] = field(default_factory=list)
    declared: list[dict[str, str]] = field(default_factory=list)
    """The definitions file's (macro and micro) segments with their value and growth potential."""
    note: str | None = None


def summarize_value(ws: Any, currency: str, catalog: Any = None) -> ValueSummary:
    """Fit, predict and validate on the workspace; a workspace the models cannot fit gets a note."""
    summary = _summarize(ws, currency)
    declared = _declared(ws, currency, catalog) if catalog is not None and catalog.segments else []
    return replace(summary, declared=declared) if declared else summary


def _declared(ws: Any, currency: str, catalog: Any) -> list[dict[str, str]]:
    """Each declared segment's customers, revenue, predicted value and growth potential."""
    try:
        frame = catalog.segment_value(catalog.context(ws))
    except CxlensError:
        return []
    return [{"segment": f"{r.within} → {r.segment}" if isinstance(r.within, str) else str(r.segment),
             "customers": f"{int(r.customers):,}", "revenue": format_value(r.revenue, "currency", currency),
             "revenue_90d": format_value(r.revenue_90d, "currency", currency),
             "predicted": format_value(r.predicted_clv, "currency", currency),
             "growth": format_value(r.growth_potential, "currency", currency)} for r in frame.itertuples()]


def _summarize(ws: Any, currency: str) -> ValueSummary:
    from cxlens.clv.workspace import (
        clv_to_cac_by_channel,
        fit_workspace,
        predict_workspace,
    )

    if "orders" not in ws.backend.tables():
        return ValueSummary(note="No orders: ingest orders to value customers.")
    margin = _has_costs(ws)
    try:
        prediction = predict_workspace(ws, horizon=HORIZON, use_margin=margin)
    except CxlensError as exc:
        return ValueSummary(note=f"Customer lifetime value could not be predicted: {exc}", **_classes(ws, currency))
    frame = prediction.frame
    basis = "margin" if margin else "revenue"
    headline = {
        "customers": f"{len(frame):,}",
        "total": format_value(float(frame["clv"].sum()), "currency", currency),
        "mean": format_value(float(frame["clv"].mean()), "currency", currency),
        "p_alive": format_value(float(frame["p_alive"].mean()), "share"),
        "purchases": f"{frame['expected_purchases'].sum():,.0f}",
        "basis": basis,
        "params": ", ".join(f"{k} {v:.3g}" for k, v in prediction.fit.purchases.params_.items()),
    }
    top = frame.sort_values(["clv", "profile_id"], ascending=[False, True]).head(10)
    top_rows = [{"profile": r.profile_id, "purchases": f"{r.expected_purchases:.2f}", "p_alive": format_value(r.p_alive, "share"),
                 "spend": format_value(r.expected_spend, "currency", currency), "clv": format_value(r.clv, "currency", currency)}
                for r in top.itertuples()]
    holdout_rows, holdout_text = _holdout(ws, fit_workspace, margin)
    try:
        cac = clv_to_cac_by_channel(ws, frame)
    except CxlensError:
        cac = pd.DataFrame()
    cac_rows = [{"channel": r.acquisition_channel, "customers": f"{r.customers:,}",
                 "clv": format_value(r.mean_clv, "currency", currency), "cac": format_value(r.cac, "currency", currency),
                 "ratio": "—" if not math.isfinite(r.clv_to_cac) else f"{r.clv_to_cac:.1f}",
                 "tone": "neutral" if not math.isfinite(r.clv_to_cac) else "good" if r.clv_to_cac >= 3 else "bad" if r.clv_to_cac < 1 else "neutral"}
                for r in cac.itertuples()] if not cac.empty and cac["cac"].notna().any() else []
    return ValueSummary(headline=headline, histogram=_bands(frame["clv"]), top=top_rows, holdout=holdout_rows,
                        holdout_text=holdout_text, cac=cac_rows, **_classes(ws, currency))


def _has_costs(ws: Any) -> bool:
    """Margin when any valid order with a profile has a cost: the same basis as the value classes."""
    from cxlens.value.rfm import profile_orders, uses_margin

    return uses_margin(profile_orders(ws))


def _holdout(ws: Any, fit_workspace: Any, margin: bool) -> tuple[list[dict[str, str]], str | None]:
    """Refit with the last quarter of the order days held out; predicted vs actual repeat purchases."""
    o = ws.table("orders")
    row = o.aggregate(first=o.ordered_at.min(), last=o.ordered_at.max()).execute().iloc[0]
    if pd.isna(row["first"]):
        return [], None
    first, last = pd.Timestamp(row["first"]), pd.Timestamp(row["last"])
    days = (last.normalize() - first.normalize()).days
    if days < 28:
        return [], "The order history is shorter than four weeks: no holdout check."
    end = (last.normalize() - timedelta(days=max(int(days * HOLDOUT_SHARE), 7))).date()
    try:
        fitted = fit_workspace(ws, calibration_end=end, spend=False, use_margin=margin)
    except CxlensError as exc:
        return [], f"Holdout check not possible: {exc}"
    h = fitted.holdout
    assert h is not None
    rows = [{"bucket": r["frequency"], "customers": f"{r['customers']:,}", "actual": f"{r['actual']:,.0f}",
             "predicted": f"{r['predicted']:,.1f}"} for r in h["by_frequency"] if r["customers"]]
    error = h["relative_error"]
    text = (f"Fitted on orders up to {end:%Y-%m-%d}, the model predicted {h['predicted']:,.0f} repeat purchases in the "
            f"{h['duration']:.1f} weeks after; there were {h['actual']:,.0f}"
            + (f" ({100 * error:+.1f}%)." if error is not None else "."))
    return rows, text


def _bands(clv: pd.Series) -> pd.DataFrame:
    """Customers per CLV band: ten equal bands up to the 99th percentile, the rest in the last."""
    clv = clv[clv.notna() & (clv.abs() != float("inf"))]
    top = float(clv.quantile(0.99)) if len(clv) else 0.0
    if not math.isfinite(top) or top <= 0:
        top = float(clv.max()) if len(clv) and clv.max() > 0 else 1.0
    width = top / CLV_BANDS
    band = (clv // width).clip(upper=CLV_BANDS - 1).astype(int)
    counts = band.value_counts().reindex(range(CLV_BANDS), fill_value=0)
    return pd.DataFrame({"low": [i * width for i in range(CLV_BANDS)], "high": [(i + 1) * width for i in range(CLV_BANDS)],
                         "customers": counts.to_numpy()})


def _classes(ws: Any, currency: str) -> dict[str, list[dict[str, str]]]:
    """RFM segments and value classes from `customer_value` (written by `cxlens hvc` / `cxlens rfm`)."""
    if "customer_value" not in ws.backend.tables():
        return {}
    t = ws.table("customer_value")
    cols = set(t.columns)
    out: dict[str, list[dict[str, str]]] = {}
    money = "monetary" if "monetary" in cols else None
    if "rfm_segment" in cols:
        agg = {"customers": t.count()}
        if money:
            agg["value"] = t[money].sum()
        seg = t.group_by("rfm_segment").aggregate(**agg).order_by(ibis.desc("customers")).execute()
        total = max(int(seg["customers"].sum()), 1)
        out["segments"] = [{"segment": str(r["rfm_segment"]), "customers": f"{int(r['customers']):,}",
                            "share": format_value(r["customers"] / total, "share"),
                            "value": format_value(float(r["value"]), "currency", currency) if money else "—"}
                           for _, r in seg.iterrows()]
    labels = [c for c in ("hvc", "high_volume", "lapsing_hvc", "emerging_hvc") if c in cols]
    if labels:
        counts = t.aggregate(**{c: t[c].cast("int64").sum() for c in labels}).execute().iloc[0]
        names = {"hvc": "High-value customers", "high_volume": "High-volume, low-value customers",
                 "lapsing_hvc": "Lapsing high-value customers (re-engage)", "emerging_hvc": "Emerging high-value customers"}
        out["classes"] = [{"label": names[c], "id": c, "customers": f"{int(counts[c] or 0):,}"} for c in labels]
    return out
