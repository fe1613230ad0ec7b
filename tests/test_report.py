"""The HTML report on a real demo workspace through the real CLI: it is written, opens offline,
and its tiles show the numbers an independent pandas computation gives on the same tables."""

from __future__ import annotations

import json
import re
from datetime import date
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from cxlens.report import HEADLINE
from cxlens.report.formatting import format_change, format_value, tone
from cxlens.report import periods

from conftest import run_cli

CONTRACT = {"metric", "label", "value", "previous", "change", "baseline", "baseline_change", "unit"}
BASELINE = "2025-01-01..2025-01-31"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A small simulated company (600 customers, 120 days), ingested, resolved and reported by `cxlens demo`."""
    out = tmp_path_factory.mktemp("report-demo")
    res = run_cli("demo", "--customers", "600", "--days", "120", "--out", str(out))
    assert res.returncode == 0, res.stderr
    return out, res


@pytest.fixture(scope="module")
def demo(demo_run: tuple[Path, Any]) -> Path:
    return demo_run[0]


@pytest.fixture(scope="module")
def default_run(demo: Path) -> tuple[Any, str]:
    """`cxlens report` with the defaults (monthly, baseline = first full period), table output."""
    path = demo / "default.html"
    res = run_cli("report", "--out", str(path), workspace=demo / "cxlens.duckdb")
    assert res.returncode == 0, res.stderr
    return res, path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def baseline_run(demo: Path) -> tuple[dict[str, Any], str]:
    """`cxlens report --baseline ... --format json`."""
    path = demo / "baseline.html"
    res = run_cli("report", "--out", str(path), "--baseline", BASELINE, "--format", "json", workspace=demo / "cxlens.duckdb")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout), path.read_text(encoding="utf-8")


class _Tiles(HTMLParser):
    """Collects every KPI tile's data-* attributes and text."""

    def __init__(self) -> None:
        super().__init__()
        self.tiles: list[dict[str, Any]] = []
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "article" and "tile" in (a.get("class") or ""):
            self.tiles.append({**a, "text": ""})
            self._depth = 1
        elif self._depth and tag == "article":
            self._depth += 1

    def handle_endtag(self, tag: str) -> None:
        if self._depth and tag == "article":
            self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._depth:
            self.tiles[-1]["text"] += data


def tiles_of(html: str) -> dict[str, dict[str, Any]]:
    parser = _Tiles()
    parser.feed(html)
    out: dict[str, dict[str, Any]] = {}
    for t in parser.tiles:
        previous = out.setdefault(t["data-metric"], t)
        assert previous.get("data-value") == t.get("data-value"), "a headline tile differs from its section tile"
    return out


def _frame(ws: Path, sql: str) -> pd.DataFrame:
    con = duckdb.connect(str(ws), read_only=True)
    try:
        return con.execute(sql).df()
    finally:
        con.close()


def _latest_month(df: pd.DataFrame, column: str) -> tuple[date, pd.DataFrame]:
    month = pd.to_datetime(df[column]).dt.to_period("M")
    latest = month.max()
    return latest.start_time.date(), df[month == latest]


# --- the file ---------------------------------------------------------------------------------

def test_demo_ends_with_the_report_and_the_headline_kpis(demo_run: tuple[Path, Any]) -> None:
    out, res = demo_run
    report = out / "report.html"
    assert report.is_file() and "Plotly.newPlot" in report.read_text(encoding="utf-8")
    tail = res.stdout[res.stdout.index("Headline KPIs"):]
    assert str(report.resolve()) in tail
    for label in ("Revenue", "Orders", "Average order value", "Active customers", "Retention rate", "Churn rate",
                  "Net Promoter Score", "CSAT", "Conversion rate", "Engagement score"):
        assert label in tail, label
    summary = json.loads((out / "summary.json").read_text())
    assert summary["report"] == str(report.resolve())
    assert [h["metric"] for h in summary["headline"]] == list(HEADLINE)
    assert summary["seconds"]["report"] > 0


