"""What each dashboard page shows, computed with the report's own builders.

KPI tiles come from `tile_from_series`/`tile_view` (the report's tiles) over metric series that
the semantic layer computes with the page's filters; experiments, value, journeys and attribution
are the report's summaries and charts. Figures are embedded as JSON (see `embed`), because the
dashboard's Content-Security-Policy allows no inline script.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pandas as pd
import plotly.graph_objects as go
from markupsafe import Markup

from cxlens.errors import CxlensError
from cxlens.report import charts, periods
from cxlens.report.data import HEADLINE, activity_span, clip_span, currency_of
from cxlens.report.experiments import summarize_content, summarize_experiments
from cxlens.report.formatting import currency_prefix
from cxlens.report.render import (
    attribution_figures,
    journeys_figures,
    tile_sections,
    tile_view,
    value_figures,
)
from cxlens.report.tiles import Tile, no_data, tile_from_series
from cxlens.semantic import Catalog, Measurer
from cxlens.service.dashboard.filters import Filters

T = TypeVar("T")

SURVEY_METRICS: tuple[str, ...] = ("nps", "csat", "csat_mean", "ces", "survey_response_rate")
COMMENTS = 20


def embed(fig: go.Figure, div_id: str) -> str:
    """A figure as an empty <div> plus its JSON in a non-executable script block; dashboard.js draws it.

    `<`, `>` and `&` are escaped inside the JSON so no string in the data can close the block.
    """
    payload = fig.to_json().replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    opening = Markup('<div class="plot" id="{0}"></div><script type="application/json" data-plot="{0}">')
    return str(opening.format(div_id)
               + Markup(payload) + Markup("</script>"))


@dataclass
class Metrics:
    """Tiles of a set of metrics under the filters, with the series behind them."""

    tiles: dict[str, Tile]
    series: dict[str, pd.DataFrame]
    span: periods.DataSpan | None
    left_out: Any = None
    currency: str = ""


def measure_tiles(ws: Any, catalog: Catalog, metric_ids: list[str], f: Filters,
                  measurer: Measurer | BatchMeasurer | None = None) -> Metrics:
    """One tile per metric: the metric by the filters' grain, dates and segment, and cut to the channel.

    A metric that cannot be broken down by channel gets a tile saying so when a channel is chosen,
    rather than an unfiltered value that would look filtered. A `measurer` given by the caller is
    kept open: views computed together share its derived sources (sessions, cases).
    """
    span = clip_span(_remember(measurer, ("activity_span",), lambda: activity_span(ws)), f.since, f.until)
    left_out = span.trailing_partial(f.grain) if span is not None else None
    tiles: dict[str, Tile] = {}
    series: dict[str, pd.DataFrame] = {}
    cuts = metric_cuts(catalog, metric_ids, f)
    own = measurer is None
    measurer = Measurer(ws, catalog) if measurer is None else measurer
    try:
        frames = _measure_together(measurer, cuts, f) if span is not None else {}
        for mid in metric_ids:
            m = catalog.metrics[mid]
            if mid not in cuts:
                tiles[mid] = Tile(m, f.grain, note=f"{m.label} cannot be broken down by channel.")
                continue
            if span is None:
                tiles[mid] = no_data(m, f.grain)
                continue
            try:
                frame = frames[mid] if mid in frames else measurer.measure(
                    mid, grain=f.grain, by=cuts[mid], since=f.since, until=f.until, where=f.segment).frame
            except CxlensError as exc:
                tiles[mid] = Tile(m, f.grain, note=f"not computed: {exc}")
                continue
            if f.channel is not None and "channel" in frame.columns:
                frame = frame[frame["channel"].astype(str) == f.channel].drop(columns="channel").reset_index(drop=True)
            if left_out is not None and "period_start" in frame.columns:
                frame = frame[frame["period_start"] < left_out].reset_index(drop=True)
            series[mid] = frame
            group = m.share_over[0] if m.share_over and not f.channel else None
            tiles[mid] = tile_from_series(m, frame, f.grain, span, group)
    finally:
        if own:
            measurer.close()
    currency = _remember(measurer, ("currency",), lambda: currency_of(ws))
    return Metrics(tiles, series, span, left_out, currency_prefix(currency))


def _remember(measurer: Measurer | BatchMeasurer | None, key: tuple[str, ...], read: Callable[[], T]) -> T:
    """A value read from the data besides the metrics, kept with a batch's answers (same data version)."""
    return measurer.remember(key, read) if isinstance(measurer, BatchMeasurer) else read()


