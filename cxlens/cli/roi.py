"""CLI commands under `cxlens roi`: an experiment's ROI, content ROI, journey stages.

`cxlens roi EXPERIMENT_ID` is short for `cxlens roi experiment EXPERIMENT_ID` (an experiment named
`content` or `stages` needs the long form).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from cxlens.cli.context import open_workspace
from cxlens.cli.output import Format, console, print_json, print_rows

FORMAT_OPTION = typer.Option("--format", "-f", help="table (for people) or json (for scripts).")
ALPHA_OPTION = typer.Option("--alpha", help="1 − confidence level of the intervals.")


class _ExperimentByDefault(TyperGroup):
    """A group whose first word, when it is not a subcommand, is an experiment id."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["experiment", *args]
        return super().parse_args(ctx, args)


roi_app = typer.Typer(
    cls=_ExperimentByDefault, no_args_is_help=True,
    help=("Personalization ROI: incremental margin against personalization costs, per experiment arm and channel, "
          "per content piece, per journey stage.\n\n"
          "Examples:\n\n"
          "  cxlens roi perso-2025 --by channel\n\n"
          "  cxlens roi content --format json\n\n"
          "  cxlens roi stages"),
)


@roi_app.command("experiment")
def experiment_command(
    ctx: typer.Context,
    experiment_id: Annotated[str, typer.Argument(help="Experiment id (see `cxlens experiment list`).", show_default=False)],
    by: Annotated[str | None, typer.Option("--by", help="Cut by channel (each channel is charged the costs booked to it).")] = None,
    window: Annotated[float | None, typer.Option("--window", help="Days of exposure per unit from its first assignment (default: to the end of the data).")] = None,
    control: Annotated[str | None, typer.Option("--control", help="The control variant (default: control, holdout, none, … when present).")] = None,
    cost_channel: Annotated[str | None, typer.Option("--cost-channel", help="Count only personalization costs booked to this channel.")] = None,
    cost_filter: Annotated[str | None, typer.Option("--cost-filter", help="Count only costs matching this condition, e.g. \"campaign_id IS NULL\".")] = None,
    pre_days: Annotated[float, typer.Option("--pre-days", help="Days before exposure used as the CUPED covariate (0 turns CUPED off).")] = 30,
    alpha: Annotated[float, ALPHA_OPTION] = 0.05,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
) -> None:
    """ROI of a personalization experiment: incremental buyers, orders, revenue and margin vs cost.

    Incremental totals = per-unit effect × treated units (randomized comparison); cost = costs of
    kind personalization dated from the first assignment to the end of the window or the data,
    taken as known; ROI = (incremental margin − cost) / cost. Several treatment arms (all
    channels, one channel) each get a row, the cost split by their units.

    Examples:

      cxlens roi perso-2025

      cxlens roi perso-2025 --by channel --cost-channel web --format json

      cxlens roi experiment perso-2025 --window 60 --control holdout
    """
    from cxlens.experiments.analysis import check_alpha
    from cxlens.experiments.roi import experiment_roi
    from cxlens.experiments.roi.experiment import channel_condition

    conditions = [channel_condition(cost_channel)] if cost_channel else []
    conditions += [f"({cost_filter})"] if cost_filter else []
    with open_workspace(ctx) as ws:
        result = experiment_roi(ws, experiment_id, control=control, window_days=window, by=by,
                                cost_filter=" AND ".join(conditions) or None, pre_days=pre_days, alpha=check_alpha(alpha))
    if format is Format.json:
        print_json(result.to_json())
        return
    level = f"{100 * (1 - alpha):g}%"
    rows = [_experiment_row(r, by, level) for r in (result.rows or result.total)]
    units = ", ".join(f"{v} {n:,}" for v, n in result.units.items())
    print_rows(rows, title=f"ROI of experiment {experiment_id} vs {result.control!r} (units: {units})")
    if result.rows:
        print_rows([_experiment_row(r, None, level) for r in result.total], title="All channels")
    costs = ", ".join(f"{c} {a:,.0f}" for c, a in result.costs.items()) or "none"
    console.print(f"Period {result.period['start'][:10]} to {result.period['end'][:10]}; personalization costs: {costs}"
                  + (f" (unallocated to a channel: {result.unallocated_cost:,.0f})" if result.unallocated_cost else "") + ".")
    for r in (*result.total, *result.rows):
        if r["flag"] and r["status"] == "does_not_pay":
            console.print(f"[red]Flag:[/] {r['flag']}")
    for w in result.warnings:
        console.print(f"[yellow]Warning:[/] {w}")


def _experiment_row(r: dict[str, Any], by: str | None, level: str) -> dict[str, Any]:
    return {
        "variant": r["variant"], **({by: r.get(by)} if by else {}), "+buyers": _est(r["incremental_buyers"]),
        "+orders": _est(r["incremental_orders"]), "+revenue": _est(r["incremental_revenue"]),
        f"+margin ({level} CI)": _est(r["incremental_margin"], ci=True), "cost": _money(r["cost"]),
        f"ROI ({level} CI)": _roi(r["roi"]), "status": _status(r),
    }


