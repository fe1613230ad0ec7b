"""State shared by every command: which workspace to open."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import typer

from cxlens.workspace import Workspace


@dataclass
class State:
    workspace_path: Path | None = None


def open_workspace(ctx: typer.Context) -> Workspace:
    """Open the workspace named by --workspace / CXLENS_WORKSPACE (default ./cxlens.duckdb)."""
    state: State = ctx.obj if isinstance(ctx.obj, State) else State()
    return Workspace.open(state.workspace_path)
