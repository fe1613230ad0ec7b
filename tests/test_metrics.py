"""The semantic layer through its surfaces: the CLI contract, definitions files, segments, baselines,
the online retail acceptance and the simulated company's planted effects.

Numbers are checked against independent computations (pandas on the raw file, scipy, statsmodels),
never against the engine's own earlier output.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cxlens.errors import DefinitionError
from cxlens.ingest import ingest_file, load_mapping, refresh_identity
from cxlens.semantic import Catalog, Measurer, measure
from cxlens.semantic.baseline import Period, compare_periods
from cxlens.semantic.docs import render
from cxlens.workspace import Workspace

from conftest import run_cli
from reference.fixture import fixture_tables
from test_metrics_conformance import fill

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="module")
def fixture_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("metrics") / "shop.duckdb"
    with Workspace.open(path) as ws:
        fill(ws, fixture_tables())
    return path


def cli_json(*args: str, workspace: Path) -> dict:
    res = run_cli(*args, "--format", "json", workspace=workspace)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


# --- the CLI contract ----------------------------------------------------------------------

def test_show_json_contract(fixture_ws: Path) -> None:
    out = cli_json("metrics", "show", "revenue", "--grain", "month", "--by", "channel", workspace=fixture_ws)
    assert out["metric"] == "revenue" and out["grain"] == "month" and out["rows"]
    for row in out["rows"]:
        assert set(row) == {"period_start", "channel", "value", "n"}
        assert len(row["period_start"]) == 10 and row["period_start"][8:] == "01"
    orders = fixture_tables()["orders"]
    valid = orders[orders.status.isna() | (orders.status == "completed")]
    want = valid.groupby([valid.ordered_at.dt.to_period("M"), valid.channel], dropna=False).revenue.sum()
    got = {(pd.Period(r["period_start"], "M"), r["channel"]): r["value"] for r in out["rows"]}
    assert len(got) == len(want)
    for (p, ch), v in want.items():
        assert got[(p, None if pd.isna(ch) else ch)] == pytest.approx(v)


def test_show_ratio_and_grain_all(fixture_ws: Path) -> None:
    out = cli_json("metrics", "show", "open_rate", "--grain", "all", workspace=fixture_ws)
    (row,) = out["rows"]
    assert "period_start" not in row and {"numerator", "denominator"} <= set(row)
    ev = fixture_tables()["events"]
    opened, sent = (ev.event_type == "message_opened").sum(), (ev.event_type == "message_sent").sum()
    assert (row["numerator"], row["denominator"], row["n"]) == (opened, sent, sent)
    assert row["value"] == pytest.approx(opened / sent) and 0 <= row["value"] <= 1


def test_nps_is_in_points_with_shares(fixture_ws: Path) -> None:
    out = cli_json("metrics", "show", "nps", "--grain", "all", workspace=fixture_ws)
    (row,) = out["rows"]
    s = fixture_tables()["survey_responses"]
    scores = s[s.survey_type == "nps"].score
    pro, det = (scores >= 9).mean(), (scores <= 6).mean()
    assert row["value"] == pytest.approx(100 * (pro - det))
    assert row["promoters"] == pytest.approx(pro) and row["detractors"] == pytest.approx(det)
    assert row["promoters"] + row["passives"] + row["detractors"] == pytest.approx(1)


def test_csv_and_table_formats(fixture_ws: Path) -> None:
    res = run_cli("metrics", "show", "bounce_rate", "--grain", "quarter", "--format", "csv", workspace=fixture_ws)
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert rows and {"period_start", "value", "n"} <= set(rows[0]) and 0 <= float(rows[0]["value"]) <= 1
    table = run_cli("metrics", "show", "bounce_rate", "--grain", "quarter", workspace=fixture_ws)
    assert table.returncode == 0 and "%" in table.stdout


def test_list_and_dimensions(fixture_ws: Path) -> None:
    listed = cli_json("metrics", "list", workspace=fixture_ws)["metrics"]
    ids = {m["id"] for m in listed}
    assert {"nps", "retention_rate", "traffic_sources", "engagement_score", "avg_wait_seconds"} <= ids
    assert all(m["timing"] in ("leading", "lagging") and m["description"] for m in listed)
    dims = {d["id"] for d in cli_json("metrics", "dimensions", "conversion_rate", workspace=fixture_ws)["dimensions"]}
    assert {"channel_group", "traffic_source", "device", "country"} <= dims and "store" not in dims


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (("metrics", "show", "revenu"), r"no metric 'revenu'.*Did you mean revenue"),
        (("metrics", "show", "revenue", "--by", "device"), r"revenue cannot be cut by 'device'; it can be cut by: channel"),
        (("metrics", "show", "retention_rate", "--grain", "all"), r"use --grain"),
        (("metrics", "show", "aov", "--since", "2025-02-30"), r"--since must be a date"),
        (("metrics", "show", "aov", "--where", "1 = 1; DROP TABLE orders"), r"is not allowed"),
        (("metrics", "show", "aov", "--where", "nonsense_column > 2"), r"no column `nonsense_column`"),
        (("metrics", "compare", "aov", "--before", "2025-01-01", "--after", "2025-02-01..2025-03-01"), r"START..END"),
    ],
)
def test_errors_are_one_sentence(fixture_ws: Path, args: tuple[str, ...], pattern: str) -> None:
    import re

    res = run_cli(*args, workspace=fixture_ws)
    assert res.returncode != 0
    assert "Traceback" not in res.stderr and re.search(pattern, res.stderr.replace("\n", " ")), res.stderr
    with Workspace.open(fixture_ws) as ws:
        assert ws.table("orders").count().execute() > 0  # the DROP in --where never ran


# --- definitions, segments ------------------------------------------------------------------

DEFINITIONS = """\
metrics:
  - id: big_order_share
    label: Share of orders over 100
    unit: share
    source: orders
    agg: mean
    expr: "CASE WHEN revenue > 100 THEN 1 ELSE 0 END"
    test: proportion
  - id: answers_per_order
    label: Survey answers per order
    unit: ratio
    numerator: {source: surveys, agg: count}
    denominator: {source: orders, agg: count}
