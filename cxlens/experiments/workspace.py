"""Analyze an experiment recorded in the workspace: assignments, catalogue metrics, segments.

``analyze_experiment(ws, "perso-2025", ["orders", "revenue", "aov"], by="country")`` measures
each metric per unit over its exposure window (from first assignment, ``window_days`` long or
open-ended), with the same metric over the ``pre_days`` before exposure as the CUPED covariate,
reduces units to sufficient statistics per variant (and segment) in the engine, and hands those
to :mod:`cxlens.experiments.analysis`. A holdout (a long-running "no personalization" group) is
analyzed the same way, with the holdout as the control.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ibis
import ibis.expr.types as ir
import pandas as pd

from cxlens.errors import MetricError, UsageError
from cxlens.experiments.analysis import (
    DEFAULT_SETTINGS,
    VARIABLES,
    Analysis,
    MetricSpec,
    Settings,
    analyze_cells,
)
from cxlens.experiments.metrics import Part, experiment_metric, unit_pieces
from cxlens.experiments.units import Units, experiment_units, guess_control
from cxlens.semantic.api import catalog_for
from cxlens.semantic.registry import Catalog
from cxlens.stats.sums import column_names

NO_VALUE = "(none)"
"""The segment value of units whose profile lacks the attribute they are split by."""

DEFAULT_METRICS = ("orders", "revenue", "active_customers", "aov")
"""Orders and revenue per unit, the share of units who bought, and revenue per order."""


def analyze_experiment(
    ws: Any,
    experiment_id: str,
    metrics: Sequence[str] = (),
    *,
    by: str | None = None,
    control: str | None = None,
    window_days: float | None = None,
    pre_days: float = 30,
    settings: Settings = DEFAULT_SETTINGS,
    catalog: Catalog | None = None,
) -> Analysis:
    """Every metric × non-control variant (× value of ``by``) of one experiment."""
    if window_days is not None and window_days <= 0:
        raise UsageError(f"--window must be a number of days > 0, got {window_days}.")
    if pre_days < 0:
        raise UsageError(f"--pre-days must be >= 0 (0 turns CUPED off), got {pre_days}.")
    catalog = catalog or catalog_for(ws)
    chosen = list(dict.fromkeys(metrics or DEFAULT_METRICS))
    specs: list[MetricSpec] = []
    parts = []
    for metric_id in chosen:
        spec, metric_parts = experiment_metric(catalog.metric(metric_id))
        specs.append(MetricSpec(**{**spec.__dict__, "cuped": pre_days > 0}))
        parts.extend(metric_parts)
    units = experiment_units(ws, experiment_id)
    control = control or guess_control(list(units.counts))
    if control is None or control not in units.counts:
        units.release()
        raise UsageError(
            f"Name the control variant with --control; experiment {experiment_id!r} has variants "
            f"{', '.join(map(repr, units.counts))}" + (f" and no {control!r}." if control else ".")
        )
    ctx = catalog.context(ws, materialize=False)
    unit_table = units.table
    try:
        row_dim, profile_dim = _classify(catalog, by)
        if profile_dim is not None:
            unit_table = _with_profile_dimension(ctx, catalog, unit_table, by)  # type: ignore[arg-type]
        cells = _cells(ctx, catalog, unit_table, parts, specs, by, row_dim, window_days, pre_days, units)
    finally:
        ctx.release()
        units.release()
    counts = units.counts
    analysis = analyze_cells(cells, specs, control=control, units=counts, settings=settings, by=by)
    if units.crossovers:
        analysis.warnings.append(
            f"{units.crossovers:,} unit(s) were assigned to more than one variant and are left out of the analysis."
        )
    analysis.extra.update({
        "experiment_id": experiment_id,
        "window_days": window_days,
        "pre_days": pre_days,
        "crossovers": units.crossovers,
        "metrics": [{"id": s.id, "label": s.label, "kind": s.kind, "higher_is_better": s.higher_is_better} for s in specs],
    })
    return analysis


def _classify(catalog: Catalog, by: str | None) -> tuple[str | None, str | None]:
    if by is None:
        return None, None
    if by == "segment":
        return None, by
    dim = catalog.dimensions.get(by)
    if dim is None:
        raise MetricError(f"Unknown dimension {by!r}; dimensions: {', '.join(catalog.dimensions)}.")
    return (None, by) if dim.profile is not None else (by, None)


def _with_profile_dimension(ctx: Any, catalog: Catalog, units: ir.Table, by: str) -> ir.Table:
    """Units with the profile attribute (or segment) they are split by; a unit may be in several segments."""
    if by == "segment":
        members = catalog.segment_members(ctx)
        members = members.select(_pid=members.profile_id, dim=members.segment.cast("string")).view()
        return units.join(members, units.unit == members._pid).drop("_pid")
    attrs = catalog.profile_attributes(ctx)
    attrs = attrs.select(_pid=attrs.profile_id, dim=attrs[catalog.dimensions[by].profile].cast("string")).view()  # type: ignore[index]
    joined = units.left_join(attrs, units.unit == attrs._pid).drop("_pid")
    # Units without the attribute (no loyalty tier, no country) are a group of their own.
    return joined.mutate(dim=joined.dim.fill_null(NO_VALUE))


def _cells(ctx: Any, catalog: Catalog, units: ir.Table, parts: Sequence[Part], specs: Sequence[MetricSpec], by: str | None,
           row_dim: str | None, window_days: float | None, pre_days: float, known: Units) -> pd.DataFrame:
    """Sufficient statistics per metric × variant (× dimension value), in one engine query.

    Each metric is reduced from the per-unit piece(s) holding its columns; a unit absent from a
    piece has no rows there and contributes zeros, so only the unit counts come from ``units``.
    """
    carry = ["variant"] + (["dim"] if by and not row_dim else [])
    keys = ["variant"] + (["dim"] if by else [])
    pieces = unit_pieces(ctx, catalog, units, parts, window_days=window_days, pre_days=pre_days, row_dim=row_dim,
                         carry=carry, span=known.span)
    home = {c: i for i, piece in enumerate(pieces) for c in piece.columns if "__" in c}
    join_keys = ["unit", *carry] + (["dim"] if row_dim else [])
    every = column_names(("y", "d", "x", "e"))[1:]
    reduced = []
    for spec in specs:
        names = VARIABLES[(spec.kind, spec.cuped)]
        wanted = {name: f"{spec.id}__{name}" for name in names}
        t = _together([pieces[i] for i in sorted({home[c] for c in wanted.values()})], join_keys)
        col = {name: t[c].fill_null(0.0) for name, c in wanted.items()}
        sums: dict[str, ir.Value] = {}
        for c in column_names(names)[1:]:
            factors = c.removeprefix("sum_").split("_")
            product = col[factors[0]]
            for f in factors[1:]:
                product = product * col[f]
            sums[c] = product.sum().cast("float64")
        g = t.group_by(keys).aggregate(**sums)
        # One schema for every metric, so all of them come back in one query (the engine runs
        # them side by side and reads each piece once): absent variables are 0.
        reduced.append(g.select(*keys, metric=ibis.literal(spec.id),
                                **{c: g[c] if c in sums else ibis.literal(0.0) for c in every}))
    stacked = ibis.union(*reduced) if len(reduced) > 1 else reduced[0]
    sums_frame = stacked.to_pyarrow().to_pandas()
    # n is the number of units in a cell, with or without rows.
    n_keys = ["variant"] + (["dim"] if by and not row_dim else [])
    if by and not row_dim:
        n = units.group_by(n_keys).aggregate(n=ibis._.count()).to_pyarrow().to_pandas()
    else:
        n = pd.DataFrame({"variant": list(known.counts), "n": list(known.counts.values())})
    frames = []
    for spec in specs:
        mine = sums_frame[sums_frame["metric"] == spec.id].drop(columns="metric")
        if row_dim:
            # Every variant gets every value this metric has rows in, with zero sums where it has none.
            grid = n.merge(mine[["dim"]].drop_duplicates(), how="cross")
            frame = grid.merge(mine, on=keys, how="left")
        else:
            frame = n.merge(mine, on=n_keys, how="left")
        frame = frame.fillna({c: 0.0 for c in every})
        frame.insert(0, "metric", spec.id)
        frames.append(frame)
    cells = pd.concat(frames, ignore_index=True)
    return cells.rename(columns={"dim": by}) if by else cells


def _together(pieces: list[ir.Table], keys: list[str]) -> ir.Table:
    """One table from per-unit pieces: the piece itself, or their outer join on the unit keys."""
    t = pieces[0]
    for other in pieces[1:]:
        other = other.view()
        j = t.outer_join(other, [t[k] == other[k] for k in keys])
        values = [c for c in j.columns if "__" in c]
        t = j.select(*[ibis.coalesce(j[k], j[f"{k}_right"]).name(k) for k in keys], *values)
    return t
