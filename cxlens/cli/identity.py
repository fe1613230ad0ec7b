"""CLI commands: `identity stats` and `identity resolve`, thin shells over cxlens.identity."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from cxlens.cli.context import open_workspace
from cxlens.cli.output import Format, print_json, print_rows

identity_app = typer.Typer(
    name="identity",
    help=(
        "Unified profiles: resolve identities across sources and inspect the result.\n\n"
        "Examples:\n\n"
        "  cxlens identity resolve\n\n"
        "  cxlens identity resolve --full --max-shared 20 --format json\n\n"
        "  cxlens identity stats --format json"
    ),
    no_args_is_help=True,
)


@identity_app.command("stats")
def stats_command(
    ctx: typer.Context,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="Output: table or json.")] = Format.table,
) -> None:
    """Profiles, keys by type, merged profiles, records with/without a profile, flagged identifiers.

    Examples:

      cxlens identity stats

      cxlens --workspace shop.duckdb identity stats --format json
    """
    from cxlens.identity import identity_stats

    with open_workspace(ctx) as ws:
        stats = identity_stats(ws)
    if fmt is Format.json:
        print_json(stats)
        return
    summary = [
        {"measure": "profiles", "value": stats["profiles"]},
        {"measure": "merged profiles (>1 key)", "value": stats["merged_profiles"]},
        {"measure": "keys", "value": stats["keys_total"]},
        *({"measure": f"keys: {k}", "value": v} for k, v in stats["keys"].items()),
        {"measure": "records with profile", "value": stats["records"]["with_profile"]},
        {"measure": "records without profile", "value": stats["records"]["without_profile"]},
        *({"measure": f"profiles with {k} keys", "value": v} for k, v in stats["component_sizes"]["histogram"].items()),
        {"measure": "largest profile (keys)", "value": stats["component_sizes"]["max"]},
        {"measure": "flagged identifiers", "value": len(stats["flagged"])},
    ]
    print_rows(summary, title="Identity")
    if stats["flagged"]:
        print_rows(stats["flagged"], title="Flagged identifiers (shared by too many customers; not merged)")


@identity_app.command("resolve")
def resolve_command(
    ctx: typer.Context,
    full: Annotated[bool, typer.Option("--full", help="Recompute every profile, not only pending ingests.")] = False,
    max_shared: Annotated[
        int, typer.Option("--max-shared", min=1, help="Flag an identifier shared by more customer ids than this.")
    ] = 50,
    country_code: Annotated[
        str, typer.Option("--country-code", help="Calling code for phone numbers written without one.")
    ] = "1",
    fmt: Annotated[Format, typer.Option("--format", "-f", help="Output: table or json.")] = Format.table,
) -> None:
    """Resolve identities of new ingests (or all with --full) and write profile_id on every record.

    Examples:

      cxlens identity resolve

      cxlens identity resolve --full --max-shared 20 --format json
    """
    from cxlens.identity import resolve
    from cxlens.semantic.kept import refresh_sessions

    with open_workspace(ctx) as ws:
        report = resolve(ws, max_shared=max_shared, country_code=country_code, full=full)
        refresh_sessions(ws)  # sessions carry profile ids
    if fmt is Format.json:
        print_json(asdict(report))
        return
    print_rows([{"measure": k, "value": v} for k, v in asdict(report).items()], title="Identity resolution")


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the main app."""
    app.add_typer(identity_app, name="identity")
