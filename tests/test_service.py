"""The HTTP service over real HTTP: `cxlens serve` in a subprocess, a real DuckDB file, the real CLI.

Keys and scopes, collection (partial acceptance, duplicates, limits, hostile input), identify
feeding identity resolution, the read API against the CLI's JSON and against pandas, and the CLI
working on the same workspace while the server runs and loads.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
from conftest import run_cli
from test_service_helpers import Server, bearer, new_key

from cxlens import Workspace
from cxlens.service.keys import create_key

ORDERS = pd.DataFrame({
    "order_id": ["o1", "o2", "o3", "o4", "o5"],
    "customer_id": ["42", "42", "7", "7", "9"],
    "email": ["ann@example.com", "ann@example.com", "bob@example.com", "bob@example.com", None],
    "ordered_at": ["2025-01-05 10:00:00", "2025-02-11 09:30:00", "2025-01-20 18:00:00", "2025-02-02 12:00:00",
                   "2025-02-27 08:15:00"],
    "revenue": [100.0, 40.5, 12.25, 80.0, 5.0],
    "status": ["completed", "completed", "completed", "returned", None],
})


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("service")
    ws = root / "shop.duckdb"
    keys = {"write": new_key(ws, "write", "--name", "website")}  # the CLI's JSON contract
    with Workspace.open(ws) as w:  # the rest through the Python API: each CLI start costs seconds
        for label, scope, name, pii in (("read", "read", "analyst", False), ("pii", "read", "privacy", True),
                                        ("admin", "admin", "ops", False), ("revoked", "read", "gone", False)):
            key, record = create_key(w, scope, name, pii=pii)
            keys[label] = {"key": key, "scope": scope, "name": name, "pii": record.pii}
    assert run_cli("keys", "revoke", "gone", workspace=ws).returncode == 0
    server = Server(ws, "--source", "webshop", "--load-interval", "0.3").start()
    try:
        yield {"ws": ws, "root": root, "keys": {k: v["key"] for k, v in keys.items()}, "created": keys,
               "server": server, "url": server.url}
    finally:
        code = server.stop()  # uvicorn re-raises SIGTERM after its graceful shutdown
        assert code in (0, -15) and "Application shutdown complete" in server.log.read_text(), server.log.read_text()[-3000:]


def post(env: dict, path: str, body: object, key: str = "write") -> httpx.Response:
    return httpx.post(env["url"] + path, json=body, headers=bearer(env["keys"][key]), timeout=30)


def get(env: dict, path: str, key: str | None = "read", **params: object) -> httpx.Response:
    headers = bearer(env["keys"][key]) if key else {}
    return httpx.get(env["url"] + path, params=params, headers=headers, timeout=60)


def rows(ws: Path, sql: str) -> list[tuple]:
    with Workspace.open(ws) as w:
        return w.sql(sql).fetchall()


def test_keys_create_json_contract_and_hashed_storage(env: dict) -> None:
    created = env["created"]["write"]
    assert set(created) >= {"key", "scope", "name"}
    assert (created["scope"], created["name"]) == ("write", "website")
    assert created["key"].startswith("cxk_") and len(created["key"]) == 47
    assert env["created"]["pii"]["pii"] is True
    listed = json.loads(run_cli("keys", "list", "--format", "json", workspace=env["ws"]).stdout)["keys"]
    by_name = {k["name"]: k for k in listed}
    assert set(by_name) == {"website", "analyst", "privacy", "ops", "gone"}
    assert by_name["gone"]["revoked_at"] is not None and by_name["website"]["revoked_at"] is None
    assert "key" not in by_name["website"]
    stored = dict(rows(env["ws"], "SELECT name, key_hash FROM service_keys"))
    assert stored["website"] == hashlib.sha256(created["key"].encode()).hexdigest()
    assert created["key"].encode() not in env["ws"].read_bytes()


def test_keys_cli_errors_are_sentences(env: dict) -> None:
    dup = run_cli("keys", "create", "--scope", "read", "--name", "analyst", workspace=env["ws"])
    assert dup.returncode != 0 and "already exists" in dup.stderr and "Traceback" not in dup.stderr


ENDPOINTS = [("POST", "/v1/events", "write"), ("POST", "/v1/identify", "write"), ("GET", "/v1/metrics", "read"),
             ("GET", "/v1/metrics/revenue", "read"), ("GET", "/v1/profiles/x", "read"), ("GET", "/v1/keys", "admin"),
             ("POST", "/v1/keys", "admin"), ("DELETE", "/v1/keys/nobody", "admin")]


@pytest.mark.parametrize(("method", "path", "scope"), ENDPOINTS)
def test_every_endpoint_refuses_missing_unknown_revoked_and_wrong_scope_keys(env: dict, method: str, path: str, scope: str) -> None:
    url = env["url"] + path
    for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Basic dXNlcjpwYXNz"},
                    bearer("cxk_" + "A" * 43), bearer("' OR 1=1 --"), bearer(env["keys"]["revoked"])):
        r = httpx.request(method, url, headers=headers, json={}, timeout=30)
        assert r.status_code == 401, (headers, r.text)
        assert r.headers["www-authenticate"] == "Bearer"
    for other in ("write", "read", "admin"):
        if other != scope:
            r = httpx.request(method, url, headers=bearer(env["keys"][other]), json={}, timeout=30)
            assert r.status_code == 403, (other, r.text)
            assert f"needs a `{scope}` key" in r.json()["detail"]


BATCH = [
    {"event_id": "c-1", "event_type": "page_view", "occurred_at": "2025-03-01T10:00:00Z", "anonymous_id": "v-1",
     "page_url": "/home", "personalized": "yes", "value": "2.5", "properties": {"ab": [1, 2]}},
    {"event_id": "c-2", "event_type": "purchase", "occurred_at": "2025-03-01T12:30:00+02:00", "customer_id": 42, "value": 19.99},
    {"event_type": "page_view"},
    {"event_id": "c-4", "event_type": "page_view", "occurred_at": "next tuesday"},
    {"event_id": "c-5", "event_type": "page_view", "occurred_at": "2025-03-01", "value": "lots"},
    {"event_id": "c-6", "event_type": "page_view", "occurred_at": "2025-03-01", "personalized": "maybe"},
    {"event_id": "c-7", "event_type": "page_view", "occurred_at": "2025-03-01", "properties": "{not json"},
    {"event_id": "c-8", "event_type": "page_view", "occurred_at": "2025-03-01", "colour": "red"},
    "just a string",
    {"event_id": "c-10", "event_type": {"nested": 1}, "occurred_at": "2025-03-01"},
    {"event_id": "c-11", "event_type": "x" * 5000, "occurred_at": "2025-03-01"},
    {"event_id": "c-1", "event_type": "page_view", "occurred_at": "2025-03-01T10:00:00Z"},
]
NO_ID = {"event_type": "search", "occurred_at": "2025-04-02T08:00:00Z", "anonymous_id": "v-9", "properties": {"q": "shoes"}}
HOSTILE = ["'); DROP TABLE events; --", "<script>alert(1)</script>", "../../../etc/passwd", "\u0000\u202e"]
BROWSE = [{"event_id": f"i-{i}", "event_type": "product_view", "occurred_at": f"2025-06-0{i + 1}T09:00:00Z",
           "anonymous_id": "anon-77"} for i in range(3)]
STREAM = [{"event_id": f"bg-{i}", "event_type": "page_view", "occurred_at": "2025-02-01T00:00:00Z",
           "anonymous_id": f"bg-{i % 7}"} for i in range(300)]


@pytest.fixture(scope="module")
def collected(env: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Everything the collection tests send, sent once; the CLI ingests orders while the server loads."""
    answers = {
        "batch": post(env, "/v1/events", {"events": BATCH}),
        "batch_again": post(env, "/v1/events", {"events": BATCH[:2]}),
        "no_id": post(env, "/v1/events", {"events": [NO_ID, dict(NO_ID)]}),
        "no_id_again": post(env, "/v1/events", {"events": [NO_ID]}),
        "hostile": post(env, "/v1/events", {"events": [
            {"event_id": f"h-{i}", "event_type": h, "occurred_at": "2025-05-01", "page_url": h, "properties": {"s": h}}
            for i, h in enumerate(HOSTILE)]}),
        "browse": post(env, "/v1/events", {"events": BROWSE}),
        "identify": post(env, "/v1/identify", {"anonymous_id": "anon-77", "customer_id": "42", "email": "Ann@Example.com"}),
        "identify_bad": post(env, "/v1/identify", {"anonymous_id": "anon-78"}),
        "stream": post(env, "/v1/events", {"events": STREAM}),
    }
    csv = tmp_path_factory.mktemp("orders") / "orders.csv"
    ORDERS.to_csv(csv, index=False)
    # The server is loading what was just sent: the CLI must wait for it, not fail.
    answers["ingest"] = run_cli("ingest", "orders", str(csv), "--source", "webshop", "--format", "json", workspace=env["ws"])
    answers["status"] = run_cli("collect", "status", "--format", "json", workspace=env["ws"])
    env["server"].wait_loaded()
    return answers


