"""The `cxlens` command: a thin shell over the Python API.

Each command group lives in its own module with a `register(app)` function; this module holds the
global options (`--workspace`, `--version`) and turns every CxlensError into one sentence on
stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from cxlens import __version__
from cxlens.cli.context import State
from cxlens.cli.output import print_error
from cxlens.errors import CxlensError

COMMAND_MODULES = ("ingest", "identity", "profiles", "simulate", "demo", "metrics", "report", "experiment", "bandit", "roi", "clv", "value", "journeys", "attribution", "service", "surveys")

app = typer.Typer(
    name="cxlens",
    help=(
        "Measure and improve personalized customer experience.\n\n"
        "Examples:\n\n"
        "  cxlens simulate --customers 2000 --out sim\n\n"
        "  cxlens ingest orders sim/webshop_orders.csv --mapping sim/webshop_orders.yml\n\n"
        "  cxlens --workspace shop.duckdb identity stats"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cxlens {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    workspace: Annotated[
        Optional[Path],
        typer.Option("--workspace", "-w", envvar="CXLENS_WORKSPACE", help="Workspace file (default ./cxlens.duckdb).", show_default=False),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Measure and improve personalized customer experience."""
    ctx.obj = State(workspace_path=workspace)


for _name in COMMAND_MODULES:
    importlib.import_module(f"cxlens.cli.{_name}").register(app)


def _is_interrupt(exc: BaseException) -> bool:
    """Ctrl-C as Python, click (Abort) or DuckDB (InterruptException, 'Query interrupted') reports it."""
    import duckdb

    return (
        isinstance(exc, (KeyboardInterrupt, duckdb.InterruptException))
        or type(exc).__name__ == "Abort"
        or (isinstance(exc, (duckdb.Error, RuntimeError)) and "interrupted" in str(exc).lower())
    )


def main() -> None:
    """Console entry point: run the app; errors become one sentence on stderr and an exit code."""
    try:
        rc = app(standalone_mode=False)
    except CxlensError as exc:
        print_error(str(exc))
        sys.exit(exc.exit_code)
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - every other ending is sorted here
        if _is_interrupt(exc):
            _interrupted()
        if isinstance(exc, typer.Exit) or type(exc).__name__ == "Exit":
            sys.exit(getattr(exc, "exit_code", 0))
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):  # click's usage errors
            exc.show()
            sys.exit(exc.exit_code)
        if os.environ.get("CXLENS_DEBUG") or not isinstance(exc, Exception):
            raise
        print_error(
            f"Unexpected {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} — this is a bug in "
            "cxlens; run again with CXLENS_DEBUG=1 to see the details."
        )
        sys.exit(70)
    if rc == 130:  # typer turns a KeyboardInterrupt outside the engine into a return code
        _interrupted()
    if isinstance(rc, int) and rc:
        sys.exit(rc)


def _interrupted() -> None:
    print_error("Interrupted; the unfinished step changed nothing.")
    sys.exit(130)