dimensions:
  - id: basket
    label: Basket size
    columns: {orders: "CASE WHEN revenue >= 100 THEN 'large' ELSE 'small' END"}
segments:
  - id: repeaters
    label: Two or more orders
    where: "orders >= 2"
  - id: de_loyal
    where: "loyalty_member AND country = 'DE'"
engagement: {recency: 1, frequency: 0, depth: 0, messages: 0}
"""


@pytest.fixture(scope="module")
def defined_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("defined")
    path = folder / "shop.duckdb"
    with Workspace.open(path) as ws:
        fill(ws, fixture_tables())
    (folder / "shop.metrics.yml").write_text(DEFINITIONS)
    return path


def test_user_metric_dimension_and_segments(defined_ws: Path) -> None:
    t = fixture_tables()
    orders = t["orders"]
    valid = orders[orders.status.isna() | (orders.status == "completed")]
    out = cli_json("metrics", "show", "big_order_share", "--grain", "all", "--by", "basket", workspace=defined_ws)
    got = {r["basket"]: (r["value"], r["n"]) for r in out["rows"]}
    large = valid.revenue >= 100
    assert got["large"] == (pytest.approx((valid.revenue[large] > 100).mean()), int(large.sum()))
    assert got["small"] == (0.0, int((~large).sum()))
    ratio = cli_json("metrics", "show", "answers_per_order", "--grain", "all", workspace=defined_ws)["rows"][0]
    assert ratio["value"] == pytest.approx(len(t["survey_responses"]) / len(valid))

    per_profile = valid.dropna(subset=["profile_id"]).groupby("profile_id").size()
    repeaters = set(per_profile[per_profile >= 2].index)
    seg = cli_json("metrics", "show", "aov", "--grain", "all", "--where", "repeaters", workspace=defined_ws)["rows"][0]
    sub = valid[valid.profile_id.isin(repeaters)]
    assert (seg["n"], seg["value"]) == (len(sub), pytest.approx(sub.revenue.mean()))
    by_seg = {r["segment"]: r for r in cli_json("metrics", "show", "orders", "--grain", "all", "--by", "segment", workspace=defined_ws)["rows"]}
    assert by_seg["repeaters"]["value"] == len(sub)
    cust = t["customers"].dropna(subset=["profile_id"]).groupby("profile_id").agg(m=("loyalty_member", "max"), c=("country", "max"))
    de_loyal = set(cust[(cust.m == True) & (cust.c == "DE")].index)  # noqa: E712
    assert by_seg["de_loyal"]["value"] == valid.profile_id.isin(de_loyal).sum()
    check = cli_json("metrics", "check", workspace=defined_ws)
    assert check["metrics"] == ["big_order_share", "answers_per_order"] and check["segments"] == ["repeaters", "de_loyal"]


def test_engagement_weights_from_the_file(defined_ws: Path) -> None:
    """With all weight on recency, every score is 100 × 2^(−days/14): between 0 and 100, 100 for today's activity."""
    out = cli_json("metrics", "show", "engagement_score", "--grain", "all", workspace=defined_ws)["rows"][0]
    with Workspace.open(defined_ws) as ws:
        default = measure(ws, "engagement_score", grain="all", catalog=Catalog.built_in()).frame.value.iloc[0]
    assert 0 < out["value"] <= 100 and out["value"] != pytest.approx(default)


