"""CLI command: `cxlens simulate` writes a simulated retailer's exports, mappings and truth.json."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from cxlens.cli.output import Format, console, err_console, print_json, print_rows
from cxlens.simulate import simulate as run_simulation
from cxlens.simulate.config import parse_start

HELP = (
    "Simulate an omni-channel retailer with known truth: CRM, web shop, POS, web analytics, email, "
    "support, surveys, loyalty, store counters, costs, memberships and a personalization experiment. "
    "Each export is written in its own layout with a mapping YAML beside it, plus truth.json "
    "(identity of every key, dirty and duplicate rows, causal effects).\n\n"
    "Examples:\n\n"
    "  cxlens simulate --customers 2000 --days 120 --out sim\n\n"
    "  cxlens simulate --customers 20000 --days 365 --seed 7 --start 2024-07-01 --out demo/data\n\n"
    "  cxlens simulate --customers 300 --days 60 --out /tmp/s --format json"
)


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the main app."""

    @app.command("simulate", help=HELP)
    def simulate_command(
        out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the exports into (created if missing).")],
        customers: Annotated[int, typer.Option("--customers", "-n", help="Number of customers (CRM records).")] = 2_000,
        days: Annotated[int, typer.Option("--days", "-d", help="Length of the simulated period in days.")] = 365,
        seed: Annotated[int, typer.Option("--seed", "-s", help="Random seed: the same seed writes identical files.")] = 42,
        start: Annotated[str, typer.Option("--start", help="First day of the period (YYYY-MM-DD).")] = "2025-01-01",
        fmt: Annotated[Format, typer.Option("--format", "-f", help="Output: a table or one JSON document.")] = Format.table,
    ) -> None:
        start_date = parse_start(start)
        show = fmt == Format.table
        with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=err_console,
                      transient=True, disable=not show) as bar:
            task = bar.add_task("simulating", total=1)

            def progress(label: str, done: int, total: int) -> None:
                bar.update(task, description=label, completed=done, total=total)

            result = run_simulation(out, customers=customers, days=days, seed=seed, start=start_date,
                                    progress=progress)
        rows = [{"file": e.file, "mapping": e.mapping, "table": e.table, "source": e.source or "", "rows": e.rows,
                 "dirty": e.dirty, "duplicates": e.duplicates} for e in result.exports]
        if fmt == Format.json:
            print_json({"out": str(result.out_dir), "customers": customers, "days": days, "seed": seed,
                        "start": start_date.isoformat(), "truth": str(result.truth_path), "files": rows,
                        "total_rows": result.total_rows, "seconds": round(result.seconds, 2)})
            return
        print_rows(rows, title=f"Simulated {customers:,} customers over {days} days (seed {seed})")
        console.print(f"{result.total_rows:,} rows in {len(rows)} exports written to {result.out_dir} "
                      f"in {result.seconds:.1f} s; truth in {result.truth_path}.")
