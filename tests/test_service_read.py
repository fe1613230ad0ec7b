"""The read API for every analysis over real HTTP: `cxlens serve` in a subprocess on one small
simulated company (a real DuckDB file), each endpoint's JSON equal to its CLI command's
`--format json` (the real CLI, in-process through typer's runner), numbers checked against pandas
on the workspace tables, keys and scopes, hostile query values, and GETs that leave the workspace as
they found it.
"""

from __future__ import annotations

import http.client
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import duckdb
import httpx
import pandas as pd
import pytest
import yaml
from test_experiments import _per_unit_orders
from test_service_helpers import Server, bearer
from typer.testing import CliRunner

from cxlens import Workspace
from cxlens.cli import app as cli_app
from cxlens.demo import DEMO_DEFINITIONS
from cxlens.ingest import ingest_file, load_mapping, refresh_identity
from cxlens.service.keys import create_key
from cxlens.simulate import simulate

BEFORE, AFTER = "2025-01-01..2025-03-31", "2025-04-01..2025-06-30"
FUNNEL = "product_view,add_to_cart,purchase"

# (HTTP path, query, CLI arguments): each pair must answer with the same JSON document.
PAIRS: dict[str, tuple[str, dict[str, Any], list[str]]] = {
    "compare": ("/v1/metrics/revenue/compare", {"before": BEFORE, "after": AFTER},
                ["metrics", "compare", "revenue", "--before", BEFORE, "--after", AFTER]),
    "compare_by": ("/v1/metrics/conversion_rate/compare", {"before": BEFORE, "after": AFTER, "by": "channel_group"},
                   ["metrics", "compare", "conversion_rate", "--before", BEFORE, "--after", AFTER, "--by", "channel_group"]),
    "dimensions": ("/v1/dimensions", {}, ["metrics", "dimensions"]),
    "dimensions_of": ("/v1/dimensions", {"metric": "orders"}, ["metrics", "dimensions", "orders"]),
    "segments": ("/v1/segments", {"value": "true"}, ["metrics", "segments", "--value"]),
    "experiments": ("/v1/experiments", {}, ["experiment", "list"]),
    "analyze": ("/v1/experiments/perso-2025", {"metric": "orders,aov", "pre_days": 0},
                ["experiment", "analyze", "perso-2025", "--metric", "orders", "--metric", "aov", "--pre-days", "0"]),
    "roi": ("/v1/experiments/perso-2025/roi", {"by": "channel"}, ["roi", "perso-2025", "--by", "channel"]),
    "roi_content": ("/v1/roi/content", {}, ["roi", "content"]),
    "roi_stages": ("/v1/roi/stages", {"days": 14}, ["roi", "stages", "--days", "14"]),
    "rfm": ("/v1/value/rfm", {}, ["rfm"]),
    "hvc": ("/v1/value/hvc", {"limit": 3, "predict": "false"}, ["hvc", "--limit", "3", "--no-predict"]),
    "paths": ("/v1/journeys/paths", {"limit": 50, "level": "stage"}, ["journeys", "paths", "--limit", "50", "--level", "stage"]),
    "funnel": ("/v1/journeys/funnel", {"steps": FUNNEL}, ["journeys", "funnel", "--steps", FUNNEL]),
    "funnel_by": ("/v1/journeys/funnel", {"steps": FUNNEL, "window_days": 30, "by": "loyalty_tier"},
                  ["journeys", "funnel", "--steps", FUNNEL, "--window-days", "30", "--by", "loyalty_tier"]),
    "friction": ("/v1/journeys/friction", {}, ["journeys", "friction"]),
    "map": ("/v1/journeys/map", {"min_customers": 5}, ["journeys", "map", "--min-customers", "5"]),
    "attribution": ("/v1/attribution", {}, ["attribution"]),
    "attribution_linear": ("/v1/attribution", {"model": "linear", "by": "campaign"},
                           ["attribution", "--model", "linear", "--by", "campaign"]),
}
CLV = ["clv", "predict", "--horizon", "26w"]
HOSTILE = ["' OR 1=1; DROP TABLE orders; --", "<script>alert(1)</script>", "../../etc/passwd", "x" * 5_000, "x" * 100_000]


def same(got: Any, want: Any, where: str = "") -> None:
    """Equal structure and values; floats to 1e-9 relative (DuckDB sums in parallel, so a total's last
    digits may differ between two runs of the same query)."""
    if isinstance(want, float) and isinstance(got, (int, float)):
        assert got == pytest.approx(want, rel=1e-9, abs=1e-12), where
    elif isinstance(want, dict):
        assert isinstance(got, dict) and list(got) == list(want), (where, got, want)
        for k in want:
            same(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), (where, got, want)
        for i, (g, w) in enumerate(zip(got, want)):
            same(g, w, f"{where}[{i}]")
    else:
        assert got == want and type(got) is type(want), (where, got, want)


