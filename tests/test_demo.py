"""End to end on the simulated company: every export ingests with its mapping, and the result
matches the simulation's truth (identity precision/recall, quarantine reasons, duplicates)."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from cxlens.demo import run_demo

from conftest import run_cli


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("demo")
    return run_demo(out, customers=1500, days=120, seed=3), out


def test_identity_matches_truth(demo) -> None:
    s, _ = demo
    assert s.identity["precision"] >= 0.99
    assert s.identity["recall"] >= 0.98
    assert s.profiles > 0


def test_every_dirty_row_quarantined_with_the_right_reason_and_no_clean_row(demo) -> None:
    s, out = demo
    d = s.dirty_check
    assert d["planted"] > 0
    assert d["quarantined_right"] == d["planted"], d
    assert d["wrong_reason"] == 0 and d["missed"] == 0
    assert d["clean_rows_quarantined"] == 0


def test_duplicates_and_row_counts_match_truth(demo) -> None:
    s, out = demo
    truth = json.loads((out / "data" / "truth.json").read_text())
    assert s.duplicates == len(truth["duplicates"])
    import duckdb

    con = duckdb.connect(s.workspace, read_only=True)
    read = {Path(f).name: n for f, n in con.execute("SELECT file, rows_read FROM sources").fetchall()}
    con.close()
    assert read == {f["file"]: f["rows"] for f in truth["files"]}


def test_demo_writes_the_report_with_the_headline_kpis(demo) -> None:
    from cxlens.report import HEADLINE

    s, out = demo
    assert Path(s.report) == (out / "report.html").resolve() and Path(s.report).is_file()
    assert [h["metric"] for h in s.headline] == list(HEADLINE)
    by_id = {h["metric"]: h for h in s.headline}
    for metric in ("revenue", "orders", "aov", "active_customers", "nps", "csat", "conversion_rate", "engagement_score"):
        assert by_id[metric]["value"] is not None and by_id[metric]["period"], metric
    assert by_id["retention_rate"]["value"] + by_id["churn_rate"]["value"] == pytest.approx(1.0)  # same customers
    summary = json.loads(json.dumps(s.to_dict()))  # the JSON summary carries the path and the headline
    assert summary["report"] == s.report and len(summary["headline"]) == len(HEADLINE)
    assert s.seconds["report"] > 0 and (out / "cxlens.metrics.yml").is_file()


def test_reingesting_every_export_loads_nothing(demo) -> None:
    s, out = demo
    truth = json.loads((out / "data" / "truth.json").read_text())
    for f in truth["files"]:
        res = run_cli("ingest", f["table"], str(out / "data" / f["file"]), "--mapping", str(out / "data" / f["mapping"]),
                      "--format", "json", "--no-resolve", workspace=Path(s.workspace))
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout)["rows_loaded"] == 0, f["file"]


def test_demo_analyzes_the_personalization_experiment(demo) -> None:
    summary, _ = demo
    e = summary.experiment
    assert e["experiment_id"] == "perso-2025" and e["planted_lift"] == 0.2
    r = e["online_orders_per_unit"]
    assert r["variant"] == "personalized" and r["n"] > 0 and r["control_n"] > 0
    assert r["rel_ci_low"] < r["rel_effect"] < r["rel_ci_high"]
    assert e["srm_p_value"] > 0.001  # the simulator assigns at random


def test_demo_values_customers_and_writes_the_tables(demo) -> None:
    s, out = demo
    con = duckdb.connect(str(out / "cxlens.duckdb"), read_only=True)
    try:
        classes = con.execute("SELECT sum(hvc::INT), sum(lapsing_hvc::INT), sum(emerging_hvc::INT), sum(high_volume::INT) "
                              "FROM customer_value").fetchone()
        clv = con.execute("SELECT sum(clv), count(*) FROM clv_predictions").fetchone()
    finally:
        con.close()
    assert tuple(s.value["classes"].values()) == classes
    assert s.value["clv_52w"] == pytest.approx(clv[0], abs=0.01) and clv[1] > 100
    assert 0 <= s.value["hvc_precision"] <= 1 and 0 <= s.value["hvc_recall"] <= 1


def test_demo_reports_journeys_friction_and_attribution(demo) -> None:
    """The report gains the Journeys and Attribution sections with their charts; the demo summary
    carries the friction costs beside the planted CES formula and the exact Markov credits."""
    s, _ = demo
    html = Path(s.report).read_text()
    for anchor in ('<section id="journeys">', '<section id="attribution">', 'id="journeys-sankey"', 'id="journeys-funnel"',
                   'id="attribution-models"', 'href="#attribution"'):
        assert anchor in html, anchor
    j, a = s.journeys, s.attribution
    assert j["ces_effects"]["Repeat contacts"].startswith("−")  # each extra contact lowers CES (planted −0.9)
    assert "0.9*(contacts-1)" in j["planted_ces"]
    shares = [float(v.rstrip("%")) for v in a["markov_shares"].values()]
    assert len(shares) >= 3 and sum(shares) == pytest.approx(100.0, abs=0.1 * len(shares))
    credited = int(a["credited_orders"].replace(",", ""))
    unattributed, total = (int(x.replace(",", "")) for x in a["unattributed"].split(" orders")[0].split(" of "))
    assert credited + unattributed == total


def test_demo_defines_surveys_fills_the_outbox_and_leaves_a_dashboard_key(demo) -> None:
    """The outbox the demo reports is the table's content, each link verifies for its survey and
    customer, nobody is invited twice by one survey, and the printed key is an active read key."""
    from cxlens import Workspace
    from cxlens.service.keys import active_keys, hash_key
    from cxlens.service.surveys import secret, verify

    s, _ = demo
    sv = s.service
    assert sv["surveys"] == ["ces-support", "csat-delivery"]
    with Workspace.open(s.workspace) as ws:
        rows = ws.sql("SELECT survey_id, customer_id, token, url, profile_id FROM survey_outbox").fetchall()
        key = secret(ws)
        keys = active_keys(ws)
    assert len(rows) == sv["invited"] > 0
    assert len({(r[0], r[4]) for r in rows}) == len(rows)
    for survey_id, customer_id, token, url, _ in rows:
        assert verify(key, survey_id, token).customer_id == customer_id
        assert url.startswith(f"http://127.0.0.1:8000/s/{survey_id}?t=")
    record = keys[hash_key(sv["read_key"])]
    assert (record.scope, record.name) == ("read", "demo-dashboard")


def test_demo_saves_the_dashboard_pages_a_server_then_shows_at_once(demo) -> None:
    """Every page's default view is saved at the current data version, and `cxlens serve` on the
    demo workspace answers the overview with that saved view rather than computing it."""
    import json
    from datetime import UTC, datetime
    from pathlib import Path

    from test_dashboard import sign_in
    from test_service_helpers import Server

    from cxlens.service.dashboard.state import views_path
    from cxlens.service.dashboard.views import PAGES, data_stamp

    s, _ = demo
    ws = Path(s.workspace)
    saved = json.loads(views_path(ws).read_text())["views"]
    assert s.service["dashboard_views"] == len(saved) == len(PAGES)
    assert {v["page"] for v in saved} == set(PAGES)
    assert len({tuple(v["stamp"]) for v in saved}) == 1  # one data version (later tests here write to the workspace)
    assert all(v["stamp"][0] <= data_stamp(ws)[0] for v in saved)
    overview = next(v for v in saved if v["page"] == "overview")
    server = Server(ws).start()
    try:
        with sign_in({"url": server.url}, s.service["read_key"]) as client:
            page = client.get("/dashboard/")
        assert page.status_code == 200
        as_of = datetime.fromtimestamp(overview["as_of"], UTC).isoformat(timespec="seconds")
        assert f'data-as-of="{as_of}"' in page.text
        assert 'data-metric="revenue"' in page.text
    finally:
        server.stop()
