"""Experiments end to end: Hillstrom through the flat-file command, the simulated company's
personalization experiment from the workspace, planning — each number checked against pandas,
scipy or statsmodels computed here."""

from __future__ import annotations

import json
import math
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_DATA, run_cli
from scipy import stats
from statsmodels.formula.api import ols
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from cxlens.demo import run_demo
from cxlens.simulate.config import (
    PERSONALIZATION_LIFT,
    PERSONALIZATION_MIN_PRIOR_ORDERS,
)

HILLSTROM = SHARED_DATA / "hillstrom" / "hillstrom.csv.gz"
CONTROL = "No E-Mail"
PUBLISHED = {  # Hillstrom (2008): visit, conversion and spend means per arm
    "Mens E-Mail": (0.182757, 0.012531, 1.422617),
    "Womens E-Mail": (0.151400, 0.008837, 1.077202),
    "No E-Mail": (0.106167, 0.005726, 0.652789),
}


def _analyze(*args: str, workspace: Path | None = None) -> dict:
    result = run_cli("experiment", "analyze", *args, "--format", "json", workspace=workspace)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def hillstrom() -> pd.DataFrame:
    return pd.read_csv(HILLSTROM)


@pytest.fixture(scope="module")
def hillstrom_result() -> dict:
    return _analyze("--units", str(HILLSTROM), "--variant-column", "segment", "--control", CONTROL,
                    "--metric", "visit", "--metric", "conversion", "--metric", "spend")


def test_hillstrom_means_per_arm_equal_the_published_figures(hillstrom_result: dict) -> None:
    results = hillstrom_result["results"]
    assert len(results) == 6 and {r["variant"] for r in results} == {"Mens E-Mail", "Womens E-Mail"}
    for r in results:
        index = ("visit", "conversion", "spend").index(r["metric"])
        assert r["mean"] == pytest.approx(PUBLISHED[r["variant"]][index], abs=5e-7)
        assert r["control_mean"] == pytest.approx(PUBLISHED[CONTROL][index], abs=5e-7)
    expected_keys = {"metric", "variant", "n", "mean", "control_mean", "abs_effect", "rel_effect", "ci_low", "ci_high",
                     "rel_ci_low", "rel_ci_high", "p_value", "chance_to_win"}
    assert expected_keys <= set(results[0])
    assert list(hillstrom_result)[:2] == ["srm_p_value", "results"]


def test_hillstrom_p_values_and_intervals_equal_scipy_and_statsmodels(hillstrom: pd.DataFrame, hillstrom_result: dict) -> None:
    control = hillstrom[hillstrom.segment == CONTROL]
    counts = hillstrom.segment.value_counts()
    assert hillstrom_result["srm_p_value"] == pytest.approx(stats.chisquare(counts.to_numpy()).pvalue, rel=1e-9)
    for r in hillstrom_result["results"]:
        a, b = control[r["metric"]].to_numpy(float), hillstrom.loc[hillstrom.segment == r["variant"], r["metric"]].to_numpy(float)
        assert r["n"] == len(b)
        if r["metric"] in ("visit", "conversion"):
            _, p = proportions_ztest([b.sum(), a.sum()], [len(b), len(a)])
            low, high = confint_proportions_2indep(b.sum(), len(b), a.sum(), len(a), method="wald")
            var_t, var_c, df = b.mean() * (1 - b.mean()) / len(b), a.mean() * (1 - a.mean()) / len(a), np.inf
        else:
            p = stats.ttest_ind(b, a, equal_var=False).pvalue
            low, high = CompareMeans(DescrStatsW(b), DescrStatsW(a)).tconfint_diff(usevar="unequal")
            var_t, var_c = b.var(ddof=1) / len(b), a.var(ddof=1) / len(a)
            df = (var_t + var_c) ** 2 / (var_t**2 / (len(b) - 1) + var_c**2 / (len(a) - 1))
        assert r["abs_p_value"] == pytest.approx(p, rel=1e-6)
        assert (r["ci_low"], r["ci_high"]) == pytest.approx((low, high), rel=1e-9)
        # Relative effect: delta method for the ratio of two independent means.
        rel = b.mean() / a.mean() - 1
        se = math.sqrt(var_t / a.mean() ** 2 + b.mean() ** 2 * var_c / a.mean() ** 4)
        q = stats.t.ppf(0.975, df)
        assert (r["rel_ci_low"], r["rel_ci_high"]) == pytest.approx((rel - q * se, rel + q * se), rel=1e-9)
        assert r["p_value"] == pytest.approx(2 * stats.t.sf(abs(rel) / se, df), rel=1e-6)
        assert r["chance_to_win"] == pytest.approx(stats.norm.cdf(rel / se), rel=1e-9)
    adjusted = sorted(r["adjusted_p_value"] for r in hillstrom_result["results"])
    raw = sorted(r["p_value"] for r in hillstrom_result["results"])
    assert adjusted[0] == pytest.approx(min(1.0, 6 * raw[0]))  # Holm's first step


