"""State shared by every command: which workspace to open."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from cxlens.workspace import Workspace

if TYPE_CHECKING:
    from cxlens.semantic import Catalog


@dataclass
class State:
    workspace_path: Path | None = None


def open_workspace(ctx: typer.Context) -> Workspace:
    """Open the workspace named by --workspace / CXLENS_WORKSPACE (default ./cxlens.duckdb)."""
    state: State = ctx.obj if isinstance(ctx.obj, State) else State()
    return Workspace.open(state.workspace_path)


def load_catalog(ctx: typer.Context) -> "Catalog":
    """Built-in metrics plus the definitions file next to the chosen workspace, if any."""
    from cxlens.semantic import Catalog
    from cxlens.semantic.registry import definitions_path
    from cxlens.workspace.workspace import default_path

    state: State = ctx.obj if isinstance(ctx.obj, State) else State()
    return Catalog.load(definitions_path(state.workspace_path or default_path()))
