"""Answer many metric queries with few engine queries: batch their measures, then combine.

Every measure of every query is placed in a `Batch` (cxlens.semantic.compile) keyed by what its
rows depend on, so measures sharing a source, grain, dimensions, dates, segment and unit are
computed by one group-by. Ratios (numerator over denominator, joined on the period and
dimension values) and shares (a value over its period's total) are then formed from those
aggregated rows, a handful per period, in pandas — never from source rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import ibis.expr.types as ir
import numpy as np
import pandas as pd

from cxlens.semantic.compile import KEY_PERIOD, Batch, check_query, resolve_dims, tidy
from cxlens.semantic.model import Measure, Metric, Query
from cxlens.semantic.registry import Catalog
from cxlens.semantic.sources import Context

if TYPE_CHECKING:
    from cxlens.semantic.templates import Templates

Parts = dict[str, tuple[Batch, int]]
"""A query's measures by role (measure, numerator, denominator): the batch and slot computing each."""


def plan(ctx: Context, catalog: Catalog, queries: Sequence[Query]) -> tuple[list[Batch], list[tuple[Metric, Parts]]]:
    """Check every query, then place each measure in the batch its rows belong to."""
    batches: dict[tuple, Batch] = {}
    placed: list[tuple[Metric, Parts]] = []
    for q in queries:
        metric = check_query(catalog, q)
        parts: Parts = {}
        roles: list[tuple[str, Measure | None]] = [("measure", metric.measure), ("numerator", metric.numerator),
                                                   ("denominator", metric.denominator)]
        for role, m in roles:
            if m is None:
                continue
            dims = resolve_dims(catalog, m, q.by)
            key = (m.source, m.unit, q.grain, q.by, dims, q.since, q.until, q.where, q.window)
            batch = batches.setdefault(key, Batch(m.source, m.unit, q, dims))
            parts[role] = (batch, batch.add(metric, m))
        placed.append((metric, parts))
    return list(batches.values()), placed


def compile_query(ctx: Context, catalog: Catalog, q: Query) -> list[ir.Table]:
    """The Ibis expressions a query runs (not executed): compiling them reports definition errors."""
    batches, _ = plan(ctx, catalog, [q])
    return [b.expr(ctx, catalog) for b in batches]


def answer(ctx: Context, catalog: Catalog, queries: Sequence[Query],
           templates: Templates | None = None) -> list[pd.DataFrame]:
    """One frame per query (in order): keys, value, n and the statistics behind the value.

    With `templates`, batches compiled for other dates of the same data are reused (see
    cxlens.semantic.templates); the frames are the same.
    """
    batches, placed = plan(ctx, catalog, queries)
    results = {id(b): _result(ctx, catalog, b, templates) for b in batches}
    out = []
    for (metric, parts), q in zip(placed, queries):
        frames = {role: b.frame(results[id(b)], i) for role, (b, i) in parts.items()}
        out.append(tidy(combine(metric, q, frames), metric, q))
    return out


def _result(ctx: Context, catalog: Catalog, b: Batch, templates: Templates | None) -> pd.DataFrame:
    kept = templates.run(ctx, catalog, b) if templates is not None else None
    return kept if kept is not None else _run(b.expr(ctx, catalog))


def _run(expr: ir.Table) -> pd.DataFrame:
    return expr.to_pyarrow().to_pandas()


def combine(metric: Metric, q: Query, frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """A metric's rows from its measures' rows: the measure itself, a share of the period's total, or a ratio."""
    keys = ([KEY_PERIOD] if q.grain != "all" else []) + list(q.by)
    if "measure" in frames:
        t = frames["measure"]
        if not metric.share_over:
            return t
        others = [k for k in keys if k not in metric.share_over]
        total = t.groupby(others, dropna=False)["value"].transform("sum") if others else t["value"].sum()
        t = t.assign(numerator=t["value"], denominator=total)
        return t.assign(value=t["numerator"] / t["denominator"], n=_int(t["denominator"]), sum=t["numerator"],
                        sum_sq=t["numerator"])
    num = frames["numerator"][[*keys, "value", "n"]].rename(columns={"value": "numerator", "n": "num_rows"})
    den = frames["denominator"][[*keys, "value"]].rename(columns={"value": "denominator"})
    if keys:
        j = num.merge(den, on=keys, how="outer")
    else:
        j = pd.concat([num.reset_index(drop=True), den.reset_index(drop=True)], axis=1)
    numer = j["numerator"].fillna(0.0)
    ok = j["denominator"].notna() & (j["denominator"] != 0)
    value = (numer / j["denominator"]).where(ok)
    if metric.n_from == "numerator":
        # Units are the numerator's rows (new customers for clv_to_cac): no units, no row; the
        # parts are reported per unit (historical CLV over CAC).
        keep = j["num_rows"].fillna(0) > 0
        j, value, ok = j[keep], value[keep], ok[keep]
        per = j["num_rows"].astype("float64")
        out = j[keys].assign(numerator=j["numerator"] / per, denominator=j["denominator"].fillna(0.0) / per,
                             value=value, n=_int(j["num_rows"].where(ok, 0)))
    else:
        out = j[keys].assign(numerator=numer, denominator=j["denominator"].fillna(0.0), value=value,
                             n=_int(j["denominator"].where(ok, 0)))
    return out.reset_index(drop=True)


def _int(s: pd.Series | float) -> pd.Series:
    return pd.Series(np.rint(np.asarray(s, dtype="float64")).astype("int64"), index=getattr(s, "index", None))
