"""The demo a newcomer runs first (`make demo`): simulate a company, ingest it, resolve it, check it,
and write the KPI report.

Every number it prints is also checked against the simulation's truth, so the demo doubles as an
end-to-end acceptance run: identity precision/recall and whether each dirty row was quarantined
with the reason the simulator planted. It ends with `report.html` and the headline KPIs.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cxlens.identity import evaluate, identity_stats
from cxlens.ingest import ingest_file, load_mapping, refresh_identity
from cxlens.report import ReportResult, build_report
from cxlens.simulate import simulate
from cxlens.workspace import Workspace

Step = Callable[[str, int, int], None]

DEMO_DEFINITIONS = """\
# Written by `cxlens demo`: segments the report breaks metrics down by (edit and re-run `cxlens report`).
segments:
  - id: loyalty_members
    label: Loyalty members
    where: "loyalty_member"
  - id: detractors
    label: Latest NPS answer 0-6
    where: "latest_nps <= 6"
  - id: lapsing
    label: Bought before, no order in the last 60 days
    where: "orders > 0 and days_since_last_order > 60"
"""
"""The demo workspace's definitions file, so its report shows breakdowns by segment."""


@dataclass
class DemoSummary:
    """What the demo did, with the checks against the truth."""

    out_dir: str
    workspace: str
    seconds: dict[str, float] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    quarantined: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    profiles: int = 0
    identity: dict[str, Any] = field(default_factory=dict)
    dirty_check: dict[str, int] = field(default_factory=dict)
    report: str = ""
    headline: list[dict[str, Any]] = field(default_factory=list)
    experiment: dict[str, Any] = field(default_factory=dict)
    """The personalization experiment's web-shop orders per unit against the planted effect."""
    value: dict[str, Any] = field(default_factory=dict)
    """Customers per value class, predicted CLV, and the HVC label against the simulated truth."""
    journeys: dict[str, Any] = field(default_factory=dict)
    """Support friction and what it costs in CES, beside the effects the simulation planted."""
    attribution: dict[str, Any] = field(default_factory=dict)
    """Orders credited to channels by the exact Markov model (the report's Attribution section)."""
    service: dict[str, Any] = field(default_factory=dict)
    """Surveys defined with their invitation rules, the outbox they filled, and a read key for the dashboard."""
    report_result: ReportResult | None = field(default=None, repr=False, compare=False)
    """The written report with its numbers (not part of the JSON summary)."""

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "report_result"}