def test_definition_problems_are_listed_with_lines(tmp_path: Path) -> None:
    f = tmp_path / "bad.metrics.yml"
    f.write_text("metrics:\n  - id: x1\n    source: nowhere\n    agg: median\n  - id: revenue\n    source: orders\n    agg: count\n"
                 "segments:\n  - id: s\n    where: \"drop table orders\"\nfoo: 1\n")
    with pytest.raises(DefinitionError) as err:
        Catalog.load(f)
    text = str(err.value)
    for line, what in ((3, "source"), (4, "agg"), (5, "already exists"), (10, "not allowed"), (11, "unknown key")):
        assert f"bad.metrics.yml:{line}:" in text and what in text, text
    f.write_text("metrics:\n  - id: ok1\n    source: orders\n    agg: sum\n    expr: \"revenu * 2\"\n")
    with pytest.raises(DefinitionError, match=r"bad.metrics.yml:2: .*no column `revenu`"):
        Catalog.load(f)


def test_docs_are_generated_from_the_declarations() -> None:
    catalog = Catalog.built_in()
    text = render(catalog)
    assert (ROOT / "docs" / "metrics.md").read_text() == text, "docs/metrics.md is stale: run `cxlens metrics docs --out docs/metrics.md`"
    for m in catalog.metrics.values():
        assert f"### `{m.id}`" in text and m.description, f"{m.id} is undocumented"
    definitions = (ROOT / "docs" / "metric-definitions.md").read_text()
    for m in catalog.metrics:
        assert f"`{m}`" in definitions, f"{m} has no written definition in docs/metric-definitions.md"


# --- baselines ------------------------------------------------------------------------------

def test_compare_matches_scipy_and_statsmodels(fixture_ws: Path) -> None:
    from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

    t = fixture_tables()
    o = t["orders"]
    valid = o[o.status.isna() | (o.status == "completed")]
    b = valid[(valid.ordered_at >= "2025-01-01") & (valid.ordered_at < "2025-04-01")].revenue
    a = valid[(valid.ordered_at >= "2025-04-01") & (valid.ordered_at < "2025-07-01")].revenue
    out = cli_json("metrics", "compare", "aov", "--before", "2025-01-01..2025-03-31", "--after", "2025-04-01..2025-06-30",
                   workspace=fixture_ws)
    (row,) = out["rows"]
    welch = stats.ttest_ind(a, b, equal_var=False)
    ci = welch.confidence_interval(0.95)
    assert row["test"] == "welch_t" and row["p_value"] == pytest.approx(welch.pvalue, rel=1e-6)
    assert (row["ci_low"], row["ci_high"]) == (pytest.approx(ci.low, rel=1e-6), pytest.approx(ci.high, rel=1e-6))

    with Workspace.open(fixture_ws) as ws:
        res = compare_periods(ws, "coupon_redemption_rate", Period.parse("2025-01-01..2025-03-31", "b"),
                              Period.parse("2025-04-01..2025-06-30", "a"))
    has = valid.coupon_code.notna() & (valid.coupon_code != "")
    kb = has[(valid.ordered_at >= "2025-01-01") & (valid.ordered_at < "2025-04-01")]
    ka = has[(valid.ordered_at >= "2025-04-01") & (valid.ordered_at < "2025-07-01")]
    (r,) = res.rows
    _, p = proportions_ztest([ka.sum(), kb.sum()], [len(ka), len(kb)])
    lo, hi = confint_proportions_2indep(ka.sum(), len(ka), kb.sum(), len(kb), method="wald")
    assert r["p_value"] == pytest.approx(p, rel=1e-6) and (r["ci_low"], r["ci_high"]) == (pytest.approx(lo), pytest.approx(hi))

    nps = cli_json("metrics", "compare", "nps", "--before", "2024-11-01..2025-04-30", "--after", "2025-05-01..2025-12-31",
                   workspace=fixture_ws)["rows"][0]
    s = t["survey_responses"]
    s = s[s.survey_type == "nps"]
    def part(lo: str, hi: str) -> tuple[float, float]:
        x = s[(s.responded_at >= lo) & (s.responded_at < hi)].score
        pro, det = (x >= 9).mean(), (x <= 6).mean()
        return 100 * (pro - det), 100**2 * (pro + det - (pro - det) ** 2) / len(x)
    (vb, varb), (va, vara) = part("2024-11-01", "2025-05-01"), part("2025-05-01", "2026-01-01")
    z = (va - vb) / math.sqrt(varb + vara)
    assert nps["absolute"] == pytest.approx(va - vb) and nps["p_value"] == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-6)


