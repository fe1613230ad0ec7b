"""The report's Journeys section: top paths, the funnel, friction's costs and the journey map.

Numbers are computed by cxlens.journeys and formatted here as strings; the figure builders below
turn the kept frames into Plotly figures (a Sankey of the paths to conversion, the funnel, the
friction effects on churn with their intervals). A part the workspace cannot support (no
support contacts, too few answers) is left empty and `note` says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from cxlens.errors import CxlensError
from cxlens.report.charts import PALETTE, TONE_COLOURS
from cxlens.report.formatting import format_value

FUNNEL_STEPS: tuple[str, ...] = ("product_view", "add_to_cart", "checkout_started", "purchase")
OUTCOME_LABELS = {"churn": "Churn", "ces": "CES", "csat": "CSAT", "nps": "NPS"}


@dataclass(frozen=True)
class JourneysSummary:
    """The Journeys section, formatted; the frames feed the figure builders; `note` says what is missing."""

    headline: dict[str, str] = field(default_factory=dict)
    paths: list[dict[str, str]] = field(default_factory=list)
    churn_paths: list[dict[str, str]] = field(default_factory=list)
    funnel: list[dict[str, str]] = field(default_factory=list)
    friction: list[dict[str, str]] = field(default_factory=list)
    """One row per outcome and friction measure, costliest first within an outcome."""
    friction_text: str | None = None
    worst_touchpoints: list[dict[str, str]] = field(default_factory=list)
    micro_journeys: list[dict[str, str]] = field(default_factory=list)
    sankey: pd.DataFrame | None = None
    funnel_frame: pd.DataFrame | None = None
    friction_frame: pd.DataFrame | None = None
    note: str | None = None


def _pp(v: float) -> str:
    return f"{100 * v:+.1f} pp".replace("-", "−")


def _points(v: float) -> str:
    return f"{v:+.2f}".replace("-", "−")


def summarize_journeys(ws: Any, *, funnel_steps: tuple[str, ...] = FUNNEL_STEPS, top: int = 8) -> JourneysSummary:
    """Paths, funnel, friction and journey map of the workspace; parts that fail are noted, not raised."""
    from cxlens.journeys import friction_costs, funnel, journey_map, path_counts

    parts: dict[str, Any] = {}
    notes: list[str] = []
    for name, compute in (("paths", lambda: path_counts(ws, "conversion")), ("churn_paths", lambda: path_counts(ws, "churn")),
                          ("funnel", lambda: funnel(ws, funnel_steps)), ("friction", lambda: friction_costs(ws)),
                          ("map", lambda: journey_map(ws))):
        try:
            parts[name] = compute()
        except CxlensError as exc:
            notes.append(f"{name.replace('_', ' ').capitalize()}: {exc}")
    out: dict[str, Any] = {}
    headline: dict[str, str] = {}
    for key in ("paths", "churn_paths"):
        if key in parts:
            p = parts[key]["paths"].head(top)
            out[key] = [{"path": r.path, "profiles": f"{int(r.profiles):,}", "share": format_value(r.share, "share")}
                        for r in p.itertuples()]
    if "paths" in parts:
        out["sankey"] = parts["paths"]["sankey"]
        headline["converters"] = f"{int(parts['paths']['paths'].profiles.sum()):,}" if len(parts["paths"]["paths"]) else "0"
    if "funnel" in parts:
        f = parts["funnel"].frame
        out["funnel_frame"] = f
        out["funnel"] = [{"step": f"{r.step_index}. {r.step}", "profiles": f"{int(r.profiles):,}",
                          "from_previous": format_value(r.conversion_from_previous, "share"),
                          "from_start": format_value(r.conversion_from_start, "share"), "drop_off": f"{int(r.drop_off):,}",
                          "median_time": format_value(r.median_seconds_from_previous, "seconds")} for r in f.itertuples()]
        if len(f) and f.profiles.iloc[0]:
            headline["funnel_conversion"] = format_value(f.conversion_from_start.iloc[-1], "share")
    if "friction" in parts:
        res = parts["friction"]
        notes += list(res.notes)
        headline["cases"] = f"{int(res.prevalence['cases']):,}"
        headline["friction_share"] = format_value(res.prevalence["friction"], "share")
        rows = []
        for outcome in ("churn", "ces", "csat", "nps"):
            fmt = _pp if outcome == "churn" else _points
            for r in res.costliest(outcome).itertuples():
                harmful = r.estimate > 0 if outcome == "churn" else r.estimate < 0
                sure = r.ci_low > 0 or r.ci_high < 0
                rows.append({"outcome": OUTCOME_LABELS[outcome], "friction": r.label, "effect": fmt(r.estimate),
                             "interval": f"{fmt(r.ci_low)} .. {fmt(r.ci_high)}", "cases_share": format_value(r.mean_exposure, "score"),
                             "n": f"{int(r.n):,}", "tone": ("bad" if harmful else "good") if sure else "neutral"})
        out["friction"] = rows
        churn = res.costliest("churn")
        out["friction_frame"] = churn
        if len(churn) and churn.ci_low.iloc[0] > 0:
            r = churn.iloc[0]
            out["friction_text"] = (f"{r.label} costs the most: {_pp(r.estimate)} churn probability per occurrence "
                                    f"(95% interval {_pp(r.ci_low)} .. {_pp(r.ci_high)}), after adjusting for cases, "
                                    "tenure and prior orders.")
    if "map" in parts:
        m = parts["map"]
        out["worst_touchpoints"] = [{"touchpoint": r.touchpoint, "experience": f"{r.experience:.2f}", "answers": f"{int(r.answers):,}",
                                     "friction": format_value(r.friction_share, "share"), "drop_off": format_value(r.drop_off, "share")}
                                    for r in m.worst(5).itertuples()]
        harmful = m.micro_journeys[m.micro_journeys.effect > 0].head(5)
        out["micro_journeys"] = [{"micro_journey": r.micro_journey, "customers": f"{int(r.customers):,}",
                                  "churn": format_value(r.churn_rate, "share"), "others": format_value(r.churn_rate_without, "share"),
                                  "effect": _pp(r.effect), "interval": f"{_pp(r.ci_low)} .. {_pp(r.ci_high)}"}
                                 for r in harmful.itertuples()]
        headline["churn_rate"] = format_value(m.churn_rate, "share")
    return JourneysSummary(headline=headline, note=" ".join(notes) or None, **out)


def sankey_figure(flows: pd.DataFrame, title: str = "Paths to conversion") -> go.Figure:
    """A Sankey of (position, source, target, count) flows; a node is a step at a position."""
    labels: dict[tuple[int, str], int] = {}

    def node(position: int, name: str) -> int:
        return labels.setdefault((position, name), len(labels))

    src, dst, val = [], [], []
    for r in flows.itertuples():
        src.append(node(int(r.position), str(r.source)))
        end = str(r.target)
        dst.append(node(10_000 if end.startswith("(") else int(r.position) + 1, end))
        val.append(int(r.count))
    names = [name for (_, name), _ in sorted(labels.items(), key=lambda kv: kv[1])]
    colours = [PALETTE[i % len(PALETTE)] for i in range(len(names))]
    fig = go.Figure(go.Sankey(node={"label": names, "color": colours, "pad": 12},
                              link={"source": src, "target": dst, "value": val}))
    fig.update_layout(title=title, height=360, margin={"l": 10, "r": 10, "t": 40, "b": 10}, template="none")
    return fig


def funnel_figure(frame: pd.DataFrame) -> go.Figure:
    """Profiles at each funnel step (the first group when the frame is broken down)."""
    f = frame[frame.group == frame.group.iloc[0]] if len(frame) else frame
    fig = go.Figure(go.Funnel(y=[f"{r.step_index}. {r.step}" for r in f.itertuples()], x=f.profiles.tolist(),
                              textinfo="value+percent initial", marker={"color": PALETTE[0]}))
    fig.update_layout(title="Funnel", height=300, margin={"l": 10, "r": 10, "t": 40, "b": 10}, template="none")
    return fig


def friction_figure(effects: pd.DataFrame) -> go.Figure:
    """Each friction's effect on churn probability with its 95% interval (a forest plot)."""
    e = effects.iloc[::-1]
    colours = [TONE_COLOURS["bad"] if lo > 0 else TONE_COLOURS["good"] if hi < 0 else TONE_COLOURS["neutral"]
               for lo, hi in zip(e.ci_low, e.ci_high, strict=True)]
    fig = go.Figure(go.Scatter(
        x=(100 * e.estimate).tolist(), y=e.label.tolist(), mode="markers", marker={"color": colours, "size": 10},
        error_x={"type": "data", "symmetric": False, "array": (100 * (e.ci_high - e.estimate)).tolist(),
                 "arrayminus": (100 * (e.estimate - e.ci_low)).tolist()},
        hovertemplate="%{y}: %{x:.1f} pp<extra></extra>"))
    fig.add_vline(x=0, line_color="#94a3b8")
    fig.update_layout(title="Effect of friction on churn (percentage points, 95% interval)", height=300,
                      margin={"l": 10, "r": 10, "t": 40, "b": 10}, template="none")
    return fig