@roi_app.command("content")
def content_command(
    ctx: typer.Context,
    click_days: Annotated[float, typer.Option("--click-days", help="Days after a click whose orders give the click its value.")] = 7,
    since: Annotated[str | None, typer.Option("--since", help="First day of events to count (YYYY-MM-DD).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Last day of events to count (YYYY-MM-DD).")] = None,
    alpha: Annotated[float, ALPHA_OPTION] = 0.05,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
) -> None:
    """ROI per content piece: CTR uplift of personalized content over generic, value, cost, and a flag.

    Clicks per send with the recipient as unit; a piece is compared with its own generic sends
    when it has some (randomized), else with the generic content of its channel (observational).
    A click is worth the margin of orders within --click-days after a generic click; the cost is
    the personalization cost booked to the piece's campaign. Content that does not pay is flagged.

    Examples:

      cxlens roi content

      cxlens roi content --click-days 14 --since 2025-03-01 --format json
    """
    from cxlens.experiments.analysis import check_alpha
    from cxlens.experiments.roi import content_roi

    with open_workspace(ctx) as ws:
        result = content_roi(ws, click_days=click_days, alpha=check_alpha(alpha), since=since, until=until)
    if format is Format.json:
        print_json(result.to_json())
        return
    level = f"{100 * (1 - alpha):g}%"
    rows = [{"content": r["content_id"], "sends": r["sends"], "clicks": r["clicks"], "CTR": _pct(r["ctr"], signed=False),
             f"uplift ({level} CI)": _uplift(r["uplift"]), "+clicks": _est(r["incremental_clicks"]),
             "+margin": _est(r["incremental_margin"]), "cost": _money(r["cost"]), f"ROI ({level} CI)": _roi(r["roi"]),
             "status": _status(r)} for r in result.content]
    print_rows(rows, title=f"{len(rows)} content piece(s)")
    pooled = [{"content": f"all personalized {r['family']}s", "channel": r["channel"], "pieces": r["pieces"],
               f"uplift ({level} CI)": _uplift(r["uplift"]), "+clicks": _est(r["incremental_clicks"], ci=True),
               "+margin": _est(r["incremental_margin"], ci=True), "cost": _money(r["cost"]),
               f"ROI ({level} CI)": _roi(r["roi"]), "status": _status(r)} for r in result.pooled]
    if pooled:
        print_rows(pooled, title="Personalized vs generic content, per channel")
    for v in result.click_value:
        console.print(f"A {v['family']} click in {v['channel']} is worth {_money(v['margin_per_click'])} margin "
                      f"({v['clicks']:,} generic clicks, orders within {result.click_days:g} days).")
    for f in result.flags:
        console.print(f"[red]Flag:[/] {f}")


@roi_app.command("stages")
def stages_command(
    ctx: typer.Context,
    days: Annotated[float, typer.Option("--days", help="Days after a touch within which an order counts as its conversion.")] = 7,
    alpha: Annotated[float, ALPHA_OPTION] = 0.05,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
) -> None:
    """Personalized vs generic touches per journey stage, and how often each is followed by an order.

    Stages: awareness, consideration, purchase, service, loyalty (event types are mapped in
    cxlens.experiments.roi.JOURNEY_STAGES). The comparison is observational.

    Examples:

      cxlens roi stages

      cxlens roi stages --days 14 --format json
    """
    from cxlens.experiments.analysis import check_alpha
    from cxlens.experiments.roi import stage_report

    with open_workspace(ctx) as ws:
        result = stage_report(ws, days=days, alpha=check_alpha(alpha))
    if format is Format.json:
        print_json(result.to_json())
        return
    level = f"{100 * (1 - alpha):g}%"
    rows = []
    for s in result.stages:
        e = s["effect"] or {}
        rows.append({"stage": s["stage"], "personalized": s["touches"]["personalized"], "generic": s["touches"]["generic"],
                     "untagged": s["touches"]["untagged"], "conv. personalized": _pct(s["conversion"]["personalized"]["rate"], signed=False),
                     "conv. generic": _pct(s["conversion"]["generic"]["rate"], signed=False),
                     f"difference ({level} CI)": _uplift(e and {"rel_effect": e["rel_effect"], "rel_ci_low": e["rel_ci_low"],
                                                                 "rel_ci_high": e["rel_ci_high"]}) if e else "–",
                     "code": s["code"]})
    print_rows(rows, title=f"Journey stages: touches followed by an order within {days:g} days")
    console.print("Observational: who receives personalized touches is not random.")


def _est(v: dict[str, Any] | None, *, ci: bool = False) -> str:
    if not v or v["value"] is None:
        return "–"
    text = f"{v['value']:+,.0f}"
    if ci and v["ci_low"] is not None and v["ci_high"] is not None:
        text += f" [{v['ci_low']:+,.0f}, {v['ci_high']:+,.0f}]"
    return text


def _roi(v: dict[str, Any] | None) -> str:
    if not v or v["value"] is None:
        return "–"
    text = f"{v['value'] * 100:+.0f}%"
    if v["ci_low"] is not None and v["ci_high"] is not None:
        text += f" [{v['ci_low'] * 100:+.0f}%, {v['ci_high'] * 100:+.0f}%]"
    return text


def _uplift(u: dict[str, Any] | None) -> str:
    if not u or u.get("rel_effect") is None:
        return "–"
    text = _pct(u["rel_effect"])
    if u.get("rel_ci_low") is not None and u.get("rel_ci_high") is not None:
        text += f" [{_pct(u['rel_ci_low'])}, {_pct(u['rel_ci_high'])}]"
    return text


def _pct(v: float | None, *, signed: bool = True) -> str:
    return "–" if v is None else (f"{v * 100:+.1f}%" if signed else f"{v * 100:.1f}%")


def _money(v: float | None) -> str:
    return "–" if v is None else f"{v:,.0f}" if abs(v) >= 100 or v == 0 else f"{v:,.2f}"


def _status(r: dict[str, Any]) -> str:
    return r["status"] if r["code"] in ("ok", "no_interval") or r["status"] == "baseline" else f"{r['status']} ({r['code']})"


def register(app: typer.Typer) -> None:
    app.add_typer(roi_app, name="roi")