def test_flat_file_cuped_equals_ancova_and_parquet_gives_the_same(hillstrom: pd.DataFrame, tmp_path: Path) -> None:
    two = hillstrom[hillstrom.segment.isin(["Womens E-Mail", CONTROL])]
    path = tmp_path / "units.parquet"
    two.to_parquet(path)
    result = _analyze("--units", str(path), "--variant-column", "segment", "--control", CONTROL,
                      "--metric", "spend", "--covariate", "history", "--alpha", "0.1")
    [r] = result["results"]
    fit = ols("spend ~ treated + history", data=two.assign(treated=(two.segment != CONTROL).astype(float))).fit()
    assert r["abs_effect"] == pytest.approx(fit.params["treated"], rel=1e-9)
    assert r["cuped"] is True and r["variance_reduction"] > 0
    assert result["alpha"] == 0.1


def test_flat_file_sample_ratio_mismatch_blocks_ship(hillstrom: pd.DataFrame, tmp_path: Path) -> None:
    # Drop a fifth of the control: a broken pipeline, not a real effect.
    rng = np.random.default_rng(0)
    broken = hillstrom[(hillstrom.segment != CONTROL) | (rng.random(len(hillstrom)) > 0.2)]
    path = tmp_path / "broken.csv"
    broken.to_csv(path, index=False)
    result = _analyze("--units", str(path), "--variant-column", "segment", "--control", CONTROL, "--metric", "visit")
    assert result["srm_p_value"] < 1e-6 and result["srm"]["mismatch"] is True
    assert {r["verdict"] for r in result["results"]} == {"invalid"}
    assert any("Sample ratio mismatch" in w for w in result["warnings"])


def test_flat_file_errors_are_one_sentence(tmp_path: Path) -> None:
    cases = [
        (["--metric", "nope"], "no column 'nope'"),
        (["--metric", "history_segment"], "must be numeric"),
    ]
    for extra, message in cases:
        r = run_cli("experiment", "analyze", "--units", str(HILLSTROM), "--variant-column", "segment", "--control", CONTROL, *extra)
        assert r.returncode != 0 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = run_cli("experiment", "analyze", "--units", str(HILLSTROM), "--variant-column", "segment", "--control", "Nobody",
                "--metric", "visit")
    assert r.returncode != 0 and "'Mens E-Mail'" in r.stderr and "Traceback" not in r.stderr


# --- the simulated company -------------------------------------------------------------------


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("company")
    run_demo(out, customers=2500, days=240, seed=11)
    return out / "cxlens.duckdb"


@pytest.fixture(scope="module")
def tables(company: Path) -> dict[str, pd.DataFrame]:
    con = duckdb.connect(str(company), read_only=True)
    try:
        return {
            "assignments": con.sql("SELECT * FROM assignments WHERE profile_id IS NOT NULL").df(),
            "orders": con.sql("SELECT * FROM orders WHERE profile_id IS NOT NULL").df(),
        }
    finally:
        con.close()


def _units(assignments: pd.DataFrame) -> pd.DataFrame:
    """First assignment per profile; profiles seen in two variants left out."""
    a = assignments.sort_values(["assigned_at", "variant"])
    per = a.groupby("profile_id").agg(variant=("variant", "first"), start=("assigned_at", "min"), k=("variant", "nunique"))
    return per[per.k == 1].drop(columns="k").reset_index()


def _per_unit_orders(tables: dict[str, pd.DataFrame], pre_days: float = 30) -> pd.DataFrame:
    units = _units(tables["assignments"])
    o = tables["orders"]
    o = o[o.status.isna() | (o.status == "completed")].merge(units, on="profile_id")
    post = o[o.ordered_at >= o.start]
    pre = o[(o.ordered_at < o.start) & (o.ordered_at >= o.start - pd.Timedelta(days=pre_days))]
    out = units.set_index("profile_id")
    out["orders"] = post.groupby("profile_id").size().reindex(out.index, fill_value=0)
    out["revenue"] = post.groupby("profile_id").revenue.sum().reindex(out.index, fill_value=0.0)
    out["pre_orders"] = pre.groupby("profile_id").size().reindex(out.index, fill_value=0)
    return out.reset_index()


