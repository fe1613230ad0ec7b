"""The few engine-specific steps of identity resolution: scratch tables and writing results back.

Everything else is portable Ibis. Iterative algorithms need each round materialized (otherwise
the query plan grows with every round), and DuckDB can update rows in place while Spark has to
rewrite a table; both differences live here and nowhere else.
"""

from __future__ import annotations

import contextlib
import itertools
from typing import Any

import ibis
import ibis.expr.types as ir

from cxlens.workspace import DuckDBBackend, Workspace

_counter = itertools.count()


def is_duckdb(ws: Workspace) -> bool:
    return isinstance(ws.backend, DuckDBBackend)


class Scratch:
    """Intermediate tables of one resolution run, dropped when it ends.

    DuckDB keeps them as TEMP tables of the connection (inside the run's transaction); engines
    without temporary tables (Spark through Ibis) get uniquely named managed tables, which also
    cut the lineage an iterative Spark job would otherwise drag along.
    """

    def __init__(self, ws: Workspace, prefix: str = "_cx_identity"):
        self.ws = ws
        self.prefix = f"{prefix}_{next(_counter)}"
        self.names: list[str] = []

    def save(self, expr: ir.Table, name: str) -> ir.Table:
        """Materialize `expr` and return a table reading the stored result."""
        con = self.ws.con
        if is_duckdb(self.ws):
            full = f"{self.prefix}_{name}"
            out = con.create_table(full, expr, temp=True, overwrite=True)
        else:
            full = f"{self.prefix}_{name}_{len(self.names)}"
            out = con.create_table(full, expr, overwrite=True)
        if full not in self.names:
            self.names.append(full)
        return out

    def drop(self, table: ir.Table | None = None) -> None:
        """Drop one scratch table early (keeps memory flat across rounds), or all of them."""
        names = [ref(table)] if table is not None else list(self.names)
        for name in names:
            with contextlib.suppress(Exception):
                self.ws.con.drop_table(name, force=True)
            if name in self.names:
                self.names.remove(name)

    def __enter__(self) -> "Scratch":
        return self

    def __exit__(self, *exc: object) -> None:
        self.drop()


def ref(table: ir.Table) -> str:
    """The bare SQL name of a stored table (Ibis qualifies temp tables as temp.main.name)."""
    return table.get_name().split(".")[-1]


def scalar(expr: ir.Scalar) -> Any:
    """Execute a scalar expression and return a plain Python value (None for NULL)."""
    value = expr.to_pyarrow().as_py()
    return value


def spark_replace(ws: Workspace, scratch: Scratch, name: str, rows: ir.Table) -> None:
    """Overwrite `name` on an engine without UPDATE, staying in the engine.

    Stages through a scratch table (so `rows` may read `name`) instead of a pyarrow round trip,
    which on Spark goes through pandas and turns NULL strings into 'NaN'.
    """
    tmp = scratch.save(rows, f"stage_{name}")
    ws.con.create_table(name, tmp, overwrite=True)


def replace_rows(ws: Workspace, scratch: Scratch, name: str, on: str, rows: ir.Table) -> None:
    """Replace the rows of table `name` whose `on` value appears in `rows`, then add `rows`."""
    target = ws.table(name)
    rows = rows.select(*target.columns).cast(target.schema())
    if is_duckdb(ws):
        tmp = scratch.save(rows, f"replace_{name}")
        name_tmp = ref(tmp)
        ws.sql(f'DELETE FROM "{name}" WHERE "{on}" IN (SELECT "{on}" FROM "{name_tmp}")')
        ws.sql(f'INSERT INTO "{name}" SELECT * FROM "{name_tmp}"')
        return
    kept = target.anti_join(rows, target[on] == rows[on])
    spark_replace(ws, scratch, name, kept.union(rows))


def append_rows(ws: Workspace, scratch: Scratch, name: str, rows: ir.Table) -> None:
    """Append `rows` (already free of duplicates) to table `name`."""
    target = ws.table(name)
    rows = rows.select(*target.columns).cast(target.schema())
    if is_duckdb(ws):
        tmp = scratch.save(rows, f"append_{name}")
        ws.sql(f'INSERT INTO "{name}" SELECT * FROM "{ref(tmp)}"')
        return
    spark_replace(ws, scratch, name, target.union(rows))


def overwrite(ws: Workspace, scratch: Scratch, name: str, rows: ir.Table) -> None:
    """Make `rows` the whole content of table `name` (which `rows` may read)."""
    target = ws.table(name)
    rows = rows.select(*target.columns).cast(target.schema())
    if is_duckdb(ws):
        tmp = scratch.save(rows, f"overwrite_{name}")
        ws.sql(f'DELETE FROM "{name}"')
        ws.sql(f'INSERT INTO "{name}" SELECT * FROM "{ref(tmp)}"')
        return
    spark_replace(ws, scratch, name, rows)


def mark_sources_resolved(ws: Workspace, scratch: Scratch, ingest_ids: list[int]) -> None:
    """Set sources.resolved = true for the ingests this run has processed."""
    if not ingest_ids:
        return
    if is_duckdb(ws):
        ws.sql(
            "UPDATE sources SET resolved = true WHERE ingest_id IN (SELECT unnest(?::BIGINT[]))",
            [ingest_ids],
        )
        return
    s = ws.table("sources")
    done = s.ingest_id.isin(ingest_ids)
    spark_replace(ws, scratch, "sources", s.mutate(resolved=ibis.ifelse(done, True, s.resolved)))
