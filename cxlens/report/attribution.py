"""The report's Attribution section: channels x models, personalized vs generic touches, channel ROI.

The workspace's conversion paths (docs/attribution.md) are built once and credited by first touch,
last touch, linear, position-based (40/20/40), the exact order-1 Markov chain and Shapley values,
so a reader sees where the models agree and where the credit depends on the model chosen.
Personalized and generic touches (overall and within each channel) and the ROI of channels with media or personalization costs are
credited by the Markov model. Numbers are formatted here; the template lays them out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from cxlens.errors import CxlensError
from cxlens.report.charts import PALETTE, _layout
from cxlens.report.formatting import format_value

REPORT_MODELS: tuple[str, ...] = ("first", "last", "linear", "position", "markov", "shapley")
MODEL_LABELS: dict[str, str] = {"first": "First touch", "last": "Last touch", "linear": "Linear",
                                "position": "Position 40/20/40", "markov": "Markov (exact)", "shapley": "Shapley"}
LOOKBACK_DAYS = 30


@dataclass(frozen=True)
class AttributionSummary:
    """The Attribution section, formatted; `note` says why a part is missing.

    `conversions` and `revenue` hold one row per channel with its share under each model (keys
    are the model names); `shares` holds the same conversion shares as numbers for the chart.
    """

    headline: dict[str, str] = field(default_factory=dict)
    models: tuple[str, ...] = REPORT_MODELS
    conversions: list[dict[str, str]] = field(default_factory=list)
    revenue: list[dict[str, str]] = field(default_factory=list)
    personalized: list[dict[str, str]] = field(default_factory=list)
    personalized_by_channel: list[dict[str, str]] = field(default_factory=list)
    """Personalized vs generic touches within each channel that has campaign touches (email personalized vs email generic)."""
    roi: list[dict[str, str]] = field(default_factory=list)
    shares: pd.DataFrame | None = None
    note: str | None = None


def summarize_attribution(ws: Any, currency: str, *, lookback_days: float = LOOKBACK_DAYS) -> AttributionSummary:
    """Credit the workspace's conversions with every report model; a workspace without journeys gets a note."""
    from cxlens.attribution import attribute
    from cxlens.attribution.workspace import NO_CAMPAIGN, Journeys, roi

    tables = ws.backend.tables()
    for name, what in (("orders", "orders (conversions)"), ("events", "sessions (web or app events)")):
        if name not in tables or ws.table(name).count().to_pyarrow().as_py() == 0:
            return AttributionSummary(note=f"No {what}: attribution needs both orders and the touches before them.")
    try:
        with Journeys(ws, lookback_days=lookback_days) as journeys:
            built = journeys.paths("channel")
            if built.paths.total_conversions == 0:
                return AttributionSummary(note=f"No order had a session or click of the same customer in the "
                                               f"{lookback_days:g} days before it, so there is nothing to attribute.")
            results = {m: attribute(built.paths, m) for m in REPORT_MODELS}
            rows, unmatched = roi(results["markov"], journeys.costs("channel"))
            personal = journeys.personalized("markov")
            within = journeys.personalized("markov", within_channels=True)
    except CxlensError as exc:
        return AttributionSummary(note=f"Attribution could not be computed: {exc}")
    markov = results["markov"]
    channels = [c.channel for c in markov.channels]
    shares = pd.DataFrame({m: {c.channel: c.share for c in r.channels} for m, r in results.items()}).reindex(channels)
    value_shares = pd.DataFrame({m: {c.channel: (c.revenue / r.total_revenue if r.total_revenue else None)
                                     for c in r.channels} for m, r in results.items()}).reindex(channels)
    conversions = [{"channel": ch, **{m: format_value(shares.loc[ch, m], "share") for m in REPORT_MODELS},
                    "credited": format_value(markov.credit(ch).conversions, "count")} for ch in channels]
    revenue = [{"channel": ch, **{m: format_value(value_shares.loc[ch, m], "share") for m in REPORT_MODELS},
                "credited": format_value(markov.credit(ch).revenue, "currency", currency)} for ch in channels]
    headline = {
        "conversions": f"{markov.total_conversions:,.0f}",
        "revenue": format_value(markov.total_revenue, "currency", currency),
        "unattributed": f"{built.unattributed_orders:,} of {built.orders:,} orders",
        "conversion_probability": format_value(markov.extra["conversion_probability"], "share"),
        "lookback": f"{lookback_days:g} days",
        "paths": f"{len(built.paths):,}",
    }
    personalized = [{"kind": r["kind"], "touches": f"{r['touches']:,.0f}",
                     "conversions": format_value(r["conversions"], "count"),
                     "revenue": format_value(r["revenue"], "currency", currency), "share": format_value(r["share"], "share"),
                     "per_100_touches": format_value(r["conversions_per_100_touches"], "number")} for r in personal]
    personalized_by_channel = [
        {"channel": r["channel"], "kind": r["kind"], "touches": f"{r['touches']:,.0f}",
         "conversions": format_value(r["conversions"], "count"), "revenue": format_value(r["revenue"], "currency", currency),
         "per_100_touches": format_value(r["conversions_per_100_touches"], "number")}
        for r in sorted(within, key=lambda r: (r["channel"], r["kind"])) if r["kind"] != NO_CAMPAIGN]
    roi_rows = [{"channel": r["channel"], "cost": format_value(r["cost"], "currency", currency),
                 "revenue": format_value(r["revenue"], "currency", currency), "roi": format_value(r["roi"], "share")}
                for r in rows]
    note = None
    if not roi_rows:
        note = "No media or personalization costs matched a credited channel, so channel ROI is not shown."
    elif unmatched:
        note = "Costs matched to no credited channel: " + ", ".join(
            f"{k} {format_value(v, 'currency', currency)}" for k, v in unmatched.items()) + "."
    return AttributionSummary(headline=headline, conversions=conversions, revenue=revenue, personalized=personalized,
                              personalized_by_channel=personalized_by_channel, roi=roi_rows, shares=shares, note=note)


def attribution_chart(summary: AttributionSummary) -> go.Figure | None:
    """Grouped bars: each channel's share of conversions under each model."""
    if summary.shares is None or summary.shares.empty:
        return None
    frame = summary.shares
    fig = go.Figure()
    for i, model in enumerate(summary.models):
        fig.add_trace(go.Bar(name=MODEL_LABELS[model], x=list(frame.index), y=frame[model].fillna(0.0).tolist(),
                             marker_color=PALETTE[i % len(PALETTE)],
                             hovertemplate=f"{MODEL_LABELS[model]}: %{{y:.1%}}<extra></extra>"))
    fig.update_layout(barmode="group")
    fig.update_xaxes(type="category")
    return _layout(fig, "Share of conversions credited to each channel, by model", "share", "",
                   frame.fillna(0.0).to_numpy().ravel().tolist(), height=340, legend=True)
