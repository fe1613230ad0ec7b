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

COMMAND_MODULES = ("ingest", "identity", "profiles", "simulate", "demo")

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


def main() -> None:
    """Console entry point: run the app, print CxlensErrors as one sentence."""
    try:
        rc = app(standalone_mode=False)
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except CxlensError as exc:
        print_error(str(exc))
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        print_error("Interrupted; nothing was changed by the unfinished step.")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):  # click's usage errors
            exc.show()
            sys.exit(exc.exit_code)
        if os.environ.get("CXLENS_DEBUG"):
            raise
        print_error(
            f"Unexpected {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} — this is a bug in "
            "cxlens; run again with CXLENS_DEBUG=1 to see the details."
        )
        sys.exit(70)
