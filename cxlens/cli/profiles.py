"""CLI commands: `profile` (one person's card and timeline), `profiles` (the list), `forget` (erasure)."""

from __future__ import annotations

import enum
import sys
from typing import Annotated, Any

import typer
from rich.panel import Panel
from rich.table import Table

from cxlens.cli.context import open_workspace
from cxlens.cli.output import Format, console, print_json, print_rows
from cxlens.errors import UsageError
from cxlens.profiles import (
    build_profiles,
    erasure_subject,
    find_profile,
    forget,
    profile_card,
    profile_timeline,
)
from cxlens.workspace import Workspace



class SortKey(str, enum.Enum):
    """Columns `cxlens profiles` can rank by (highest first)."""

    revenue = "revenue"
    orders = "orders"
    last_seen = "last_seen"

LIST_COLUMNS = (
    "profile_id", "first_name", "last_name", "primary_email", "orders", "revenue", "aov",
    "last_seen", "latest_nps", "open_cases", "sources",
)
CARD_FIELDS = (
    "primary_email", "country", "first_seen", "last_seen", "sources", "channels", "orders",
    "revenue", "aov", "last_order_at", "returned_orders", "loyalty_member", "loyalty_tier",
    "latest_nps", "latest_csat", "latest_ces", "open_cases", "records",
)
FORMAT_OPTION = typer.Option("--format", "-f", help="table (for people) or json (for scripts).")


def profile_command(
    ctx: typer.Context,
    identifier: Annotated[str, typer.Argument(help="Profile id, email, phone, loyalty id, anonymous id, SOURCE:CUSTOMER_ID or customer id.", show_default=False)],
    limit: Annotated[int, typer.Option("--limit", "-n", min=0, help="Show the most recent N records of the timeline (0 = all).")] = 50,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
) -> None:
    """Show one person's unified profile and their timeline across every source.

    Examples:

      cxlens profile ann@example.com

      cxlens profile webshop:10042 --limit 20

      cxlens profile p_3f9a0c1d2e --format json
    """
    with open_workspace(ctx) as ws:
        profile_id = find_profile(ws, identifier)
        card = profile_card(ws, profile_id)
        timeline = profile_timeline(ws, profile_id, limit or None)
    ids = card.pop("identifiers")
    rows = _records(timeline)
    if format is Format.json:
        print_json({"profile": card, "identifiers": ids, "timeline": rows})
        return
    console.print(_card_panel(card, ids))
    shown = f"last {len(rows)}" if limit and len(rows) == limit else f"{len(rows)}"
    print_rows(rows, title=f"Timeline ({shown} records, oldest first)",
               columns=("at", "table", "source", "kind", "summary", "value"))


def profiles_command(
    ctx: typer.Context,
    top: Annotated[int, typer.Option("--top", "-n", min=0, help="How many profiles to list (0 = all).")] = 20,
    sort: Annotated[SortKey, typer.Option("--sort", "-s", help="Rank by this column, highest first.")] = SortKey.revenue,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
) -> None:
    """List unified profiles, highest revenue (or orders, or most recently seen) first.

    Examples:

      cxlens profiles

      cxlens profiles --top 50 --sort last_seen

      cxlens profiles --sort orders --format json
    """
    with open_workspace(ctx) as ws:
        total, rows = top_profiles(ws, sort, top or None)
    if format is Format.json:
        print_json({"total": total, "sort": sort.value, "profiles": rows})
        return
    if not rows:
        console.print("No profiles yet: ingest some data first (cxlens ingest resolves identities and builds profiles).")
        return
    print_rows(rows, title=f"Profiles by {sort.value} ({len(rows)} of {total:,})", columns=LIST_COLUMNS)


def forget_command(
    ctx: typer.Context,
    identifier: Annotated[str, typer.Argument(help="Profile id, email, phone, loyalty id, anonymous id or SOURCE:CUSTOMER_ID of the person.", show_default=False)],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would be deleted; delete nothing.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation (needed in scripts).")] = False,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
) -> None:
    """Erase a person (right to erasure): every record, quarantined row, identity key and the profile.

    All deletions commit together. Shared (flagged) identifiers and other people's rows stay.

    Examples:

      cxlens forget ann@example.com --dry-run

      cxlens forget webshop:10042 --yes

      cxlens forget p_3f9a0c1d2e --yes --format json
    """
    with open_workspace(ctx) as ws:
        subject = erasure_subject(ws, identifier)
        if not dry_run and not yes:
            if not _confirm(ws, identifier, subject.profile_id):
                console.print("Nothing was deleted.")
                return
        counts = forget(ws, identifier, dry_run=dry_run)
    total = sum(counts.values())
    if format is Format.json:
        print_json({"identifier": identifier.strip(), "profile_id": subject.profile_id,
                    "dry_run": dry_run, "deleted": counts, "total": total})
        return
    verb = "would be deleted (dry run; nothing changed)" if dry_run else "deleted"
    title = "Dry run: rows per table" if dry_run else "Deleted rows per table"
    print_rows([{"table": t, "rows": n} for t, n in counts.items()], title=title)
    who = subject.profile_id or identifier.strip()
    console.print(f"{total:,} rows about {who} {verb}.")


def top_profiles(ws: Workspace, sort: SortKey, top: int | None) -> tuple[int, list[dict[str, Any]]]:
    """(number of profiles, the first `top` rows by `sort` descending); builds profiles if missing."""
    import ibis

    if "profiles" not in ws.backend.tables():
        build_profiles(ws)
    p = ws.table("profiles")
    ordered = p.order_by(ibis.desc(p[sort.value], nulls_first=False), p.profile_id)
    if top:
        ordered = ordered.limit(top)
    return int(p.count().execute()), ordered.to_pyarrow().to_pylist()


def _confirm(ws: Workspace, identifier: str, profile_id: str | None) -> bool:
    if not sys.stdin.isatty():
        raise UsageError(
            "forget deletes data for good and this run is not interactive; add --yes to confirm "
            "(or --dry-run to see what would be deleted)."
        )
    preview = forget(ws, identifier, dry_run=True)
    print_rows([{"table": t, "rows": n} for t, n in preview.items() if n], title="Rows that will be deleted")
    who = profile_id or identifier.strip()
    return typer.confirm(f"Delete these {sum(preview.values()):,} rows about {who} for good?", default=False)


def _records(df: Any) -> list[dict[str, Any]]:
    return df.astype(object).where(df.notna(), None).to_dict("records")


def _card_panel(card: dict[str, Any], ids: list[dict[str, Any]]) -> Panel:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    for field in CARD_FIELDS:
        value = card.get(field)
        if value is not None:
            grid.add_row(field, _text(value))
    for ident in ids:
        note = " (shared, flagged)" if ident["flagged"] else ""
        grid.add_row(ident["type"], f"{ident['value']}{note}")
    name = " ".join(x for x in (card.get("first_name"), card.get("last_name")) if x) or "Unnamed person"
    return Panel(grid, title=f"{name} · {card['profile_id']}", expand=False)


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    if hasattr(value, "strftime"):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the main app."""
    app.command("profile")(profile_command)
    app.command("profiles")(profiles_command)
    app.command("forget")(forget_command)
