"""Catalogue metrics per experiment unit, over its exposure window and the pre-period before it.

A catalogue metric becomes per-unit variables: a count or sum measure gives the unit's total
(``y``: orders per unit, revenue per unit, analyzed as a mean over units); a mean measure or a
numerator/denominator metric gives a numerator ``y`` and a denominator ``d`` per unit, analyzed
as a ratio by the delta method (AOV = revenue / orders, conversion = converting sessions /
sessions, NPS = net codes / answers); a measure per customer (``per: profile_id``) is evaluated
on the unit's rows. The same variables over the ``pre_days`` before exposure (``x``, ``e``) are
the CUPED covariate.

Everything runs in the engine as one union of per-source aggregates: rows are joined to units,
tagged pre or post, summed per unit (and per row-dimension value), and reduced to the sufficient
statistics per variant; a unit with no rows contributes zeros, so only the unit counts come from
the units table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import ibis
import ibis.expr.types as ir

from cxlens.errors import MetricError
from cxlens.experiments.analysis import MetricSpec
from cxlens.semantic.expressions import compile_expr
from cxlens.semantic.model import Measure, Metric
from cxlens.semantic.registry import Catalog
from cxlens.semantic.sources import SOURCES, Context, Request


@dataclass(frozen=True)
class Part:
    """One per-unit variable of one metric: which measure fills it, and how."""

    metric: str
    variable: str
    """y or d (x and e are the same parts over the pre-period)."""
    measure: Measure
    how: str
    """`total` (sum or count of rows), `rows` (count of non-null expr rows), `unit` (per-unit expr), `has_rows`."""

    @property
    def column(self) -> str:
        return f"{self.metric}__{self.variable}"


def experiment_metric(metric: Metric) -> tuple[MetricSpec, list[Part]]:
    """How a catalogue metric is computed per unit, or a MetricError saying why it cannot be."""
    measures = [m for m in (metric.measure, metric.numerator, metric.denominator) if m is not None]
    for m in measures:
        source = SOURCES.get(m.source)
        if source is None or source.periodic or source.derived_dims or not source.person:
            why = "has no customer" if source is not None and not source.person else "is built per period"
            raise MetricError(
                f"{metric.id} cannot be measured per experiment unit: its source {m.source!r} {why}. "
                "Use a metric over orders, events, sessions, surveys, interactions or cases "
                "(`cxlens experiment metrics` lists them)."
            )
    if metric.share_over:
        raise MetricError(f"{metric.id} is a share across {metric.share_over[0]} values, not a per-unit outcome.")
    higher = metric.direction != "down"
    if metric.measure is not None:
        m = metric.measure
        if m.unit is not None and m.agg == "mean":
            parts = [Part(metric.id, "y", m, "unit"), Part(metric.id, "d", m, "has_rows")]
            kind = "ratio"
        elif m.unit is not None:
            parts = [Part(metric.id, "y", m, "has_rows" if m.agg == "count" else "unit")]
            kind = "mean"
        elif m.agg == "mean":
            parts = [Part(metric.id, "y", m, "total"), Part(metric.id, "d", m, "rows")]
            kind = "ratio"
        else:
            parts = [Part(metric.id, "y", m, "total")]
            kind = "mean"
    else:
        assert metric.numerator is not None and metric.denominator is not None
        parts = [_whole(metric.id, "y", metric.numerator), _whole(metric.id, "d", metric.denominator)]
        kind = "ratio"
    spec = MetricSpec(id=metric.id, kind=kind, higher_is_better=higher, label=metric.label,  # type: ignore[arg-type]
                      scale=metric.scale)
    return spec, parts


def _whole(metric: str, variable: str, m: Measure) -> Part:
    """A ratio's numerator or denominator as one per-unit value."""
    if m.unit is not None:
        return Part(metric, variable, m, "has_rows" if m.agg == "count" else "unit")
    return Part(metric, variable, m, "total")


