"""CLI commands under `cxlens metrics`: list, show, compare, dimensions, segments, check, docs."""

from __future__ import annotations

import csv
import enum
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from cxlens.cli.context import load_catalog, open_workspace
from cxlens.cli.output import Format, console, err_console, print_json, print_rows
from cxlens.errors import UsageError

if TYPE_CHECKING:
    pass

metrics_app = typer.Typer(help="KPIs: list them, show them by period and dimension, compare against a baseline.",
                          no_args_is_help=True)


class GrainChoice(str, enum.Enum):
    day = "day"
    week = "week"
    month = "month"
    quarter = "quarter"
    year = "year"
    all = "all"


class ShowFormat(str, enum.Enum):
    table = "table"
    json = "json"
    csv = "csv"


FORMAT_OPTION = typer.Option("--format", "-f", help="table (for people) or json (for scripts).")
BY_OPTION = typer.Option("--by", help="Dimension to cut by; repeat or separate with commas (see `cxlens metrics dimensions`).")
WHERE_OPTION = typer.Option("--where", help="A segment name, or a condition over profile features (`cxlens metrics segments`).")


def _by(values: list[str] | None) -> list[str]:
    return [d.strip() for v in values or [] for d in v.split(",") if d.strip()]


def format_change(value: Any, unit: str) -> str:
    """A change for people: shares move in percentage points, everything else in its own unit."""
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    if unit == "share":
        return f"{float(value) * 100:+.1f} pp"
    text = format_value(value, unit)
    return text if text.startswith(("+", "-")) else f"+{text}"


def format_value(value: Any, unit: str) -> str:
    """A metric value for people: shares as percentages, NPS in points, money with two decimals."""
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    v = float(value)
    if unit == "share":
        return f"{v * 100:.1f}%"
    if unit == "points":
        return f"{v:+.1f}"
    if unit == "count":
        return f"{v:,.0f}"
    if unit == "currency":
        return f"{v:,.2f}"
    if unit in ("seconds", "days"):
        return f"{v:,.1f}"
    return f"{v:,.3g}" if abs(v) < 100 else f"{v:,.1f}"


@metrics_app.command("list")
def list_command(
    ctx: typer.Context,
    category: Annotated[Optional[str], typer.Option("--category", help="Only this category (e.g. Feedback).")] = None,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
) -> None:
    """List every metric: id, label, leading or lagging, unit and what it means.

    Examples:

      cxlens metrics list

      cxlens metrics list --category Feedback --format json
    """
    from cxlens.semantic.listing import metrics_json

    out = metrics_json(load_catalog(ctx), category)
    if format is Format.json:
        print_json(out)
        return
    rows = out["metrics"]
    print_rows(rows, title=f"{len(rows)} metrics", columns=("id", "label", "timing", "unit", "description"))


