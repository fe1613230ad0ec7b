"""Compile a metric query into one Ibis expression and run it in the engine.

The engine returns one row per period and dimension value with the value, its `n` and the
sufficient statistics (sum, sum of squares) a baseline comparison needs; Python only formats
those aggregates.
"""

from __future__ import annotations

from dataclasses import dataclass
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


def compile_query(ctx: Context, catalog: Catalog, q: Query) -> ir.Table:
    """The Ibis expression answering a query (not yet executed)."""
    metric = check_query(catalog, q)
    window = Window(parse_date(q.since, "--since"), parse_date(q.until, "--until"))
    keys = ([KEY_PERIOD] if q.grain != "all" else []) + list(q.by)
    where = catalog.profile_filter(ctx, q.where) if q.where else None
    span = None
    if q.window and window.since is not None and window.until is not None:
        span = (datetime.combine(window.since, datetime.min.time()), datetime.combine(window.until + timedelta(days=1), datetime.min.time()))
    build = lambda m: _aggregate(ctx, catalog, metric, m, q.grain, q.by, window, where, span)  # noqa: E731
    if metric.measure is not None:
        t = build(metric.measure)
        if metric.share_over:
            others = [k for k in keys if k not in metric.share_over]
            total = t.value.sum().over(group_by=others) if others else t.value.sum().over()
            t = t.mutate(numerator=t.value, denominator=total)
            t = t.mutate(value=t.numerator / t.denominator, n=t.denominator.cast("int64"), sum=t.numerator, sum_sq=t.numerator)
        return t
    assert metric.numerator is not None and metric.denominator is not None
    num, den = build(metric.numerator), build(metric.denominator)
    num = num.select(*keys, numerator=num.value, num_rows=num.n)
    den = den.select(*[den[k].name(f"d_{k}") for k in keys], denominator=den.value)
    if keys:
        j = num.outer_join(den, [num[k].identical_to(den[f"d_{k}"]) for k in keys])
        j = j.select(*[ibis.coalesce(j[k], j[f"d_{k}"]).name(k) for k in keys], "numerator", "num_rows", "denominator")
    else:
        j = num.cross_join(den)
    numer = j.numerator.fill_null(0)
    ok = j.denominator.notnull() & (j.denominator != 0)
    value = ibis.ifelse(ok, numer / j.denominator, ibis.null("float64"))
    if metric.n_from == "numerator":
        # Units are the numerator's rows (new customers for clv_to_cac): no units, no row; the
        # parts are reported per unit (historical CLV over CAC).
        j = j.filter(j.num_rows.fill_null(0) > 0)
        per = j.num_rows.cast("float64")
        return j.mutate(value=value, n=ibis.ifelse(ok, j.num_rows, 0).cast("int64"), numerator=j.numerator / per,
                        denominator=j.denominator.fill_null(0) / per).drop("num_rows")
    n = ibis.ifelse(ok, j.denominator, 0)
    return j.mutate(value=value, n=n.cast("int64"), numerator=numer, denominator=j.denominator.fill_null(0)).drop("num_rows")


def _aggregate(ctx: Context, catalog: Catalog, metric: Metric, m: Measure, grain: str, by: tuple[str, ...],
               window: Window, where: ir.Table | None, span: tuple[datetime, datetime] | None = None) -> ir.Table:
    where_text = f"metric {metric.id} ({metric.origin})"
    source = SOURCES.get(m.source)
    if source is None:
        raise MetricError(f"{where_text}: unknown source {m.source!r}; sources: {', '.join(SOURCES)}.")
    row_dims, profile_dims, segment = [], [], False
    for d in by:
        col = m.column_for(d)
        dim = catalog.dimensions[d]
        if col is not None and col.startswith("profile:"):
            profile_dims.append((d, col.removeprefix("profile:")))
        elif col is not None:
            row_dims.append((d, col))
        elif d == "segment":
            segment = True
        elif dim.profile is not None:
            profile_dims.append((d, dim.profile))
        else:
            row_dims.append((d, dim.column_for(m.source) or ""))
    request = Request(grain, tuple(row_dims) if source.derived_dims else (), span if source.periodic else None)
    rows = ctx.source(m.source, request)
    if m.filter:
        rows = rows.filter(compile_expr(m.filter, rows, where=where_text))
    if source.derived_dims:
        rows = rows.mutate(**{d: rows[d] for d, _ in row_dims})
    else:
        rows = rows.mutate(**{d: compile_expr(col, rows, where=f"dimension {d}") for d, col in row_dims})
    rows = window.apply(rows)
    if profile_dims or where is not None or segment:
        if "profile_id" not in rows.columns:
            raise MetricError(f"{metric.id} rows have no profile; it cannot be cut or filtered by profile.")
    if profile_dims:
        attrs = catalog.profile_attributes(ctx)
        attrs = attrs.select(_pid=attrs.profile_id, **{d: attrs[a] for d, a in profile_dims}).view()
        rows = rows.left_join(attrs, rows.profile_id == attrs._pid).drop("_pid")
    if where is not None:
        where = where.select(_wid=where.profile_id).view()
        rows = rows.semi_join(where, rows.profile_id == where._wid)
    if segment:
        members = catalog.segment_members(ctx)
        members = members.select(_pid=members.profile_id, segment=members.segment).view()
        rows = rows.join(members, rows.profile_id == members._pid).drop("_pid")
    keys = list(by)
    if grain != "all":
        rows = rows.mutate(**{KEY_PERIOD: truncate(rows.ts, grain)})
        keys = [KEY_PERIOD, *keys]
    if m.unit is not None:
        rows = rows.filter(rows[m.unit].notnull())
        y = compile_expr(m.expr, rows, where=where_text, aggregate=True) if m.expr else ibis.literal(1)
        rows = rows.group_by([*keys, m.unit]).aggregate(y=y)
        extras: dict[str, ir.Value] = {}
    else:
        y = compile_expr(m.expr, rows, where=where_text) if m.expr else ibis.literal(1)
        extras = {name: compile_expr(expr, rows, where=where_text) for name, expr in metric.extras}
        rows = rows.mutate(y=y, **extras)
    y = rows.y.cast("float64") if m.agg != "count" else rows.y
    aggs: dict[str, ir.Value]
    if m.agg == "count":
        aggs = {"value": rows.count().cast("float64"), "n": rows.count()}
    elif m.agg == "sum":
        aggs = {"value": y.sum(), "n": rows.count(), "sum": y.sum(), "sum_sq": (y * y).sum()}
    else:
        aggs = {"value": y.mean(), "n": y.count(), "sum": y.sum(), "sum_sq": (y * y).sum()}
    aggs.update({name: rows[name].cast("float64").mean() for name in extras})
    return rows.group_by(keys).aggregate(**aggs) if keys else rows.aggregate(**aggs)


def execute(expr: ir.Table, metric: Metric, q: Query) -> pd.DataFrame:
    """Run in the engine and tidy: value scaled, periods as dates, sorted by period and dimensions."""
    df = expr.to_pyarrow().to_pandas()
    if metric.scale != 1.0:
        df["value"] = df["value"] * metric.scale
    if KEY_PERIOD in df.columns:
        df[KEY_PERIOD] = pd.to_datetime(df[KEY_PERIOD]).dt.date
    keys = [k for k in ([KEY_PERIOD] if q.grain != "all" else []) + list(q.by)]
    if keys:
        df = df.sort_values(keys, kind="stable", na_position="last").reset_index(drop=True)
    return df