def test_workspace_experiment_matches_a_pandas_computation_per_unit(company: Path, tables: dict[str, pd.DataFrame]) -> None:
    result = _analyze("perso-2025", "--metric", "orders", "--metric", "aov", "--pre-days", "0", workspace=company)
    per_unit = _per_unit_orders(tables)
    arms = {v: g for v, g in per_unit.groupby("variant")}
    assert result["control"] == "holdout" and result["units"] == {v: len(g) for v, g in arms.items()}
    by_metric = {r["metric"]: r for r in result["results"]}
    c, t = arms["holdout"], arms["personalized"]
    orders = by_metric["orders"]
    assert (orders["control_mean"], orders["mean"]) == pytest.approx((c.orders.mean(), t.orders.mean()), rel=1e-12)
    assert orders["abs_p_value"] == pytest.approx(stats.ttest_ind(t.orders, c.orders, equal_var=False).pvalue, rel=1e-9)
    aov = by_metric["aov"]
    assert aov["kind"] == "ratio"
    assert (aov["control_mean"], aov["mean"]) == pytest.approx(
        (c.revenue.sum() / c.orders.sum(), t.revenue.sum() / t.orders.sum()), rel=1e-9
    )


def test_workspace_cuped_uses_the_pre_period_and_equals_ancova(company: Path, tables: dict[str, pd.DataFrame]) -> None:
    result = _analyze("perso-2025", "--metric", "orders", "--pre-days", "30", workspace=company)
    [r] = result["results"]
    per_unit = _per_unit_orders(tables, pre_days=30).assign(treated=lambda d: (d.variant == "personalized").astype(float))
    fit = ols("orders ~ treated + pre_orders", data=per_unit).fit()
    assert r["cuped"] is True and r["abs_effect"] == pytest.approx(fit.params["treated"], rel=1e-9)
    assert r["variance_reduction"] > 0


def test_planted_personalization_lift_is_recovered(company: Path, tables: dict[str, pd.DataFrame]) -> None:
    """The simulation lifts web-shop purchases by 20% for units with >= 2 prior web-shop orders.

    Web-shop orders per unit over all units should then rise by 20% times the share of the
    holdout's web-shop orders that segment places; that share is computed here from the data.
    """
    result = _analyze("perso-2025", "--metric", "orders", "--by", "channel", workspace=company)
    units = _units(tables["assignments"])
    o = tables["orders"].merge(units, on="profile_id")
    web = o[o.source == "webshop"]
    prior = web[web.ordered_at < web.start].groupby("profile_id").size()
    in_segment = set(prior[prior >= PERSONALIZATION_MIN_PRIOR_ORDERS].index)
    valid_post = web[(web.ordered_at >= web.start) & (web.status.isna() | (web.status == "completed"))]
    holdout = valid_post[valid_post.variant == "holdout"]
    share = holdout.profile_id.isin(in_segment).mean()
    expected = PERSONALIZATION_LIFT * share
    channels = {r["channel"]: r for r in result["results"]}
    online = channels["online"]
    assert online["rel_ci_low"] <= expected <= online["rel_ci_high"], (online, expected)
    assert online["rel_ci_low"] > -expected, "the interval is informative: it excludes an opposite effect as large"


def test_experiment_list_metrics_and_errors(company: Path) -> None:
    listed = json.loads(run_cli("experiment", "list", "--format", "json", workspace=company).stdout)
    [e] = listed["experiments"]
    assert e["experiment_id"] == "perso-2025" and e["control"] == "holdout" and set(e["variants"]) == {"holdout", "personalized"}
    usable = json.loads(run_cli("experiment", "metrics", "--format", "json", workspace=company).stdout)
    ids = {m["id"]: m["kind"] for m in usable["metrics"]}
    assert ids["orders"] == "mean" and ids["aov"] == "ratio" and "retention_rate" not in ids
    for args, message in [
        (["nope"], "No assignments for experiment 'nope'"),
        (["perso-2025", "--metric", "retention_rate"], "cannot be measured per experiment unit"),
        (["perso-2025", "--control", "nobody"], "has variants"),
    ]:
        r = run_cli("experiment", "analyze", *args, workspace=company)
        assert r.returncode != 0 and message in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_sequential_analysis_is_wider_and_table_output_reads(company: Path) -> None:
    fixed = _analyze("perso-2025", "--metric", "orders", workspace=company)["results"][0]
    seq = _analyze("perso-2025", "--metric", "orders", "--sequential", workspace=company)["results"][0]
    assert seq["rel_ci_high"] - seq["rel_ci_low"] > fixed["rel_ci_high"] - fixed["rel_ci_low"]
    table = run_cli("experiment", "analyze", "perso-2025", workspace=company)
    assert table.returncode == 0 and "personalized" in table.stdout and "sample ratio" in table.stdout