def test_report_is_written_with_a_tile_for_every_metric(default_run: tuple[Any, str]) -> None:
    res, html = default_run
    assert "default.html" in res.stdout and "Headline KPIs" in res.stdout and "Revenue" in res.stdout
    tiles = tiles_of(html)
    from cxlens.semantic import Catalog

    assert set(Catalog.built_in().metrics) <= set(tiles)
    for name in ("Leading indicators", "Lagging indicators", "Value and loyalty", "Web and funnel", "Trends",
                 "By channel", "By traffic source", "By segment", "Engagement score distribution"):
        assert name in html, name
    assert "cxlens.metrics.yml" in html  # the definitions file the demo wrote, named in the footer


def test_report_opens_offline(default_run: tuple[Any, str]) -> None:
    _, html = default_run
    external = re.findall(r"<(?:script|link|img|iframe|source)\b[^>]*\b(?:src|href)\s*=\s*[\"']?(?:https?:)?//", html, re.I)
    assert external == []
    assert re.search(r"<script\b[^>]*\bsrc\s*=", html, re.I) is None  # every script is inline
    assert re.search(r"@import\s+url\(\s*[\"']?https?://", html) is None


def test_plotly_javascript_is_inlined(default_run: tuple[Any, str]) -> None:
    from plotly.offline import get_plotlyjs

    _, html = default_run
    js = get_plotlyjs()
    assert js[:5000] in html and js[-5000:] in html
    assert html.count("Plotly.newPlot") >= 10  # the headline trends at least


def test_metrics_without_data_say_so(default_run: tuple[Any, str]) -> None:
    _, html = default_run
    empty = {m: t for m, t in tiles_of(html).items() if "data-value" not in t}
    assert "survey_response_rate" in empty  # the simulator sends no survey invitations
    for t in empty.values():
        assert "no data" in t["text"]


# --- the numbers ------------------------------------------------------------------------------

def test_revenue_orders_and_aov_tiles_equal_pandas(demo: Path, default_run: tuple[Any, str]) -> None:
    tiles = tiles_of(default_run[1])
    orders = _frame(demo / "cxlens.duckdb", "SELECT ordered_at, revenue, status, profile_id FROM orders")
    valid = orders[orders["status"].isna() | (orders["status"] == "completed")]
    month, latest = _latest_month(valid, "ordered_at")
    expected = {"revenue": latest["revenue"].sum(), "orders": len(latest), "aov": latest["revenue"].mean(),
                "active_customers": latest["profile_id"].dropna().nunique()}
    for metric, value in expected.items():
        assert tiles[metric]["data-period"] == month.isoformat(), metric
        assert float(tiles[metric]["data-value"]) == pytest.approx(value, rel=1e-9), metric


def test_nps_and_csat_tiles_equal_pandas(demo: Path, default_run: tuple[Any, str]) -> None:
    tiles = tiles_of(default_run[1])
    answers = _frame(demo / "cxlens.duckdb", "SELECT responded_at, survey_type, score FROM survey_responses")
    nps_month, nps = _latest_month(answers[answers["survey_type"] == "nps"], "responded_at")
    expected_nps = 100 * ((nps["score"] >= 9).mean() - (nps["score"] <= 6).mean())
    assert tiles["nps"]["data-period"] == nps_month.isoformat()
    assert float(tiles["nps"]["data-value"]) == pytest.approx(expected_nps, abs=1e-9)
    csat_month, csat = _latest_month(answers[answers["survey_type"] == "csat"], "responded_at")
    assert tiles["csat"]["data-period"] == csat_month.isoformat()
    assert float(tiles["csat"]["data-value"]) == pytest.approx((csat["score"] >= 4).mean(), rel=1e-9)


