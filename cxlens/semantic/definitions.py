"""The user's definitions file: their own metrics, dimensions, segments and engagement weights.

    metrics:
      - id: big_order_share
        label: Share of orders over 100
        description: Valid orders with revenue above 100.
        unit: share            # currency count share points seconds days score ratio mean
        direction: up          # up (higher is better), down, none
        timing: lagging        # leading or lagging
        source: orders         # a semantic source (`cxlens metrics sources`)
        agg: mean              # count, sum or mean
        expr: "CASE WHEN revenue > 100 THEN 1 ELSE 0 END"
        test: proportion       # mean, proportion, nps, total, none (for `metrics compare`)
      - id: answers_per_order
        numerator: {source: surveys, agg: count}
        denominator: {source: orders, agg: count}
        ...
    dimensions:
      - id: basket_size
        label: Basket size
        columns: {orders: "CASE WHEN items_count >= 3 THEN 'large' ELSE 'small' END"}
    segments:
      - id: unhappy_repeaters
        label: Two or more unresolved cases in 90 days
        where: "unresolved_cases_90d >= 2"
    engagement: {recency: 0.4, frequency: 0.2, depth: 0.2, messages: 0.2, half_life_days: 14}
    settings: {lifespan_days: 365}

Every problem is collected with its file:line, then raised together, before anything runs; each
expression is compiled against an empty workspace so an unknown column is caught here too.
"""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from cxlens.errors import DefinitionError, MetricError
from cxlens.semantic.model import AGGS, GRAINS, UNITS, Dimension, EngagementSettings, Measure, Metric, Segment
from cxlens.semantic.sources import SOURCES
from cxlens.yamlfile import Problems, compose, scalar

if TYPE_CHECKING:
    from cxlens.semantic.registry import Catalog

ID_PATTERN = r"^[a-z][a-z0-9_]*$"
METRIC_KEYS = {"id", "label", "description", "unit", "direction", "timing", "source", "agg", "expr", "filter", "per",
               "numerator", "denominator", "scale", "test", "default_grain", "dimensions", "category"}
MEASURE_KEYS = {"source", "agg", "expr", "filter", "per"}
DIMENSION_KEYS = {"id", "label", "description", "columns", "source", "expr"}
SEGMENT_KEYS = {"id", "label", "where", "within"}
TOP_KEYS = {"metrics", "dimensions", "segments", "engagement", "settings"}
CHOICES = {"direction": ("up", "down", "none"), "timing": ("leading", "lagging"), "unit": UNITS,
           "test": ("mean", "proportion", "nps", "total", "none"), "default_grain": GRAINS}


def load_definitions(path: Path, catalog: "Catalog") -> None:
    """Add the file's entries to `catalog`, or raise one DefinitionError listing every problem."""
    root = compose(path, DefinitionError, "definitions")
    problems = Problems(path, DefinitionError, "definitions")
    if root is None:
        return
    if not isinstance(root, yaml.MappingNode):
        problems.add(root, f"must be a mapping with any of: {', '.join(sorted(TOP_KEYS))}")
        problems.raise_if_any()
    nodes = {}
    for k, v in root.value:
        if k.value not in TOP_KEYS:
            problems.add(k, f"unknown key `{k.value}` (valid: {', '.join(sorted(TOP_KEYS))})")
        nodes[k.value] = v
    metrics = [_metric(n, path, problems, catalog) for n in _items(nodes.get("metrics"), "metrics", problems)]
    dims = [_dimension(n, path, problems, catalog) for n in _items(nodes.get("dimensions"), "dimensions", problems)]
    segs = [_segment(n, path, problems, catalog) for n in _items(nodes.get("segments"), "segments", problems)]
    _engagement(nodes.get("engagement"), problems, catalog)
    _settings(nodes.get("settings"), problems, catalog)
    problems.raise_if_any()
    for d in dims:
        if d is not None:
            catalog.dimensions[d.id] = d
    for s in segs:
        if s is not None:
            catalog.segments[s.id] = s
    for s in segs:
        if s is not None and s.within is not None:
            _check_within(s, catalog, problems)
    for m in metrics:
        if m is not None:
            catalog.metrics[m.id] = m
    _check_compiles(catalog, [m for m in metrics if m], [d for d in dims if d], [s for s in segs if s], problems)
    problems.raise_if_any()


