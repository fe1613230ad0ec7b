"""The report's Experiments section: every experiment in the workspace, analyzed with the defaults.

Each experiment gets the default metrics (orders, revenue, buyers, AOV per unit, pre-period
CUPED) against its control; the section shows lifts with intervals, the verdicts and the
sample-ratio check, so a reader sees at a glance which personalization pays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cxlens.errors import CxlensError


@dataclass(frozen=True)
class ExperimentSummary:
    """One experiment as the report shows it (numbers already formatted)."""

    experiment_id: str
    control: str | None
    units: dict[str, int]
    rows: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    note: str | None = None


def summarize_experiments(ws: Any, catalog: Any) -> list[ExperimentSummary]:
    """Analyze every experiment; one that cannot be analyzed gets a note instead of rows."""
    from cxlens.experiments.units import experiments
    from cxlens.experiments.workspace import analyze_experiment

    if "assignments" not in ws.backend.tables():
        return []
    out = []
    for e in experiments(ws):
        try:
            analysis = analyze_experiment(ws, e["experiment_id"], catalog=catalog)
        except CxlensError as exc:
            out.append(ExperimentSummary(e["experiment_id"], e["control"], e["variants"], note=str(exc)))
            continue
        labels = {m["id"]: m["label"] or m["id"] for m in analysis.extra["metrics"]}
        rows = [_row(r, labels) for r in analysis.results]
        out.append(ExperimentSummary(e["experiment_id"], analysis.control, analysis.units, rows, analysis.warnings))
    return out


def _row(r: dict[str, Any], labels: dict[str, str]) -> dict[str, str]:
    def pct(v: Any) -> str:
        return "–" if v is None else f"{v * 100:+.1f}%"

    def num(v: Any) -> str:
        return "–" if v is None else f"{v:,.3f}" if abs(v) < 10 else f"{v:,.1f}"

    interval = "–" if r["rel_ci_low"] is None else f"{pct(r['rel_ci_low'])} to {pct(r['rel_ci_high'])}"
    return {
        "metric": labels.get(r["metric"], r["metric"]),
        "variant": r["variant"],
        "control": num(r["control_mean"]),
        "treatment": num(r["mean"]),
        "lift": pct(r["rel_effect"]),
        "interval": interval,
        "p": "–" if r["adjusted_p_value"] is None else f"{r['adjusted_p_value']:.3g}",
        "chance": "–" if r["chance_to_win"] is None else f"{r['chance_to_win'] * 100:.0f}%",
        "verdict": r["verdict"],
    }