def test_report_measurer_gives_the_same_numbers_as_measure(demo: Path) -> None:
    """The report's shared Measurer (sessions and segments built once) changes speed, not values."""
    from cxlens.semantic import Measurer, catalog_for, measure
    from cxlens.semantic.baseline import Period, compare_periods
    from cxlens.workspace import Workspace

    with Workspace.open(demo / "cxlens.duckdb") as ws, Measurer(ws) as shared:
        plain = catalog_for(ws)
        for metric, by in (("conversion_rate", ("channel_group",)), ("bounce_rate", ()), ("engagement_score", ()),
                           ("revenue", ("segment",)), ("nps", ("segment",))):
            a = measure(ws, metric, grain="month", by=by, catalog=plain).frame
            b = shared.measure(metric, grain="month", by=by).frame
            pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-12, obj=metric)
        before, after = Period.parse("2025-01-01..2025-01-31", "b"), Period.parse("2025-03-01..2025-03-31", "a")
        for metric in ("conversion_rate", "nps", "retention_rate"):
            assert compare_periods(ws, metric, before, after, catalog=plain).rows == shared.compare(metric, before, after).rows


def test_engagement_distribution_counts_every_scored_customer(demo: Path) -> None:
    from cxlens.report.data import Options, engagement_distribution
    from cxlens.report.tiles import tile_from_series
    from cxlens.semantic import Measurer, catalog_for
    from cxlens.workspace import Workspace

    with Workspace.open(demo / "cxlens.duckdb") as ws, Measurer(ws) as measurer:
        catalog = measurer.catalog
        metric = catalog.metric("engagement_score")
        tile = tile_from_series(metric, measurer.measure(metric.id, grain="month").frame, "month", None)
        counts, period, why_not = engagement_distribution(measurer, Options(), tile)
    assert why_not is None and period == tile.current.period
    assert list(counts["band"]) == list(range(0, 100, 10))
    assert counts["customers"].sum() == tile.current.n  # every customer scored in the period, in one band
    assert set(catalog.metrics) == set(catalog_for(ws).metrics)  # the band metrics were temporary


# --- JSON and the baseline --------------------------------------------------------------------

def test_json_output_matches_the_contract(baseline_run: tuple[dict[str, Any], str]) -> None:
    doc, _ = baseline_run
    assert {"path", "metrics", "seconds", "headline"} <= set(doc)
    assert Path(doc["path"]).is_file() and doc["metrics"] >= 50 and doc["seconds"] > 0
    assert [h["metric"] for h in doc["headline"]] == list(HEADLINE)
    for h in doc["headline"]:
        assert CONTRACT <= set(h), h["metric"]
        if h["value"] is not None and h["previous"] is not None:
            assert h["change"] == pytest.approx(h["value"] - h["previous"])
    shares = {h["metric"]: h for h in doc["headline"] if h["unit"] == "share"}
    assert all(0 <= h["value"] <= 1 for h in shares.values() if h["value"] is not None)
    nps = next(h for h in doc["headline"] if h["metric"] == "nps")
    assert nps["unit"] == "points" and -100 <= nps["value"] <= 100


def test_baseline_window_is_compared_with_an_interval(baseline_run: tuple[dict[str, Any], str]) -> None:
    doc, html = baseline_run
    assert f"baseline window {BASELINE}" in html
    assert "95% CI" in html and "significant" in html and "vs baseline" in html
    revenue = next(h for h in doc["headline"] if h["metric"] == "revenue")
    assert revenue["baseline_window"] == {"start": "2025-01-01", "end": "2025-01-31"}
    assert revenue["baseline_change"] == pytest.approx(revenue["value"] - revenue["baseline"])
    conversion = next(h for h in doc["headline"] if h["metric"] == "conversion_rate")
    low, high = conversion["baseline_ci"]
    assert low <= conversion["baseline_change"] <= high
    assert conversion["significant"] == (conversion["p_value"] < 0.05)


