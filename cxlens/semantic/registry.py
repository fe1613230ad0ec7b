"""The catalogue a workspace sees: built-in metrics and dimensions plus the user's definitions file.

Users add metrics, dimensions and segments in a YAML file next to the workspace
(`cxlens.metrics.yml` beside `cxlens.duckdb`); built-ins and user entries are the same objects
and go through the same compiler, so a user's metric behaves like a built-in one.
"""

from __future__ import annotations

import os

from dataclasses import dataclass, field, replace
from pathlib import Path

import ibis
import ibis.expr.types as ir
import pandas as pd

from cxlens.errors import MetricError
from cxlens.semantic.catalogue import CATALOGUE
from cxlens.semantic.dimensions import BUILT_IN_DIMENSIONS, profile_attributes
from cxlens.semantic.expressions import compile_expr
from cxlens.semantic.model import Dimension, EngagementSettings, Metric, Segment
from cxlens.semantic.sources import SOURCES, Context, engagement_formula

DEFINITIONS_SUFFIX = ".metrics.yml"


def definitions_path(workspace_path: Path | None) -> Path | None:
    """`cxlens.metrics.yml` next to `cxlens.duckdb` (None for a workspace without a file)."""
    if workspace_path is None:
        return None
    return workspace_path.with_name(workspace_path.stem + DEFINITIONS_SUFFIX)


def definitions_version(path: Path | None) -> tuple[int, int] | None:
    """(mtime in ns, size) of a definitions file, None when there is none: a loaded catalogue can
    be kept until this changes (loading checks every definition, 0.3 s with the demo's segments)."""
    if path is None:
        return None
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_mtime_ns, stat.st_size


class KeptCatalogs:
    """Catalogues kept by definitions file until the file changes (its mtime or size): loading one
    checks every definition (0.3 s with the demo's segments). Callers only read what they get."""

    def __init__(self) -> None:
        self._kept: dict[Path | None, tuple[tuple[int, int] | None, Catalog]] = {}

    def get(self, path: Path | None) -> Catalog:
        version = definitions_version(path)
        kept = self._kept.get(path)
        if kept is None or kept[0] != version:
            kept = self._kept[path] = (version, Catalog.load(path))
        return kept[1]


