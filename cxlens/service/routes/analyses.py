"""Read API for every analysis (read keys): baselines, segments, experiments and ROI, customer value,
journeys and attribution.

Each endpoint answers with the exact text of its CLI counterpart's `--format json` (the same
builder, serialized by `json_text`), so a script can switch between `cxlens ...` and HTTP without
changing a key. Endpoints only read: analyses that the CLI saves (rfm, hvc) are summarized from the
unsaved result, and CLV is read from the predictions `cxlens clv predict` stored.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from cxlens.cli.output import json_text
from cxlens.errors import UsageError
from cxlens.service.auth import runtime
from cxlens.service.routes.read import Reader, call, call_json, catalog, known_metric, names

router = APIRouter(prefix="/v1", tags=["analyses"])

Id = Annotated[str, Query(max_length=128)]
Day = Annotated[str | None, Query(max_length=32, description="YYYY-MM-DD.")]
Alpha = Annotated[float, Query(gt=0, lt=0.5, description="1 − confidence level of the intervals.")]
Days = Annotated[float, Query(gt=0, le=36_600)]
AttributionModel = Literal["first", "last", "last-non-direct", "linear", "time-decay", "position", "markov", "shapley"]


class Contract(Response):
    """A JSON answer with the CLI's `--format json` text (NaN as null, dates ISO 8601)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json_text(content).encode("utf-8")


def _bounded(text: str, field: str, limit: int = 128) -> str:
    if len(text) > limit:
        raise UsageError(f"The {field} is longer than {limit} characters.")
    return text


# Baselines and segments ----------------------------------------------------------------------

@router.get("/metrics/{metric_id}/compare", response_class=Contract)
def compare_metric(
    request: Request, metric_id: str, key: Reader,
    before: Annotated[str, Query(max_length=32, description="Baseline window START..END (inclusive dates).")],
    after: Annotated[str, Query(max_length=32, description="Window to compare, START..END.")],
    by: Annotated[list[str], Query(max_length=16, description="Dimensions to cut by; repeat or separate with commas.")] = [],  # noqa: B006 - FastAPI copies it
    where: Annotated[str | None, Query(max_length=1000, description="A segment name or a condition over profile features.")] = None,
    alpha: Annotated[float, Query(ge=0.0001, le=0.5, description="1 − confidence level of the interval.")] = 0.05,
) -> Contract:
    """A metric before and after a change (the `cxlens metrics compare --format json` contract)."""
    from cxlens.semantic.baseline import Period, compare_periods

    cat = known_metric(request, _bounded(metric_id, "metric id"))
    b, a = Period.parse(before, "before"), Period.parse(after, "after")
    options = {"by": names(by, "by"), "where": where, "alpha": alpha, "catalog": cat}
    return Contract(runtime(request).read(call_json, compare_periods, (metric_id, b, a), options))


@router.get("/dimensions", response_class=Contract)
def list_dimensions(request: Request, key: Reader, metric: Annotated[str | None, Query(max_length=128)] = None) -> Contract:
    """The dimensions metrics can be cut by (the `cxlens metrics dimensions --format json` contract)."""
    from cxlens.semantic.listing import dimensions_json

    cat = known_metric(request, metric) if metric else catalog(request)
    return Contract(dimensions_json(cat, metric))


@router.get("/segments", response_class=Contract)
def list_segments(request: Request, key: Reader,
                  value: Annotated[bool, Query(description="Also measure each segment (customers, revenue, value).")] = False) -> Contract:
    """Declared segments and profile features (the `cxlens metrics segments --format json` contract)."""
    from cxlens.semantic.listing import segments_json

    cat = catalog(request)
    if value and cat.segments:
        return Contract(runtime(request).read(_segments, cat))
    return Contract(segments_json(cat, value=value))


# Experiments and ROI -------------------------------------------------------------------------

@router.get("/experiments", response_class=Contract)
def list_experiments(request: Request, key: Reader) -> Contract:
    """Experiments in `assignments` (the `cxlens experiment list --format json` contract)."""
    from cxlens.experiments.units import experiments

    return Contract({"experiments": runtime(request).read(call, experiments, (), {})})


@router.get("/experiments/{experiment_id}", response_class=Contract)
def analyze_experiment(
    request: Request, experiment_id: str, key: Reader,
    metric: Annotated[list[str], Query(max_length=16, description="Metric ids; repeat or separate with commas (default: the experiment defaults).")] = [],  # noqa: B006
    by: Annotated[str | None, Query(max_length=128, description="A dimension or segment to cut by.")] = None,
    control: Annotated[str | None, Query(max_length=128)] = None,
    window: Annotated[float | None, Query(gt=0, le=36_600, description="Days of exposure per unit.")] = None,
    pre_days: Annotated[float, Query(ge=0, le=36_600, description="CUPED pre-period in days (0 turns it off).")] = 30,
    alpha: Alpha = 0.05,
    sequential: bool = False,
    correction: Literal["holm", "bh", "none"] = "holm",
) -> Contract:
    """Effects per variant and metric with intervals and verdicts (the `cxlens experiment analyze --format json` contract)."""
    from cxlens.experiments.analysis import Settings
    from cxlens.experiments.workspace import analyze_experiment as analyze

    settings = Settings(alpha=alpha, sequential=sequential, correction=correction)
    metrics = names(metric, "metric")
    _bounded(experiment_id, "experiment id")
    options = {"by": by, "control": control, "window_days": window, "pre_days": pre_days, "settings": settings,
               "catalog": catalog(request)}
    return Contract(runtime(request).read(call_json, analyze, (experiment_id, metrics), options))