def test_a_trailing_partial_period_is_left_out(demo: Path) -> None:
    """Data cut on a Wednesday: that week is partial, so the tiles show the week before, whole."""
    out = demo / "weekly.html"
    res = run_cli("report", "--out", str(out), "--grain", "week", "--until", "2025-03-12", "--format", "json",
                  workspace=demo / "cxlens.duckdb")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["left_out"] == "2025-03-10"
    revenue = next(h for h in doc["headline"] if h["metric"] == "revenue")
    assert revenue["period"] == "2025-03-03"
    orders = _frame(demo / "cxlens.duckdb", "SELECT ordered_at, revenue, status FROM orders")
    week = orders[(orders["ordered_at"] >= "2025-03-03") & (orders["ordered_at"] < "2025-03-10")
                  & (orders["status"].isna() | (orders["status"] == "completed"))]
    assert revenue["value"] == pytest.approx(week["revenue"].sum(), rel=1e-9)
    assert "week of 2025-03-10 is left out" in out.read_text(encoding="utf-8")


@pytest.mark.parametrize("args, words", [
    (("--baseline", "2025-01-01"), "--baseline must be START..END"),
    (("--baseline", "2025-02-30..2025-03-31"), "--baseline must be a date"),
    (("--baseline", "2010-01-01..2010-03-31"), "holds no data"),
    (("--since", "2025-04-01", "--until", "2025-01-01"), "is after --until"),
    (("--since", "April"), "--since must be a date"),
])
def test_bad_options_give_one_sentence(demo: Path, args: tuple[str, ...], words: str) -> None:
    res = run_cli("report", "--out", str(demo / "never.html"), *args, workspace=demo / "cxlens.duckdb")
    assert res.returncode != 0
    assert words in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) <= 2  # one sentence (Rich may wrap it once)
    assert not (demo / "never.html").exists()


def test_empty_workspace_reports_no_data_everywhere(tmp_path: Path) -> None:
    out = tmp_path / "empty.html"
    res = run_cli("report", "--out", str(out), "--format", "json", workspace=tmp_path / "empty.duckdb")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert all(h["value"] is None for h in doc["headline"])
    assert len(doc["no_data"]) == doc["metrics"]
    assert "no data" in out.read_text(encoding="utf-8")


# --- formatting and periods (pure) ------------------------------------------------------------

def test_values_are_formatted_by_unit() -> None:
    assert format_value(0.4787, "share") == "47.9%"
    assert format_value(-6.53, "points") == "−6.5"
    assert format_value(298028.91, "currency", "$") == "$298,029"
    assert format_value(170.79, "currency", "$") == "$170.79"
    assert format_value(245, "seconds") == "4 min 05 s"
    assert format_value(5917.6, "seconds") == "1 h 39 min"
    assert format_value(12_345_678, "count") == "12.3M"
    assert format_value(None, "share") == format_value(float("nan"), "count") == "—"


def test_changes_read_as_pp_points_or_percent() -> None:
    assert format_change(0.50, 0.45, "share") == "+5.0 pp"
    assert format_change(-6.5, 0.0, "points") == "−6.5 pts"
    assert format_change(110.0, 100.0, "currency", "$") == "+10.0%"
    assert format_change(5.0, None, "count") == "—"
    assert tone(0.01, "down") == "bad" and tone(0.01, "up") == "good" and tone(0.01, "none") == "neutral"


def test_period_calendar_matches_the_engine() -> None:
    assert periods.shift(date(2025, 12, 29), "week", -1) == date(2025, 12, 22)
    assert periods.shift(date(2025, 12, 1), "month", -1) == date(2025, 11, 1)
    assert periods.shift(date(2025, 1, 1), "quarter", -1) == date(2024, 10, 1)
    assert periods.last_day(date(2024, 2, 1), "month") == date(2024, 2, 29)
    assert periods.label(date(2025, 10, 1), "quarter") == "2025 Q4"
    assert periods.floor(date(2025, 12, 31), "week") == date(2025, 12, 29)  # weeks start on Monday
    assert periods.floor(date(2025, 11, 15), "quarter") == date(2025, 10, 1)