def test_collect_keeps_valid_events_of_a_batch_and_names_each_rejected_one(env: dict, collected: dict) -> None:
    assert collected["batch"].status_code == 200, collected["batch"].text
    assert collected["batch"].json() == {"accepted": 2, "duplicates": 1, "rejected": [
        {"index": 2, "field": "occurred_at", "reason": "missing_required"},
        {"index": 3, "field": "occurred_at", "reason": "bad_timestamp"},
        {"index": 4, "field": "value", "reason": "bad_number"},
        {"index": 5, "field": "personalized", "reason": "bad_boolean"},
        {"index": 6, "field": "properties", "reason": "bad_json"},
        {"index": 7, "field": "colour", "reason": "unknown_field"},
        {"index": 8, "field": None, "reason": "not_an_object"},
        {"index": 9, "field": "event_type", "reason": "not_text"},
        {"index": 10, "field": "event_type", "reason": "too_long"},
    ]}
    assert collected["batch_again"].json() == {"accepted": 0, "duplicates": 2, "rejected": []}
    got = rows(env["ws"], "SELECT event_id, occurred_at, event_type, anonymous_id, customer_id, page_url, personalized, value, "
                          "properties, source, record_key FROM events WHERE event_id LIKE 'c-%' ORDER BY event_id")
    assert [(g[0], g[1].isoformat(), g[2], g[3], g[4], g[5], g[6], g[7], json.loads(g[8]) if g[8] else None, g[9], g[10])
            for g in got] == [
        ("c-1", "2025-03-01T10:00:00", "page_view", "v-1", None, "/home", True, 2.5, {"ab": [1, 2]}, "webshop", "c-1"),
        ("c-2", "2025-03-01T10:30:00", "purchase", None, "42", None, None, 19.99, None, "webshop", "c-2"),
    ]


