"""Journeys on the simulated company: friction's effect on CES and churn against what the
simulator planted (cxlens/simulate/surveys.py and service.py, documented in truth.py), the churn
model against statsmodels on the same customers, the CLI on the demo workspace, and the report
section."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

from cxlens import Workspace
from cxlens.journeys import FrictionResult, friction_costs
from cxlens.journeys.friction import MEASURES, MIN_EXPOSED


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, FrictionResult]]:
    """2,000 simulated customers over 240 days, demo-ingested, with friction's costs estimated."""
    from cxlens.demo import run_demo

    out = tmp_path_factory.mktemp("journeys-company")
    summary = run_demo(out, customers=2000, days=240, seed=7)
    path = Path(summary.workspace)
    with Workspace.open(path) as ws:
        result = friction_costs(ws)
    yield path, result


def _effect(result: FrictionResult, outcome: str, measure: str) -> dict:
    rows = result.effects[(result.effects.outcome == outcome) & (result.effects.measure == measure)]
    assert len(rows) == 1, (outcome, measure)
    return rows.iloc[0].to_dict()


def test_friction_lowers_ces_by_the_planted_amounts(company: tuple[Path, FrictionResult]) -> None:
    """Planted: CES = 6.2 - 1.6 unresolved - 0.9 (contacts - 1) - 0.5 transfers + N(0, 0.7), where
    transfers are the last contact's; the case's total transfers are a noisier copy (attenuated)."""
    _, result = company
    unresolved = _effect(result, "ces", "unresolved")
    repeats = _effect(result, "ces", "repeat_contacts")
    transfers = _effect(result, "ces", "transfers")
    print({k: (round(v["estimate"], 3), round(v["ci_low"], 3), round(v["ci_high"], 3)) for k, v in
           (("unresolved", unresolved), ("repeats", repeats), ("transfers", transfers))})
    assert unresolved["n"] >= 100
    assert unresolved["ci_low"] < -1.6 < unresolved["ci_high"] and -2.4 < unresolved["estimate"] < -1.0
    assert repeats["ci_low"] < -0.9 < repeats["ci_high"] and -1.4 < repeats["estimate"] < -0.45
    assert transfers["ci_high"] < 0 and -0.8 < transfers["estimate"] < -0.1
    switches = _effect(result, "ces", "channel_switches")  # channels are drawn at random: no effect planted
    assert switches["ci_low"] < 0 < switches["ci_high"]


def test_an_unresolved_case_raises_churn(company: tuple[Path, FrictionResult]) -> None:
    """Planted: a bad case (unresolved, >= 3 contacts or >= 2 transfers) makes the customer churn with
    probability 0.5 against a baseline of 0.02-0.14."""
    _, result = company
    e = _effect(result, "churn", "unresolved")
    print(e)
    assert e["ci_low"] > 0 and 0.15 < e["estimate"] < 0.6
    assert result.costliest("churn").measure.iloc[0] == "unresolved"


def test_churn_model_equals_statsmodels_on_the_same_customers(company: tuple[Path, FrictionResult]) -> None:
    import statsmodels.api as sm

    _, result = company
    c = result.customers
    measures = [m for m in MEASURES if (c[m] > 0).sum() >= MIN_EXPOSED]
    X = np.column_stack([np.ones(len(c)), *[c[m].astype(float) for m in measures], c.cases.astype(float),
                         c.tenure_days.astype(float), np.log1p(c.orders.astype(float)), np.log1p(c.revenue.astype(float))])
    ref = sm.OLS(c.churned.astype(float).to_numpy(), X).fit(cov_type="HC1")
    got = result.effects[result.effects.outcome == "churn"].set_index("measure")
    for j, m in enumerate(measures, start=1):
        assert got.loc[m, "estimate"] == pytest.approx(ref.params[j], rel=1e-8, abs=1e-12), m
        assert got.loc[m, "std_error"] == pytest.approx(ref.bse[j], rel=1e-8), m
    assert result.models["churn"]["n"] == len(c) and 0 < c.churned.mean() < 1


def test_cli_friction_on_the_company_prints_the_same_effects(company: tuple[Path, FrictionResult]) -> None:
    path, result = company
    r = run_cli("journeys", "friction", "--format", "json", workspace=path)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    got = {(e["outcome"], e["measure"]): e["estimate"] for e in doc["effects"]}
    want = {(o, m): v for o, m, v in zip(result.effects.outcome, result.effects.measure, result.effects.estimate, strict=True)}
    assert got.keys() == want.keys() and all(got[k] == pytest.approx(want[k], rel=1e-9) for k in want)
    assert set(doc) == {"settings", "churn_cutoff", "prevalence", "effects", "models", "by_touchpoint", "notes"}
    r = run_cli("journeys", "funnel", "--by", "segment", "--format", "json", workspace=path)
    assert r.returncode == 0, r.stderr
    groups = {row["group"] for row in json.loads(r.stdout)["rows"]}
    assert {"loyalty_members", "detractors", "lapsing"} <= groups


def test_report_section_formats_every_part(company: tuple[Path, FrictionResult]) -> None:
    from cxlens.report.journeys import (
        friction_figure,
        funnel_figure,
        sankey_figure,
        summarize_journeys,
    )

    path, _ = company
    with Workspace.open(path) as ws:
        s = summarize_journeys(ws)
    assert s.paths and s.churn_paths and s.funnel and s.friction and s.worst_touchpoints
    assert s.friction_text is not None and s.friction_text.startswith("Left unresolved costs the most")
    assert all(isinstance(v, str) for row in [*s.paths, *s.funnel, *s.friction] for v in row.values())
    assert s.sankey is not None and s.funnel_frame is not None and s.friction_frame is not None
    for fig in (sankey_figure(s.sankey), funnel_figure(s.funnel_frame), friction_figure(s.friction_frame)):
        assert "<div" in fig.to_html(full_html=False, include_plotlyjs=False)
