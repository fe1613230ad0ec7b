"""Every number the report shows, gathered through the semantic layer's public API.

Each metric series (metric × grain × dimensions) is computed once, in the engine, through
`measure()`; tiles, sparklines, trends and breakdowns are all read from those frames. With
`--baseline`, `compare_periods()` adds an interval and a p-value per metric. Nothing here formats
or draws: `charts` and `render` turn a `ReportData` into HTML.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from datetime import time as clock
from typing import Any, Literal

import pandas as pd

from cxlens import __version__
from cxlens.errors import CxlensError, UsageError
from cxlens.report import periods
from cxlens.report.attribution import AttributionSummary, summarize_attribution
from cxlens.report.experiments import (
    ContentSummary,
    ExperimentSummary,
    summarize_content,
    summarize_experiments,
)
from cxlens.report.formatting import currency_prefix
from cxlens.report.journeys import JourneysSummary, summarize_journeys
from cxlens.report.tiles import Comparison, Tile, tile_from_series
from cxlens.report.value import ValueSummary, summarize_value
from cxlens.semantic import Catalog, Measurer
from cxlens.semantic.baseline import Period

Step = Callable[[str, int, int], None]
SeriesKey = tuple[str, tuple[str, ...]]

HEADLINE: tuple[str, ...] = (
    "revenue", "orders", "aov", "active_customers", "retention_rate", "churn_rate", "nps", "csat", "conversion_rate",
    "engagement_score",
)
"""The KPIs the report (and `cxlens demo`) leads with."""

ACTIVITY: tuple[tuple[str, str], ...] = (
    ("orders", "ordered_at"), ("events", "occurred_at"), ("survey_responses", "responded_at"),
    ("interactions", "started_at"), ("store_traffic", "day"),
)
"""Tables and time columns whose first and last rows bound the data (costs and subscriptions do not)."""

ENGAGEMENT_BUCKET = 10


@dataclass(frozen=True)
class Breakdown:
    """A metric cut by one dimension over the report's periods."""

    metric: str
    by: str
    title: str
    chart: Literal["stack", "lines", "share"]
    section: Literal["channel", "traffic", "segment"]


BREAKDOWNS: tuple[Breakdown, ...] = (
    Breakdown("revenue", "channel", "Revenue by channel", "stack", "channel"),
    Breakdown("active_customers", "channel", "Active customers by channel", "lines", "channel"),
    Breakdown("nps", "channel", "NPS by survey channel", "lines", "channel"),
    Breakdown("traffic_sources", "channel_group", "Share of sessions by channel group", "share", "traffic"),
    Breakdown("conversion_rate", "channel_group", "Conversion rate by channel group", "lines", "traffic"),
    Breakdown("revenue_per_visit", "channel_group", "Revenue per visit by channel group", "lines", "traffic"),
    Breakdown("revenue", "segment", "Revenue by segment", "lines", "segment"),
    Breakdown("active_customers", "segment", "Active customers by segment", "lines", "segment"),
    Breakdown("nps", "segment", "NPS by segment", "lines", "segment"),
)


@dataclass(frozen=True)
class Options:
    """What the user asked for: grain, date limits and an explicit baseline window."""

    grain: str = "month"
    since: date | None = None
    until: date | None = None
    baseline: Period | None = None


@dataclass
class ReportData:
    """Everything the report shows, computed; rendering needs no workspace."""

    workspace: str
    options: Options
    catalog: Catalog
    span: periods.DataSpan | None
    tiles: dict[str, Tile]
    series: dict[SeriesKey, pd.DataFrame]
    breakdowns: list[tuple[Breakdown, pd.DataFrame]]
    engagement: pd.DataFrame | None
    engagement_period: date | None
    currency: str
    generated_at: datetime
    seconds: float = 0.0
    left_out: date | None = None
    """Start of the trailing partial period left out of tiles and charts (None when every period is whole)."""
    notes: dict[str, str] = field(default_factory=dict)
    """Why a section is empty, by section (`segment`, `engagement`)."""
    experiments: list[ExperimentSummary] = field(default_factory=list)
    content: ContentSummary | None = None
    value: ValueSummary | None = None
    attribution: AttributionSummary | None = None
    journeys: JourneysSummary | None = None
    version: str = __version__

    @property
    def currency_symbol(self) -> str:
        return currency_prefix(self.currency)

    @property
    def definitions(self) -> str:
        if self.catalog.path is not None:
            return str(self.catalog.path)
        return "built-in definitions only (no cxlens.metrics.yml next to the workspace)"

    def headline(self) -> list[Tile]:
        return [self.tiles[m] for m in HEADLINE if m in self.tiles]


def data_span(ws: Any, since: date | None = None, until: date | None = None) -> periods.DataSpan | None:
    """First and last activity over the activity tables, clipped to --since/--until (None if empty)."""
    return clip_span(activity_span(ws), since, until)


