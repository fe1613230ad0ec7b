"""The JSON of the catalogue listings: `cxlens metrics list|dimensions|segments --format json`.

Built here, not in the CLI, so `GET /v1/metrics`, `/v1/dimensions` and `/v1/segments` answer with
the same documents as the commands.
"""

from __future__ import annotations

from typing import Any

from cxlens.semantic.registry import Catalog
from cxlens.semantic.segments import FEATURES


def metrics_json(catalog: Catalog, category: str | None = None) -> dict[str, Any]:
    """Every metric (or those of one category): id, label, timing, unit, direction, meaning, origin."""
    rows = [{"id": m.id, "label": m.label, "category": m.category, "timing": m.timing, "unit": m.unit,
             "direction": m.direction, "description": m.description, "origin": m.origin}
            for m in catalog.metrics.values() if category is None or m.category.lower() == category.lower()]
    return {"metrics": rows}


def dimensions_json(catalog: Catalog, metric: str | None = None) -> dict[str, Any]:
    """The dimensions metrics can be cut by: all of them, or those of one metric."""
    ids = catalog.dimensions_for(catalog.metric(metric)) if metric else list(catalog.dimensions)
    rows = [{"id": d, "label": catalog.dimensions[d].label, "description": catalog.dimensions[d].description} for d in ids]
    return {"metric": metric, "dimensions": rows}


def segments_json(catalog: Catalog, ws: Any = None, *, value: bool = False) -> dict[str, Any]:
    """Declared segments and the profile features a condition can use; with `value`, each segment
    measured on the workspace `ws` (customers, revenue, predicted value, growth potential)."""
    segs = [{"id": s.id, "label": s.label, "where": s.where, "within": s.within, "origin": s.origin}
            for s in catalog.segments.values()]
    out: dict[str, Any] = {"segments": segs, "features": [{"feature": k, "meaning": v} for k, v in FEATURES.items()],
                           "definitions": str(catalog.path) if catalog.path else None}
    if value:
        measured = []
        if catalog.segments:
            frame = catalog.segment_value(catalog.context(ws, materialize=False))
            measured = [{k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()}
                        for r in frame.to_dict("records")]
        out["value"] = measured
    return out