@dataclass
class Catalog:
    """Metrics, dimensions and segments by id."""

    metrics: dict[str, Metric] = field(default_factory=dict)
    dimensions: dict[str, Dimension] = field(default_factory=dict)
    segments: dict[str, Segment] = field(default_factory=dict)
    engagement: EngagementSettings = field(default_factory=EngagementSettings)
    lifespan_days: int = 365
    path: Path | None = None

    @classmethod
    def built_in(cls) -> "Catalog":
        return cls(metrics={m.id: m for m in CATALOGUE}, dimensions={d.id: d for d in BUILT_IN_DIMENSIONS})

    @classmethod
    def load(cls, path: Path | None) -> "Catalog":
        """Built-ins plus the definitions file at `path` when it exists (validated as a whole first)."""
        catalog = cls.built_in()
        if path is not None and path.exists():
            from cxlens.semantic.definitions import load_definitions

            load_definitions(path, catalog)
            catalog.path = path
        return catalog

    def metric(self, metric_id: str) -> Metric:
        if metric_id not in self.metrics:
            close = [m for m in self.metrics if metric_id.lower() in m or m in metric_id.lower()]
            hint = f" Did you mean {', '.join(close[:3])}?" if close else ""
            raise MetricError(f"There is no metric {metric_id!r}.{hint} `cxlens metrics list` shows them all.")
        return self.metrics[metric_id]

    def dimensions_for(self, metric: Metric) -> list[str]:
        """The dimensions a metric can be cut by: those every measure's source offers (or declared ones)."""
        measures = [m for m in (metric.measure, metric.numerator, metric.denominator) if m is not None]
        offered: list[str] = []
        for d in self.dimensions.values():
            ok = True
            for m in measures:
                src = SOURCES.get(m.source)
                person = src.person if src else False
                if m.column_for(d.id):
                    continue
                if d.id == "segment":
                    ok = ok and person and bool(self.segments)
                elif d.profile is not None:
                    ok = ok and person
                else:
                    ok = ok and d.column_for(m.source) is not None
            if ok:
                offered.append(d.id)
        if metric.dimensions is not None:
            offered = [d for d in offered if d in metric.dimensions or self.dimensions[d].origin != "built-in"]
        return offered

    def with_metric(self, metric: Metric) -> None:
        self.metrics[metric.id] = metric

    def profile_attributes(self, ctx: Context) -> ir.Table:
        return profile_attributes(ctx)

    def profile_filter(self, ctx: Context, where: str) -> ir.Table:
        """Profiles in a named segment, or matching an expression over profile features.

        Kept in the context per condition (materialized when it materializes): every batch of a
        `measure_many` semi-joins the same members, and the features join behind them (orders,
        contacts, cases, surveys, customer value per profile) was otherwise run once per batch.
        """
        features = self.profile_features(ctx)
        text = self.segment_condition(where) if where in self.segments else where
        label = f"segment {where}" if where in self.segments else "--where"
        try:
            cond = compile_expr(text, features, where=label)
        except MetricError as exc:
            names = ", ".join(self.segments) or "none declared"
            raise MetricError(f"{exc} (--where takes a segment name — {names} — or a condition over profile features.)") from None
        return ctx.remember(f"profile_filter:{text}", lambda: features.filter(cond).select("profile_id"))

    def profile_features(self, ctx: Context) -> ir.Table:
        """profile_id plus the segment features (cxlens.semantic.segments), built once per context."""
        from cxlens.semantic.segments import profile_features

        return ctx.remember("profile_features", lambda: profile_features(ctx, self))

    def segment_condition(self, segment_id: str) -> str:
        """The segment's own condition and, for a micro segment, its parents' (all must hold)."""
        parts, seen, s = [], set(), self.segments[segment_id]
        while True:
            parts.append(f"({s.where})")
            seen.add(s.id)
            if s.within is None or s.within in seen or s.within not in self.segments:
                break
            s = self.segments[s.within]
        return " and ".join(reversed(parts))

    def segment_value(self, ctx: Context) -> pd.DataFrame:
        """Per declared segment: members, historical and recent revenue, predicted 52-week value
        (from `customer_value`, when `cxlens hvc` has run) and its growth potential: predicted value
        minus the last 90 days' revenue at a yearly rate."""
        members = self.segment_members(ctx)
        features = self.profile_features(ctx).view()
        j = members.join(features, members.profile_id == features.profile_id)
        agg = j.group_by(j.segment).aggregate(
            customers=j.count(), revenue=j.revenue.sum(), revenue_90d=j.revenue_90d.sum(),
            predicted_clv=j.predicted_clv.sum(), predicted_customers=j.predicted_clv.count(),
            mean_predicted_clv=j.predicted_clv.mean(), unresolved_cases_90d=j.unresolved_cases_90d.sum(),
        ).to_pandas()
        agg["growth_potential"] = agg["predicted_clv"] - agg["revenue_90d"] * 365.0 / 90.0
        agg.loc[agg["predicted_customers"] == 0, ["predicted_clv", "mean_predicted_clv", "growth_potential"]] = float("nan")
        order = {sid: i for i, sid in enumerate(self.segments)}
        agg = agg.assign(_o=agg["segment"].map(order)).sort_values("_o").drop(columns="_o")
        agg.insert(1, "within", agg["segment"].map(lambda sid: self.segments[sid].within))
        return agg.reset_index(drop=True)

    def segment_members(self, ctx: Context) -> ir.Table:
        """(profile_id, segment) for every declared segment; a profile may be in several."""
        if not self.segments:
            raise MetricError("No segments are declared; add a `segments:` list to the definitions file "
                              f"({self.path or 'cxlens.metrics.yml next to the workspace'}).")
        return ctx.remember("segment_members", lambda: self._members(ctx))

    def _members(self, ctx: Context) -> ir.Table:
        features = self.profile_features(ctx)
        parts = [features.filter(compile_expr(self.segment_condition(s.id), features, where=f"segment {s.id} ({s.origin})"))
                 .select(profile_id=features.profile_id, segment=ibis.literal(s.id)) for s in self.segments.values()]
        return ibis.union(*parts) if len(parts) > 1 else parts[0]

    def context(self, source: object, *, materialize: bool = False) -> Context:
        """A context over a workspace (whose kept derived tables it then uses) or a table function."""
        table = getattr(source, "table", source)
        workspace = source if table is not source else None
        return Context(table, self.engagement, self.lifespan_days, materialize=materialize,  # type: ignore[arg-type]
                       workspace=workspace)

    def set_engagement(self, settings: EngagementSettings) -> None:
        """Use other weights or caps for engagement_score (its formula is rebuilt from them)."""
        self.engagement = settings
        m = self.metrics.get("engagement_score")
        if m is not None and m.origin == "built-in" and m.measure is not None:
            self.metrics[m.id] = replace(m, measure=replace(m.measure, expr=engagement_formula(settings)))