def activity_span(ws: Any) -> tuple[datetime, datetime] | None:
    """First and last activity over the activity tables (None if empty): what `data_span` clips,
    kept by the dashboard per data version since every date range clips the same span."""
    have = ws.backend.tables()
    firsts, lasts = [], []
    for table, column in ACTIVITY:
        if table not in have:
            continue
        t = ws.table(table)
        col = t[column].cast("timestamp")
        row = t.aggregate(first=col.min(), last=col.max()).execute().iloc[0]
        if pd.notna(row["first"]):
            firsts.append(pd.Timestamp(row["first"]).to_pydatetime())
            lasts.append(pd.Timestamp(row["last"]).to_pydatetime())
    return (min(firsts), max(lasts)) if firsts else None


def clip_span(bounds: tuple[datetime, datetime] | None, since: date | None = None,
              until: date | None = None) -> periods.DataSpan | None:
    """The span of `bounds` within --since/--until (None if nothing is left)."""
    if bounds is None:
        return None
    first, last = bounds
    if since is not None:
        first = max(first, datetime.combine(since, clock.min))
    if until is not None:
        last = min(last, datetime.combine(until, clock.max))
    return periods.DataSpan(first, last) if first <= last else None


def check_options(options: Options, span: periods.DataSpan | None) -> None:
    """Refuse, in one sentence, option combinations that cannot give a report."""
    if options.grain not in periods.REPORT_GRAINS:
        raise UsageError(f"--grain must be one of {', '.join(periods.REPORT_GRAINS)}, got {options.grain!r}.")
    if options.since and options.until and options.since > options.until:
        raise UsageError(f"--since {options.since} is after --until {options.until}.")
    b = options.baseline
    if b is not None:
        if span is None:
            raise UsageError(f"--baseline {b.start}..{b.end} cannot be compared: the workspace has no data in the "
                             "report's dates.")
        if b.end < span.first.date() or b.start > span.last.date():
            raise UsageError(f"--baseline {b.start}..{b.end} holds no data: the workspace's data runs from "
                             f"{span.first.date()} to {span.last.date()}.")


def currency_of(ws: Any) -> str:
    """The orders' currency code when there is exactly one, else '' (no symbol rather than a wrong one)."""
    if "orders" not in ws.backend.tables():
        return ""
    o = ws.table("orders")
    codes = o.filter(o.currency.notnull()).currency.upper().name("c").as_table().distinct().limit(2).execute()
    return str(codes["c"].iloc[0]) if len(codes) == 1 else ""


def gather(ws: Any, options: Options, *, on_step: Step | None = None) -> ReportData:
    """Compute every series, tile, breakdown and (with --baseline) comparison the report shows."""
    started = time.perf_counter()
    step = on_step or (lambda label, done, total: None)
    span = data_span(ws, options.since, options.until)
    check_options(options, span)
    with Measurer(ws) as measurer:
        return _gather(ws, options, measurer, span, step, started)


