"""The workspace layer: canonical tables on an engine (DuckDB file by default, Spark via Ibis)."""

from cxlens.workspace.backend import Backend, DuckDBBackend, SparkBackend
from cxlens.workspace.workspace import DEFAULT_PATH, ENV_VAR, Workspace, default_path

__all__ = ["Backend", "DEFAULT_PATH", "DuckDBBackend", "ENV_VAR", "SparkBackend", "Workspace", "default_path"]