def _items(node: yaml.Node | None, key: str, problems: Problems) -> list[yaml.MappingNode]:
    if node is None:
        return []
    if not isinstance(node, yaml.SequenceNode):
        problems.add(node, f"`{key}` must be a list of entries, each starting with `- id: ...`")
        return []
    out = []
    for item in node.value:
        if isinstance(item, yaml.MappingNode):
            out.append(item)
        else:
            problems.add(item, f"each entry of `{key}` must be a mapping with an `id`")
    return out


def _fields(node: yaml.MappingNode, allowed: set[str], what: str, problems: Problems) -> dict[str, yaml.Node]:
    out = {}
    for k, v in node.value:
        if k.value not in allowed:
            problems.add(k, f"unknown key `{k.value}` in a {what} (valid: {', '.join(sorted(allowed))})")
        out[k.value] = v
    return out


def _id(f: dict[str, yaml.Node], node: yaml.Node, what: str, existing: dict[str, Any], problems: Problems) -> str | None:
    import re

    value = scalar(f.get("id"))
    if not isinstance(value, str) or not re.match(ID_PATTERN, value):
        problems.add(f.get("id", node), f"a {what} needs an `id` in snake_case (got {value!r})")
        return None
    if value in existing:
        problems.add(f["id"], f"{what} `{value}` already exists ({getattr(existing[value], 'origin', 'built-in')}); pick another id")
        return None
    return value


def _text(f: dict[str, yaml.Node], key: str, problems: Problems, *, required: bool = False) -> str | None:
    value = scalar(f.get(key))
    if value is None:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        problems.add(f[key], f"`{key}` must be text")
        return None
    return value


def _measure(node: yaml.Node, where: str, problems: Problems) -> Measure | None:
    if not isinstance(node, yaml.MappingNode):
        problems.add(node, f"`{where}` must be a mapping with source, agg and optionally expr, filter, per")
        return None
    f = _fields(node, MEASURE_KEYS, "measure", problems)
    return _measure_fields(f, node, problems)


def _measure_fields(f: dict[str, yaml.Node], node: yaml.Node, problems: Problems) -> Measure | None:
    source, agg = scalar(f.get("source")), scalar(f.get("agg"))
    ok = True
    if source not in SOURCES:
        problems.add(f.get("source", node), f"`source` must be one of {', '.join(SOURCES)} (got {source!r})")
        ok = False
    if agg not in AGGS:
        problems.add(f.get("agg", node), f"`agg` must be one of {', '.join(AGGS)} (got {agg!r})")
        ok = False
    expr, flt, per = (_text(f, k, problems) for k in ("expr", "filter", "per"))
    if agg in ("sum", "mean") and not expr:
        problems.add(f.get("agg", node), f"`agg: {agg}` needs an `expr` to aggregate")
        ok = False
    for key, text in (("expr", expr), ("filter", flt)):
        ok = _parses(text, f.get(key), problems) and ok
    return Measure(source=source, agg=agg, expr=expr, filter=flt, unit=per) if ok else None


def _parses(text: str | None, node: yaml.Node | None, problems: Problems) -> bool:
    """Whether an expression is in the language (parsed only; columns are checked when compiled)."""
    from cxlens.semantic.expressions import parse

    if not text:
        return True
    try:
        parse(text)
    except MetricError as exc:
        problems.add(node, str(exc))
        return False
    return True