def test_events_without_id_get_a_content_id_so_a_resend_is_a_duplicate(env: dict, collected: dict) -> None:
    assert (collected["no_id"].json()["accepted"], collected["no_id"].json()["duplicates"]) == (1, 1)
    assert collected["no_id_again"].json() == {"accepted": 0, "duplicates": 1, "rejected": []}
    assert rows(env["ws"], "SELECT count(*), min(length(event_id)) FROM events WHERE anonymous_id = 'v-9'") == [(1, 32)]


def test_limits_and_malformed_bodies(env: dict) -> None:
    one = {"event_type": "page_view", "occurred_at": "2025-03-01"}
    too_many = post(env, "/v1/events", {"events": [one] * 1001})
    assert too_many.status_code == 413 and "at most 1000" in too_many.json()["detail"]
    huge = httpx.post(env["url"] + "/v1/events", content=b'{"events": ["' + b"x" * (3 * 1024 * 1024) + b'"]}',
                      headers={**bearer(env["keys"]["write"]), "content-type": "application/json"}, timeout=30)
    assert huge.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must hold on the stream too
        yield b'{"events": ["'
        for _ in range(40):
            yield b"y" * 100_000
        yield b'"]}'

    streamed = httpx.post(env["url"] + "/v1/events", content=chunks(), headers=bearer(env["keys"]["write"]), timeout=30)
    assert streamed.status_code == 413
    bad_json = httpx.post(env["url"] + "/v1/events", content=b"{not json", headers=bearer(env["keys"]["write"]), timeout=30)
    assert bad_json.status_code == 400
    assert post(env, "/v1/events", {"rows": []}).status_code == 422
    assert post(env, "/v1/events", [1, 2]).status_code == 422


