"""CLI commands under `cxlens journeys`: paths, funnels, friction and the journey map."""

from __future__ import annotations

import enum
from typing import Annotated, Any

import pandas as pd
import typer

from cxlens.cli.context import load_catalog, open_workspace
from cxlens.cli.output import Format, console, print_json, print_rows

journeys_app = typer.Typer(help="Customer journeys: paths to conversion and churn, funnels, friction and the journey map.",
                           no_args_is_help=True)

FORMAT_OPTION = typer.Option("--format", "-f", help="table (for people) or json (for scripts).")
CHURN_DAYS_OPTION = typer.Option("--churn-days", help="A customer with no activity in the data's last N days has churned.")


class OutcomeChoice(str, enum.Enum):
    conversion = "conversion"
    churn = "churn"


class LevelChoice(str, enum.Enum):
    channel = "channel"
    stage = "stage"
    touchpoint = "touchpoint"


def _pct(v: Any) -> str:
    return "" if v is None or pd.isna(v) else f"{100 * float(v):.1f}%"


@journeys_app.command("paths")
def paths_command(
    ctx: typer.Context,
    to: Annotated[OutcomeChoice, typer.Option("--to", help="Paths to the first conversion (order or purchase) or to churn.")] = OutcomeChoice.conversion,
    level: Annotated[LevelChoice, typer.Option("--level", help="Write steps as channels, stages or touchpoint names.")] = LevelChoice.channel,
    lookback_days: Annotated[int, typer.Option("--lookback-days", help="Touchpoints at most this many days before the outcome.")] = 30,
    max_steps: Annotated[int, typer.Option("--max-steps", help="Keep the last N steps of a path (older ones become …).")] = 5,
    limit: Annotated[int, typer.Option("--limit", help="How many paths to list.")] = 20,
    churn_days: Annotated[int, CHURN_DAYS_OPTION] = 60,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
) -> None:
    """The most common paths to conversion or churn, and Sankey flows between their steps.

    Repeated steps collapse ("web > web" is "web"); messages sent and recommendations shown are
    left out (the customer may never have seen them).

    Examples:

      cxlens journeys paths

      cxlens journeys paths --to churn --level touchpoint --format json
    """
    from cxlens.journeys.output import paths_json
    from cxlens.journeys.paths import PathSettings, path_counts

    settings = PathSettings(level=level.value, lookback_days=lookback_days, max_steps=max_steps, churn_days=churn_days)
    if limit < 1:
        from cxlens.errors import UsageError

        raise UsageError(f"--limit is {limit}; it must be at least 1.")
    with open_workspace(ctx) as ws:
        result = path_counts(ws, to.value, settings)
    paths = result["paths"].head(limit)
    if format is Format.json:
        print_json(paths_json(result, limit))
        return
    if paths.empty:
        console.print(f"No customer has a path to {to.value}: the workspace holds no {'purchase' if to.value == 'conversion' else 'churned customer'} "
                      "with touchpoints of a resolved profile before it.")
        return
    print_rows([{"path": r.path, "profiles": int(r.profiles), "share": _pct(r.share)} for r in paths.itertuples()],
               title=f"Top paths to {to.value} ({level.value}s, last {lookback_days} days)")


@journeys_app.command("funnel")
def funnel_command(
    ctx: typer.Context,
    steps: Annotated[str, typer.Option("--steps", help="Comma-separated touchpoint names in order: event types, order, support:TOPIC.")] = "product_view,add_to_cart,checkout_started,purchase",
    window_days: Annotated[float | None, typer.Option("--window-days", help="Each step must follow the first within N days (default: no limit).")] = None,
    by: Annotated[str | None, typer.Option("--by", help="Break down by channel (of the first step), segment, or a profile dimension (country, loyalty_tier, cohort, ...).")] = None,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
) -> None:
    """Profiles reaching each step in order: conversion and drop-off per step, median time between steps.

    Examples:

      cxlens journeys funnel --steps product_view,add_to_cart,checkout_started,purchase

      cxlens journeys funnel --steps product_view,order --window-days 30 --by loyalty_tier --format json
    """
    from cxlens.journeys.funnel import funnel
    from cxlens.journeys.output import funnel_json

    names = [s for s in (p.strip() for p in steps.split(",")) if s]
    catalog = load_catalog(ctx) if by == "segment" else None
    with open_workspace(ctx) as ws:
        result = funnel(ws, names, window_days=window_days, by=by, catalog=catalog)
    if format is Format.json:
        print_json(funnel_json(result, window_days, by))
        return
    if result.frame.empty:
        console.print(f"No customer reached the first step ({result.steps[0]}); nothing to show.")
        return
    for group, rows in result.frame.groupby("group", sort=False):
        print_rows([{"step": f"{r.step_index}. {r.step}", "profiles": int(r.profiles), "from previous": _pct(r.conversion_from_previous),
                     "from start": _pct(r.conversion_from_start), "drop-off": int(r.drop_off),
                     "median time from previous": _duration(r.median_seconds_from_previous)} for r in rows.itertuples()],
                   title=f"Funnel{'' if by is None else f' — {by} = {group}'}")


