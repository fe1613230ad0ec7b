"""CLI commands `cxlens serve`, `cxlens keys create|list|revoke` and `cxlens collect flush|status`."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer

from cxlens.cli.context import State, open_workspace
from cxlens.cli.output import Format, console, print_json, print_rows

FORMAT_OPTION = typer.Option("--format", "-f", help="table (for people) or json (for scripts).")

keys_app = typer.Typer(help="API keys of the HTTP service: create, list, revoke.", no_args_is_help=True)
collect_app = typer.Typer(help="The HTTP service's event spool: load it now, or show its backlog.", no_args_is_help=True)


class ScopeChoice(str, enum.Enum):
    write = "write"
    read = "read"
    admin = "admin"


def _workspace_path(ctx: typer.Context) -> Path:
    from cxlens.workspace import default_path

    state: State = ctx.obj if isinstance(ctx.obj, State) else State()
    return Path(state.workspace_path or default_path()).expanduser().resolve()


def serve_command(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Address to listen on (0.0.0.0 for every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8000,
    source: Annotated[str, typer.Option("--source", help="Source name of collected records (customer ids are namespaced by it).")] = "http",
    load_interval: Annotated[float, typer.Option("--load-interval", min=0.1, help="Seconds between loads of the spool into the workspace.")] = 3.0,
    backlog_limit: Annotated[int, typer.Option("--backlog-limit", min=1, help="Spooled events above which collection answers 503.")] = 200_000,
    load_threads: Annotated[int | None, typer.Option("--load-threads", min=1, help="DuckDB threads a load may use (default: all cores but one, at least 1).", show_default=False)] = None,
    seen_days: Annotated[float, typer.Option("--seen-days", min=0.00001, help="Days an event_id is remembered to answer a resend as a duplicate (a later resend is still stored once).")] = 7.0,
    cors_origin: Annotated[list[str] | None, typer.Option("--cors-origin", help="An origin (https://shop.example.com) whose web pages may send events, identify calls and survey answers straight to the service; repeat for more, `*` for any. Reading never answers other origins.", show_default=False)] = None,
    dashboard_stale: Annotated[float, typer.Option("--dashboard-stale", min=0, help="Seconds a dashboard page may show its previous view (marked 'As of HH:MM:SS') after new data arrived, while it is recomputed; past that a reader waits for fresh numbers.")] = 180.0,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning or error.")] = "info",
) -> None:
    """Run the HTTP service: event collection, the read API and OpenAPI docs at /docs.

    Collected events are fsynced to a spool next to the workspace before the answer and loaded
    into the workspace every few seconds; the workspace is opened only for each load or read, so
    other cxlens commands keep working on it. Stop with Ctrl-C (the spool is loaded first).

    Examples:

      cxlens keys create --scope write --name website

      cxlens --workspace shop.duckdb serve --port 8000

      cxlens serve --cors-origin https://shop.example.com

      curl -H "Authorization: Bearer $KEY" localhost:8000/v1/metrics
    """
    import logging

    import uvicorn

    from cxlens.service import ServiceSettings, create_app
    from cxlens.service.cors import check_origins
    from cxlens.workspace import Workspace

    origins = check_origins(cors_origin or [])
    path = _workspace_path(ctx)
    Workspace.open(path).close()  # creates and migrates it, or says why it cannot
    tuning = {"load_threads": load_threads} if load_threads else {}
    settings = ServiceSettings(workspace=path, source=source, load_interval=load_interval, backlog_limit=backlog_limit,
                               seen_days=seen_days, cors_origins=origins, dashboard_max_stale=dashboard_stale, **tuning)
    level = log_level.upper()
    logging.basicConfig(level=level, format="%(message)s")
    console.print(f"cxlens serve: workspace {path}, spool {settings.spool}, http://{host}:{port}/docs", highlight=False)
    # One worker: DuckDB allows one writing process per file. httptools (pinned) parses HTTP in C;
    # h11, uvicorn's pure-Python fallback, costs more CPU per request on the collection path.
    uvicorn.run(create_app(settings), host=host, port=port, access_log=False, log_level=log_level.lower(),
                timeout_graceful_shutdown=10, log_config=None, workers=1, http="httptools", timeout_keep_alive=30)


@keys_app.command("create")
def keys_create(
    ctx: typer.Context,
    scope: Annotated[ScopeChoice, typer.Option("--scope", help="write (collect only), read (read only) or admin (manage keys).", show_default=False)],
    name: Annotated[str | None, typer.Option("--name", help="A name to list and revoke it by (default: scope plus random letters).")] = None,
    pii: Annotated[bool, typer.Option("--pii", help="Let this read key see raw email and phone values.")] = False,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
) -> None:
    """Create an API key; it is shown once and stored only as a hash.

    JSON: {"key": "cxk_...", "scope": "write", "name": "website", "pii": false}.

    Examples:

      cxlens keys create --scope write --name website

      cxlens keys create --scope read --pii --format json
    """
    from cxlens.service.keys import create_key

    with open_workspace(ctx) as ws:
        key, record = create_key(ws, scope.value, name, pii=pii)
    if format is Format.json:
        print_json({"key": key, "scope": record.scope, "name": record.name, "pii": record.pii})
        return
    console.print(f"Created {record.scope} key [bold]{record.name}[/]{' (pii)' if pii else ''}; it is shown only now:")
    print(key)


@keys_app.command("list")
def keys_list(ctx: typer.Context, format: Annotated[Format, FORMAT_OPTION] = Format.table) -> None:
    """List keys (never their secrets): name, scope, pii, prefix, created and revoked times.

    Examples:

      cxlens keys list --format json
    """
    from cxlens.service.keys import list_keys

    with open_workspace(ctx) as ws:
        rows = [k.to_dict() for k in list_keys(ws)]
    if format is Format.json:
        print_json({"keys": rows})
        return
    print_rows(rows, title=f"{len(rows)} keys", columns=("name", "scope", "pii", "prefix", "created_at", "revoked_at"))


@keys_app.command("revoke")
def keys_revoke(
    ctx: typer.Context,
    key_or_name: Annotated[str, typer.Argument(help="The key's name, or the key itself.", show_default=False)],
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
) -> None:
    """Revoke a key: a running server refuses it within seconds (401).

    Examples:

      cxlens keys revoke website
    """
    from cxlens.service.keys import revoke_key

    with open_workspace(ctx) as ws:
        record = revoke_key(ws, key_or_name)
    if format is Format.json:
        print_json(record.to_dict())
        return
    console.print(f"Revoked the {record.scope} key {record.name} ({record.revoked_at:%Y-%m-%d %H:%M:%S} UTC).")


@collect_app.command("flush")
def collect_flush(
    ctx: typer.Context,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
) -> None:
    """Load every spooled event into the workspace now (safe while the server runs), each under
    the source name the server collected it with.

    JSON: {"loaded", "duplicates", "quarantined", "batches", "backlog", "seconds"}.

    Examples:

      cxlens collect flush --format json
    """
    from cxlens.service.loader import flush
    from cxlens.service.settings import spool_path_for
    from cxlens.service.spool import Spool

    path = _workspace_path(ctx)
    spool = Spool(spool_path_for(path))
    try:
        report = flush(path, spool)
    finally:
        spool.close()
    if format is Format.json:
        print_json(report.to_dict())
        return
    console.print(f"Loaded {report.loaded:,} events ({report.duplicates:,} already there, {report.quarantined:,} "
                  f"quarantined) in {report.seconds:.1f} s; {report.backlog:,} waiting.")


@collect_app.command("status")
def collect_status(ctx: typer.Context, format: Annotated[Format, FORMAT_OPTION] = Format.table) -> None:
    """Show how many collected events wait in the spool for the next load.

    JSON: {"backlog": n, "oldest_seq": n or null, "spool": path}.

    Examples:

      cxlens collect status --format json
    """
    from cxlens.service.settings import spool_path_for
    from cxlens.service.spool import Spool

    spool = Spool(spool_path_for(_workspace_path(ctx)))
    try:
        backlog = spool.backlog()
    finally:
        spool.close()
    if format is Format.json:
        print_json(backlog.to_dict())
        return
    console.print(f"{backlog.events:,} events waiting in {backlog.path}.", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)
    app.add_typer(keys_app, name="keys")
    app.add_typer(collect_app, name="collect")