def test_hostile_strings_are_stored_as_inert_text(env: dict, collected: dict) -> None:
    assert collected["hostile"].json()["accepted"] == 4
    got = rows(env["ws"], "SELECT event_type, page_url, properties FROM events WHERE event_id LIKE 'h-%' ORDER BY event_id")
    assert [(g[0], g[1], json.loads(g[2])["s"]) for g in got] == [(h, h, h) for h in HOSTILE]
    for path in ("/v1/metrics/..%2F..%2Fetc%2Fpasswd", "/v1/metrics/'%3B DROP TABLE events", "/v1/profiles/%3Cscript%3E"):
        r = get(env, path)
        assert r.status_code in (400, 404), (path, r.text)
        assert r.headers["content-type"] == "application/json" and r.headers["x-content-type-options"] == "nosniff"
    r = get(env, "/v1/metrics/revenue", where="1=1; DROP TABLE events")
    assert r.status_code == 400, r.text
    assert rows(env["ws"], "SELECT count(*) FROM events WHERE event_id LIKE 'h-%'") == [(4,)]


def test_identify_joins_the_anonymous_visitor_to_the_customer(env: dict, collected: dict) -> None:
    assert collected["browse"].json()["accepted"] == 3
    assert collected["identify"].status_code == 200 and collected["identify"].json()["accepted"] == 1
    bad = collected["identify_bad"]
    assert bad.status_code == 422 and bad.json()["rejected"] == [{"index": 0, "field": "customer_id", "reason": "missing_required"}]
    pids = rows(env["ws"], "SELECT DISTINCT profile_id FROM events WHERE anonymous_id = 'anon-77' OR customer_id = '42'")
    assert len(pids) == 1 and pids[0][0] is not None
    # the orders the CLI ingested under the same source name belong to that profile too
    assert rows(env["ws"], "SELECT DISTINCT profile_id FROM orders WHERE customer_id = '42'") == pids


def test_cli_works_while_the_server_runs_and_loads(env: dict, collected: dict) -> None:
    assert collected["stream"].json()["accepted"] == 300
    assert collected["ingest"].returncode == 0, collected["ingest"].stderr
    assert json.loads(collected["ingest"].stdout)["rows_loaded"] == 5
    assert collected["status"].returncode == 0, collected["status"].stderr
    assert set(json.loads(collected["status"].stdout)) == {"backlog", "oldest_seq", "spool"}
    assert rows(env["ws"], "SELECT count(*), count(DISTINCT event_id) FROM events WHERE event_id LIKE 'bg-%'") == [(300, 300)]


def test_metrics_match_the_cli_contract_and_pandas(env: dict, collected: dict) -> None:
    listed = get(env, "/v1/metrics").json()
    cli_list = json.loads(run_cli("metrics", "list", "--format", "json", workspace=env["ws"]).stdout)
    assert listed == cli_list
    api = get(env, "/v1/metrics/revenue", grain="month", since="2025-01-01", until="2025-12-31")
    assert api.status_code == 200, api.text
    cli = run_cli("metrics", "show", "revenue", "--grain", "month", "--since", "2025-01-01", "--until", "2025-12-31",
                  "--format", "json", workspace=env["ws"])
    assert api.json() == json.loads(cli.stdout)
    valid = ORDERS[ORDERS.status.isna() | (ORDERS.status == "completed")].copy()
    valid["month"] = pd.to_datetime(valid.ordered_at).dt.to_period("M").dt.start_time.dt.strftime("%Y-%m-%d")
    expected = valid.groupby("month").revenue.sum().to_dict()
    assert {r["period_start"]: r["value"] for r in api.json()["rows"]} == pytest.approx(expected)
    assert expected == pytest.approx({"2025-01-01": 112.25, "2025-02-01": 45.5})