def supported(catalog: Catalog) -> list[str]:
    """Ids of the catalogue metrics an experiment can use."""
    out = []
    for metric in catalog.metrics.values():
        try:
            experiment_metric(metric)
        except MetricError:
            continue
        out.append(metric.id)
    return out


def unit_values(
    ctx: Context,
    catalog: Catalog,
    units: ir.Table,
    parts: Sequence[Part],
    *,
    window_days: float | None,
    pre_days: float,
    row_dim: str | None,
) -> ir.Table:
    """Per unit (and row-dimension value): every part over the exposure window and the pre-period.

    Columns: ``<metric>__y`` etc. for the window and ``<metric>__x``/``__e`` (the pre-period twins
    of y/d). Without a row dimension: every row and column of ``units``, with zeros where a unit
    has no rows. With one: ``unit``, ``dim`` and the values, for the (unit, value) pairs with rows.
    """
    columns = value_columns(parts)
    pieces = unit_pieces(ctx, catalog, units, parts, window_days=window_days, pre_days=pre_days, row_dim=row_dim)
    if row_dim is None:
        out = units
        for piece in pieces:
            piece = piece.select("unit", *[c for c in piece.columns if c in columns]).rename(_unit="unit").view()
            out = out.left_join(piece, out.unit == piece._unit).drop("_unit")
        return out.mutate(**{c: out[c].fill_null(0.0) for c in columns})
    stacked = ibis.union(*[
        piece.select("unit", "dim", **{c: piece[c] if c in piece.columns else ibis.literal(0.0) for c in columns})
        for piece in pieces
    ])
    return stacked.group_by(["unit", "dim"]).aggregate(**{c: stacked[c].sum() for c in columns})


def value_columns(parts: Sequence[Part]) -> list[str]:
    """The window columns of the parts, then their pre-period twins."""
    return [p.column for p in parts] + [_pre(p.column) for p in parts]


def unit_pieces(
    ctx: Context,
    catalog: Catalog,
    units: ir.Table,
    parts: Sequence[Part],
    *,
    window_days: float | None,
    pre_days: float,
    row_dim: str | None,
    carry: Sequence[str] = (),
    span: tuple[Any, Any] | None = None,
) -> list[ir.Table]:
    """Per-unit values, one table per pass over a source: ``unit``, the ``carry`` columns of
    ``units`` (variant, segment), ``dim`` with a row dimension, and the parts' columns.

    Only units with rows in that pass appear; a metric whose parts all sit in one piece is reduced
    to sufficient statistics from that piece alone (its other units contribute zeros), so the
    engine never joins every unit to every piece.
    """
    by_source: dict[str, list[Part]] = {}
    for p in parts:
        by_source.setdefault(p.measure.source, []).append(p)
    # Carried columns get private names: a source has columns of its own called `variant`.
    private = {c: f"_carry_{c}" for c in carry}
    u = units.select(_unit=units.unit, _start=units.start, **{private[c]: units[c] for c in carry}).view()
    if span is None:
        span = tuple(units.aggregate(first=units.start.min(), last=units.start.max()).to_pyarrow().to_pylist()[0].values())
    bounds = {"first": span[0], "last": span[1]}
    keys = ["_unit", *private.values()] + (["_dim"] if row_dim else [])
    pieces: list[ir.Table] = []
    for source, source_parts in by_source.items():
        j = _phased_rows(ctx, catalog, source, source_parts, u, window_days, pre_days, row_dim, bounds)
        # One pass over the source for every part: the phase (and a part's filter) becomes each
        # aggregate's WHERE, also inside a per-unit formula (`count(*) >= 2` counts the window's rows).
        aggregates = {}
        for p in source_parts:
            for in_phase, name in ((j._post, p.column), (j._pre, _pre(p.column))):
                if p.how in ("total", "rows"):
                    aggregates[name] = _row_aggregate(p, j, in_phase)
                else:
                    aggregates[name] = _unit_aggregate(p, j, in_phase)
        pieces.append(j.group_by(keys).aggregate(**aggregates))
    names = {"unit": "_unit", **{c: private[c] for c in carry}, **({"dim": "_dim"} if row_dim else {})}
    return [piece.rename(**names) for piece in pieces]


