"""CLI command `demo`: the whole pipeline on a simulated company, checked against its truth."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.panel import Panel
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from cxlens.cli.output import Format, console, err_console, print_json, print_rows
from cxlens.cli.report import headline_table


def demo_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the exports, the workspace and the summary.")] = Path("demo"),
    customers: Annotated[int, typer.Option("--customers", help="Simulated customers.")] = 20_000,
    days: Annotated[int, typer.Option("--days", help="Simulated days.")] = 365,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same company).")] = 7,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="Output: table or json.")] = Format.table,
) -> None:
    """Simulate a retailer, ingest every export, resolve identities, check the result against the truth and write the KPI report.

    The folder gets the exports (data/), the workspace (cxlens.duckdb), a definitions file with
    demo segments (cxlens.metrics.yml), report.html and summary.json.

    Examples:

      cxlens demo

      cxlens demo --customers 2000 --days 90 --out /tmp/small-demo --format json
    """
    from cxlens.demo import run_demo

    with Progress(SpinnerColumn(), TextColumn("{task.description:<60}"), BarColumn(), TimeElapsedColumn(),
                  console=err_console, transient=True, disable=fmt is Format.json) as progress:
        task = progress.add_task("starting", total=None)

        def step(label: str, done: int, total: int) -> None:
            progress.update(task, description=label[:60], completed=done, total=total or None)

        s = run_demo(out, customers=customers, days=days, seed=seed, on_step=step)
    (out / "summary.json").write_text(__import__("json").dumps(s.to_dict(), indent=2, default=str))
    if fmt is Format.json:
        print_json(s.to_dict())
        return
    print_rows([{"table": k, "rows": v} for k, v in s.rows.items()], title="Rows per canonical table")
    print_rows([{"reason": k, "rows": v} for k, v in s.quarantined.items()] or [{"reason": "none", "rows": 0}],
               title="Quarantined rows by reason")
    d, i = s.dirty_check, s.identity
    console.print(Panel.fit(
        f"[bold]{s.profiles:,}[/] unified profiles; identity precision [bold]{i['precision']:.4f}[/], "
        f"recall [bold]{i['recall']:.4f}[/] against the truth; {i['flagged']} over-shared identifiers flagged.\n"
        f"Dirty rows planted: {d['planted']:,}; quarantined with the right reason: {d['quarantined_right']:,}; "
        f"wrong reason: {d['wrong_reason']}; missed: {d['missed']}; clean rows quarantined: {d['clean_rows_quarantined']}.\n"
        f"Exact duplicates skipped: {s.duplicates:,}.\n"
        f"Time: simulate {s.seconds['simulate']} s, ingest {s.seconds['ingest']} s, "
        f"identities + profiles {s.seconds['identity']} s, value {s.seconds.get('value', 0)} s, report {s.seconds['report']} s, total {s.seconds['total']} s.",
        title="cxlens demo", border_style="green"))
    if s.report_result is not None:
        console.print(headline_table(s.report_result.data, title="Headline KPIs (latest period)"))
    e, r = s.experiment, s.experiment.get("online_orders_per_unit")
    if r and r.get("rel_effect") is not None:
        console.print(
            f"Experiment [bold]{e['experiment_id']}[/] (built with +{e['planted_lift']:.0%} purchase probability for "
            f"{e['planted_for']}): web-shop orders per unit {r['rel_effect']:+.1%} "
            f"(95% interval {r['rel_ci_low']:+.1%} to {r['rel_ci_high']:+.1%}, {r['n']:,} vs {r['control_n']:,} units), "
            f"verdict {r['verdict']}; lifts, ROI and content in the report."
        )
    v = s.value
    if v.get("classes"):
        c = v["classes"]
        clv = f"predicted 52-week CLV {v['clv_52w']:,.0f}; " if "clv_52w" in v else ""
        console.print(
            f"Customer value: {clv}{c['hvc']:,} high-value customers (precision {v['hvc_precision']:.0%}, recall "
            f"{v['hvc_recall']:.0%} against the simulated truth), {c['lapsing_hvc']:,} of them lapsing, "
            f"{c['emerging_hvc']:,} emerging, {c['high_volume']:,} high-volume; evidence per customer: cxlens hvc."
        )
    j = s.journeys
    if j.get("ces_effects"):
        ces = j["ces_effects"]
        console.print(
            f"Journeys: {j['cases']} support cases, {j['friction_share']} with friction; CES per unresolved case "
            f"{ces.get('Left unresolved', '—')}, per repeat contact {ces.get('Repeat contacts', '—')}, per transfer "
            f"{ces.get('Transfers', '—')} (the simulation used CES = {j['planted_ces']}). {j.get('costliest_for_churn') or ''}"
        )
    a = s.attribution
    if a.get("markov_shares"):
        shares = ", ".join(f"{c} {v}" for c, v in list(a["markov_shares"].items())[:4])
        console.print(f"Attribution (exact Markov): {a['credited_orders']} orders credited ({shares}, ...); "
                      f"{a['unattributed']} had no touch in the 30 days before. Other models: cxlens attribution --model.")
    console.print(f"Report: [bold]{s.report}[/]  (open it in a browser; it works offline)")
    ws = s.workspace
    sv = s.service
    if sv:
        skipped = ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in sv["excluded"].items() if n) or "none"
        console.print(
            f"Surveys: {' and '.join(sv['surveys'])} (CES after a resolved support case, CSAT 3 days after an order); "
            f"{sv['invited']:,} invitations in the outbox as of {sv['as_of'][:10]} (skipped: {skipped}): "
            f"cxlens -w {ws} surveys outbox.\n"
            f"Dashboard: cxlens -w {ws} serve, then open http://127.0.0.1:8000/dashboard/ and sign in with the read key "
            f"[bold]{sv['read_key']}[/]"
        )
    console.print(
        "Next:\n"
        f"  cxlens -w {ws} sources\n"
        f"  cxlens -w {ws} quarantine --summary\n"
        f"  cxlens -w {ws} identity stats\n"
        f"  cxlens -w {ws} profiles --top 10\n"
        f"  cxlens -w {ws} profile <email or customer id>\n"
        f"  cxlens -w {ws} experiment analyze {e.get('experiment_id', 'perso-2025')} --by channel\n"
        f"  cxlens -w {ws} roi {e.get('experiment_id', 'perso-2025')}\n"
        f"  cxlens -w {ws} hvc --limit 5\n"
        f"  cxlens -w {ws} journeys friction\n"
        f"  cxlens -w {ws} attribution --model shapley\n"
        f"  cxlens -w {ws} surveys list\n"
        f"  cxlens -w {ws} serve   (collection, survey pages, the read API at /docs and the dashboard)\n"
        f"  cxlens -w {ws} clv fit --calibration-end <a date 3 months before the last order>\n"
        f"  cxlens -w {ws} report --grain quarter --out {Path(s.out_dir) / 'report-quarterly.html'}\n"
        f"  duckdb {ws}   (with the DuckDB CLI: every table is plain SQL)"
    )


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the main app."""
    app.command("demo")(demo_command)