def _metric(node: yaml.MappingNode, path: Path, problems: Problems, catalog: "Catalog") -> Metric | None:
    f = _fields(node, METRIC_KEYS, "metric", problems)
    mid = _id(f, node, "metric", catalog.metrics, problems)
    values: dict[str, Any] = {}
    for key, choices in CHOICES.items():
        v = scalar(f.get(key))
        if v is None:
            continue
        if v not in choices:
            problems.add(f[key], f"`{key}` must be one of {', '.join(choices)} (got {v!r})")
        else:
            values[key] = v
    measure = numerator = denominator = None
    if "numerator" in f or "denominator" in f:
        if "source" in f:
            problems.add(f["source"], "write either source/agg/expr or numerator/denominator, not both")
        if "numerator" not in f or "denominator" not in f:
            problems.add(node, "a ratio needs both `numerator` and `denominator`")
        else:
            numerator, denominator = _measure(f["numerator"], "numerator", problems), _measure(f["denominator"], "denominator", problems)
    else:
        measure = _measure_fields(f, node, problems)
    dims = scalar(f.get("dimensions"))
    if dims is not None and (not isinstance(dims, list) or not all(isinstance(d, str) for d in dims)):
        problems.add(f["dimensions"], "`dimensions` must be a list of dimension ids")
        dims = None
    scale = scalar(f.get("scale"))
    if scale is not None and not isinstance(scale, (int, float)):
        problems.add(f["scale"], "`scale` must be a number")
        scale = None
    if mid is None or (measure is None and (numerator is None or denominator is None)):
        return None
    line = node.start_mark.line + 1
    return Metric(
        id=mid, label=_text(f, "label", problems) or mid, description=_text(f, "description", problems) or "",
        unit=values.get("unit", "mean"), direction=values.get("direction", "up"), timing=values.get("timing", "lagging"),
        measure=measure, numerator=numerator, denominator=denominator, scale=float(scale or 1.0),
        test=values.get("test", "proportion" if numerator else "mean"), default_grain=values.get("default_grain", "month"),
        dimensions=tuple(dims) if dims is not None else None, category=_text(f, "category", problems) or "Custom",
        origin=f"{path}:{line}",
    )


def _dimension(node: yaml.MappingNode, path: Path, problems: Problems, catalog: "Catalog") -> Dimension | None:
    f = _fields(node, DIMENSION_KEYS, "dimension", problems)
    did = _id(f, node, "dimension", catalog.dimensions, problems)
    columns: dict[str, str] = {}
    cnode = f.get("columns")
    if cnode is not None:
        value = scalar(cnode)
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            problems.add(cnode, "`columns` must map a source name to a column or expression")
        else:
            columns.update(value)
    if "source" in f or "expr" in f:
        src, expr = scalar(f.get("source")), scalar(f.get("expr"))
        if not isinstance(src, str) or not isinstance(expr, str):
            problems.add(node, "a dimension with `source` needs an `expr` (or use `columns: {source: expr}`)")
        else:
            columns[src] = expr
    for src, expr in columns.items():
        _parses(expr, cnode or node, problems)
        if src not in SOURCES:
            problems.add(cnode or node, f"unknown source `{src}` (valid: {', '.join(SOURCES)})")
    if not columns:
        problems.add(node, "a dimension needs `columns: {source: expression}` (or `source` and `expr`)")
    if did is None or not columns:
        return None
    return Dimension(id=did, label=_text(f, "label", problems) or did, description=_text(f, "description", problems) or "",
                     columns=tuple(columns.items()), origin=f"{path}:{node.start_mark.line + 1}")


def _segment(node: yaml.MappingNode, path: Path, problems: Problems, catalog: "Catalog") -> Segment | None:
    f = _fields(node, SEGMENT_KEYS, "segment", problems)
    sid = _id(f, node, "segment", catalog.segments, problems)
    where = _text(f, "where", problems)
    if where and not _parses(where, f.get("where"), problems):
        return None
    if not where:
        problems.add(node, "a segment needs `where`: a condition over profile features (`cxlens metrics segments` lists them)")
        return None
    if sid is None:
        return None
    return Segment(id=sid, label=_text(f, "label", problems) or sid, where=where, origin=f"{path}:{node.start_mark.line + 1}",
                   within=_text(f, "within", problems) or None)