def test_plan_matches_an_independent_sample_size(company: Path, tables: dict[str, pd.DataFrame]) -> None:
    plan = json.loads(run_cli("experiment", "plan", "--metric", "orders", "--mde", "0.1", "--traffic", "50/day", "--format",
                              "json", workspace=company).stdout)
    con = duckdb.connect(str(company), read_only=True)
    try:
        profiles = con.sql("SELECT DISTINCT profile_id FROM customers WHERE profile_id IS NOT NULL").df()
    finally:
        con.close()
    o = tables["orders"]
    o = o[o.status.isna() | (o.status == "completed")]
    end = o.ordered_at.max()
    recent = o[o.ordered_at >= end - pd.Timedelta(days=28)].groupby("profile_id").size()
    y = recent.reindex(profiles.profile_id, fill_value=0).to_numpy(float)
    assert plan["baseline"] == pytest.approx(y.mean(), rel=1e-9)
    assert plan["sd"] == pytest.approx(y.std(ddof=1), rel=1e-9)
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    n = math.ceil(2 * z**2 * y.var(ddof=1) / (0.1 * y.mean()) ** 2)
    assert plan["plan"]["units_per_arm"] == n
    assert plan["plan"]["days"] == math.ceil(2 * n / 50)


def test_event_metrics_use_the_units_variant_not_the_events_own_variant_column(company: Path) -> None:
    """`events` has a column called `variant` of its own; the experiment's variant must win."""
    result = _analyze("perso-2025", "--metric", "click_through_rate", "--pre-days", "0", workspace=company)
    con = duckdb.connect(str(company), read_only=True)
    try:
        assignments = con.sql("SELECT * FROM assignments WHERE profile_id IS NOT NULL").df()
        events = con.sql("SELECT profile_id, occurred_at, event_type FROM events WHERE profile_id IS NOT NULL "
                         "AND event_type IN ('message_clicked', 'message_sent')").df()
    finally:
        con.close()
    e = events.merge(_units(assignments), on="profile_id")
    e = e[e.occurred_at >= e.start]
    counts = e.groupby(["variant", "event_type"]).size().unstack(fill_value=0)
    ctr = counts.message_clicked / counts.message_sent
    [r] = result["results"]
    assert (r["control_mean"], r["mean"]) == pytest.approx((ctr["holdout"], ctr["personalized"]), rel=1e-12)


def test_profile_dimension_splits_units_and_keeps_those_without_it(company: Path, tables: dict[str, pd.DataFrame]) -> None:
    result = _analyze("perso-2025", "--metric", "orders", "--by", "loyalty_tier", "--pre-days", "0", workspace=company)
    con = duckdb.connect(str(company), read_only=True)
    try:
        tiers = con.sql("SELECT profile_id, max(loyalty_tier) AS tier FROM customers WHERE profile_id IS NOT NULL "
                        "GROUP BY profile_id").df()
    finally:
        con.close()
    per_unit = _per_unit_orders(tables).merge(tiers, on="profile_id", how="left")
    per_unit["tier"] = per_unit["tier"].fillna("(none)")
    expected = per_unit.groupby(["tier", "variant"]).orders.agg(["size", "mean"])
    rows = {r["loyalty_tier"]: r for r in result["results"]}
    assert set(rows) == set(per_unit["tier"]) and "(none)" in rows
    for tier, r in rows.items():
        assert (r["n"], r["control_n"]) == (expected.loc[(tier, "personalized"), "size"], expected.loc[(tier, "holdout"), "size"])
        assert r["mean"] == pytest.approx(expected.loc[(tier, "personalized"), "mean"], rel=1e-12)
