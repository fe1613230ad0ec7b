"""Compile metric queries into Ibis aggregates, many measures per engine query.

A measure is an aggregation over one semantic source. Measures over the same source, at the
same grain, dimensions, dates and segment share one scan and one group-by: each becomes a few
aggregate columns (its filter as `FILTER (WHERE ...)`) of a `Batch`, so a whole catalogue costs
one compiled query per source instead of one or two per metric. The engine returns per group the
value, its `n` and the sufficient statistics (sum, sum of squares) a baseline comparison needs;
cxlens.semantic.plan combines those few rows into ratios and shares.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import ibis
import ibis.expr.types as ir
import pandas as pd

from cxlens.errors import MetricError
from cxlens.semantic.expressions import compile_expr
from cxlens.semantic.model import GRAINS, Measure, Metric, Query
from cxlens.semantic.registry import Catalog
from cxlens.semantic.sources import SOURCES, Context, Request, truncate

KEY_PERIOD = "period_start"


@dataclass(frozen=True)
class Window:
    """Inclusive dates a query keeps rows for (either end open)."""

    since: date | None = None
    until: date | None = None

    def apply(self, t: ir.Table) -> ir.Table:
        if self.since is not None:
            t = t.filter(t.ts >= datetime.combine(self.since, datetime.min.time()))
        if self.until is not None:
            t = t.filter(t.ts < datetime.combine(self.until + timedelta(days=1), datetime.min.time()))
        return t


def parse_date(value: str | date | None, option: str) -> date | None:
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise MetricError(f"{option} must be a date such as 2025-01-31, got {value!r}.") from None


def check_query(catalog: Catalog, q: Query) -> Metric:
    """The metric of a query, after checking grain and dimensions fit it (every problem at once)."""
    metric = catalog.metric(q.metric)
    problems: list[str] = []
    if q.grain not in GRAINS:
        problems.append(f"--grain must be one of {', '.join(GRAINS)}, got {q.grain!r}.")
    elif metric.needs_grain and q.grain == "all" and not q.window:
        problems.append(f"{metric.id} compares each period with the one before; use --grain day|week|month|quarter|year "
                        "(year gives YoY, quarter QoQ).")
    allowed = catalog.dimensions_for(metric)
    for d in q.by:
        if d not in allowed:
            known = d in catalog.dimensions
            why = "cannot be cut by" if known else "has no dimension"
            problems.append(f"{metric.id} {why} {d!r}; it can be cut by: {', '.join(allowed) or 'nothing'}.")
    if len(set(q.by)) != len(q.by):
        problems.append("--by names the same dimension twice.")
    if metric.share_over and not any(d in metric.share_over for d in q.by):
        problems.append(f"{metric.id} is a share across {' or '.join(metric.share_over)}; add --by {metric.share_over[0]}.")
    if problems:
        raise MetricError(" ".join(problems))
    return metric


def resolve_dims(catalog: Catalog, m: Measure, by: tuple[str, ...]) -> Dims:
    """Where each dimension of `by` comes from for a measure: its source rows, the profile, or segments."""
    row, profile, segment = [], [], False
    for d in by:
        col = m.column_for(d)
        dim = catalog.dimensions[d]
        if col is not None and col.startswith("profile:"):
            profile.append((d, col.removeprefix("profile:")))
        elif col is not None:
            row.append((d, col))
        elif d == "segment":
            segment = True
        elif dim.profile is not None:
            profile.append((d, dim.profile))
        else:
            row.append((d, dim.column_for(m.source) or ""))
    return Dims(tuple(row), tuple(profile), segment)


@dataclass(frozen=True)
class Dims:
    """Dimensions of a query resolved for one measure: (id, column) from rows and from the profile."""

    row: tuple[tuple[str, str], ...]
    profile: tuple[tuple[str, str], ...]
    segment: bool


@dataclass
class Batch:
    """Measures of one source that share rows (same grain, dimensions, dates, segment and unit).

    `add` registers a measure and returns its slot; `expr` is the one aggregate computing every
    slot; `frame` cuts a slot's columns out of the executed result.
    """

    source: str
    unit: str | None
    q: Query
    dims: Dims
    slots: list[tuple[Metric, Measure]] = field(default_factory=list)

    def add(self, metric: Metric, m: Measure) -> int:
        for i, (other, om) in enumerate(self.slots):
            if om == m and other.extras == metric.extras:
                return i
        self.slots.append((metric, m))
        return len(self.slots) - 1

    @property
    def keys(self) -> list[str]:
        return ([KEY_PERIOD] if self.q.grain != "all" else []) + list(self.q.by)

    def expr(self, ctx: Context, catalog: Catalog) -> ir.Table:
        """The Ibis aggregate with every slot's value, n, sums, extras and row count."""
        rows = self._rows(ctx, catalog)
        if all(m.filter for _, m in self.slots):
            # Rows no measure counts need not be grouped (a selective filter, such as one event
            # type, would otherwise group the whole table).
            rows = rows.filter(ibis.or_(*[rows[f"_f{i}"] for i in range(len(self.slots))]))
        keys = self.keys
        aggs: dict[str, ir.Value] = {}
        if self.unit is not None:
            rows = rows.filter(rows[self.unit].notnull())
            inner: dict[str, ir.Value] = {}
            for i, (metric, m) in enumerate(self.slots):
                f = rows[f"_f{i}"] if m.filter else None
                where = f"metric {metric.id} ({metric.origin})"
                inner[f"y{i}"] = compile_expr(m.expr, rows, where=where, aggregate=True, rows=f) if m.expr else ibis.literal(1)
                if f is not None:
                    # Units without a row passing the filter do not count for this measure.
                    inner[f"h{i}"] = rows.count(where=f) > 0
            units = rows.group_by([*keys, self.unit]).aggregate(**inner)
            for i, (_, m) in enumerate(self.slots):
                has = units[f"h{i}"] if m.filter else None
                aggs.update(_stats(i, m.agg, units, units[f"y{i}"], has))
            rows = units
        else:
            for i, (metric, m) in enumerate(self.slots):
                f = rows[f"_f{i}"] if m.filter else None
                where = f"metric {metric.id} ({metric.origin})"
                y = compile_expr(m.expr, rows, where=where) if m.expr else ibis.literal(1)
                aggs.update(_stats(i, m.agg, rows, y, f))
                for name, text in metric.extras:
                    aggs[f"e{i}_{name}"] = compile_expr(text, rows, where=where).cast("float64").mean(where=f)
        return rows.group_by(keys).aggregate(**aggs) if keys else rows.aggregate(**aggs)

    def _rows(self, ctx: Context, catalog: Catalog) -> ir.Table:
        """The source rows with each slot's filter as a column `_f{i}`, dimensions, dates and segment applied."""
        q, dims = self.q, self.dims
        source = SOURCES.get(self.source)
        if source is None:
            metric = self.slots[0][0]
            raise MetricError(f"metric {metric.id} ({metric.origin}): unknown source {self.source!r}; sources: {', '.join(SOURCES)}.")
        window = Window(parse_date(q.since, "--since"), parse_date(q.until, "--until"))
        span = None
        if q.window and window.since is not None and window.until is not None:
            span = (datetime.combine(window.since, datetime.min.time()),
                    datetime.combine(window.until + timedelta(days=1), datetime.min.time()))
        request = Request(q.grain, dims.row if source.derived_dims else (), span if source.periodic else None)
        rows = ctx.source(self.source, request)
        # Filters are compiled over the source's own columns, before any join adds others.
        filters = {f"_f{i}": compile_expr(m.filter, rows, where=f"metric {metric.id} ({metric.origin})")
                   for i, (metric, m) in enumerate(self.slots) if m.filter}
        if filters:
            rows = rows.mutate(**filters)
        if source.derived_dims:
            rows = rows.mutate(**{d: rows[d] for d, _ in dims.row})
        else:
            rows = rows.mutate(**{d: compile_expr(col, rows, where=f"dimension {d}") for d, col in dims.row})
        rows = window.apply(rows)
        where = catalog.profile_filter(ctx, q.where) if q.where else None
        if (dims.profile or where is not None or dims.segment) and "profile_id" not in rows.columns:
            metric = self.slots[0][0]
            raise MetricError(f"{metric.id} rows have no profile; it cannot be cut or filtered by profile.")
        if dims.profile:
            attrs = catalog.profile_attributes(ctx)
            attrs = attrs.select(_pid=attrs.profile_id, **{d: attrs[a] for d, a in dims.profile}).view()
            rows = rows.left_join(attrs, rows.profile_id == attrs._pid).drop("_pid")
        if where is not None:
            where = where.select(_wid=where.profile_id).view()
            rows = rows.semi_join(where, rows.profile_id == where._wid)
        if dims.segment:
            members = catalog.segment_members(ctx)
            members = members.select(_pid=members.profile_id, segment=members.segment).view()
            rows = rows.join(members, rows.profile_id == members._pid).drop("_pid")
        if q.grain != "all":
            rows = rows.mutate(**{KEY_PERIOD: truncate(rows.ts, q.grain)})
        return rows

    def frame(self, result: pd.DataFrame, i: int) -> pd.DataFrame:
        """Slot i's rows of the executed aggregate: keys, value, n, sum, sum_sq and extras."""
        metric, m = self.slots[i]
        keys = self.keys
        cols = {f"v{i}": "value", f"n{i}": "n"}
        if m.agg != "count":
            cols.update({f"s{i}": "sum", f"q{i}": "sum_sq"})
        if self.unit is None:
            cols.update({f"e{i}_{name}": name for name, _ in metric.extras})
        df = result
        if keys:
            # A group exists for a measure only where some of its rows (or units) do.
            df = df[df[f"r{i}"] > 0]
        return df[[*keys, *cols]].rename(columns=cols).reset_index(drop=True)