@router.get("/experiments/{experiment_id}/roi", response_class=Contract)
def experiment_roi(
    request: Request, experiment_id: str, key: Reader,
    by: Literal["channel"] | None = None,
    window: Annotated[float | None, Query(gt=0, le=36_600)] = None,
    control: Annotated[str | None, Query(max_length=128)] = None,
    cost_channel: Annotated[str | None, Query(max_length=64, description="Count only personalization costs booked to this channel.")] = None,
    pre_days: Annotated[float, Query(ge=0, le=36_600)] = 30,
    alpha: Alpha = 0.05,
) -> Contract:
    """Incremental margin vs personalization cost per arm (the `cxlens roi EXPERIMENT --format json` contract;
    the CLI's free-form --cost-filter is not offered over HTTP)."""
    from cxlens.experiments.roi import experiment_roi as roi
    from cxlens.experiments.roi.experiment import channel_condition

    _bounded(experiment_id, "experiment id")
    options = {"control": control, "window_days": window, "by": by, "pre_days": pre_days, "alpha": alpha,
               "cost_filter": channel_condition(cost_channel) if cost_channel else None}
    return Contract(runtime(request).read(call_json, roi, (experiment_id,), options))


@router.get("/roi/content", response_class=Contract)
def content_roi(request: Request, key: Reader, click_days: Days = 7, since: Day = None, until: Day = None,
                alpha: Alpha = 0.05) -> Contract:
    """ROI per content piece (the `cxlens roi content --format json` contract)."""
    from cxlens.experiments.roi import content_roi as roi

    options = {"click_days": click_days, "alpha": alpha, "since": since, "until": until}
    return Contract(runtime(request).read(call_json, roi, (), options))


@router.get("/roi/stages", response_class=Contract)
def stage_roi(request: Request, key: Reader, days: Days = 7, alpha: Alpha = 0.05) -> Contract:
    """Personalized vs generic touches per journey stage (the `cxlens roi stages --format json` contract)."""
    from cxlens.experiments.roi import stage_report

    return Contract(runtime(request).read(call_json, stage_report, (), {"days": days, "alpha": alpha}))


# Customer value ------------------------------------------------------------------------------

@router.get("/clv", response_class=Contract)
def stored_clv(request: Request, key: Reader) -> Contract:
    """The predictions `cxlens clv predict` stored: model, horizon, totals and top customers (404 until it ran)."""
    from cxlens.clv.output import stored_predictions_json

    return Contract(runtime(request).read(call, stored_predictions_json, (), {}))


@router.get("/value/rfm", response_class=Contract)
def rfm(request: Request, key: Reader, as_of: Day = None) -> Contract:
    """RFM segments (the `cxlens rfm --format json` contract), computed without writing customer_value."""
    from cxlens.value import ValueSettings

    return Contract(runtime(request).read(_value, "rfm", as_of, ValueSettings(), {}))


@router.get("/value/hvc", response_class=Contract)
def hvc(
    request: Request, key: Reader,
    k: Annotated[float, Query(gt=0, le=1000, description="Lapsing: silent for more than k x the usual gap.")] = 3.0,
    as_of: Day = None,
    recent_days: Annotated[int | None, Query(ge=1, le=36_600)] = None,
    limit: Annotated[int, Query(ge=0, le=1000, description="Top members listed per class.")] = 10,
    predict: bool = True,
) -> Contract:
    """High-value, lapsing, emerging and high-volume customers (the `cxlens hvc --format json` contract),
    computed without writing customer_value."""
    from cxlens.value import ValueSettings

    settings = ValueSettings(k=k, recent_days=recent_days, predict=predict)
    return Contract(runtime(request).read(_value, "hvc", as_of, settings, {"limit": limit}))


# Journeys and attribution --------------------------------------------------------------------

ChurnDays = Annotated[int, Query(ge=1, le=36_600, description="No activity in the data's last N days means churned.")]


@router.get("/journeys/paths", response_class=Contract)
def journey_paths(
    request: Request, key: Reader,
    to: Literal["conversion", "churn"] = "conversion",
    level: Literal["channel", "stage", "touchpoint"] = "channel",
    lookback_days: Annotated[int, Query(ge=1, le=36_600)] = 30,
    max_steps: Annotated[int, Query(ge=1, le=50)] = 5,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 20,
    churn_days: ChurnDays = 60,
) -> Contract:
    """The most common paths to conversion or churn (the `cxlens journeys paths --format json` contract)."""
    from cxlens.journeys.paths import PathSettings

    settings = PathSettings(level=level, lookback_days=lookback_days, max_steps=max_steps, churn_days=churn_days)
    return Contract(runtime(request).read(_paths, to, settings, limit))