def _gather(ws: Any, options: Options, measurer: Measurer, span: periods.DataSpan | None, step: Step,
            started: float) -> ReportData:
    catalog = measurer.catalog
    metrics = list(catalog.metrics.values())
    breakdowns = [b for b in BREAKDOWNS if b.metric in catalog.metrics
                  and b.by in catalog.dimensions_for(catalog.metrics[b.metric])]
    total = len(metrics) + len(breakdowns) + 5 + (len(metrics) if options.baseline else 0)
    done = 0
    series: dict[SeriesKey, pd.DataFrame] = {}
    errors: dict[SeriesKey, str] = {}
    left_out = span.trailing_partial(options.grain) if span is not None else None

    def keep(key: SeriesKey, frame: pd.DataFrame) -> None:
        if left_out is not None and "period_start" in frame.columns:
            frame = frame[frame["period_start"] < left_out].reset_index(drop=True)
        series[key] = frame

    def compute(metric_id: str, by: tuple[str, ...]) -> pd.DataFrame | None:
        key = (metric_id, by)
        if key not in series and key not in errors:
            try:
                keep(key, measurer.measure(metric_id, grain=options.grain, by=by, since=options.since,
                                           until=options.until).frame)
            except CxlensError as exc:
                errors[key] = str(exc)
        return series.get(key)

    def prefetch(metric_ids: list[str], by: tuple[str, ...]) -> None:
        """Measure many metrics in shared engine queries; on any error each is measured alone by
        `compute`, so an error is reported against its own metric."""
        try:
            results = measurer.measure_many(metric_ids, grain=options.grain, by=by, since=options.since,
                                            until=options.until)
        except CxlensError:
            return
        for metric_id, result in results.items():
            keep((metric_id, tuple(result.query.by)), result.frame)

    if span is not None:
        prefetch([m.id for m in metrics], ())
        for dim in dict.fromkeys(b.by for b in breakdowns):
            prefetch([b.metric for b in breakdowns if b.by == dim], (dim,))
    tiles: dict[str, Tile] = {}
    for m in metrics:
        step(f"computing {m.id}", done, total)
        by = tuple(m.share_over[:1])
        frame = compute(m.id, by) if span is not None else pd.DataFrame()
        if frame is None:
            tiles[m.id] = Tile(m, options.grain, note=f"not computed: {errors[(m.id, by)]}")
        else:
            tiles[m.id] = tile_from_series(m, frame, options.grain, span, by[0] if by else None)
        done += 1
    cut: list[tuple[Breakdown, pd.DataFrame]] = []
    for b in breakdowns:
        step(f"breaking down {b.metric} by {b.by}", done, total)
        frame = compute(b.metric, (b.by,)) if span is not None else None
        if frame is not None and not frame.empty:
            cut.append((b, frame))
        done += 1
    step("engagement score distribution", done, total)
    engagement, engagement_period, why_not = engagement_distribution(measurer, options, tiles.get("engagement_score"))
    done += 1
    if options.baseline is not None:
        for m in metrics:
            step(f"comparing {m.id} with the baseline", done, total)
            tiles[m.id] = _with_comparison(measurer, tiles[m.id], options.baseline)
            done += 1
    step("experiments", done, total)
    experiments = summarize_experiments(ws, catalog)
    content = summarize_content(ws)
    done += 1
    step("customer value", done, total)
    value = summarize_value(ws, currency_prefix(currency_of(ws)), catalog)
    done += 1
    step("attribution", done, total)
    attribution = summarize_attribution(ws, currency_prefix(currency_of(ws)))
    done += 1
    step("journeys and friction", done, total)
    journeys = summarize_journeys(ws)
    done += 1
    step("done", total, total)
    notes = {"engagement": why_not} if why_not else {}
    if not catalog.segments:
        notes["segment"] = ("No segments are declared, so there is no breakdown by segment: add a `segments:` list to "
                            f"{catalog.path or 'cxlens.metrics.yml next to the workspace'}.")
    return ReportData(
        workspace=str(getattr(ws, "path", "") or ws.backend.name), options=options, catalog=catalog, span=span,
        tiles=tiles, series=series, breakdowns=cut, engagement=engagement, engagement_period=engagement_period,
        currency=currency_of(ws), generated_at=datetime.now().astimezone().replace(microsecond=0),
        seconds=round(time.perf_counter() - started, 2), left_out=left_out, notes=notes, experiments=experiments, content=content, value=value,
        attribution=attribution, journeys=journeys,
    )


def _with_comparison(measurer: Measurer, tile: Tile, baseline: Period) -> Tile:
    """The tile plus `compare_periods(baseline, tile's current period)`, when it has a current period."""
    if tile.current is None:
        return tile
    after = Period(tile.current.period, periods.last_day(tile.current.period, tile.grain))
    try:
        result = measurer.compare(tile.metric.id, baseline, after)
    except CxlensError as exc:
        row: dict[str, Any] = {"code": "not_computed"}
        warnings = [str(exc)]
    else:
        rows = result.rows
        if tile.group is not None:
            rows = [r for r in rows if str(r.get(tile.metric.share_over[0])) == tile.group]
        row = rows[0] if rows else {"code": "no_data"}
        warnings = list(result.warnings)
    return tile.with_comparison(Comparison.from_row(row, (baseline.start, baseline.end), (after.start, after.end),
                                                    warnings))


def engagement_distribution(measurer: Measurer, options: Options,
                            tile: Tile | None) -> tuple[pd.DataFrame | None, date | None, str | None]:
    """Customers per 10-point band of the engagement score in its latest period, counted in the engine.

    The semantic layer reports the score's mean, not the per-customer scores, so each band is a
    metric derived from `engagement_score`'s own definition: the same measure, with its per-customer
    expression turned into "score in [lo, hi)" and summed. Returns (counts, period, why not).
    """
    if tile is None or tile.current is None:
        return None, None, None
    m = tile.metric
    if m.measure is None or not m.measure.expr:
        return None, None, f"{m.id} is not a measure of one expression, so it has no per-customer distribution."
    start, score = tile.current.period, m.measure.expr
    counts: list[int] = []
    try:
        for lo in range(0, 100, ENGAGEMENT_BUCKET):
            upper = f" AND ({score}) < {lo + ENGAGEMENT_BUCKET}" if lo + ENGAGEMENT_BUCKET < 100 else ""
            band = replace(m, id=f"_report_engagement_band_{lo}", dimensions=(), measure=replace(
                m.measure, agg="sum", expr=f"CASE WHEN ({score}) >= {lo}{upper} THEN 1 ELSE 0 END"))
            measurer.catalog.metrics[band.id] = band
            try:
                frame = measurer.measure(band.id, grain=options.grain, since=start,
                                         until=periods.last_day(start, options.grain)).frame
            finally:
                del measurer.catalog.metrics[band.id]
            counts.append(int(frame.loc[frame["period_start"] == start, "value"].sum()))
    except CxlensError as exc:
        return None, None, f"The engagement score distribution could not be computed: {exc}"
    return pd.DataFrame({"band": range(0, 100, ENGAGEMENT_BUCKET), "customers": counts}), start, None
