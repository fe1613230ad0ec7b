"""CLI command `report`: the KPI catalogue as one self-contained HTML file, plus the headline KPIs."""

from __future__ import annotations

import enum
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from cxlens.cli.context import open_workspace
from cxlens.cli.output import Format, console, err_console, print_json


class Grain(str, enum.Enum):
    """Periods the report can be drawn at (tiles compare the latest one with the one before)."""

    week = "week"
    month = "month"
    quarter = "quarter"


def report_command(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the HTML file.")] = Path("report.html"),
    grain: Annotated[Grain, typer.Option("--grain", "-g", help="Period of tiles, sparklines and trends.")] = Grain.month,
    since: Annotated[Optional[str], typer.Option("--since", help="First day of data to use (YYYY-MM-DD).", show_default=False)] = None,
    until: Annotated[Optional[str], typer.Option("--until", help="Last day of data to use (YYYY-MM-DD).", show_default=False)] = None,
    baseline: Annotated[Optional[str], typer.Option("--baseline", help="START..END window every metric's latest period is compared with, with an interval and a p-value (default: each metric's first full period, no test).", show_default=False)] = None,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="table (path and headline KPIs) or json (for scripts).")] = Format.table,
) -> None:
    """Write the KPI report: one HTML file that opens offline, with tiles, trends and breakdowns.

    Every metric (built-in plus the workspace's cxlens.metrics.yml) becomes a tile: latest period, change from the period before and from the baseline, sparkline. Leading and lagging indicators are grouped by category; trends and breakdowns by channel, traffic source and segment follow.

    Examples:

      cxlens report --out report.html

      cxlens report --grain quarter --since 2025-01-01 --out q.html

      cxlens report --baseline 2025-01-01..2025-03-31 --format json
    """
    from cxlens.report import Options, build_report
    from cxlens.semantic.baseline import Period
    from cxlens.semantic.compile import parse_date

    options = Options(
        grain=grain.value, since=parse_date(since, "--since"), until=parse_date(until, "--until"),
        baseline=Period.parse(baseline, "--baseline") if baseline is not None else None,
    )
    with open_workspace(ctx) as ws, _progress(disabled=fmt is Format.json) as step:
        result = build_report(ws, out, options, on_step=step)
    if fmt is Format.json:
        print_json(result.to_json())
        return
    console.print(f"Report written to [bold]{result.path}[/] "
                  f"({result.path.stat().st_size / 1e6:.1f} MB, {len(result.data.tiles)} metrics, {result.seconds} s).")
    console.print(headline_table(result.data))


@contextmanager
def _progress(*, disabled: bool) -> Iterator[Any]:
    """A Rich progress bar on stderr while metrics compute; the callback the report reports to."""
    with Progress(SpinnerColumn(), TextColumn("{task.description:<52}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err_console, transient=True, disable=disabled) as progress:
        task = progress.add_task("starting", total=None)

        def step(label: str, done: int, total: int) -> None:
            progress.update(task, description=label[:52], completed=done, total=total or None)

        yield step


def headline_table(data: Any, title: str = "Headline KPIs") -> Table:
    """The headline tiles as a Rich table, formatted exactly as in the report."""
    from cxlens.report import periods
    from cxlens.report.render import tile_view

    tested = data.options.baseline is not None
    if tested:
        title += f" (baseline {data.options.baseline.start}..{data.options.baseline.end})"
    table = Table(title=title)
    if data.left_out is not None and data.span is not None:
        table.caption = (f"{periods.label(data.left_out, data.options.grain)} is partial (the data stops on "
                         f"{data.span.last:%Y-%m-%d}) and left out.")
    columns = ["KPI", "period", "value", "vs previous", "vs baseline", "baseline"] + (["test"] if tested else [])
    for col in columns:
        table.add_column(col, justify="right" if col in ("value", "vs previous", "vs baseline") else "left")
    styles = {"good": "green", "bad": "red", "neutral": "dim"}
    for tile in data.headline():
        v = tile_view(tile, data.currency_symbol)
        if not v.has_data:
            table.add_row(v.label, "", "no data", *[""] * (len(columns) - 3))
            continue
        b = v.baseline
        row = [v.label, v.period + (" (partial)" if v.partial else ""), v.value,
               f"[{styles[v.change_tone]}]{v.change}[/]", f"[{styles[b.tone]}]{b.change}[/]",
               b.value if tested else b.label.removeprefix("vs ")]
        table.add_row(*row, *([b.detail] if tested else []))
    return table


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the main app."""
    app.command("report")(report_command)
