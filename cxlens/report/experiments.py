"""The report's Experiments section: every experiment in the workspace, analyzed with the defaults.

Each experiment gets the default metrics (orders, revenue, buyers, AOV per unit, pre-period
CUPED) against its control, and its ROI: incremental orders, revenue and margin against the
personalization costs of its period. Personalized content pieces are compared with generic
content (CTR uplift, value, cost, ROI). A reader sees at a glance which personalization pays.
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
    roi: list[dict[str, str]] = field(default_factory=list)
    roi_note: str | None = None


@dataclass(frozen=True)
class ContentSummary:
    """Personalized content against generic content, per family and channel (formatted)."""

    rows: list[dict[str, str]]
    flags: list[str]
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
        roi, roi_note = _roi_rows(ws, e["experiment_id"], catalog)
        out.append(ExperimentSummary(e["experiment_id"], analysis.control, analysis.units, rows, analysis.warnings,
                                     roi=roi, roi_note=roi_note))
    return out


def _roi_rows(ws: Any, experiment_id: str, catalog: Any) -> tuple[list[dict[str, str]], str | None]:
    from cxlens.experiments.roi import experiment_roi

    try:
        result = experiment_roi(ws, experiment_id, catalog=catalog)
    except CxlensError as exc:
        return [], f"ROI not computed: {exc}"
    rows = []
    for r in result.total:
        rows.append({
            "variant": r["variant"],
            **{label: _with_interval(r[key]) for key, label in (
                ("incremental_orders", "orders"), ("incremental_revenue", "revenue"), ("incremental_margin", "margin"))},
            "cost": _money(r.get("cost")),
            "roi": _with_interval(r.get("roi") or {}, percent=True),
            "status": str(r.get("status", "")),
        })
    costs = ", ".join(f"{k} {v:,.0f}" for k, v in result.costs.items()) or "none"
    return rows, f"Personalization costs in the experiment's period: {costs}."


def summarize_content(ws: Any) -> ContentSummary | None:
    """Personalized vs generic content, or None when the workspace has no content events."""
    from cxlens.experiments.roi import content_roi

    try:
        result = content_roi(ws)
    except CxlensError as exc:
        return ContentSummary([], [], note=f"Content ROI not computed: {exc}")
    if not result.pooled:
        return None
    rows = []
    for r in result.pooled:
        uplift = r.get("uplift") or {}
        rows.append({
            "content": f"{r['family']} · {r['channel']}", "pieces": str(r.get("pieces", "")),
            "ctr": _pct(uplift.get("ctr"), signed=False), "baseline": _pct(uplift.get("baseline_ctr"), signed=False),
            "uplift": _with_interval({"value": uplift.get("rel_effect"), "ci_low": uplift.get("rel_ci_low"),
                                      "ci_high": uplift.get("rel_ci_high")}, percent=True),
            "margin": _with_interval(r.get("incremental_margin") or {}), "cost": _money(r.get("cost")),
            "roi": _with_interval(r.get("roi") or {}, percent=True), "status": str(r.get("status", "")),
        })
    return ContentSummary(rows, list(result.flags))


def _money(v: Any) -> str:
    return "–" if v is None else f"{v:,.0f}"


def _pct(v: Any, *, signed: bool = True) -> str:
    return "–" if v is None else (f"{v * 100:+.1f}%" if signed else f"{v * 100:.1f}%")


def _with_interval(v: dict[str, Any], *, percent: bool = False) -> str:
    """A value and its interval: `+1,234 (−56 to +2,500)` or `+12% (−3% to +27%)`."""
    fmt = (lambda x: f"{x * 100:+.0f}%") if percent else (lambda x: f"{x:+,.0f}")
    if v.get("value") is None:
        return "–"
    if v.get("ci_low") is None or v.get("ci_high") is None:
        return fmt(v["value"])
    return f"{fmt(v['value'])} ({fmt(v['ci_low'])} to {fmt(v['ci_high'])})"


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
