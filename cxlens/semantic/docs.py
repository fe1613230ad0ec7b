"""docs/metrics.md, generated from the declarations so the catalogue and its documentation never drift.

    python -m cxlens.semantic.docs > docs/metrics.md      # or: cxlens metrics docs --out docs/metrics.md
"""

from __future__ import annotations

import sys

from cxlens.semantic.model import Measure
from cxlens.semantic.registry import Catalog
from cxlens.semantic.segments import FEATURES
from cxlens.semantic.sources import SOURCES

UNIT_WORDS = {
    "currency": "currency", "count": "count", "share": "share (0–1; shown as %)", "points": "points (−100..100)",
    "seconds": "seconds", "days": "days", "score": "score", "ratio": "ratio", "mean": "mean per unit",
}
DIRECTION_WORDS = {"up": "higher is better", "down": "lower is better", "none": "neither (context)"}


def _how(catalog: Catalog, metric_id: str) -> str:
    m = catalog.metrics[metric_id]
    def one(x: Measure | None) -> str:
        assert x is not None
        parts = [f"`{x.agg}`"]
        if x.expr and len(x.expr) > 100:
            parts.append("of the formula in [metric-definitions.md](metric-definitions.md)")
        elif x.expr:
            parts.append(f"of `{x.expr}`")
        if x.unit:
            parts.append(f"per `{x.unit}`")
        parts.append(f"over `{x.source}`")
        if x.filter:
            parts.append(f"where `{x.filter}`")
        return " ".join(parts)
    if m.measure is not None:
        text = one(m.measure)
    else:
        text = f"{one(m.numerator)} ÷ {one(m.denominator)}"
    if m.scale != 1.0:
        text += f", × {m.scale:g}"
    if m.share_over:
        text += f"; share across {' or '.join(m.share_over)}"
    return text


def render(catalog: Catalog) -> str:
    """The whole page as Markdown."""
    lines = [
        "# Metrics",
        "",
        "Generated from the declarations in `cxlens/semantic/catalogue.py` by `cxlens metrics docs`; do not edit by",
        "hand. The shared rules every definition relies on (valid orders, sessions, cases, channel groups,",
        "engagement score) are in [metric-definitions.md](metric-definitions.md).",
        "",
        "In JSON output, shares and rates are fractions in [0, 1], NPS is in points from −100 to 100 and means are",
        "in their own units; tables show percentages.",
        "",
    ]
    categories: dict[str, list[str]] = {}
    for m in catalog.metrics.values():
        categories.setdefault(m.category, []).append(m.id)
    for category, ids in categories.items():
        lines += [f"## {category}", ""]
        for mid in ids:
            m = catalog.metrics[mid]
            dims = ", ".join(f"`{d}`" for d in catalog.dimensions_for(m) if d != "segment")
            lines += [
                f"### `{m.id}` — {m.label}",
                "",
                m.description,
                "",
                f"- Unit: {UNIT_WORDS[m.unit]}; {DIRECTION_WORDS[m.direction]}; {m.timing}.",
                f"- Computed as: {_how(catalog, mid)}.",
                f"- Default grain: {m.default_grain}" + ("; needs a grain other than `all`." if m.needs_grain else "."),
                f"- Baseline test: {m.test}.",
                f"- Dimensions: {dims or 'none'}; and `segment` when segments are declared.",
                "",
            ]
    lines += ["## Dimensions", "", "| id | what |", "|---|---|"]
    lines += [f"| `{d.id}` | {d.description} |" for d in catalog.dimensions.values()]
    lines += ["", "## Semantic sources", "", "| source | rows |", "|---|---|"]
    lines += [f"| `{s.name}` | {s.description} |" for s in SOURCES.values()]
    lines += ["", "## Profile features (for segments and `--where`)", "", "| feature | what |", "|---|---|"]
    lines += [f"| `{k}` | {v} |" for k, v in FEATURES.items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render(Catalog.built_in()))
