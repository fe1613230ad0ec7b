"""CLI command `cxlens attribution`: credit conversions and revenue to channels, on the workspace or a path file."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, Any

import typer

from cxlens.cli.context import open_workspace
from cxlens.cli.output import Format, console, print_json, print_rows

FORMAT_OPTION = typer.Option("--format", "-f", help="table (for people) or json (for scripts).")


class ModelChoice(str, enum.Enum):
    first = "first"
    last = "last"
    last_non_direct = "last-non-direct"
    linear = "linear"
    time_decay = "time-decay"
    position = "position"
    markov = "markov"
    shapley = "shapley"


class ByChoice(str, enum.Enum):
    channel = "channel"
    campaign = "campaign"
    personalized = "personalized"


def _pct(v: float | None) -> str:
    return "" if v is None else f"{100 * v:.1f}%"


def _channel_rows(result: Any, label: str = "channel") -> list[dict[str, Any]]:
    rows = []
    for c in result.channels:
        row: dict[str, Any] = {label: c.channel, "conversions": c.conversions, "revenue": c.revenue, "share": _pct(c.share)}
        if c.removal_effect is not None:
            row["removal effect"] = c.removal_effect
        rows.append(row)
    return rows


def _title(result: Any) -> str:
    extra = result.extra
    parts = [f"{result.model}" + (f" (order {extra['order']})" if "order" in extra else ""),
             f"{result.total_conversions:,.0f} conversions", f"revenue {result.total_revenue:,.2f}"]
    if "conversion_probability" in extra:
        parts.append(f"P(conversion) {extra['conversion_probability']:.4f}")
    return ", ".join(parts)


def attribution_command(
    ctx: typer.Context,
    model: Annotated[ModelChoice, typer.Option("--model", "-m", help="Attribution model.")] = ModelChoice.markov,
    order: Annotated[int | None, typer.Option("--order", help="Markov order: how many past channels a state remembers (1-3; default 1).")] = None,
    paths: Annotated[Path | None, typer.Option("--paths", help="A path file in the ChannelAttribution layout (CSV or Parquet) instead of the workspace.")] = None,
    path_column: Annotated[str, typer.Option("--path-column", help="Path file: the column holding the paths.")] = "path",
    conversions_column: Annotated[str, typer.Option("--conversions-column", help="Path file: conversions per path.")] = "total_conversions",
    null_column: Annotated[str, typer.Option("--null-column", help="Path file: non-converting journeys per path (optional).")] = "total_null",
    value_column: Annotated[str, typer.Option("--value-column", help="Path file: conversion value per path (optional).")] = "total_conversion_value",
    separator: Annotated[str, typer.Option("--separator", help="Path file: the text between two channels of a path.")] = " > ",
    by: Annotated[ByChoice, typer.Option("--by", help="Workspace: credit channel groups, campaigns, or personalized vs generic touches.")] = ByChoice.channel,
    lookback_days: Annotated[float, typer.Option("--lookback-days", help="Workspace: touches up to this many days before an order count.")] = 30.0,
    half_life: Annotated[float, typer.Option("--half-life", help="time-decay: days after which a touch's weight halves.")] = 7.0,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
) -> None:
    """Credit conversions and revenue to channels: rule-based, exact Markov (order 1-3) or Shapley.

    On the workspace, each valid order is a conversion; its path is the profile's sessions (by
    channel group) and message/ad clicks in the --lookback-days before it and after the previous
    order, and touches after a profile's last order form non-converting paths (docs/attribution.md).
    With --paths, a file of path counts in the ChannelAttribution layout is read instead.

    Markov removal effects are computed exactly from the absorbing chain, so they are the same on
    every run. time-decay needs touch times and runs on the workspace only.

    JSON: {model, total_conversions, total_revenue, channels: [{channel, conversions, revenue, share,
    removal_effect (markov)}], ...}; on the workspace also roi (channels or campaigns with media or
    personalization costs), personalized (personalized vs generic touches), personalized_by_channel (the same
    within each channel) and unattributed_conversions.

    Examples:

      cxlens attribution --model markov --order 2

      cxlens attribution --model shapley --format json

      cxlens attribution --model markov --paths paths.csv --separator " > "
    """
    from cxlens.attribution import attribute, read_path_file
    from cxlens.attribution.markov import check_order
    from cxlens.errors import UsageError

    if order is not None and model is not ModelChoice.markov:
        raise UsageError(f"--order applies to the markov model only, not to {model.value}.")
    chosen_order = check_order(order if order is not None else 1)
    if paths is not None:
        if by is not ByChoice.channel or lookback_days != 30.0:
            raise UsageError("--by and --lookback-days apply to the workspace; a path file already holds its paths.")
        counts = read_path_file(paths, path_column=path_column, conversions_column=conversions_column,
                                null_column=null_column, value_column=value_column, separator=separator)
        result = attribute(counts, model.value, order=chosen_order)
        if format is Format.json:
            print_json({**result.to_dict(), "paths": len(counts)})
            return
        print_rows(_channel_rows(result), title=_title(result) + f", {len(counts):,} distinct paths")
        return
    _workspace(ctx, model.value, chosen_order, by.value, lookback_days, half_life, format)


def _workspace(ctx: typer.Context, model: str, order: int, by: str, lookback_days: float, half_life: float, format: Format) -> None:
    from cxlens.attribution.workspace import attribution_report

    with open_workspace(ctx) as ws:
        report = attribution_report(ws, model, order=order, by=by, lookback_days=lookback_days,  # type: ignore[arg-type]
                                    half_life_days=half_life)
    if format is Format.json:
        print_json(report.to_json())
        return
    result, roi_rows, unmatched = report.result, report.roi, report.unmatched_costs
    personal, within = report.personalized, report.personalized_by_channel
    print_rows(_channel_rows(result, by), title=_title(result) + f" by {by}")
    extra = result.extra
    console.print(f"{extra['orders']:,} valid orders; {extra['unattributed_conversions']:,} had no touch in the "
                  f"{lookback_days:g} days before them and are not credited. {extra['paths']:,} distinct paths, "
                  f"{extra['non_converting_paths']:,.0f} non-converting.")
    if roi_rows:
        print_rows([{by: r["channel"], "cost": r["cost"], "credited revenue": r["revenue"], "ROI": _pct(r["roi"])}
                    for r in roi_rows], title="ROI = (credited revenue - media and personalization cost) / cost")
    if unmatched:
        console.print("Costs matched to no credited " + by + ": " + ", ".join(f"{k} {v:,.2f}" for k, v in unmatched.items()))
    if personal:
        print_rows([{"touches": r["kind"], "count": r["touches"], "conversions": r["conversions"], "revenue": r["revenue"],
                     "share": _pct(r["share"]), "conversions per 100 touches": r["conversions_per_100_touches"]}
                    for r in personal], title="Personalized vs generic touches")
    if within:
        print_rows([{"channel": r["channel"], "touches": r["kind"], "count": r["touches"], "conversions": r["conversions"],
                     "revenue": r["revenue"], "conversions per 100 touches": r["conversions_per_100_touches"]}
                    for r in within if r["kind"] != "(no campaign)"],
                   title="Personalized vs generic touches within each channel")


def register(app: typer.Typer) -> None:
    app.command("attribution")(attribution_command)
