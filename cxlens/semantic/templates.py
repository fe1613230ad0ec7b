"""Compiled batch queries kept for other date ranges and later data: a new range costs engine time only.

Building a batch's Ibis expression and compiling it to SQL was most of the time of a dashboard
overview for a new date range (about 1 s of 1.5 s on the demo workspace); the engine's own work is
the smaller part. A batch's SQL depends on its dates only through the two timestamps its window
keeps rows between (`Window.apply`), so `Templates` compiles each batch once with sentinel dates
and, for any other range, writes the range's timestamps where the sentinels were. A range open at
one end is closed at 0001-01-01 or 9999-12-30, which every timestamp from year 1 to 9999 passes
(rows without a time are left out by the other end already), so one template serves every dated
range; queries without dates have their own.

The SQL also carries values read from the data while building it (the latest activity, the
subscription periods, whether the kept sessions are current, ...: `Context.scalar`). Each
template keeps the values it was built with and is used only while they still hold, checked once
per `epoch` (the dashboard passes its data version), so templates outlive loads of new data.

Compiled SQL is plain text reused across connections (the dashboard opens the workspace per batch
of views): it is compiled from a context that materializes nothing (a `.cache()` lives in one
connection), and the in-memory tables it reads are registered again on each connection. Batches
filtered to a segment or by a profile condition are computed the usual way (their materialized
members serve every batch of the context), as is everything on engines other than DuckDB.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import duckdb
import ibis.expr.operations as ops
import pandas as pd
import pyarrow as pa

from cxlens.semantic.compile import Batch, parse_date
from cxlens.semantic.model import Query
from cxlens.semantic.registry import Catalog
from cxlens.semantic.sources import Context, Deps
from cxlens.stopping import checkpoint

SINCE = date(1111, 11, 11)
UNTIL = date(1222, 12, 12)
"""Sentinel dates no data has: the window keeps rows from SINCE's midnight to the midnight after UNTIL."""
OPEN_SINCE = date(1, 1, 1)
OPEN_UNTIL = date(9999, 12, 30)
_SENTINEL = re.compile(r"\b(1111|1222)\b")


def timestamp_sql(day: date) -> str:
    """A midnight as Ibis's DuckDB compiler writes it (checked against the sentinels it wrote)."""
    return f"MAKE_TIMESTAMP({day.year}, {day.month}, {day.day}, 0, 0, 0.0)"


@dataclass(frozen=True)
class Template:
    """A batch's SQL with sentinel dates, the schema Ibis converts its result to, its memtables and
    the data values it was built with."""

    sql: str
    schema: Any
    memtables: tuple[tuple[str, pa.Table], ...]
    deps: Deps