def _check_within(s: Segment, catalog: "Catalog", problems: Problems) -> None:
    """A micro segment's parent must be a declared segment, and parents must not loop."""
    seen = [s.id]
    parent = s.within
    while parent is not None:
        if parent not in catalog.segments:
            problems.items.append(f"{s.origin}: segment {s.id} is `within` {parent!r}, which is not a declared segment "
                                  f"(declared: {', '.join(catalog.segments)})")
            return
        if parent in seen:
            problems.items.append(f"{s.origin}: segment {s.id} is `within` a loop of segments: {' -> '.join([*seen, parent])}")
            return
        seen.append(parent)
        parent = catalog.segments[parent].within


def _engagement(node: yaml.Node | None, problems: Problems, catalog: "Catalog") -> None:
    if node is None:
        return
    value = scalar(node)
    names = [f.name for f in fields(EngagementSettings)]
    if not isinstance(value, dict):
        problems.add(node, f"`engagement` must map settings to numbers ({', '.join(names)})")
        return
    good = {}
    for k, v in value.items():
        if k not in names:
            problems.add(node, f"unknown engagement setting `{k}` (valid: {', '.join(names)})")
        elif not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
            problems.add(node, f"engagement setting `{k}` must be a number ≥ 0 (got {v!r})")
        else:
            good[k] = float(v)
    settings = replace(catalog.engagement, **good)
    if settings.recency + settings.frequency + settings.depth + settings.messages <= 0:
        problems.add(node, "the engagement weights must not all be 0")
    elif min(settings.half_life_days, settings.sessions_cap, settings.pages_cap) <= 0:
        problems.add(node, "half_life_days, sessions_cap and pages_cap must be above 0")
    else:
        catalog.set_engagement(settings)


def _settings(node: yaml.Node | None, problems: Problems, catalog: "Catalog") -> None:
    if node is None:
        return
    value = scalar(node)
    if not isinstance(value, dict):
        problems.add(node, "`settings` must be a mapping (lifespan_days)")
        return
    for k, v in value.items():
        if k != "lifespan_days":
            problems.add(node, f"unknown setting `{k}` (valid: lifespan_days)")
        elif not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            problems.add(node, f"`lifespan_days` must be a whole number of days above 0 (got {v!r})")
        else:
            catalog.lifespan_days = v


def _check_compiles(catalog: "Catalog", metrics: list[Metric], dims: list[Dimension], segs: list[Segment],
                    problems: Problems) -> None:
    """Compile every user entry against an empty in-memory workspace: unknown columns surface now."""
    if not (metrics or dims or segs):
        return
    from cxlens.semantic.plan import compile_query
    from cxlens.semantic.expressions import compile_expr
    from cxlens.semantic.model import Query
    from cxlens.semantic.segments import profile_features
    from cxlens.semantic.sources import Request
    from cxlens.workspace import Workspace

    ws = Workspace.open(":memory:")
    try:
        ctx = catalog.context(ws)
        for m in metrics:
            try:
                compile_query(ctx, catalog, Query(metric=m.id, grain=m.default_grain if m.default_grain != "all" else "month"))
            except MetricError as exc:
                problems.items.append(f"{m.origin}: {exc}")
        for d in dims:
            for src, expr in d.columns:
                try:
                    compile_expr(expr, ctx.source(src, Request("month")), where=f"dimension {d.id}")
                except MetricError as exc:
                    problems.items.append(f"{d.origin}: {exc}")
        if segs:
            features = profile_features(ctx, catalog)
            for s in segs:
                try:
                    compile_expr(catalog.segment_condition(s.id), features, where=f"segment {s.id}")
                except MetricError as exc:
                    problems.items.append(f"{s.origin}: {exc}")
    finally:
        ws.close()
