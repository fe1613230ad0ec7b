"""The workspace: one store of canonical tables that every capability reads.

By default an embedded DuckDB file (`./cxlens.duckdb`, or `--workspace` / `CXLENS_WORKSPACE`);
`Workspace.on(backend)` wraps any other engine, e.g. Spark, for the same code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import ibis.expr.types as ir

from cxlens.errors import WorkspaceError
from cxlens.workspace.backend import Backend, DuckDBBackend
from cxlens.workspace.migrations import MIGRATIONS, SCHEMA_VERSION

DEFAULT_PATH = "cxlens.duckdb"
ENV_VAR = "CXLENS_WORKSPACE"


def default_path() -> Path:
    return Path(os.environ.get(ENV_VAR) or DEFAULT_PATH)


def file_stamp(path: Path) -> tuple[int, int]:
    """(mtime of the DuckDB file, mtime of its write-ahead log) in ns, 0 for a missing file: it
    changes whenever anything writes to the workspace, which is how the service notices writes."""
    stamps = []
    for p in (path, path.with_name(path.name + ".wal")):
        try:
            stamps.append(os.stat(p).st_mtime_ns)
        except FileNotFoundError:
            stamps.append(0)
    return stamps[0], stamps[1]


class Workspace:
    """Canonical tables on one engine, migrated to the current schema version."""

    def __init__(self, backend: Backend):
        self.backend = backend
        self._migrate()

    @classmethod
    def open(cls, path: str | Path | None = None, *, memory_limit: str | None = None) -> "Workspace":
        """Open (creating if needed) the DuckDB workspace at `path`."""
        return cls(DuckDBBackend(Path(path) if path else default_path(), memory_limit=memory_limit))

    @classmethod
    def on(cls, backend: Backend) -> "Workspace":
        """Use a workspace on another engine (e.g. `SparkBackend(session)`)."""
        return cls(backend)

    @property
    def path(self) -> Path | None:
        return getattr(self.backend, "path", None)

    @property
    def con(self) -> Any:
        """The Ibis connection, for expressions over any table."""
        return self.backend.con

    def table(self, name: str) -> ir.Table:
        return self.backend.table(name)

    def sql(self, query: str, params: list[Any] | None = None) -> Any:
        """Run SQL on a DuckDB workspace (the raw cursor); other engines use Ibis."""
        if not isinstance(self.backend, DuckDBBackend):
            raise WorkspaceError(f"Raw SQL needs a DuckDB workspace; this one runs on {self.backend.name}.")
        return self.backend.sql(query, params)

    def transaction(self) -> Any:
        return self.backend.transaction()

    @property
    def schema_version(self) -> int:
        t = self.table("cxlens_meta")
        rows = t.filter(t.key == "schema_version").value.to_pyarrow().to_pylist()
        return int(rows[0]) if rows else 0

    def _migrate(self) -> None:
        have = self.backend.tables()
        current = 0
        if "cxlens_meta" in have:
            current = self.schema_version
        if current > SCHEMA_VERSION:
            raise WorkspaceError(
                f"The workspace was written by a newer cxlens (schema {current}, this one knows "
                f"{SCHEMA_VERSION}); upgrade cxlens to open it."
            )
        if current == SCHEMA_VERSION:
            return
        with self.transaction():
            for step in MIGRATIONS[current:]:
                step(self.backend)
            self._set_meta("schema_version", str(SCHEMA_VERSION))

    def _set_meta(self, key: str, value: str) -> None:
        import pyarrow as pa

        if isinstance(self.backend, DuckDBBackend):
            self.sql("DELETE FROM cxlens_meta WHERE key = ?", [key])
            self.sql("INSERT INTO cxlens_meta VALUES (?, ?)", [key, value])
            return
        t = self.table("cxlens_meta")
        kept = t.filter(t.key != key).to_pyarrow()
        row = pa.table({"key": [key], "value": [value]})
        self.backend.replace_table("cxlens_meta", pa.concat_tables([kept, row.cast(kept.schema)]))

    def counts(self) -> dict[str, int]:
        """Rows per canonical table."""
        from cxlens.workspace.schema import TABLES

        return {name: int(self.table(name).count().execute()) for name in TABLES}

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> "Workspace":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
