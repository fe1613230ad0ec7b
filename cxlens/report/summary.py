"""The headline KPIs as plain JSON values: the contract of `cxlens report --format json` and of the
demo's summary (`headline`), so scripts read the same numbers the tiles show.

Values keep the semantic layer's units (shares as fractions, NPS in points); `change` and
`baseline_change` are absolute differences in those units.
"""

from __future__ import annotations

from typing import Any

from cxlens.report.data import HEADLINE, ReportData
from cxlens.report.tiles import Tile


def tile_json(tile: Tile) -> dict[str, Any]:
    """One tile: metric, label, value, previous, change, baseline, baseline_change, unit and periods."""
    cur, prev = tile.current, tile.previous
    out: dict[str, Any] = {
        "metric": tile.metric.id, "label": tile.metric.label, "unit": tile.metric.unit,
        "period": cur.period.isoformat() if cur else None,
        "value": cur.value if cur else None,
        "previous": prev.value if prev else None,
        "change": tile.change,
        "baseline": tile.baseline_value,
        "baseline_change": tile.baseline_change,
    }
    if tile.group is not None:
        out["group"] = tile.group
    c = tile.comparison
    if c is not None:
        out["baseline_window"] = {"start": c.before_start.isoformat(), "end": c.before_end.isoformat()}
        out["baseline_ci"] = [c.ci_low, c.ci_high] if c.ci_low is not None and c.ci_high is not None else None
        out["p_value"] = c.p_value
        out["significant"] = c.significant
    elif tile.baseline is not None:
        out["baseline_period"] = tile.baseline.period.isoformat()
    return out


def headline_json(data: ReportData) -> list[dict[str, Any]]:
    return [tile_json(data.tiles[m]) for m in HEADLINE if m in data.tiles]
