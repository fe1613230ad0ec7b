"""CLI commands under `cxlens experiment`: list, metrics, analyze (workspace or flat file), plan."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cxlens.cli.context import load_catalog, open_workspace
from cxlens.cli.output import Format, console, print_json, print_rows
from cxlens.errors import UsageError

if TYPE_CHECKING:
    from cxlens.experiments.analysis import Analysis, Settings

experiment_app = typer.Typer(help="Experiments and holdouts: list them, analyze them, plan the next one.", no_args_is_help=True)

FORMAT_OPTION = typer.Option("--format", "-f", help="table (for people) or json (for scripts).")


class CorrectionChoice(str, enum.Enum):
    holm = "holm"
    bh = "bh"
    none = "none"


@experiment_app.command("list")
def list_command(ctx: typer.Context, format: Annotated[Format, FORMAT_OPTION] = Format.table) -> None:
    """List the experiments in `assignments`: variants, units per variant, assignment dates.

    Examples:

      cxlens experiment list

      cxlens experiment list --format json
    """
    from cxlens.experiments.units import experiments

    with open_workspace(ctx) as ws:
        found = experiments(ws)
    if format is Format.json:
        print_json({"experiments": found})
        return
    if not found:
        console.print("No experiments: ingest an assignments file (experiment_id, unit_id, variant, assigned_at).")
        return
    print_rows(
        [{"experiment": e["experiment_id"], "variants": ", ".join(f"{v} ({n:,})" for v, n in e["variants"].items()),
          "units": e["units"], "control": e["control"] or "–", "first assigned": e["first_assigned_at"],
          "last assigned": e["last_assigned_at"]} for e in found],
        title=f"{len(found)} experiment(s)",
    )


@experiment_app.command("metrics")
def metrics_command(ctx: typer.Context, format: Annotated[Format, FORMAT_OPTION] = Format.table) -> None:
    """List the catalogue metrics an experiment can measure per unit, and how each is analyzed.

    Examples:

      cxlens experiment metrics --format json
    """
    from cxlens.experiments.metrics import experiment_metric, supported

    catalog = load_catalog(ctx)
    rows = []
    for metric_id in supported(catalog):
        metric = catalog.metric(metric_id)
        spec, _ = experiment_metric(metric)
        rows.append({"id": metric.id, "label": metric.label, "kind": spec.kind, "higher_is_better": spec.higher_is_better,
                     "description": metric.description})
    if format is Format.json:
        print_json({"metrics": rows})
        return
    print_rows(rows, title=f"{len(rows)} metrics can be measured per experiment unit",
               columns=("id", "label", "kind", "description"))


@experiment_app.command("analyze")
def analyze_command(
    ctx: typer.Context,
    experiment_id: Annotated[str | None, typer.Argument(help="Experiment id (see `cxlens experiment list`); omit with --units.", show_default=False)] = None,
    metric: Annotated[list[str] | None, typer.Option("--metric", "-m", help="Metric id (workspace) or column (flat file; num/den for a ratio). Repeat for several.")] = None,
    by: Annotated[str | None, typer.Option("--by", help="Cut results by a dimension or segment (workspace) or a column (flat file).")] = None,
    control: Annotated[str | None, typer.Option("--control", help="The control variant (default: control, holdout, … when present).")] = None,
    units: Annotated[Path | None, typer.Option("--units", help="A per-unit file (CSV, Parquet, JSON; .gz too) instead of the workspace.")] = None,
    variant_column: Annotated[str | None, typer.Option("--variant-column", help="With --units: the column holding the variant.")] = None,
    covariate: Annotated[str | None, typer.Option("--covariate", help="With --units: a pre-period column for CUPED.")] = None,
    window: Annotated[float | None, typer.Option("--window", help="Days of exposure per unit from its first assignment (default: to the end of the data).")] = None,
    pre_days: Annotated[float, typer.Option("--pre-days", help="Days before exposure used as the CUPED covariate (0 turns CUPED off).")] = 30,
    alpha: Annotated[float, typer.Option("--alpha", help="1 − confidence level of the intervals.")] = 0.05,
    sequential: Annotated[bool, typer.Option("--sequential", help="Always-valid intervals and p-values: safe to look every day.")] = False,
    correction: Annotated[CorrectionChoice, typer.Option("--correction", help="Multiple-testing correction across all results: holm, bh or none.")] = CorrectionChoice.holm,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
) -> None:
    """Analyze an experiment: effect per variant and metric with intervals, p-values and a verdict.

    From the workspace, metrics are catalogue metrics per unit over its exposure window, with the
    same metric over the pre-period as CUPED covariate. From a flat file (--units), metrics are
    columns. Every analysis checks the sample ratio; a mismatch blocks a "ship" verdict.

    Examples:

      cxlens experiment analyze perso-2025

      cxlens experiment analyze perso-2025 --metric orders --metric aov --by country --format json

      cxlens experiment analyze --units hillstrom.csv.gz --variant-column segment --control "No E-Mail" --metric visit --metric spend --covariate history
    """
    from cxlens.experiments.analysis import Settings, check_alpha

    settings = Settings(alpha=check_alpha(alpha), sequential=sequential, correction=correction.value)  # type: ignore[arg-type]
    if units is not None:
        if experiment_id is not None:
            raise UsageError("Give either an experiment id (workspace) or --units FILE, not both.")
        if not variant_column or control is None or not metric:
            raise UsageError("--units needs --variant-column COL, --control VALUE and at least one --metric COL.")
        from cxlens.experiments.flatfile import analyze_file

        analysis = analyze_file(units, variant_column=variant_column, control=control, metrics=metric,
                                covariate=covariate, settings=settings, by=by)
        title = f"{units.name}: {variant_column} vs {control!r}"
    else:
        if experiment_id is None:
            raise UsageError("Name the experiment (see `cxlens experiment list`), or analyze a file with --units.")
        if covariate or variant_column:
            raise UsageError("--covariate and --variant-column go with --units; in the workspace the covariate is the pre-period (--pre-days).")
        from cxlens.experiments.workspace import analyze_experiment

        with open_workspace(ctx) as ws:
            analysis = analyze_experiment(ws, experiment_id, metric or (), by=by, control=control, window_days=window,
                                          pre_days=pre_days, settings=settings, catalog=load_catalog(ctx))
        title = f"Experiment {experiment_id} vs {analysis.control!r}"
    if format is Format.json:
        print_json(analysis.to_json())
        return
    _print_analysis(analysis, title, settings)


def _print_analysis(analysis: Analysis, title: str, settings: Settings) -> None:
    level = f"{100 * (1 - settings.alpha):g}%"
    rows = []
    for r in analysis.results:
        rows.append({
            "metric": r["metric"], "variant": r["variant"], **({analysis.by: r.get(analysis.by)} if analysis.by else {}),
            "n": r["n"], "control": _num(r["control_mean"]), "variant mean": _num(r["mean"]),
            "lift": _pct(r["rel_effect"]), f"{level} CI": _interval(r["rel_ci_low"], r["rel_ci_high"]),
            "p": _p(r["p_value"]), "adj. p": _p(r["adjusted_p_value"]), "chance to win": _pct(r["chance_to_win"], signed=False),
            "verdict": r["verdict"] if r["code"] in ("ok", "zero_variance") else f"{r['verdict']} ({r['code']})",
        })
    print_rows(rows, title=title)
    console.print(f"Units: {', '.join(f'{v} {n:,}' for v, n in analysis.units.items())}; sample ratio p = {_p(analysis.srm.p_value)}.")
    for w in analysis.warnings:
        console.print(f"[yellow]Warning:[/] {w}")


def _num(v: Any) -> str:
    return "–" if v is None else f"{v:,.4g}"


def _pct(v: Any, *, signed: bool = True) -> str:
    return "–" if v is None else (f"{v * 100:+.1f}%" if signed else f"{v * 100:.1f}%")


def _interval(low: Any, high: Any) -> str:
    return "–" if low is None or high is None else f"[{low * 100:+.1f}%, {high * 100:+.1f}%]"


def _p(v: Any) -> str:
    return "–" if v is None else f"{v:.3g}"


@experiment_app.command("plan")
def plan_command(
    ctx: typer.Context,
    metric: Annotated[str, typer.Option("--metric", "-m", help="Metric id (per unit, see `cxlens experiment metrics`).", show_default=False)],
    mde: Annotated[float, typer.Option("--mde", help="Minimum detectable relative effect (0.05 = +5%).", show_default=False)],
    traffic: Annotated[str | None, typer.Option("--traffic", help="New units per day, e.g. 500 or 500/day (default: what the workspace saw).")] = None,
    days: Annotated[int, typer.Option("--days", help="Days of recent data the baseline and traffic are measured over.")] = 28,
    alpha: Annotated[float, typer.Option("--alpha", help="Significance level (two-sided).")] = 0.05,
    power: Annotated[float, typer.Option("--power", help="Chance to detect an effect of size --mde.")] = 0.8,
    arms: Annotated[int, typer.Option("--arms", help="Number of arms including control.")] = 2,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
) -> None:
    """Plan an experiment: units per arm, total units and days needed to detect --mde on a metric.

    The baseline (mean and spread per unit) is measured on the workspace's customers over the
    last --days days.

    Examples:

      cxlens experiment plan --metric orders --mde 0.05 --traffic 400/day

      cxlens experiment plan --metric aov --mde 0.03 --format json
    """
    from cxlens.experiments.planning import plan_from_workspace

    per_day = _traffic(traffic)
    with open_workspace(ctx) as ws:
        result = plan_from_workspace(ws, metric, mde=mde, traffic_per_day=per_day, days=days, alpha=alpha, power=power,
                                     arms=arms, catalog=load_catalog(ctx))
    if format is Format.json:
        print_json(result)
        return
    plan = result["plan"]
    print_rows([{"metric": metric, "baseline": _num(result["baseline"]), "sd per unit": _num(result["sd"]),
                 "mde": _pct(mde), "units per arm": plan["units_per_arm"], "total units": plan["total_units"],
                 "traffic/day": _num(plan["traffic_per_day"]), "days": plan["days"] if plan["days"] is not None else "–"}],
               title=f"Plan for {metric} (alpha {alpha:g}, power {power:g}, {arms} arms)")
    if plan["message"]:
        console.print(plan["message"])


def _traffic(text: str | None) -> float | None:
    if text is None:
        return None
    value = text.strip().removesuffix("/day").removesuffix("/d").strip().replace(",", "")
    try:
        number = float(value)
    except ValueError:
        raise UsageError(f"--traffic must be a number of units per day such as 500 or 500/day, got {text!r}.") from None
    if number <= 0:
        raise UsageError(f"--traffic must be > 0 units per day, got {text!r}.")
    return number


def register(app: typer.Typer) -> None:
    app.add_typer(experiment_app, name="experiment")