def run_demo(out_dir: str | Path = "demo", *, customers: int = 20_000, days: int = 365, seed: int = 7,
             on_step: Step | None = None) -> DemoSummary:
    """Simulate → ingest every export with its mapping → resolve identities → compare with truth → report."""
    out = Path(out_dir)
    data = out / "data"
    db = out / "cxlens.duckdb"
    step = on_step or (lambda label, done, total: None)
    summary = DemoSummary(out_dir=str(out), workspace=str(db))

    t = time.perf_counter()
    if data.exists():
        shutil.rmtree(data)
    sim = simulate(data, customers=customers, days=days, seed=seed,
                   progress=lambda label, done, total: step(f"simulating: {label}", done, total))
    summary.seconds["simulate"] = round(time.perf_counter() - t, 2)
    truth = json.loads(sim.truth_path.read_text())

    for f in (db, db.with_name(db.name + ".wal")):
        f.unlink(missing_ok=True)
    definitions = db.with_name(db.stem + ".metrics.yml")
    definitions.write_text(DEMO_DEFINITIONS)
    t = time.perf_counter()
    files = truth["files"]
    with Workspace.open(db) as ws:
        for i, f in enumerate(files):
            step(f"ingesting {f['file']}", i, len(files))
            mapping = load_mapping(data / f["mapping"])
            r = ingest_file(ws, mapping.table, data / f["file"], mapping=mapping)
            summary.duplicates += r.rows_duplicate
        summary.seconds["ingest"] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        step("resolving identities and building profiles", len(files), len(files))
        refresh_identity(ws)
        summary.seconds["identity"] = round(time.perf_counter() - t, 2)

        summary.rows = ws.counts()
        summary.quarantined = dict(ws.sql(
            "SELECT reason, count(*) FROM quarantine GROUP BY reason ORDER BY count(*) DESC"
        ).fetchall())
        summary.profiles = int(ws.sql("SELECT count(*) FROM profiles").fetchone()[0])
        stats = identity_stats(ws)
        scores = evaluate(ws, truth["identity"]["keys"])
        summary.identity = {"precision": scores["precision"], "recall": scores["recall"],
                            "flagged": len(stats.get("flagged", [])), "profiles": stats.get("profiles")}
        summary.dirty_check = _check_dirty(ws, truth)
        step("analyzing the personalization experiment", len(files), len(files))
        summary.experiment = _experiment(ws, truth["effects"]["personalization"])
        step("valuing customers (CLV, RFM, high-value classes)", len(files), len(files))
        t = time.perf_counter()
        summary.value = _value(ws, truth)
        summary.seconds["value"] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        result = build_report(ws, out / "report.html", on_step=lambda label, done, total: step(f"report: {label}", done, total))
        summary.seconds["report"] = round(time.perf_counter() - t, 2)
        summary.report, summary.headline, summary.report_result = str(result.path), result.headline(), result
        summary.journeys = _journeys(result.data.journeys, truth["effects"]["effort"])
        summary.attribution = _attribution(result.data.attribution)
        step("defining surveys and a dashboard key", len(files), len(files))
        summary.service = _service(ws)
    # Last, once the workspace no longer changes: the dashboard's first pages are then at hand
    # when `cxlens serve` starts, instead of being computed while the first reader waits.
    step("computing the dashboard's pages", len(files), len(files))
    t = time.perf_counter()
    summary.service["dashboard_views"] = _dashboard_views(db)
    summary.seconds["dashboard"] = round(time.perf_counter() - t, 2)
    summary.seconds["total"] = round(sum(summary.seconds.values()), 2)
    return summary


def _journeys(j: Any, planted: dict[str, Any]) -> dict[str, Any]:
    """The report's friction figures (already computed there) beside the CES formula the simulation used."""
    if j is None or not j.friction:
        return {}
    return {"cases": j.headline.get("cases"), "friction_share": j.headline.get("friction_share"),
            "ces_effects": {r["friction"]: r["effect"] for r in j.friction if r["outcome"] == "CES"},
            "planted_ces": planted["ces_support"], "costliest_for_churn": j.friction_text}


def _service(ws: Workspace) -> dict[str, Any]:
    """Two surveys with invitation rules run as of the last day of data (the outbox a sender would
    mail), and a read key to sign in to the dashboard of `cxlens serve`."""
    from datetime import datetime, timedelta

    from cxlens.service.keys import create_key
    from cxlens.service.surveys import create_survey, run_invitations

    surveys = [
        create_survey(ws, "ces", touchpoint="support", channel="email", after="resolved_case", survey_id="ces-support"),
        create_survey(ws, "csat", touchpoint="delivery", channel="email", after="order", delay_days=3,
                      survey_id="csat-delivery"),
    ]
    last = ws.sql("SELECT max(ordered_at) FROM orders").fetchone()[0]
    as_of = (last if isinstance(last, datetime) else datetime.now()) + timedelta(days=1)
    report = run_invitations(ws, as_of=as_of, base_url="http://127.0.0.1:8000")
    key, _ = create_key(ws, "read", "demo-dashboard")
    return {"surveys": [s.survey_id for s in surveys], "as_of": report.as_of, "invited": report.created,
            "due": report.due, "excluded": report.excluded, "read_key": key}


def _dashboard_views(db: Path) -> int:
    from cxlens.semantic import Catalog
    from cxlens.semantic.registry import definitions_path
    from cxlens.service.dashboard.state import prepare_views

    return prepare_views(db, list(Catalog.load(definitions_path(db)).segments))


