"""Durability of collection: acknowledged events survive SIGKILL, back-pressure, graceful shutdown,
`cxlens collect status|flush`, and workspace opens that wait for another process's lock."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import run_cli
from test_service_helpers import Server, bearer

from cxlens import Workspace
from cxlens.errors import WorkspaceError
from cxlens.service.keys import create_key


def events(prefix: str, n: int) -> list[dict]:
    return [{"event_id": f"{prefix}-{i}", "event_type": "page_view", "occurred_at": "2025-07-01T12:00:00Z",
             "anonymous_id": f"{prefix}-visitor-{i % 13}"} for i in range(n)]


def send(url: str, key: str, batch: list[dict]) -> httpx.Response:
    return httpx.post(url + "/v1/events", json={"events": batch}, headers=bearer(key), timeout=30)


def stored(ws: Path, prefix: str) -> dict[str, int]:
    with Workspace.open(ws) as w:
        return dict(w.sql("SELECT event_id, count(*) FROM events WHERE event_id LIKE ? GROUP BY event_id",
                          [prefix + "-%"]).fetchall())


def test_acknowledged_events_survive_sigkill_backpressure_and_shutdown(tmp_path: Path) -> None:
    ws = tmp_path / "ws.duckdb"
    with Workspace.open(ws) as w:
        key, _ = create_key(w, "write", "loadtest")
    # No periodic loads (only the one at start-up), so everything acknowledged waits in the spool.
    server = Server(ws, "--load-interval", "3600", "--backlog-limit", "1000").start()
    sent = events("k", 500)
    acked: list[str] = []
    for i in range(0, len(sent), 50):
        r = send(server.url, key, sent[i:i + 50])
        assert r.status_code == 200 and r.json()["accepted"] == 50
        acked += [e["event_id"] for e in sent[i:i + 50]]
    server.kill()  # SIGKILL right after the last acknowledgement

    status = run_cli("collect", "status", "--format", "json", workspace=ws)
    assert json.loads(status.stdout)["backlog"] == 500

    server = Server(ws, "--load-interval", "3600", "--backlog-limit", "1000").start()  # loads the spool at start-up
    server.wait_loaded()
    assert stored(ws, "k") == {e: 1 for e in acked}

    again = send(server.url, key, sent[:50])  # a client retrying after the crash
    assert again.json() == {"accepted": 0, "duplicates": 50, "rejected": []}

    more = events("m", 1100)
    codes = [send(server.url, key, more[i:i + 50]).status_code for i in range(0, 1000, 50)]
    assert codes == [200] * 20
    full = send(server.url, key, more[1000:1050])
    assert full.status_code == 503 and full.headers["retry-after"] == "5"
    assert server.stop() in (0, -15)  # graceful: the spool is loaded before the process ends
    assert "Application shutdown complete" in server.log.read_text()
    assert stored(ws, "m") == {e["event_id"]: 1 for e in more[:1000]}
    assert stored(ws, "k") == {e: 1 for e in acked}

    server = Server(ws, "--load-interval", "3600", "--source", "webshop").start()
    assert send(server.url, key, events("f", 40)).json()["accepted"] == 40
    server.kill()
    flushed = run_cli("collect", "flush", "--format", "json", workspace=ws)
    assert flushed.returncode == 0, flushed.stderr
    report = json.loads(flushed.stdout)
    assert (report["loaded"], report["duplicates"], report["backlog"]) == (40, 0, 0)
    assert stored(ws, "f") == {f"f-{i}": 1 for i in range(40)}
    with Workspace.open(ws) as w:  # filed under the source the server collected them with
        assert w.sql("SELECT DISTINCT source FROM events WHERE event_id LIKE 'f-%'").fetchall() == [("webshop",)]
        assert w.sql("SELECT DISTINCT source FROM events WHERE event_id LIKE 'k-%'").fetchall() == [("http",)]


def _hold(ws: Path, seconds: float) -> subprocess.Popen[str]:
    code = f"import duckdb,time; c=duckdb.connect({str(ws)!r}); print('ok', flush=True); time.sleep({seconds}); c.close()"
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "ok"
    return holder


def test_opening_waits_for_a_short_lock_and_explains_a_long_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = tmp_path / "ws.duckdb"
    Workspace.open(ws).close()
    holder = _hold(ws, 1.5)
    started = time.monotonic()
    try:
        with Workspace.open(ws) as w:
            assert w.schema_version > 0
        assert time.monotonic() - started >= 0.5
    finally:
        holder.wait(30)
    monkeypatch.setenv("CXLENS_LOCK_WAIT", "0.5")
    holder = _hold(ws, 30)
    try:
        with pytest.raises(WorkspaceError, match="is busy: it is in use by another cxlens process"):
            Workspace.open(ws)
    finally:
        holder.kill()
        holder.wait(10)