def test_only_a_trailing_partial_period_with_whole_ones_before_it_is_left_out() -> None:
    from datetime import datetime

    stray = periods.DataSpan(datetime(2025, 1, 1, 8), datetime(2026, 1, 1, 0, 2))  # one order just past the year
    assert stray.trailing_partial("month") == date(2026, 1, 1)
    assert periods.DataSpan(datetime(2025, 1, 1), datetime(2025, 12, 31, 23)).trailing_partial("month") is None
    assert periods.DataSpan(datetime(2025, 1, 5), datetime(2025, 1, 20)).trailing_partial("month") is None


def test_experiments_section_shows_the_analysis_and_its_roi(demo: Path, default_run: tuple[Any, str]) -> None:
    _, html = default_run
    section = html[html.index('<section id="experiments">'):]
    section = section[: section.index("</section>")]
    res = run_cli("experiment", "analyze", "perso-2025", "--format", "json", workspace=demo / "cxlens.duckdb")
    analysis = json.loads(res.stdout)
    assert "perso-2025" in section and f"holdout {analysis['units']['holdout']:,}" in section
    for r in analysis["results"]:
        assert f"{r['rel_effect'] * 100:+.1f}%" in section, r["metric"]
        assert f">{r['verdict']}<" in section
    roi = json.loads(run_cli("roi", "perso-2025", "--format", "json", workspace=demo / "cxlens.duckdb").stdout)
    [total] = roi["total"]
    assert "Return on personalization" in section and f"{total['incremental_orders']['value']:+,.0f}" in section


def test_value_section_checks_the_clv_fit_on_a_holdout_pandas_counts(demo: Path, default_run: tuple[Any, str]) -> None:
    """The holdout's actual repeat purchases and the predicted customers, counted by pandas."""
    _, html = default_run
    section = html[html.index('<section id="value">'):]
    section = section[: section.index("</section>")]
    o = _frame(demo / "cxlens.duckdb", "SELECT profile_id, ordered_at, status FROM orders")
    o = o[(o.status.isna() | (o.status == "completed")) & o.profile_id.notna()]
    o = o.assign(day=pd.to_datetime(o.ordered_at).dt.floor("D"))
    first_day, last_day = o.day.min(), o.day.max()
    end = last_day - pd.Timedelta(days=max(int((last_day - first_day).days * 0.25), 7))
    firsts = o.groupby("profile_id").day.min()
    calibrated = firsts[firsts < end].index
    later = o[o.profile_id.isin(calibrated) & (o.day > end)]
    actual = int(later.groupby("profile_id").day.nunique().sum())
    assert f"Fitted on orders up to {end:%Y-%m-%d}" in section
    assert f"there were {actual:,}" in section
    predicted = int((firsts < last_day).sum())
    assert f"{predicted:,} customers are expected" in section
    assert 'id="clv-distribution"' in section and "Top customers by predicted CLV" in section


def test_value_section_lists_the_declared_segments_with_pandas_counts(demo: Path, default_run: tuple[Any, str]) -> None:
    """The demo declares `lapsing` (orders > 0 and no order in the last 60 days): its row counts
    the same customers and revenue as pandas over the tables."""
    _, html = default_run
    section = html[html.index('<section id="value">'):]
    section = section[: section.index("</section>")]
    assert "Your segments: value and growth potential" in section
    ws = demo / "cxlens.duckdb"
    o = _frame(ws, "SELECT profile_id, ordered_at, revenue, status FROM orders WHERE profile_id IS NOT NULL")
    latest = max(pd.Timestamp(_frame(ws, f"SELECT max({c}) AS m FROM {t}").m.iloc[0]) for t, c in (
        ("orders", "ordered_at"), ("interactions", "started_at"), ("survey_responses", "responded_at"), ("events", "occurred_at")))
    o = o[o.status.isna() | (o.status == "completed")]
    per = o.groupby("profile_id").agg(revenue=("revenue", "sum"), last=("ordered_at", "max"))
    lapsing = per[(latest - pd.to_datetime(per["last"])).dt.total_seconds() / 86_400 > 60]
    row = section[section.index("<td>lapsing</td>"):]
    row = row[: row.index("</tr>")]
    assert f"<td>{len(lapsing):,}</td>" in row