def test_retention_compare_uses_the_window_before(fixture_ws: Path) -> None:
    o = fixture_tables()["orders"]
    valid = o[(o.status.isna() | (o.status == "completed")) & o.profile_id.notna()]
    def active(lo: str, hi: str) -> set[str]:
        return set(valid[(valid.ordered_at >= lo) & (valid.ordered_at < hi)].profile_id)
    with Workspace.open(fixture_ws) as ws:
        res = compare_periods(ws, "retention_rate", Period.parse("2025-03-01..2025-04-30", "b"),
                              Period.parse("2025-07-01..2025-08-31", "a"))
    (r,) = res.rows
    prev, cur = active("2024-12-30", "2025-03-01"), active("2025-03-01", "2025-05-01")  # the 61 days before, and the window
    assert r["n_before"] == len(prev) and r["before"] == pytest.approx(len(prev & cur) / len(prev))


# --- acceptance on real data and on the simulated company ------------------------------------

@pytest.fixture(scope="module")
def retail(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    ws = Workspace.open(tmp_path_factory.mktemp("retail") / "retail.duckdb")
    ingest_file(ws, "order_lines", SHARED_DATA / "online_retail" / "online_retail.csv.gz",
                mapping=load_mapping(ROOT / "examples" / "online_retail.yml"))
    refresh_identity(ws)
    yield ws
    ws.close()


def test_online_retail_monthly_kpis_equal_pandas(retail: Workspace) -> None:
    raw = pd.read_csv(SHARED_DATA / "online_retail" / "online_retail.csv.gz", dtype={"InvoiceNo": str, "StockCode": str,
                                                                                        "CustomerID": "Int64"})
    raw["ts"] = pd.to_datetime(raw.InvoiceDate)
    raw["amount"] = raw.Quantity * raw.UnitPrice
    inv = raw.groupby("InvoiceNo").agg(ts=("ts", "min"), revenue=("amount", "sum"), customer=("CustomerID", "first"))
    inv = inv[~inv.index.str.startswith("C")]
    inv["month"] = inv.ts.dt.to_period("M")
    monthly = inv.groupby("month").agg(revenue=("revenue", "sum"), orders=("revenue", "size"), aov=("revenue", "mean"))
    known = inv.dropna(subset=["customer"])
    per = known.groupby(["month", "customer"]).size()
    active = per.groupby(level=0).size()
    repeat = (per >= 2).groupby(level=0).mean()
    sets = {m: set(g.index.get_level_values(1)) for m, g in per.groupby(level=0)}
    months = sorted(sets)
    retention = {m: len(sets[p] & sets[m]) / len(sets[p]) for p, m in zip(months, months[1:])}

    m = Measurer(retail, Catalog.built_in())
    got = {k: m.measure(k, grain="month").frame.set_index("period_start") for k in
           ("revenue", "orders", "aov", "active_customers", "repeat_purchase_rate", "retention_rate")}
    idx = [p.start_time.date() for p in monthly.index]
    assert list(got["revenue"].index) == idx
    np.testing.assert_allclose(got["revenue"].value.to_numpy(), monthly.revenue.to_numpy(), rtol=1e-9)
    np.testing.assert_array_equal(got["orders"].value.to_numpy(), monthly.orders.to_numpy())
    np.testing.assert_allclose(got["aov"].value.to_numpy(), monthly.aov.to_numpy(), rtol=1e-9)
    np.testing.assert_array_equal(got["active_customers"].value.to_numpy(), active.to_numpy())
    np.testing.assert_allclose(got["repeat_purchase_rate"].value.to_numpy(), repeat.to_numpy(), rtol=1e-12)
    ret = got["retention_rate"]
    assert {p.start_time.date(): v for p, v in retention.items()} == pytest.approx(ret.value.to_dict())


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, dict]:
    from cxlens.demo import run_demo

    out = tmp_path_factory.mktemp("company")
    summary = run_demo(out, customers=2_000, days=365, seed=11)
    truth = json.loads((out / "data" / "truth.json").read_text())
    ws = Workspace.open(summary.workspace)
    yield ws, truth
    ws.close()