def metric_cuts(catalog: Catalog, metric_ids: list[str], f: Filters) -> dict[str, tuple[str, ...]]:
    """What each metric is cut by for its tile: its share dimension, or the channel when one is
    chosen (a metric that cannot be cut by channel is left out: its tile says so)."""
    cuts: dict[str, tuple[str, ...]] = {}
    for mid in metric_ids:
        m = catalog.metrics[mid]
        if f.channel is None:
            cuts[mid] = tuple(m.share_over[:1])
        elif not m.share_over and "channel" in catalog.dimensions_for(m):
            cuts[mid] = ("channel",)
    return cuts


def page_metrics(catalog: Catalog, page: str) -> list[str]:
    """The metrics a filtered page shows tiles of."""
    return list(catalog.metrics) if page == "overview" else [m for m in SURVEY_METRICS if m in catalog.metrics]


def prepare(measurer: Measurer, catalog: Catalog, page: str, f: Filters, since: Any, until: Any,
            stop: Callable[[], bool] | None = None) -> bool:
    """Compile (not run) the queries `page` asks under `f` with dates `since`..`until` (see
    cxlens.semantic.templates); False when `stop()` ended it early."""
    cuts = metric_cuts(catalog, page_metrics(catalog, page), f)
    for cut in dict.fromkeys(cuts.values()):
        ids = [mid for mid, c in cuts.items() if c == cut]
        try:
            if not measurer.prepare(ids, grain=f.grain, by=cut, since=since, until=until, where=f.segment, stop=stop):
                return False
        except CxlensError:
            continue  # the view itself reports it
    return True


class BatchMeasurer:
    """A Measurer that remembers its `measure_many` answers while views are computed together.

    The overview for one channel cuts every channel-capable metric by channel and keeps that
    channel's rows, so the overviews of all channels ask the same queries: computed in one batch
    they run once. Answers are only reused for identical arguments.
    """

    def __init__(self, measurer: Measurer, answers: dict[tuple[Any, ...], dict[str, Any]] | None = None):
        self.measurer = measurer
        self._answers: dict[tuple[Any, ...], dict[str, Any]] = {} if answers is None else answers
        """Answers by arguments; a caller may pass answers kept from earlier batches on the same data."""

    def measure_many(self, metrics: list[str], **kwargs: Any) -> dict[str, Any]:
        key = (tuple(metrics), *sorted((k, tuple(v) if isinstance(v, list | tuple) else v) for k, v in kwargs.items()))
        if key not in self._answers:
            self._answers[key] = self.measurer.measure_many(metrics, **kwargs)
        return self._answers[key]

    def measure(self, metric: str, **kwargs: Any) -> Any:
        return self.measurer.measure(metric, **kwargs)

    def remember(self, key: tuple[Any, ...], read: Callable[[], T]) -> T:
        """A value read from the data besides the metrics (the activity span, the currency), kept
        like the answers; keys are told apart from `measure_many`'s, whose first item is a tuple."""
        if key not in self._answers:
            self._answers[key] = read()  # type: ignore[assignment]
        return self._answers[key]  # type: ignore[return-value]


def _measure_together(measurer: Measurer | BatchMeasurer, cuts: dict[str, tuple[str, ...]],
                      f: Filters) -> dict[str, pd.DataFrame]:
    """Frames of the metrics sharing a cut, measured in shared engine queries (`measure_many`). A
    group with an error is left out, so `measure_tiles` measures its metrics one by one and the
    error lands on its own metric's tile."""
    frames: dict[str, pd.DataFrame] = {}
    for cut in dict.fromkeys(cuts.values()):
        ids = [mid for mid, c in cuts.items() if c == cut]
        try:
            results = measurer.measure_many(ids, grain=f.grain, by=cut, since=f.since, until=f.until, where=f.segment)
        except CxlensError:
            continue
        frames.update({mid: r.frame for mid, r in results.items()})
    return frames


def _span_text(metrics: Metrics, grain: str) -> dict[str, str]:
    span = metrics.span
    return {
        "span": f"{span.first:%Y-%m-%d} to {span.last:%Y-%m-%d}" if span else "no data in these dates",
        "left_out": (f"{periods.label(metrics.left_out, grain)} is left out: the data stops on {span.last:%Y-%m-%d}, "
                     "before it ends." if metrics.left_out and span else ""),
    }


