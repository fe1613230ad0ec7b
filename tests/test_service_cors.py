"""Web pages of another origin sending events and survey answers: CORS on the collection endpoints only.

Over real HTTP against `cxlens serve --cors-origin ...`, and in Debian's Chromium: a page served
from an allowed origin posts an event with a write key and it lands in the workspace; a page from
another origin is blocked by the browser, and so is a read request from the allowed one.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_service_helpers import Server, bearer, free_port, new_key

from cxlens.errors import UsageError
from cxlens.service.cors import check_origins
from cxlens.workspace import Workspace

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


class Pages:
    """A static file server on its own port: a second origin for the browser."""

    def __init__(self, folder: Path):
        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
        handler.log_message = lambda *a: None  # type: ignore[method-assign]
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("cors")
    (root / "site").mkdir()
    (root / "site" / "index.html").write_text("<!doctype html><title>shop</title><p>shop</p>", encoding="utf-8")
    shop, other = Pages(root / "site"), Pages(root / "site")
    ws = root / "shop.duckdb"
    keys = {"write": new_key(ws, "write")["key"], "read": new_key(ws, "read")["key"]}
    server = Server(ws, "--cors-origin", shop.origin).start()
    try:
        yield {"ws": ws, "url": server.url, "keys": keys, "shop": shop, "other": other, "server": server}
    finally:
        server.stop()
        shop.close()
        other.close()


def preflight(env: dict[str, Any], path: str, origin: str) -> httpx.Response:
    return httpx.options(env["url"] + path, headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                                                     "Access-Control-Request-Headers": "authorization,content-type"})


def test_origins_are_checked_when_the_service_starts() -> None:
    assert check_origins(["https://Shop.example.com", "https://shop.example.com", "http://127.0.0.1:8080"]) == (
        "https://shop.example.com", "http://127.0.0.1:8080")
    assert check_origins(["*"]) == ("*",)
    for bad in ("shop.example.com", "https://shop.example.com/", "https://shop.example.com/path", "ftp://x.org", ""):
        with pytest.raises(UsageError, match="not an origin"):
            check_origins([bad])


def test_a_bad_origin_stops_serve_with_a_sentence(tmp_path: Path) -> None:
    from conftest import run_cli

    out = run_cli("serve", "--cors-origin", "https://shop.example.com/", workspace=tmp_path / "ws.duckdb")
    assert out.returncode != 0
    assert "not an origin like https://shop.example.com" in out.stderr + out.stdout
    assert "Traceback" not in out.stderr


def test_preflights_answer_the_allowed_origin_on_collection_endpoints_only(env: dict[str, Any]) -> None:
    shop, other = env["shop"].origin, env["other"].origin
    for path in ("/v1/events", "/v1/identify", "/v1/surveys/nps-web/responses"):
        r = preflight(env, path, shop)
        assert r.status_code == 204, (path, r.text)
        assert r.headers["access-control-allow-origin"] == shop
        assert r.headers["access-control-allow-methods"] == "POST"
        assert set(r.headers["access-control-allow-headers"].split(", ")) == {"authorization", "content-type"}
        refused = preflight(env, path, other)
        assert refused.status_code == 403 and "access-control-allow-origin" not in refused.headers
        assert "--cors-origin" in refused.json()["detail"]
    for path in ("/v1/metrics", "/v1/profiles/p1", "/v1/keys", "/dashboard/", "/v1/surveys"):
        r = preflight(env, path, shop)
        assert "access-control-allow-origin" not in r.headers, path


def test_answers_name_the_allowed_origin_and_nothing_else(env: dict[str, Any]) -> None:
    event = {"events": [{"event_id": "cors-h1", "event_type": "page_view", "occurred_at": "2025-03-01T10:00:00Z",
                         "anonymous_id": "a-h1"}]}
    r = httpx.post(env["url"] + "/v1/events", json=event, headers={**bearer(env["keys"]["write"]),
                                                                   "Origin": env["shop"].origin})
    assert r.status_code == 200 and r.json()["accepted"] == 1
    assert r.headers["access-control-allow-origin"] == env["shop"].origin and r.headers["vary"] == "Origin"
    r = httpx.post(env["url"] + "/v1/events", json=event, headers={**bearer(env["keys"]["write"]),
                                                                   "Origin": env["other"].origin})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers  # the browser hides it
    r = httpx.get(env["url"] + "/v1/metrics", headers={**bearer(env["keys"]["read"]), "Origin": env["shop"].origin})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    r = httpx.post(env["url"] + "/v1/events", json=event, headers=bearer(env["keys"]["write"]))
    assert "access-control-allow-origin" not in r.headers  # no Origin, no CORS headers


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (.ci/run installs it)")
def test_a_page_of_the_allowed_origin_sends_events_and_others_are_blocked(env: dict[str, Any]) -> None:
    playwright_api = pytest.importorskip("playwright.sync_api")
    send = """async ([url, key, id]) => {
        try {
            const r = await fetch(url + '/v1/events', {method: 'POST',
                headers: {'Authorization': 'Bearer ' + key, 'Content-Type': 'application/json'},
                body: JSON.stringify({events: [{event_id: id, event_type: 'page_view',
                                                occurred_at: '2025-03-02T10:00:00Z', anonymous_id: 'a-' + id}]})});
            return {status: r.status, body: await r.json()};
        } catch (e) { return {error: String(e)}; }
    }"""
    read = """async ([url, key]) => {
        try { const r = await fetch(url + '/v1/metrics', {headers: {'Authorization': 'Bearer ' + key}});
              return {status: r.status}; }
        catch (e) { return {error: String(e)}; }
    }"""
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            page = browser.new_page()
            page.goto(env["shop"].origin + "/index.html")
            sent = page.evaluate(send, [env["url"], env["keys"]["write"], "cors-b1"])
            assert sent == {"status": 200, "body": {"accepted": 1, "duplicates": 0, "rejected": []}}
            blocked_read = page.evaluate(read, [env["url"], env["keys"]["read"]])
            assert "error" in blocked_read, blocked_read
            page.goto(env["other"].origin + "/index.html")
            blocked = page.evaluate(send, [env["url"], env["keys"]["write"], "cors-b2"])
            assert "error" in blocked, blocked
        finally:
            browser.close()
    env["server"].wait_loaded()
    with Workspace.open(env["ws"]) as ws:
        ids = {r[0] for r in ws.sql("SELECT event_id FROM events WHERE event_id LIKE 'cors-%'").fetchall()}
    assert ids == {"cors-h1", "cors-b1"}  # the blocked page's preflight failed, so its POST was never sent