@router.get("/journeys/funnel", response_class=Contract)
def journey_funnel(
    request: Request, key: Reader,
    steps: Annotated[str, Query(max_length=1000, description="Comma-separated touchpoint names in order.")] = "product_view,add_to_cart,checkout_started,purchase",
    window_days: Annotated[float | None, Query(gt=0, le=36_600)] = None,
    by: Annotated[str | None, Query(max_length=128)] = None,
) -> Contract:
    """Profiles reaching each step in order (the `cxlens journeys funnel --format json` contract)."""
    parts = names([steps], "steps")
    cat = catalog(request) if by == "segment" else None
    return Contract(runtime(request).read(_funnel, parts, window_days, by, cat))


@router.get("/journeys/friction", response_class=Contract)
def journey_friction(
    request: Request, key: Reader,
    repeat_days: Annotated[int, Query(ge=1, le=3_660)] = 7,
    topic_days: Annotated[int, Query(ge=1, le=3_660)] = 14,
    long_wait: Annotated[float, Query(gt=0, le=1e7, description="Seconds of waiting that make a long wait.")] = 900.0,
    survey_days: Annotated[int, Query(ge=1, le=3_660)] = 30,
    churn_days: ChurnDays = 60,
) -> Contract:
    """Friction in support cases and its costs (the `cxlens journeys friction --format json` contract)."""
    from cxlens.journeys.friction import FrictionSettings

    settings = FrictionSettings(repeat_days=repeat_days, topic_days=topic_days, long_wait_seconds=long_wait,
                                survey_days=survey_days, churn_days=churn_days)
    return Contract(runtime(request).read(_friction, settings))


@router.get("/journeys/map", response_class=Contract)
def journey_map(
    request: Request, key: Reader,
    min_customers: Annotated[int, Query(ge=1, le=10_000_000)] = 20,
    churn_days: ChurnDays = 60,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 10,
) -> Contract:
    """Touchpoints by experience and the micro-journeys that drive churn (the `cxlens journeys map --format json` contract)."""
    from cxlens.journeys.friction import FrictionSettings

    return Contract(runtime(request).read(_map, FrictionSettings(churn_days=churn_days), min_customers, limit))


@router.get("/attribution", response_class=Contract)
def attribution(
    request: Request, key: Reader,
    model: AttributionModel = "markov",
    order: Annotated[int | None, Query(ge=1, le=3, description="Markov order (default 1).")] = None,
    by: Literal["channel", "campaign", "personalized"] = "channel",
    lookback_days: Annotated[float, Query(gt=0, le=3_660)] = 30.0,
    half_life: Annotated[float, Query(gt=0, le=3_660, description="time-decay: days after which a touch's weight halves.")] = 7.0,
) -> Contract:
    """Conversions and revenue credited to channels (the `cxlens attribution --format json` contract, on the workspace)."""
    from cxlens.attribution.workspace import attribution_report

    if order is not None and model != "markov":
        raise UsageError(f"order applies to the markov model only, not to {model}.")
    options = {"order": order or 1, "by": by, "lookback_days": lookback_days, "half_life_days": half_life}
    return Contract(runtime(request).read(call_json, attribution_report, (model,), options))


# What the endpoints run on the workspace besides read.call and read.call_json: module-level
# functions, so Runtime.read can send them to the loader's process, where they read beside a load.

def _segments(ws: Any, cat: Any) -> Any:
    from cxlens.semantic.listing import segments_json

    return segments_json(cat, ws, value=True)


def _value(ws: Any, kind: str, as_of: str | None, settings: Any, options: dict[str, Any]) -> Any:
    from cxlens.value import customer_value
    from cxlens.value.summary import hvc_json, rfm_json, unsaved

    result = customer_value(ws, as_of=as_of, settings=settings)
    return (rfm_json if kind == "rfm" else hvc_json)(result, unsaved(result), **options)


def _paths(ws: Any, to: str, settings: Any, limit: int) -> Any:
    from cxlens.journeys.output import paths_json
    from cxlens.journeys.paths import path_counts

    return paths_json(path_counts(ws, to, settings), limit)


def _funnel(ws: Any, steps: list[str], window_days: float | None, by: str | None, cat: Any) -> Any:
    from cxlens.journeys.funnel import funnel
    from cxlens.journeys.output import funnel_json

    return funnel_json(funnel(ws, steps, window_days=window_days, by=by, catalog=cat), window_days, by)


def _friction(ws: Any, settings: Any) -> Any:
    from cxlens.journeys.friction import friction_costs
    from cxlens.journeys.output import friction_json

    return friction_json(friction_costs(ws, settings), settings)


def _map(ws: Any, settings: Any, min_customers: int, limit: int) -> Any:
    from cxlens.journeys.map import journey_map
    from cxlens.journeys.output import map_json

    return map_json(journey_map(ws, settings, min_customers=min_customers), limit)
