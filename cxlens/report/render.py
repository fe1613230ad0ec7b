"""Turn a ReportData into one self-contained HTML file (Plotly's JavaScript inlined, no network).

Formatting happens here, into small view objects, so the Jinja template only lays things out.
The file is written next to its destination and renamed into place, so an interrupted run never
leaves half a report where a good one was.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from cxlens.errors import UsageError
from cxlens.report import charts, periods
from cxlens.report.attribution import AttributionSummary, attribution_chart
from cxlens.report.data import HEADLINE, ReportData
from cxlens.report.formatting import (
    format_change,
    format_delta,
    format_value,
    is_number,
)
from cxlens.report.journeys import JourneysSummary, friction_figure, funnel_figure, sankey_figure
from cxlens.report.tiles import Tile
from cxlens.report.value import ValueSummary

CATEGORY_ORDER: tuple[str, ...] = ("Value and loyalty", "Feedback", "Web and funnel", "Messaging", "Engagement",
                                   "Offline", "Service and effort")

NO_TEST: dict[str, str] = {
    "empty_group": "no test: one of the windows has no data",
    "too_few_units": "no test: fewer than two units in a window",
    "zero_variance": "no test: no spread in either window",
    "no_test": "no interval for this metric (a ratio of totals)",
    "not_testable": "no test: the counts do not fit the test",
    "no_data": "no value in the baseline window",
    "not_computed": "the comparison could not be computed",
}
"""What a comparison code means for the reader (codes from cxlens.stats.compare and the report)."""


@dataclass(frozen=True)
class BaselineView:
    """The baseline part of a tile: which baseline, its value, the change and its test."""

    name: str = ""
    """`Jan 2025` (the default baseline period) or `baseline` (the --baseline window)."""
    value: str = "—"
    change: str = "—"
    tone: str = "neutral"
    detail: str = ""
    warnings: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"vs {self.name} ({self.value})" if self.name else "no baseline"


@dataclass(frozen=True)
class TileView:
    """A tile's texts, already formatted for its unit."""

    id: str
    label: str
    description: str
    has_data: bool
    note: str = ""
    value: str = "no data"
    raw_value: str = ""
    period: str = ""
    period_start: str = ""
    partial: bool = False
    n: str = ""
    change: str = "—"
    change_tone: str = "neutral"
    previous: str = ""
    baseline: BaselineView = BaselineView()
    spark: str = ""


def tile_view(tile: Tile, currency: str) -> TileView:
    m, grain = tile.metric, tile.grain
    label = m.label + (f": {tile.group}" if tile.group else "")
    description = m.description + (f" The tile follows {tile.group}, the largest group in the latest period."
                                    if tile.group else "")
    if tile.current is None:
        return TileView(m.id, label, description, False, note=tile.note or "no data")
    cur, prev = tile.current, tile.previous
    previous = (f"vs {periods.label(prev.period, grain)} ({format_value(prev.value, m.unit, currency)})"
                if prev else "no value in the period before")
    return TileView(
        id=m.id, label=label, description=description, has_data=True,
        value=format_value(cur.value, m.unit, currency), raw_value=repr(float(cur.value)),
        period=periods.label(cur.period, grain), period_start=cur.period.isoformat(), partial=tile.partial,
        n=f"n = {cur.n:,}", change=format_change(cur.value, prev.value if prev else None, m.unit, currency),
        change_tone=tile.tone, previous=previous, baseline=baseline_view(tile, currency),
        spark=charts.sparkline(tile.points, tile.tone),
    )


def baseline_view(tile: Tile, currency: str) -> BaselineView:
    """The default baseline (first full period) or the --baseline comparison with its test."""
    m = tile.metric
    c = tile.comparison
    if c is None:
        if tile.baseline is None or tile.current is None:
            return BaselineView()
        b = tile.baseline
        return BaselineView(periods.label(b.period, tile.grain), format_value(b.value, m.unit, currency),
                            format_change(tile.current.value, b.value, m.unit, currency), tile.baseline_tone)
    if c.significant is not None and is_number(c.ci_low) and is_number(c.ci_high):
        verdict = "significant" if c.significant else "not significant"
        detail = (f"95% CI {format_delta(c.ci_low, m.unit, currency)} to {format_delta(c.ci_high, m.unit, currency)}; "
                  f"{_p(c.p_value)}, {verdict}")
    else:
        detail = NO_TEST.get(c.code, f"no test ({c.code.replace('_', ' ')})")
    return BaselineView("baseline", format_value(c.before, m.unit, currency), format_change(c.after, c.before, m.unit, currency),
                        tile.baseline_tone, detail, tuple(w.split(": ", 1)[-1] for w in c.warnings))