def _stats(i: int, agg: str, rows: ir.Table, y: ir.Value, where: ir.BooleanValue | None) -> dict[str, ir.Value]:
    """Slot i's aggregates over `rows` where `where` holds (all rows when None)."""
    count = rows.count(where=where)
    out: dict[str, ir.Value] = {f"r{i}": count}
    if agg == "count":
        return {**out, f"v{i}": count.cast("float64"), f"n{i}": count}
    y = y.cast("float64")
    stats = {f"s{i}": y.sum(where=where), f"q{i}": (y * y).sum(where=where)}
    if agg == "sum":
        return {**out, f"v{i}": y.sum(where=where), f"n{i}": count, **stats}
    return {**out, f"v{i}": y.mean(where=where), f"n{i}": y.count(where=where), **stats}


def tidy(df: pd.DataFrame, metric: Metric, q: Query) -> pd.DataFrame:
    """Value scaled, periods as dates, rows sorted by period and dimensions."""
    if metric.scale != 1.0:
        df["value"] = df["value"] * metric.scale
    if KEY_PERIOD in df.columns:
        df[KEY_PERIOD] = pd.to_datetime(df[KEY_PERIOD]).dt.date
    keys = [k for k in ([KEY_PERIOD] if q.grain != "all" else []) + list(q.by)]
    if keys:
        df = df.sort_values(keys, kind="stable", na_position="last").reset_index(drop=True)
    return df