def test_personalized_email_lift_is_recovered(company: tuple[Workspace, dict]) -> None:
    """Clicks per open rise by the planted lift in personalized newsletters (opens are unaffected)."""
    ws, truth = company
    lift = truth["effects"]["email"]["personalized_ctr_lift"]
    rows = {r["personalized"]: r for r in measure(ws, "click_to_open_rate", grain="all", by=["personalized"]).rows()}
    p, g = rows[True], rows[False]
    ratio = p["value"] / g["value"]
    se = math.sqrt((1 - p["value"]) / p["numerator"] + (1 - g["value"]) / g["numerator"])  # log-ratio, two binomials
    assert abs(math.log(ratio) - math.log(1 + lift)) < 3 * se, (ratio, se)
    opens = {r["personalized"]: r["value"] for r in measure(ws, "open_rate", grain="all", by=["personalized"]).rows()}
    assert abs(opens[True] - opens[False]) < 0.03


def test_bad_support_shows_in_csat_and_churn(company: tuple[Workspace, dict]) -> None:
    """The planted effort effects: unresolved cases lower CSAT and raise churn."""
    ws, truth = company
    folder = Path(ws.path).parent
    (folder / "cxlens.metrics.yml").write_text('segments:\n  - id: unresolved\n    where: "unresolved_cases_90d >= 1"\n')
    try:
        assert truth["effects"]["effort"]["churn_probability_after_bad_case"] > max(truth["effects"]["effort"]["baseline_churn_probability"].values())
        by_seg = measure(ws, "csat_mean", grain="all", by=["segment"]).rows()[0]
        overall = measure(ws, "csat_mean", grain="all").rows()[0]
        assert by_seg["segment"] == "unresolved" and by_seg["value"] < overall["value"] - 0.3
    finally:
        (folder / "cxlens.metrics.yml").unlink()


def test_micro_segments_need_a_declared_parent_without_loops(tmp_path: Path) -> None:
    f = tmp_path / "nest.metrics.yml"
    f.write_text("segments:\n  - id: a\n    where: \"orders > 0\"\n    within: nowhere\n")
    with pytest.raises(DefinitionError, match=r"nest.metrics.yml:2: .*`within` 'nowhere', which is not a declared segment"):
        Catalog.load(f)
    f.write_text("segments:\n  - id: a\n    where: \"orders > 0\"\n    within: b\n  - id: b\n    where: \"orders > 1\"\n    within: a\n")
    with pytest.raises(DefinitionError, match=r"loop of segments: a -> b -> a"):
        Catalog.load(f)
    f.write_text("segments:\n  - id: a\n    where: \"orders > 0\"\n  - id: b\n    where: \"orders > 1\"\n    within: a\n"
                 "  - id: c\n    where: \"revenue > 10\"\n    within: b\n")
    assert Catalog.load(f).segment_condition("c") == "(orders > 0) and (orders > 1) and (revenue > 10)"