def _p(p: float | None) -> str:
    if p is None:
        return "p —"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def tile_sections(tiles: Iterable[Tile], currency: str) -> dict[str, list[tuple[str, list[TileView]]]]:
    """Leading and lagging tiles, grouped by category in the catalogue's order (the report and the dashboard)."""
    tiles = list(tiles)
    out: dict[str, list[tuple[str, list[TileView]]]] = {}
    for timing in ("leading", "lagging"):
        timed = [t for t in tiles if t.metric.timing == timing]
        cats = sorted({t.metric.category for t in timed},
                      key=lambda c: (CATEGORY_ORDER.index(c) if c in CATEGORY_ORDER else len(CATEGORY_ORDER), c))
        out[timing] = [(c, [tile_view(t, currency) for t in timed if t.metric.category == c]) for c in cats]
    return out


Embed = Callable[[go.Figure, str], str]
"""Turns a figure and its element id into an HTML fragment (the report inlines a script; the
dashboard, whose Content-Security-Policy forbids inline scripts, embeds the figure as JSON)."""


def value_figures(value: ValueSummary | None, currency: str, embed: Embed = charts.to_html) -> list[str]:
    """The Customer value section's charts."""
    if value is None or value.histogram is None:
        return []
    return [embed(charts.clv_histogram(value.histogram, currency), "clv-distribution")]


def attribution_figures(attribution: AttributionSummary | None, embed: Embed = charts.to_html) -> list[str]:
    """The Attribution section's charts."""
    fig = attribution_chart(attribution) if attribution is not None else None
    return [embed(fig, "attribution-models")] if fig is not None else []


def journeys_figures(j: JourneysSummary | None, embed: Embed = charts.to_html) -> list[str]:
    """The Journeys section's charts: paths (Sankey), funnel and friction costs."""
    if j is None:
        return []
    out: list[str] = []
    if j.sankey is not None and len(j.sankey):
        out.append(embed(sankey_figure(j.sankey), "journeys-sankey"))
    if j.funnel_frame is not None and len(j.funnel_frame):
        out.append(embed(funnel_figure(j.funnel_frame), "journeys-funnel"))
    if j.friction_frame is not None and len(j.friction_frame):
        out.append(embed(friction_figure(j.friction_frame), "journeys-friction"))
    return out


def _figures(data: ReportData) -> dict[str, Any]:
    """HTML fragments of every chart, by section."""
    window = (data.options.baseline.start, data.options.baseline.end) if data.options.baseline else None
    trends = [charts.to_html(charts.trend(t, data.currency_symbol, window), f"trend-{t.metric.id}")
              for t in data.headline() if len(t.points) >= 2]
    sections: dict[str, list[str]] = {"channel": [], "traffic": [], "segment": [], "feedback": [], "engagement": []}
    for b, frame in data.breakdowns:
        unit = data.catalog.metrics[b.metric].unit
        fig = charts.breakdown(frame, b.by, b.title, b.chart, unit, data.currency_symbol)
        sections[b.section].append(charts.to_html(fig, f"by-{b.by}-{b.metric}"))
    nps = data.series.get(("nps", ()))
    if nps is not None:
        fig = charts.nps_mix(nps)
        if fig is not None:
            sections["feedback"].append(charts.to_html(fig, "nps-mix"))
    if data.engagement is not None and data.engagement_period is not None:
        fig = charts.engagement_histogram(data.engagement, periods.label(data.engagement_period, data.options.grain))
        sections["engagement"].append(charts.to_html(fig, "engagement-distribution"))
    return {"trends": trends, **sections, "value": value_figures(data.value, data.currency_symbol),
            "attribution": attribution_figures(data.attribution), "journeys": journeys_figures(data.journeys)}


def _environment() -> Environment:
    return Environment(loader=PackageLoader("cxlens.report", "templates"), autoescape=select_autoescape(["html", "j2"]),
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def render_html(data: ReportData) -> str:
    """The whole report as one HTML string."""
    o, span = data.options, data.span
    if o.baseline is not None:
        baseline = f"baseline window {o.baseline.start}..{o.baseline.end}, compared with each metric's latest period"
    else:
        baseline = "baseline: each metric's first full period in the data"
    context = {
        "data": data,
        "title": f"cxlens report — {Path(data.workspace).name}",
        "grain": o.grain,
        "span": f"{span.first:%Y-%m-%d} to {span.last:%Y-%m-%d}" if span else "no data",
        "left_out": (f"{periods.label(data.left_out, o.grain)} is left out: the data stops on {span.last:%Y-%m-%d}, "
                     "before it ends, and a partial period is not comparable with whole ones."
                     if data.left_out and span else ""),
        "baseline": baseline,
        "headline": [tile_view(data.tiles[m], data.currency_symbol) for m in HEADLINE if m in data.tiles],
        "sections": tile_sections(data.tiles.values(), data.currency_symbol),
        "figures": _figures(data),
        "no_data": [t.metric.label for t in data.tiles.values() if not t.has_data],
        "plotly_js": charts.plotly_js(),
        "generated_at": data.generated_at.isoformat(sep=" "),
    }
    return _environment().get_template("report.html.j2").render(**context)


def write_report(data: ReportData, out: str | Path) -> Path:
    """Render and write the report atomically; returns its absolute path."""
    path = Path(out).expanduser().resolve()
    html = render_html(data)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(html)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise UsageError(f"Cannot write the report to {path}: {exc.strerror or exc}.") from None
    return path