def _phased_rows(ctx: Context, catalog: Catalog, source: str, parts: Sequence[Part], u: ir.Table,
                 window_days: float | None, pre_days: float, row_dim: str | None, bounds: dict[str, Any]) -> ir.Table:
    """The source's rows of experiment units, flagged `_post` (exposure window) or `_pre` (before it).

    Rows outside every unit's windows are dropped before the join, from the first and last
    exposure start (`bounds`): on a long history most rows never reach the join.
    """
    rows = ctx.source(source, Request("all"))
    if "profile_id" not in rows.columns:
        raise MetricError(f"Source {source!r} has no profile_id; it cannot be measured per unit.")
    if bounds["first"] is not None:
        rows = rows.filter(rows.ts >= bounds["first"] - timedelta(days=pre_days))
        if window_days is not None:
            rows = rows.filter(rows.ts < bounds["last"] + timedelta(days=window_days))
    if row_dim:
        rows = rows.mutate(_dim=_row_dimension(catalog, source, parts, row_dim, rows))
    j = rows.join(u, rows.profile_id == u._unit)
    start = j._start
    after = start + ibis.interval(seconds=int(window_days * 86400)) if window_days is not None else None
    in_post = (j.ts >= start) & (j.ts < after) if after is not None else j.ts >= start
    in_pre = (j.ts < start) & (j.ts >= start - ibis.interval(seconds=int(pre_days * 86400)))
    # Two booleans rather than a phase label: every aggregate's FILTER tests one of them.
    j = j.mutate(_post=in_post, _pre=in_pre)
    return j.filter(j._post | j._pre)


_PRE_OF = {"y": "x", "d": "e"}


def _pre(column: str) -> str:
    """The pre-period twin of a window column: <metric>__y -> <metric>__x, __d -> __e."""
    metric, variable = column.rsplit("__", 1)
    return f"{metric}__{_PRE_OF[variable]}"


def _row_aggregate(p: Part, rows: ir.Table, phase: ir.BooleanValue) -> ir.Scalar:
    where = f"metric {p.metric}"
    keep = phase & compile_expr(p.measure.filter, rows, where=where) if p.measure.filter else phase
    if p.measure.agg == "count":
        return rows.count(where=keep).cast("float64")
    value = compile_expr(p.measure.expr, rows, where=where).cast("float64") if p.measure.expr else ibis.literal(1.0)
    if p.how == "rows":
        return value.count(where=keep).cast("float64")
    return value.sum(where=keep).fill_null(0.0)


def _unit_aggregate(p: Part, rows: ir.Table, phase: ir.BooleanValue) -> ir.Scalar:
    """A per-unit formula over the unit's rows in the phase (and the measure's filter); 0 without rows."""
    where = f"metric {p.metric}"
    keep = phase & compile_expr(p.measure.filter, rows, where=where) if p.measure.filter else phase
    if p.how == "has_rows" or not p.measure.expr:
        return ibis.ifelse(rows.count(where=keep) > 0, 1.0, 0.0)
    value = compile_expr(p.measure.expr, rows, where=where, aggregate=True, rows=keep).cast("float64")
    return value.fill_null(0.0)


def _row_dimension(catalog: Catalog, source: str, parts: Sequence[Part], dim: str, rows: ir.Table) -> ir.Value:
    exprs = {p.measure.column_for(dim) for p in parts} - {None}
    column = next(iter(exprs)) if exprs else catalog.dimensions[dim].column_for(source)
    if not column or column.startswith("profile:"):
        names = ", ".join(sorted({p.metric for p in parts}))
        raise MetricError(f"{names} cannot be cut by {dim!r}: its rows in {source!r} carry no {dim}.")
    return compile_expr(column, rows, where=f"dimension {dim}").cast("string")