def _duration(seconds: float) -> str:
    if seconds is None or pd.isna(seconds):
        return ""
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


@journeys_app.command("friction")
def friction_command(
    ctx: typer.Context,
    repeat_days: Annotated[int, typer.Option("--repeat-days", help="A contact on the same case within N days of the one before is a repeat contact.")] = 7,
    topic_days: Annotated[int, typer.Option("--topic-days", help="A new case on the same topic within N days repeats information.")] = 14,
    long_wait: Annotated[float, typer.Option("--long-wait", help="Seconds of waiting that make a long wait.")] = 900.0,
    survey_days: Annotated[int, typer.Option("--survey-days", help="Answers without an interaction_id count for a case up to N days after it.")] = 30,
    churn_days: Annotated[int, CHURN_DAYS_OPTION] = 60,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
) -> None:
    """Friction in support cases and what it costs: effects on CES, CSAT, NPS and churn with 95% intervals.

    Each effect is a least-squares coefficient with HC1 robust standard errors, adjusted for
    topic, first channel, tenure and prior orders (churn: cases, tenure, prior orders and revenue).

    Examples:

      cxlens journeys friction

      cxlens journeys friction --long-wait 600 --churn-days 90 --format json
    """
    from cxlens.journeys.friction import FrictionSettings, friction_costs
    from cxlens.journeys.output import friction_json

    settings = FrictionSettings(repeat_days=repeat_days, topic_days=topic_days, long_wait_seconds=long_wait,
                                survey_days=survey_days, churn_days=churn_days)
    with open_workspace(ctx) as ws:
        result = friction_costs(ws, settings)
    if format is Format.json:
        print_json(friction_json(result, settings))
        return
    p = result.prevalence
    print_rows([{"measure": k, "share of cases": _pct(p[k])} for k in ("friction", *MEASURE_NAMES)],
               title=f"{int(p['cases']):,} cases, {int(p['contacts']):,} contacts")
    for outcome in ("churn", "ces", "csat", "nps"):
        e = result.costliest(outcome)
        if e.empty:
            continue
        unit = "points" if outcome != "churn" else "probability"
        print_rows([{"friction": r.label, "effect per unit": f"{r.estimate:+.3f}", "95% interval": f"{r.ci_low:+.3f} .. {r.ci_high:+.3f}",
                     "p": f"{r.p_value:.3g}", "mean per row": f"{r.mean_exposure:.3f}", "impact": f"{r.impact:+.4f}"}
                    for r in e.itertuples()],
                   title=f"{outcome.upper()} ({unit}, n = {result.models[outcome]['n']:,}), costliest first")
    for note in result.notes:
        console.print(f"[yellow]{note}[/]")


MEASURE_NAMES = ("unresolved", "repeat_contacts", "transfers", "channel_switches", "repeat_topic", "long_waits")


@journeys_app.command("map")
def map_command(
    ctx: typer.Context,
    min_customers: Annotated[int, typer.Option("--min-customers", help="Micro-journeys had by fewer customers are not ranked.")] = 20,
    churn_days: Annotated[int, CHURN_DAYS_OPTION] = 60,
    limit: Annotated[int, typer.Option("--limit", help="How many micro-journeys to list.")] = 10,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
) -> None:
    """The journey map: touchpoints by experience (linked answers, 0-1), friction and drop-off; the
    micro-journeys (support cases, visits) whose customers churn more than the others, largest effect first.

    Examples:

      cxlens journeys map

      cxlens journeys map --min-customers 50 --format json
    """
    from cxlens.journeys.friction import FrictionSettings
    from cxlens.journeys.map import journey_map
    from cxlens.journeys.output import map_json

    if min_customers < 1 or limit < 1:
        from cxlens.errors import UsageError

        raise UsageError(f"--min-customers ({min_customers}) and --limit ({limit}) must be at least 1.")
    with open_workspace(ctx) as ws:
        m = journey_map(ws, FrictionSettings(churn_days=churn_days), min_customers=min_customers)
    micro = m.micro_journeys.head(limit)
    if format is Format.json:
        print_json(map_json(m, limit))
        return
    ranked = pd.concat([m.worst(5).assign(side="worst"), m.best(5).assign(side="best")]).drop_duplicates("touchpoint")
    print_rows([{"touchpoint": r.touchpoint, "": r.side, "experience": f"{r.experience:.2f}", "answers": int(r.answers),
                 "friction": _pct(r.friction_share), "drop-off": _pct(r.drop_off)} for r in ranked.itertuples()],
               title="Touchpoints by linked survey answers (0 worst, 1 best)")
    print_rows([{"micro-journey": r.micro_journey, "customers": int(r.customers), "churn": _pct(r.churn_rate),
                 "others": _pct(r.churn_rate_without), "effect": f"{100 * r.effect:+.1f} pp",
                 "95% interval": f"{100 * r.ci_low:+.1f} .. {100 * r.ci_high:+.1f}"} for r in micro.itertuples()],
               title=f"Micro-journeys by effect on churn ({m.customers:,} customers, churn {_pct(m.churn_rate)})")


def register(app: typer.Typer) -> None:
    app.add_typer(journeys_app, name="journeys")
