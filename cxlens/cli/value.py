"""CLI commands `cxlens rfm` and `cxlens hvc`: RFM segments and customer value classes, saved to `customer_value`."""

from __future__ import annotations

from typing import Annotated

import typer

from cxlens.cli.context import open_workspace
from cxlens.cli.output import Format, console, print_json, print_rows

FORMAT_OPTION = typer.Option("--format", "-f", help="table (for people) or json (for scripts).")
AS_OF_OPTION = typer.Option("--as-of", help="Analyse orders up to this day (YYYY-MM-DD); default: the latest order's day.")


def _pct(v: float | None) -> str:
    return "" if v is None else f"{100 * v:.1f}%"


def rfm_command(
    ctx: typer.Context,
    as_of: Annotated[str | None, AS_OF_OPTION] = None,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
) -> None:
    """RFM quintile scores and named segments (champions, loyal, at risk, ...): size, share and value of each.

    Recency is days since the last valid order, frequency the number of valid orders, monetary their
    margin (revenue when no order has a cost). Scores are quintiles 1-5 with ties kept together;
    segments follow the R x FM grid in docs/value.md. Writes every customer's scores, segment and
    value classes to the workspace table customer_value.

    JSON: {as_of, value_basis, customers, table, recent_from, predicted, grid: {R: [segment for FM 1..5]},
    segments: [{segment, customers, share, monetary, mean_monetary, mean_frequency, median_recency_days,
    description}]}.

    Examples:

      cxlens rfm

      cxlens rfm --as-of 2025-06-30 --format json
    """
    from cxlens.value import ValueSettings, customer_value, write_customer_value
    from cxlens.value.summary import rfm_json

    with open_workspace(ctx) as ws:
        result = customer_value(ws, as_of=as_of, settings=ValueSettings())
        write_customer_value(ws, result)
        out = rfm_json(result, ws.table("customer_value"))
    if format is Format.json:
        print_json(out)
        return
    rows = out["segments"]
    print_rows([{"segment": r["segment"], "customers": r["customers"], "share": _pct(r["share"]),
                 result.value_basis: r["monetary"], f"mean {result.value_basis}": r["mean_monetary"],
                 "mean orders": r["mean_frequency"], "median days since order": r["median_recency_days"]} for r in rows],
               title=f"RFM segments as of {result.as_of.isoformat()} ({len(result.frame):,} customers)")
    console.print(f"Scores, segments and value classes written to customer_value ({result.value_basis} is the monetary value).")


def hvc_command(
    ctx: typer.Context,
    k: Annotated[float, typer.Option("--k", help="Lapsing: silent for more than k x the customer's own usual gap between purchases.")] = 3.0,
    as_of: Annotated[str | None, AS_OF_OPTION] = None,
    recent_days: Annotated[int | None, typer.Option("--recent-days", help="Length of the recent window emerging HVCs are judged on (default: the later half of the order history).")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=0, help="Top members listed per class (0 = counts only).")] = 10,
    predict: Annotated[bool, typer.Option("--predict/--no-predict", help="Fit BG/NBD + Gamma-Gamma for predicted CLV and P(alive).")] = True,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
) -> None:
    """High-value, lapsing, emerging and high-volume customers, with the evidence behind each label.

    An HVC is worth a lot (historical margin or predicted CLV), buys again, and is not bought with
    deals: the mean percentile of value, category breadth, full-price share, coupon avoidance and
    order value is high. Lapsing HVCs are silent for longer than k x their own usual gap between
    purchases (or their P(alive) fell) with no other activity; emerging HVCs became HVC-like in the
    recent window; high-volume customers order often with a low order value. Rules and defaults:
    docs/value.md. Writes every customer's labels and evidence to the workspace table customer_value.

    JSON: {as_of, value_basis, customers, table, recent_from, predicted, settings: {...},
    classes: [{class, label, definition, customers, share, value_share, evidence: {median per
    evidence column}, top: [{profile_id, evidence, rfm_segment, frequency, monetary, ...}]}]}.

    Examples:

      cxlens hvc

      cxlens hvc --k 4 --limit 20

      cxlens hvc --as-of 2025-09-30 --no-predict --format json
    """
    from cxlens.value import ValueSettings, customer_value, write_customer_value
    from cxlens.value.summary import hvc_json

    settings = ValueSettings(k=k, recent_days=recent_days, predict=predict)
    with open_workspace(ctx) as ws:
        result = customer_value(ws, as_of=as_of, settings=settings)
        write_customer_value(ws, result)
        out = hvc_json(result, ws.table("customer_value"), limit=limit)
    if format is Format.json:
        print_json(out)
        return
    classes = out["classes"]
    print_rows([{"class": c["label"], "customers": c["customers"], "share": _pct(c["share"]),
                 f"share of {result.value_basis}": _pct(c["value_share"]),
                 "median orders": c["evidence"]["frequency"], "median AOV": c["evidence"]["aov"],
                 "coupon orders": _pct(c["evidence"]["coupon_share"]),
                 "full-price items": _pct(c["evidence"]["full_price_share"]),
                 "NPS": c["evidence"]["latest_nps"], "days silent": c["evidence"]["days_silent"]} for c in classes],
               title=f"Customer value classes as of {result.as_of.isoformat()} ({len(result.frame):,} customers, medians per class)")
    for c in classes:
        if c["top"]:
            print_rows([{"profile": r["profile_id"], "why": r["evidence"]} for r in c["top"]],
                       title=f"{c['label']}: top {len(c['top'])} of {c['customers']:,} — {c['definition']}")
    console.print("Labels and evidence written to customer_value.")


def register(app: typer.Typer) -> None:
    app.command("rfm")(rfm_command)
    app.command("hvc")(hvc_command)