def test_metric_errors_name_the_bad_parameter(env: dict) -> None:
    assert get(env, "/v1/metrics/no_such_metric").status_code == 404
    grain = get(env, "/v1/metrics/revenue", grain="fortnight")
    assert grain.status_code == 422 and grain.json()["detail"][0]["loc"] == ["query", "grain"]
    since = get(env, "/v1/metrics/revenue", since="yesterday")
    assert since.status_code == 400 and "since" in since.json()["detail"]
    by = get(env, "/v1/metrics/revenue", by="shoe_size")
    assert by.status_code == 400 and "shoe_size" in by.json()["detail"]


def test_profiles_mask_email_unless_the_key_has_pii(env: dict, collected: dict) -> None:
    masked = get(env, "/v1/profiles/ann@example.com")
    assert masked.status_code == 200, masked.text
    assert "ann@example.com" not in masked.text.lower() and "a***@example.com" in masked.text
    raw = get(env, "/v1/profiles/ann@example.com", key="pii")
    assert "ann@example.com" in raw.text
    assert raw.json()["profile"]["profile_id"] == masked.json()["profile"]["profile_id"]
    assert get(env, "/v1/profiles/nobody@nowhere.example").status_code == 404


def test_admin_keys_over_http_and_revocation_is_immediate(env: dict) -> None:
    made = httpx.post(env["url"] + "/v1/keys", json={"scope": "read", "name": "temp"}, headers=bearer(env["keys"]["admin"]), timeout=30)
    assert made.status_code == 201 and set(made.json()) >= {"key", "scope", "name"}
    temp = made.json()["key"]
    assert httpx.get(env["url"] + "/v1/metrics", headers=bearer(temp), timeout=30).status_code == 200
    assert httpx.delete(env["url"] + "/v1/keys/temp", headers=bearer(env["keys"]["admin"]), timeout=30).status_code == 200
    assert httpx.get(env["url"] + "/v1/metrics", headers=bearer(temp), timeout=30).status_code == 401
    names = [k["name"] for k in httpx.get(env["url"] + "/v1/keys", headers=bearer(env["keys"]["admin"]), timeout=30).json()["keys"]]
    assert "temp" in names


def test_docs_health_and_access_log(env: dict) -> None:
    assert httpx.get(env["url"] + "/docs", timeout=30).status_code == 200
    spec = httpx.get(env["url"] + "/openapi.json", timeout=30).json()
    assert {"/v1/events", "/v1/identify", "/v1/metrics", "/v1/metrics/{metric_id}", "/v1/profiles/{identifier}",
            "/healthz"} <= set(spec["paths"])
    health = httpx.get(env["url"] + "/healthz", timeout=30)
    assert health.json()["status"] == "ok" and health.headers["x-content-type-options"] == "nosniff"
    assert set(health.json()["last_load"]) == {"loaded", "duplicates", "quarantined", "batches", "backlog", "seconds"}
    lines = [json.loads(x) for x in env["server"].log.read_text().splitlines() if x.startswith('{"ts"')]
    writes = [x for x in lines if x["path"] == "/v1/events" and x["status"] == 200]
    assert writes and all(x["key"] == "website" and x["ms"] >= 0 for x in writes)
    assert env["keys"]["write"] not in env["server"].log.read_text()


def test_docs_python_example_runs_and_prints_what_it_says(tmp_path: Path) -> None:
    import contextlib
    import io

    from conftest import doc_snippet
    from test_service_helpers import free_port

    code, expected = doc_snippet("service.md")
    code = code.replace("8765", str(free_port()))  # the documented port may be taken on this machine
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "docs/service.md", "exec"), {"__name__": "docs_example"})  # noqa: S102 - the snippet is ours
    assert out.getvalue().splitlines() == expected