class Templates:
    """Compiled SQL of batches for one catalogue, reused across date ranges, connections and loads.

        templates = Templates()
        Measurer(ws, catalog, templates=templates).measure_many(ids, since="2025-06-01", until="2025-09-30")
        # later, on another connection, another range compiles nothing:
        Measurer(ws2, catalog, templates=templates).measure_many(ids, since="2025-03-01", until="2025-05-31")
    """

    def __init__(self) -> None:
        self._catalog: Catalog | None = None
        self._kept: dict[tuple[Any, ...], Template | None] = {}
        self._epoch: object = None
        self._held: dict[str, object] = {}
        """Scalars found to still have a value this epoch (not read again until the epoch changes)."""
        self._held_in: Context | None = None
        self.hits = 0
        """Batches answered from a kept template (the tests check templates are really used)."""
        self.compiled = 0
        """Batches compiled into a new template."""

    def epoch(self, version: object) -> None:
        """Data values checked once are trusted until `version` changes. Without an epoch they are
        checked once per context (per `Measurer`)."""
        if version != self._epoch:
            self._held = {}
        self._epoch = version

    def _trust(self, ctx: Context) -> None:
        if self._epoch is None and ctx is not self._held_in:
            self._held = {}
        self._held_in = ctx

    def run(self, ctx: Context, catalog: Catalog, batch: Batch) -> pd.DataFrame | None:
        """The batch's result, or None when it must be computed the usual way."""
        backend = _duckdb(ctx, batch)
        if backend is None:
            return None
        template = self._template(ctx, catalog, batch)
        if template is None:
            return None
        since, until = _range(batch.q)
        sql = template.sql
        if since is not None:
            sql = sql.replace(timestamp_sql(SINCE), timestamp_sql(since))
        if until is not None:
            sql = sql.replace(timestamp_sql(_after(UNTIL)), timestamp_sql(_after(until)))
        try:
            for name, data in template.memtables:
                backend.raw.register(name, data)
            table = backend.raw.sql(sql).to_arrow_table()
        except duckdb.InterruptException:
            raise  # stopped from outside (the dashboard stops background work for a reader)
        except duckdb.Error:  # e.g. a table changed under a long-lived template: compile it afresh
            self._kept.pop(_shape(batch), None)
            return None
        from ibis.backends.duckdb.converter import DuckDBPyArrowData

        return DuckDBPyArrowData.convert_table(table, template.schema).to_pandas()

    def prepare(self, ctx: Context, catalog: Catalog, queries: Sequence[Query],
                stop: Callable[[], bool] | None = None) -> bool:
        """Compile the batches of these queries (nothing runs): a later query of the same shape with
        other dates only runs the engine. False when `stop()` said to stop before the last one."""
        from cxlens.semantic.plan import plan

        batches, _ = plan(ctx, catalog, queries)
        for b in batches:
            if stop is not None and stop():
                return False
            if _duckdb(ctx, b) is not None:
                self._template(ctx, catalog, b)
        return True

    def _template(self, ctx: Context, catalog: Catalog, batch: Batch) -> Template | None:
        self._trust(ctx)
        if catalog is not self._catalog:
            if catalog != self._catalog:  # another catalogue (an equal one loaded again keeps them)
                self._kept = {}
            self._catalog = catalog
        key = _shape(batch)
        if key in self._kept:
            template = self._kept[key]
            if template is None or self._holds(ctx, template.deps):
                if template is not None:
                    self.hits += 1
                return template
        template = self._kept[key] = _compile(ctx, catalog, batch)
        if template is not None:
            self.compiled += 1
            self._held.update({name: value for name, (_, value) in template.deps.items()})
        return template

    def check(self, ctx: Context) -> int:
        """Check now, once for this epoch, the data values every kept template was built with, as
        the next batch would (the dashboard does it right after a load, so a reader's first page
        at the new data version does not: 0.15-0.25 s on the demo workspace). How many still hold."""
        self._trust(ctx)
        return sum(1 for t in list(self._kept.values()) if t is not None and self._holds(ctx, t.deps))

    def _holds(self, ctx: Context, deps: Deps) -> bool:
        for name, (compute, value) in deps.items():
            if name in self._held and _same(self._held[name], value):
                continue
            checkpoint()  # many short queries: a check stopped for a reader ends between them
            now = ctx.scalar(name, compute)
            if not _same(now, value):
                return False
            self._held[name] = now
        return True


def _same(a: object, b: object) -> bool:
    try:
        return bool(a == b) or (a != a and b != b)  # NaN/NaT equal themselves here
    except (TypeError, ValueError):
        return False


def _duckdb(ctx: Context, batch: Batch) -> Any:
    """The workspace's DuckDB backend when the batch can use templates, else None."""
    backend = getattr(ctx.workspace, "backend", None)
    if backend is None or getattr(backend, "name", "") != "duckdb" or batch.q.window or batch.q.where or batch.dims.segment:
        return None
    return backend


def _range(q: Query) -> tuple[date | None, date | None]:
    """The query's dates with an open end closed (see the module's docstring); (None, None) undated."""
    since, until = parse_date(q.since, "--since"), parse_date(q.until, "--until")
    if since is None and until is None:
        return None, None
    return since or OPEN_SINCE, until or OPEN_UNTIL


def _after(day: date) -> date:
    return date.fromordinal(day.toordinal() + 1)


def _shape(batch: Batch) -> tuple[Any, ...]:
    """What a batch's SQL depends on besides the data values it records and the catalogue."""
    q = batch.q
    dated = q.since is not None or q.until is not None
    return (batch.source, batch.unit, q.grain, q.by, batch.dims, dated, tuple(batch.slots))


def _compile(ctx: Context, catalog: Catalog, batch: Batch) -> Template | None:
    """The batch compiled with sentinel dates, or None when substituting dates could not be exact."""
    q = batch.q
    dated = q.since is not None or q.until is not None
    sentinel = Batch(batch.source, batch.unit, replace(q, since=SINCE if dated else None, until=UNTIL if dated else None),
                     batch.dims, list(batch.slots))
    lazy = ctx.lazy()
    with lazy.recording() as deps:
        expr = sentinel.expr(lazy, catalog)
    sql = str(ctx.workspace.backend.con.compile(expr))  # type: ignore[union-attr]
    if expr.op().find(ops.ScalarUDF) or "ibis_cached_" in sql:
        return None
    rest = sql.replace(timestamp_sql(SINCE), "").replace(timestamp_sql(_after(UNTIL)), "")
    found = not dated or (timestamp_sql(SINCE) in sql and timestamp_sql(_after(UNTIL)) in sql)
    if not found or _SENTINEL.search(rest):
        return None  # a date derived from the range, or another way of writing it: not a plain substitution
    memtables = tuple((op.name, op.data.to_pyarrow(op.schema)) for op in expr.op().find(ops.InMemoryTable))
    return Template(sql, expr.schema(), memtables, dict(deps))