def overview(ws: Any, catalog: Catalog, f: Filters, measurer: Measurer | BatchMeasurer | None = None) -> dict[str, Any]:
    """Headline tiles with trends, then every metric as a leading or lagging tile."""
    metrics = measure_tiles(ws, catalog, page_metrics(catalog, "overview"), f, measurer)
    headline = [metrics.tiles[m] for m in HEADLINE if m in metrics.tiles]
    trends = [embed(charts.trend(t, metrics.currency), f"trend-{t.metric.id}") for t in headline if len(t.points) >= 2]
    return {"headline": [tile_view(t, metrics.currency) for t in headline],
            "sections": tile_sections(metrics.tiles.values(), metrics.currency), "trends": trends,
            **_span_text(metrics, f.grain)}


def surveys(ws: Any, catalog: Catalog, f: Filters, measurer: Measurer | BatchMeasurer | None = None) -> dict[str, Any]:
    """NPS, CSAT and CES tiles and trends, the promoter/passive/detractor mix and the latest comments."""
    ids = page_metrics(catalog, "surveys")
    metrics = measure_tiles(ws, catalog, ids, f, measurer)
    tiles = [metrics.tiles[m] for m in ids]
    figures = [embed(charts.trend(t, metrics.currency), f"trend-{t.metric.id}") for t in tiles
               if t.metric.id in ("nps", "csat", "ces") and len(t.points) >= 2]
    nps = metrics.series.get("nps")
    mix = charts.nps_mix(nps) if nps is not None else None
    if mix is not None:
        figures.append(embed(mix, "nps-mix"))
    shares = []
    if nps is not None and not nps.empty and {"promoters", "passives", "detractors"} <= set(nps.columns):
        latest = nps.sort_values("period_start").iloc[-1]
        shares = [(name, f"{float(latest[name]):.1%}") for name in ("promoters", "passives", "detractors")
                  if pd.notna(latest[name])]
        shares_period = periods.label(latest["period_start"], f.grain)
    else:
        shares_period = ""
    return {"tiles": [tile_view(t, metrics.currency) for t in tiles], "figures": figures, "shares": shares,
            "shares_period": shares_period, "comments": latest_comments(ws, catalog, f), **_span_text(metrics, f.grain)}


def latest_comments(ws: Any, catalog: Catalog, f: Filters, limit: int = COMMENTS) -> list[dict[str, str]]:
    """The newest survey comments under the filters (the segment through the semantic layer's profile filter)."""
    if "survey_responses" not in ws.backend.tables():
        return []
    t = ws.table("survey_responses")
    t = t.filter(t.comment.notnull() & (t.comment.strip() != ""))
    if f.since is not None:
        t = t.filter(t.responded_at.cast("date") >= f.since)
    if f.until is not None:
        t = t.filter(t.responded_at.cast("date") <= f.until)
    if f.channel is not None:
        t = t.filter(t.channel == f.channel)
    if f.segment is not None:
        members = catalog.profile_filter(catalog.context(ws, materialize=False), f.segment)
        members = members.select(_wid=members.profile_id)
        t = t.semi_join(members, t.profile_id == members._wid)
    cols = ["responded_at", "survey_type", "score", "channel", "touchpoint", "comment"]
    rows = t.order_by(t.responded_at.desc()).limit(limit).select(*[c for c in cols if c in t.columns]).execute()
    return [{k: ("" if pd.isna(v) else str(v)) for k, v in r.items()} for r in rows.to_dict("records")]


@dataclass
class SectionData:
    """The report's summaries a section template reads as `data`."""

    experiments: list[Any] = field(default_factory=list)
    content: Any = None
    value: Any = None
    attribution: Any = None
    journeys: Any = None
    notes: dict[str, str] = field(default_factory=dict)


def section(ws: Any, catalog: Catalog, name: str) -> dict[str, Any]:
    """One of the report's analysis sections (experiments, value, journeys, attribution) and its charts."""
    from cxlens.report.attribution import summarize_attribution
    from cxlens.report.journeys import summarize_journeys
    from cxlens.report.value import summarize_value

    currency = currency_prefix(currency_of(ws))
    data = SectionData()
    figures: dict[str, list[str]] = {"value": [], "journeys": [], "attribution": []}
    if name == "experiments":
        data.experiments = summarize_experiments(ws, catalog)
        data.content = summarize_content(ws)
    elif name == "value":
        data.value = summarize_value(ws, currency, catalog)
        figures["value"] = value_figures(data.value, currency, embed)
    elif name == "journeys":
        from cxlens.journeys import shared_touchpoints

        with shared_touchpoints(ws):  # paths, funnel and map start from the same touchpoints
            data.journeys = summarize_journeys(ws)
        figures["journeys"] = journeys_figures(data.journeys, embed)
    elif name == "attribution":
        data.attribution = summarize_attribution(ws, currency)
        figures["attribution"] = attribution_figures(data.attribution, embed)
    return {"data": data, "figures": figures}