def _attribution(a: Any) -> dict[str, Any]:
    """The report's Markov credits: orders credited, unattributed orders, each channel's share."""
    if a is None or not a.headline:
        return {}
    return {"credited_orders": a.headline["conversions"], "unattributed": a.headline["unattributed"],
            "markov_shares": {r["channel"]: r["markov"] for r in a.conversions}}


def _experiment(ws: Workspace, planted: dict[str, Any]) -> dict[str, Any]:
    """Online orders per unit of the simulated experiment, to set beside the lift it was built with."""
    from cxlens.experiments.workspace import analyze_experiment

    analysis = analyze_experiment(ws, planted["experiment_id"], ["orders"], by="channel")
    online = next((r for r in analysis.results if r.get("channel") == "online"), None)
    keys = ("variant", "n", "control_n", "rel_effect", "rel_ci_low", "rel_ci_high", "p_value", "verdict")
    return {"experiment_id": planted["experiment_id"], "planted_lift": planted["conversion_lift"],
            "planted_for": planted["segment_definition"], "srm_p_value": analysis.srm.p_value,
            "online_orders_per_unit": {k: online[k] for k in keys} if online else None}


def _value(ws: Workspace, truth: dict[str, Any]) -> dict[str, Any]:
    """Write clv_predictions and customer_value, and score the HVC label against the truth: each
    simulated customer is the profile holding most of their identity keys."""
    from cxlens.clv.workspace import predict_workspace, save_predictions
    from cxlens.errors import CxlensError
    from cxlens.value import CLASSES, customer_value, write_customer_value

    out: dict[str, Any] = {}
    try:
        prediction = predict_workspace(ws)
        save_predictions(ws, prediction)
        out["clv_52w"] = round(prediction.totals["clv"], 2)
    except CxlensError as exc:
        out["clv_note"] = str(exc)
    result = customer_value(ws)
    write_customer_value(ws, result)
    frame = result.frame
    out["classes"] = {c: int(frame[c].sum()) for c in CLASSES}
    keys = truth["identity"]["keys"]
    links = ws.sql("SELECT key, profile_id FROM identity_keys WHERE profile_id IS NOT NULL").fetchall()
    votes: dict[int, dict[str, int]] = {}
    for key, pid in links:
        if key in keys:
            votes.setdefault(int(keys[key]), {}).setdefault(pid, 0)
            votes[int(keys[key])][pid] += 1
    profile_of = {person: min(v, key=lambda p: (-v[p], p)) for person, v in votes.items()}
    hvc_truth = {profile_of[p] for p in truth["effects"]["hvc"]["persons"] if p in profile_of}
    labelled = set(frame.loc[frame["hvc"].astype(bool), "profile_id"])
    hit = len(labelled & hvc_truth)
    out["hvc_precision"] = round(hit / max(len(labelled), 1), 3)
    out["hvc_recall"] = round(hit / max(len(hvc_truth & set(frame["profile_id"])), 1), 3)
    return out


def _check_dirty(ws: Workspace, truth: dict[str, Any]) -> dict[str, int]:
    """Compare quarantine with the rows the simulator made dirty: same file, line and reason."""
    got = {
        (Path(f).name, int(line)): reason
        for f, line, reason in ws.sql("SELECT file, line, reason FROM quarantine").fetchall()
    }
    planted = {(d["file"], int(d["line"])): d["reason"] for d in truth["dirty"]}
    right = sum(1 for k, r in planted.items() if got.get(k) == r)
    wrong_reason = sum(1 for k, r in planted.items() if k in got and got[k] != r)
    missed = sum(1 for k in planted if k not in got)
    unexpected = sum(1 for k in got if k not in planted)
    return {"planted": len(planted), "quarantined_right": right, "wrong_reason": wrong_reason,
            "missed": missed, "clean_rows_quarantined": unexpected}