def cli(ws: Path, args: list[str]) -> Any:
    """The real CLI's JSON answer (in-process: a subprocess per command would cost seconds each)."""
    result = CliRunner().invoke(cli_app, ["--workspace", str(ws), *args, "--format", "json"])
    assert result.exit_code == 0, (args, result.output, result.exception)
    return json.loads(result.stdout)


def connect(ws: Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection, waiting out the moments the server has the file open (it reloads keys every few seconds)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return duckdb.connect(str(ws), read_only=True)
        except duckdb.IOException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def table(ws: Path, sql: str) -> pd.DataFrame:
    con = connect(ws)
    try:
        return con.sql(sql).df()
    finally:
        con.close()


def state(ws: Path) -> dict[str, Any]:
    """Row counts of every table, and the content of the tables the CLI writes (a GET that rewrote
    them with the same row count would still show)."""
    con = connect(ws)
    try:
        names = [r[0] for r in con.sql("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()]
        out: dict[str, Any] = {n: con.sql(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}
        for n in ("customer_value", "clv_predictions"):
            out[n + " content"] = int(pd.util.hash_pandas_object(con.sql(f"SELECT * EXCLUDE (evidence) FROM {n}"
                                                                         if n == "customer_value" else f"SELECT * FROM {n}").df(),
                                                                 index=False).sum())
        return out
    finally:
        con.close()


@pytest.fixture(scope="session")
def company(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """300 simulated customers over 150 days, ingested and resolved; the CLI's JSON for every pair
    taken first, then the server started with its keys, asked for CLV before `cxlens clv predict`
    stored any, and the predictions made."""
    root = tmp_path_factory.mktemp("read-api")
    sim = simulate(root / "data", customers=300, days=150, seed=5)
    ws = root / "cxlens.duckdb"
    ws.with_name("cxlens.metrics.yml").write_text(DEMO_DEFINITIONS)
    with Workspace.open(ws) as w:
        for f in json.loads(sim.truth_path.read_text())["files"]:
            mapping = load_mapping(root / "data" / f["mapping"])
            ingest_file(w, mapping.table, root / "data" / f["file"], mapping=mapping)
        refresh_identity(w)
        keys = {scope: create_key(w, scope, f"{scope}-key")[0] for scope in ("read", "write", "admin")}
    expected = {name: cli(ws, args) for name, (_, _, args) in PAIRS.items()}
    server = Server(ws).start()
    try:
        before_clv = httpx.get(server.url + "/v1/clv", headers=bearer(keys["read"]), timeout=60)
        expected["clv"] = cli(ws, CLV)  # next to the running server, as docs/service.md says the CLI works
        yield {"ws": ws, "url": server.url, "keys": keys, "cli": expected, "state": state(ws), "before_clv": before_clv}
    finally:
        server.stop()


def get(company: dict[str, Any], path: str, key: str | None = "read", **params: Any) -> httpx.Response:
    headers = bearer(company["keys"][key]) if key else {}
    return httpx.get(company["url"] + path, params=params, headers=headers, timeout=120)


def raw_get(company: dict[str, Any], path: str, params: dict[str, Any]) -> tuple[int, str | None, bytes]:
    """A read-key GET through http.client: httpx refuses URLs over 64 kB before sending them."""
    url = urlsplit(company["url"])
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
    try:
        conn.request("GET", quote(path) + ("?" + urlencode(params) if params else ""), headers=bearer(company["keys"]["read"]))
        answer = conn.getresponse()
        return answer.status, answer.getheader("content-type"), answer.read()
    finally:
        conn.close()


@pytest.fixture(scope="session")
def answers(company: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, (path, params, _) in PAIRS.items():
        r = get(company, path, **params)
        assert r.status_code == 200, (name, r.text)
        assert r.headers["content-type"] == "application/json"
        out[name] = r.json()
    return out


@pytest.mark.parametrize("name", list(PAIRS))
def test_each_endpoint_answers_the_cli_json(company: dict[str, Any], answers: dict[str, Any], name: str) -> None:
    same(answers[name], company["cli"][name], name)


def test_baseline_values_equal_pandas(company: dict[str, Any], answers: dict[str, Any]) -> None:
    orders = table(company["ws"], "SELECT ordered_at, revenue, status FROM orders")
    valid = orders[orders.status.isna() | (orders.status == "completed")]
    day = valid.ordered_at.dt.strftime("%Y-%m-%d")
    (row,) = answers["compare"]["rows"]
    assert row["before"] == pytest.approx(valid[(day >= "2025-01-01") & (day <= "2025-03-31")].revenue.sum())
    assert row["after"] == pytest.approx(valid[(day >= "2025-04-01") & (day <= "2025-06-30")].revenue.sum())
    assert row["after"] > 0 and row["before"] > 0


def test_segments_and_dimensions(company: dict[str, Any], answers: dict[str, Any]) -> None:
    declared = yaml.safe_load(DEMO_DEFINITIONS)["segments"]
    assert [s["id"] for s in answers["segments"]["segments"]] == [s["id"] for s in declared]
    members = table(company["ws"], "SELECT count(*) AS n FROM profiles WHERE loyalty_member").n.iloc[0]
    measured = {r["segment"]: r for r in answers["segments"]["value"]}
    assert measured["loyalty_members"]["customers"] == members > 0
    assert {d["id"] for d in answers["dimensions_of"]["dimensions"]} <= {d["id"] for d in answers["dimensions"]["dimensions"]}


def test_experiment_arms_equal_pandas(company: dict[str, Any], answers: dict[str, Any]) -> None:
    ws = company["ws"]
    tables = {"assignments": table(ws, "SELECT * FROM assignments WHERE profile_id IS NOT NULL"),
              "orders": table(ws, "SELECT * FROM orders WHERE profile_id IS NOT NULL")}
    (listed,) = [e for e in answers["experiments"]["experiments"] if e["experiment_id"] == "perso-2025"]
    a = tables["assignments"][tables["assignments"].experiment_id == "perso-2025"]
    assert listed["variants"] == a.groupby("variant").profile_id.nunique().to_dict()
    per_unit = _per_unit_orders(tables)
    result = answers["analyze"]
    assert result["units"] == per_unit.groupby("variant").size().to_dict()
    for r in (r for r in result["results"] if r["metric"] == "orders"):
        assert r["mean"] == pytest.approx(per_unit[per_unit.variant == r["variant"]].orders.mean())
        assert r["control_mean"] == pytest.approx(per_unit[per_unit.variant == result["control"]].orders.mean())
    assert answers["roi"]["units"] == result["units"]


def test_value_counts_equal_pandas(company: dict[str, Any], answers: dict[str, Any]) -> None:
    buyers = table(company["ws"], "SELECT count(DISTINCT profile_id) AS n FROM orders WHERE profile_id IS NOT NULL "
                                  "AND (status IS NULL OR status = 'completed')").n.iloc[0]
    assert answers["rfm"]["customers"] == answers["hvc"]["customers"] == buyers
    assert sum(s["customers"] for s in answers["rfm"]["segments"]) == buyers
    assert all(len(c["top"]) <= 3 for c in answers["hvc"]["classes"])


def test_clv_reads_the_stored_predictions(company: dict[str, Any]) -> None:
    r = get(company, "/v1/clv")
    assert r.status_code == 200, r.text
    api, predicted = r.json(), company["cli"]["clv"]
    for k in ("model", "horizon", "basis", "table", "top"):
        assert api[k] == predicted[k], k
    same(api["summary"], predicted["summary"], "summary")
    stored = table(company["ws"], "SELECT clv, p_alive, predicted_at FROM clv_predictions")
    assert api["summary"]["customers"] == len(stored) > 0
    assert api["summary"]["mean_clv"] == pytest.approx(stored.clv.mean())
    assert api["predicted_at"] == stored.predicted_at.max().isoformat()


def test_clv_before_any_prediction_says_what_to_run(company: dict[str, Any]) -> None:
    r = company["before_clv"]
    assert r.status_code == 404 and "run `cxlens clv predict`" in r.json()["detail"]


def test_journey_numbers_equal_pandas(company: dict[str, Any], answers: dict[str, Any]) -> None:
    events = table(company["ws"], "SELECT profile_id, event_type FROM events WHERE profile_id IS NOT NULL")
    viewers = events[events.event_type == "product_view"].profile_id.nunique()
    first = [r for r in answers["funnel"]["rows"] if r["step_index"] == 1]
    assert [r["profiles"] for r in first] == [viewers]
    assert sum(r["share"] for r in answers["paths"]["paths"]) <= 1 + 1e-9
    cases = table(company["ws"], "SELECT count(DISTINCT coalesce(case_id, interaction_id)) AS n FROM interactions "
                                 "WHERE profile_id IS NOT NULL").n.iloc[0]
    assert answers["friction"]["prevalence"]["cases"] == cases
    assert 0 <= answers["map"]["churn_rate"] <= 1 and answers["map"]["touchpoints"]


def test_attribution_credits_add_up_to_the_orders(company: dict[str, Any], answers: dict[str, Any]) -> None:
    orders = table(company["ws"], "SELECT count(*) AS n FROM orders WHERE profile_id IS NOT NULL "
                                  "AND (status IS NULL OR status = 'completed')").n.iloc[0]
    for name in ("attribution", "attribution_linear"):
        a = answers[name]
        assert sum(c["conversions"] for c in a["channels"]) == pytest.approx(a["total_conversions"])
        assert a["total_conversions"] + a["unattributed_conversions"] == pytest.approx(orders)


ENDPOINTS = sorted({path for path, _, _ in PAIRS.values()} | {"/v1/clv"})


@pytest.mark.parametrize("path", ENDPOINTS)
def test_only_read_keys_read(company: dict[str, Any], path: str) -> None:
    assert get(company, path, key=None).status_code == 401
    assert httpx.get(company["url"] + path, headers=bearer("cxk_" + "B" * 43), timeout=30).status_code == 401
    for scope in ("write", "admin"):
        r = get(company, path, key=scope)
        assert r.status_code == 403 and "needs a `read` key" in r.json()["detail"], (scope, r.text)


@pytest.mark.parametrize("hostile", HOSTILE, ids=["sql", "html", "path", "5kB", "100kB"])
def test_hostile_query_values_are_refused_or_inert(company: dict[str, Any], hostile: str) -> None:
    probes = [("/v1/metrics/revenue/compare", {"before": hostile, "after": AFTER}),
              ("/v1/metrics/revenue/compare", {"before": BEFORE, "after": AFTER, "by": hostile}),
              ("/v1/metrics/revenue/compare", {"before": BEFORE, "after": AFTER, "where": hostile}),
              ("/v1/dimensions", {"metric": hostile}),
              ("/v1/experiments/" + hostile, {}),
              ("/v1/experiments/perso-2025", {"metric": hostile}),
              ("/v1/experiments/perso-2025", {"by": hostile}),
              ("/v1/experiments/perso-2025/roi", {"cost_channel": hostile}),
              ("/v1/value/hvc", {"as_of": hostile}),
              ("/v1/journeys/funnel", {"steps": hostile}),
              ("/v1/journeys/funnel", {"by": hostile}),
              ("/v1/journeys/paths", {"level": hostile}),
              ("/v1/attribution", {"model": hostile}),
              ("/v1/roi/content", {"since": hostile})]
    for path, params in probes:
        status, kind, body = raw_get(company, path, params)
        assert 400 <= status < 500 or status == 200, (path, params.keys(), status, body[:300])
        refused_by_http_server = status == 400 and body == b"Invalid HTTP request received."  # uvicorn: request line too long
        assert b"Traceback" not in body and (kind == "application/json" or refused_by_http_server), (path, kind, body[:300])
        assert len(body) < 20_000, (path, params.keys(), len(body))


def test_bad_values_name_the_parameter(company: dict[str, Any]) -> None:
    for path, params, field in (("/v1/attribution", {"model": "magic"}, "model"),
                                ("/v1/attribution", {"order": 7}, "order"),
                                ("/v1/journeys/paths", {"limit": 0}, "limit"),
                                ("/v1/value/hvc", {"k": -1}, "k"),
                                ("/v1/experiments/perso-2025", {"alpha": 0.9}, "alpha"),
                                ("/v1/metrics/revenue/compare", {"after": AFTER}, "before")):
        r = get(company, path, **params)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == field, (path, r.text)
    sentence = get(company, "/v1/metrics/revenue/compare", before="2025-03-01..2025-01-01", after=AFTER)
    assert sentence.status_code == 400 and sentence.json()["detail"].startswith("before ends")
    order = get(company, "/v1/attribution", model="linear", order=2)
    assert order.status_code == 400 and "order" in order.json()["detail"]
    assert get(company, "/v1/metrics/no_such_metric/compare", before=BEFORE, after=AFTER).status_code == 404
    assert get(company, "/v1/experiments/no-such-experiment").status_code in (400, 404)


def test_gets_leave_the_workspace_as_they_found_it(company: dict[str, Any], answers: dict[str, Any]) -> None:
    for path in ("/v1/value/rfm", "/v1/value/hvc", "/v1/clv"):
        assert get(company, path).status_code == 200
    assert state(company["ws"]) == company["state"]


def test_every_read_endpoint_is_documented(company: dict[str, Any]) -> None:
    spec = httpx.get(company["url"] + "/openapi.json", timeout=30).json()
    paths = [p for p, ops in spec["paths"].items() if "analyses" in ops.get("get", {}).get("tags", [])]
    assert len(paths) == 16
    doc = re.sub(r"\{[^}]+\}", "{}", (Path(__file__).parents[1] / "docs" / "service.md").read_text())
    for path in paths:
        assert re.search(r"`GET " + re.escape(re.sub(r"\{[^}]+\}", "{}", path)) + r"[`?\[]", doc), path