@metrics_app.command("show")
def show_command(
    ctx: typer.Context,
    metric: Annotated[str, typer.Argument(help="Metric id (see `cxlens metrics list`).", show_default=False)],
    grain: Annotated[Optional[GrainChoice], typer.Option("--grain", "-g", help="Period: day, week, month, quarter, year or all (default: the metric's).", show_default=False)] = None,
    by: Annotated[Optional[list[str]], BY_OPTION] = None,
    since: Annotated[Optional[str], typer.Option("--since", help="First day to include, YYYY-MM-DD.")] = None,
    until: Annotated[Optional[str], typer.Option("--until", help="Last day to include, YYYY-MM-DD.")] = None,
    where: Annotated[Optional[str], WHERE_OPTION] = None,
    format: Annotated[ShowFormat, typer.Option("--format", "-f", help="table, json or csv.")] = ShowFormat.table,
) -> None:
    """Show one metric by period, optionally cut by dimensions and limited to dates or a segment.

    Examples:

      cxlens metrics show revenue --grain month

      cxlens metrics show nps --grain quarter --by channel --format json

      cxlens metrics show retention_rate --grain year --since 2024-01-01

      cxlens metrics show conversion_rate --by channel_group --where "loyalty_member"
    """
    from cxlens.semantic import measure

    with open_workspace(ctx) as ws:
        result = measure(ws, metric, grain=grain.value if grain else None, by=_by(by), since=since, until=until,
                         where=where, catalog=load_catalog(ctx))
    if format is ShowFormat.json:
        print_json(result.to_json())
        return
    rows = result.rows()
    if format is ShowFormat.csv:
        cols = list(rows[0]) if rows else [*result.keys, "value", "n"]
        writer = csv.DictWriter(sys.stdout, fieldnames=cols, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return
    m = result.metric
    shown = [{**{k: r.get(k) for k in result.keys}, m.label: format_value(r["value"], m.unit), "n": r["n"],
              **({"numerator": r.get("numerator"), "denominator": r.get("denominator")} if m.is_ratio else {})}
             for r in rows]
    if not shown:
        console.print(f"No data for {m.id} in this selection.")
        return
    print_rows(shown, title=f"{m.label} ({m.id}) by {result.query.grain}")


@metrics_app.command("compare")
def compare_command(
    ctx: typer.Context,
    metric: Annotated[str, typer.Argument(help="Metric id.", show_default=False)],
    before: Annotated[str, typer.Option("--before", help="Baseline window START..END (inclusive dates).", show_default=False)],
    after: Annotated[str, typer.Option("--after", help="Window to compare, START..END.", show_default=False)],
    by: Annotated[Optional[list[str]], BY_OPTION] = None,
    where: Annotated[Optional[str], WHERE_OPTION] = None,
    alpha: Annotated[float, typer.Option("--alpha", min=0.0001, max=0.5, help="1 − confidence level of the interval.")] = 0.05,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
) -> None:
    """Compare a metric before and after a change: both values, the change, its interval and p-value.

    Rates use a two-proportion test, means Welch's t, NPS the multinomial variance of promoters
    minus detractors, totals a compound-Poisson z-test.

    Examples:

      cxlens metrics compare conversion_rate --before 2025-01-01..2025-03-31 --after 2025-04-01..2025-06-30

      cxlens metrics compare nps --before 2025-01-01..2025-06-30 --after 2025-07-01..2025-12-31 --by channel --format json
    """
    from cxlens.semantic.baseline import Period, compare_periods

    b, a = Period.parse(before, "--before"), Period.parse(after, "--after")
    with open_workspace(ctx) as ws:
        result = compare_periods(ws, metric, b, a, by=_by(by), where=where, alpha=alpha, catalog=load_catalog(ctx))
    if format is Format.json:
        print_json(result.to_json())
        return
    m = result.metric
    rows = []
    for r in result.rows:
        ci = "–" if r.get("ci_low") is None else f"[{format_change(r['ci_low'], m.unit)}, {format_change(r['ci_high'], m.unit)}]"
        rows.append({**{d: r.get(d) for d in result.by}, "before": format_value(r["before"], m.unit),
                     "after": format_value(r["after"], m.unit), "change": format_change(r["absolute"], m.unit),
                     "relative": "–" if r["relative"] is None else f"{r['relative'] * 100:+.1f}%",
                     f"{100 * (1 - alpha):g}% CI": ci,
                     "p": "–" if r["p_value"] is None else f"{r['p_value']:.3g}", "n before": r["n_before"],
                     "n after": r["n_after"], "code": r["code"]})
    print_rows(rows, title=f"{m.label}: {b.start}..{b.end} vs {a.start}..{a.end}")
    for w in result.warnings:
        console.print(f"[yellow]Warning:[/] {w}")


@metrics_app.command("dimensions")
def dimensions_command(
    ctx: typer.Context,
    metric: Annotated[Optional[str], typer.Argument(help="Only the dimensions this metric can be cut by.", show_default=False)] = None,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
) -> None:
    """List the dimensions metrics can be cut by (all, or those of one metric).

    Examples:

      cxlens metrics dimensions

      cxlens metrics dimensions conversion_rate --format json
    """
    from cxlens.semantic.listing import dimensions_json

    out = dimensions_json(load_catalog(ctx), metric)
    if format is Format.json:
        print_json(out)
        return
    print_rows(out["dimensions"], title="Dimensions" + (f" of {metric}" if metric else ""))


@metrics_app.command("segments")
def segments_command(
    ctx: typer.Context,
    value: Annotated[bool, typer.Option("--value", help="Also measure each segment: members, revenue, predicted value and growth potential.")] = False,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
) -> None:
    """List the declared segments (macro, and micro ones `within` another) and the profile features a condition can use.

    With --value, each segment is measured in the engine: customers, revenue (all time and last 90
    days), unresolved cases, predicted 52-week value and growth potential (predicted value minus
    the last 90 days' revenue at a yearly rate; needs `cxlens hvc` to have written customer_value).

    Examples:

      cxlens metrics segments

      cxlens metrics segments --value --format json
    """
    from cxlens.semantic.listing import segments_json

    catalog = load_catalog(ctx)
    if value and catalog.segments:
        with open_workspace(ctx) as ws:
            out = segments_json(catalog, ws, value=True)
    else:
        out = segments_json(catalog, value=value)
    if format is Format.json:
        print_json(out)
        return
    segs, feats, measured = out["segments"], out["features"], out.get("value")
    if measured:
        print_rows(measured, title="Segments measured")
    if segs:
        print_rows(segs, title="Segments")
    else:
        console.print("No segments declared. Add `segments:` to the definitions file next to the workspace "
                      "(e.g. cxlens.metrics.yml beside cxlens.duckdb).")
    print_rows(feats, title="Profile features")


@metrics_app.command("check")
def check_command(ctx: typer.Context, format: Annotated[Format, FORMAT_OPTION] = Format.table) -> None:
    """Validate the definitions file next to the workspace: every problem, with file and line.

    Examples:

      cxlens metrics check

      cxlens --workspace shop.duckdb metrics check --format json
    """
    catalog = load_catalog(ctx)
    custom = [m.id for m in catalog.metrics.values() if m.origin != "built-in"]
    out = {"definitions": str(catalog.path) if catalog.path else None, "metrics": custom,
           "dimensions": [d.id for d in catalog.dimensions.values() if d.origin != "built-in"],
           "segments": list(catalog.segments), "ok": True}
    if format is Format.json:
        print_json(out)
        return
    if catalog.path is None:
        console.print("No definitions file; only the built-in catalogue is in use.")
        return
    console.print(f"{catalog.path}: OK — {len(custom)} metrics, {len(out['dimensions'])} dimensions, "
                  f"{len(out['segments'])} segments.")


@metrics_app.command("refresh")
def refresh_command(ctx: typer.Context, format: Annotated[Format, FORMAT_OPTION] = Format.table) -> None:
    """Bring the sessions the workspace keeps up to date with its events.

    Every ingest, spool load, `identity resolve` and `forget` does this already; run it after
    writing events by hand with SQL (until then metrics build sessions from the events, slower).
    Only the sessions whose events changed are rebuilt.

    Examples:

      cxlens metrics refresh

      cxlens --workspace shop.duckdb metrics refresh --format json
    """
    from dataclasses import asdict

    from cxlens.semantic.kept import refresh_sessions

    with open_workspace(ctx) as ws:
        with err_console.status("Refreshing the kept sessions..."):
            done = refresh_sessions(ws)
    out = {**asdict(done), "seconds": round(done.seconds, 3)}
    if format is Format.json:
        print_json(out)
        return
    what = {"current": "already current", "incremental": f"{done.keys:,} session keys rebuilt",
            "full": "rebuilt in full", "skipped": "not kept on this engine"}[done.mode]
    console.print(f"Kept sessions: {what}; {done.sessions:,} sessions ({done.seconds:.1f} s).")


@metrics_app.command("docs")
def docs_command(
    ctx: typer.Context,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write to this file instead of stdout.")] = None,
) -> None:
    """Write the metric catalogue (built-in and your own) as Markdown.

    Examples:

      cxlens metrics docs --out docs/metrics.md
    """
    from cxlens.semantic.docs import render

    text = render(load_catalog(ctx))
    if out is None:
        sys.stdout.write(text)
        return
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder; give a file name such as {out / 'metrics.md'}.")
    out.write_text(text, encoding="utf-8")
    console.print(f"Wrote {out}")


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the main app."""
    app.add_typer(metrics_app, name="metrics")
