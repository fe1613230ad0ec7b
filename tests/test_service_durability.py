"""Durability of collection: acknowledged events survive SIGKILL, back-pressure, graceful shutdown,
`cxlens collect status|flush`, workspace opens that wait for another process's lock, pruning of
remembered event_ids, loads repeated after a crash, and the loader's pacing."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest
from conftest import run_cli
from test_service_helpers import Server, bearer

from cxlens import Workspace
from cxlens.errors import UsageError, WorkspaceError
from cxlens.service.keys import create_key
from cxlens.service.loader import LoadReport, flush
from cxlens.service.runtime import Runtime
from cxlens.service.settings import ServiceSettings, spool_path_for
from cxlens.service.spool import Appended, Spool


def events(prefix: str, n: int) -> list[dict]:
    return [{"event_id": f"{prefix}-{i}", "event_type": "page_view", "occurred_at": "2025-07-01T12:00:00Z",
             "anonymous_id": f"{prefix}-visitor-{i % 13}"} for i in range(n)]


def send(url: str, key: str, batch: list[dict]) -> httpx.Response:
    return httpx.post(url + "/v1/events", json={"events": batch}, headers=bearer(key), timeout=30)


def stored(ws: Path, prefix: str) -> dict[str, int]:
    with Workspace.open(ws) as w:
        return dict(w.sql("SELECT event_id, count(*) FROM events WHERE event_id LIKE ? GROUP BY event_id",
                          [prefix + "-%"]).fetchall())


def _loader_processes(pid: int) -> list[int]:
    """Child processes of the server that run loads (multiprocessing workers, not its resource tracker)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                out.append(int(child))
    return out


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
    loader = _loader_processes(server.proc.pid)
    assert len(loader) == 1, "the server loads through one child process"
    server.kill()  # SIGKILL right after the last acknowledgement
    deadline = time.monotonic() + 10
    while Path(f"/proc/{loader[0]}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{loader[0]}").exists(), "the loader process outlived its SIGKILLed server"

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


def test_pruned_ids_are_accepted_again_and_still_stored_once(tmp_path: Path) -> None:
    ws = tmp_path / "ws.duckdb"
    spool = Spool(spool_path_for(ws))
    try:
        batch = events("p", 30)
        assert spool.append(batch, "http") == Appended(30, 0)
        assert flush(ws, spool).loaded == 30
        assert spool.append(batch, "http") == Appended(0, 30)  # remembered: answered as duplicates
        assert spool.prune(time.time() - 3600) == 0  # nothing is an hour old yet
        assert spool.prune(time.time() + 1) == 30 and spool.seen_count() == 0
        assert spool.append(batch, "http") == Appended(30, 0)  # forgotten: accepted again ...
        again = flush(ws, spool)
        assert (again.loaded, again.duplicates, again.backlog) == (0, 30, 0)  # ... and the workspace keeps one copy
        assert stored(ws, "p") == {f"p-{i}": 1 for i in range(30)}
    finally:
        spool.close()


def test_a_spool_from_before_pruning_keeps_its_ids_for_one_more_window(tmp_path: Path) -> None:
    path = tmp_path / "old.spool"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE seen (event_id TEXT PRIMARY KEY) WITHOUT ROWID")
    con.execute("INSERT INTO seen VALUES ('old-1')")
    con.commit()
    con.close()
    spool = Spool(path)
    try:
        assert spool.prune(time.time() - 60) == 0  # dated at the upgrade, not at 1970
        assert spool.append([{"event_id": "old-1"}], "http") == Appended(0, 1)
        assert spool.prune(time.time() + 1) == 1
    finally:
        spool.close()


def test_a_load_repeated_after_a_crash_before_the_trim_stores_nothing_twice(tmp_path: Path) -> None:
    ws = tmp_path / "ws.duckdb"
    path = spool_path_for(ws)
    spool = Spool(path)
    assert spool.append(events("c", 120), "http").accepted == 120
    spool.close()
    before_trim = tmp_path / "copy.spool"
    shutil.copy(path, before_trim)  # the spool as it was when the load committed, had the trim never happened
    spool = Spool(path)
    assert flush(ws, spool, batch=50, threads=1).loaded == 120
    spool.close()
    shutil.copy(before_trim, path)
    spool = Spool(path)
    try:
        assert spool.quick_backlog() == spool.pending_estimate() == 120
        report = flush(ws, spool, batch=50, threads=1)
        assert (report.loaded, report.duplicates, report.batches, report.backlog) == (0, 120, 3, 0)
        assert spool.pending_estimate() == 0
    finally:
        spool.close()
    assert stored(ws, "c") == {f"c-{i}": 1 for i in range(120)}


def test_loads_get_rarer_after_long_loads(tmp_path: Path) -> None:
    runtime = Runtime(ServiceSettings(workspace=tmp_path / "ws.duckdb", load_interval=3, load_pause=1.5))
    try:
        assert runtime._pause_after(LoadReport(10, 0, 0, 1, 0, seconds=1.0)) == 3
        assert runtime._pause_after(LoadReport(90_000, 0, 0, 1, 0, seconds=8.0)) == 12
    finally:
        runtime.spool.close()
    with pytest.raises(UsageError, match="seen_days"):
        ServiceSettings(workspace=tmp_path / "ws.duckdb", seen_days=0)
    with pytest.raises(UsageError, match="load_threads"):
        ServiceSettings(workspace=tmp_path / "ws.duckdb", load_threads=0)


def test_a_reader_and_a_load_share_the_workspace_and_everyone_else_waits_for_both(tmp_path: Path) -> None:
    """A dashboard page someone waits for (READ) and a load (LOAD) run together, one of each; a
    caller that opens the file in the server's process (EXCLUSIVE) waits until both are done, and
    neither starts while it works."""
    from cxlens.service.runtime import BACKGROUND, EXCLUSIVE, LOAD, READ

    runtime = Runtime(ServiceSettings(workspace=tmp_path / "ws.duckdb"))
    access = runtime.access
    try:
        assert access.acquire(LOAD, 0)
        assert access.acquire(READ, 0)  # alongside the load, at once
        assert not access.acquire(READ, 0.05) and not access.acquire(LOAD, 0.05)  # one of each
        assert not access.acquire(EXCLUSIVE, 0.05)
        access.release(LOAD)
        assert not access.acquire(EXCLUSIVE, 0.05)  # the reader still works
        got: list[float] = []
        waiter = threading.Thread(target=lambda: got.append(time.monotonic()) if access.acquire(EXCLUSIVE) else None)
        waiter.start()
        time.sleep(0.2)
        released = time.monotonic()
        access.release(READ)
        waiter.join(5)
        assert got and got[0] >= released
        assert not access.acquire(READ, 0.05) and not access.acquire(LOAD, 0.05)
        access.release(EXCLUSIVE)
        assert access.acquire(READ, 0) and access.acquire(LOAD, 0)
        access.release(READ)
        access.release(LOAD)
        assert [access.held(m) for m in (EXCLUSIVE, LOAD, READ)] == [0, 0, 0]
        # Background work (the dashboard's refresh) takes a reader beside it, nothing else.
        assert access.acquire(BACKGROUND, 0) and access.acquire(READ, 0)
        assert not any(access.acquire(m, 0.05) for m in (LOAD, EXCLUSIVE, BACKGROUND, READ))
        access.release(READ)
        access.release(BACKGROUND)
        assert access.acquire(LOAD, 0) and not access.acquire(BACKGROUND, 0.05)
        access.release(LOAD)
    finally:
        runtime.spool.close()


def _pid_and_sleep(seconds: float) -> int:
    import os

    time.sleep(seconds)
    return os.getpid()


def _not_imported(names: tuple[str, ...]) -> list[str]:
    import sys

    return [n for n in names if n not in sys.modules]


def test_the_loader_process_runs_calls_side_by_side_and_outlives_its_child(tmp_path: Path) -> None:
    """The child imports what pages and loads need before it runs a call, runs each call in a
    thread of its own (a page beside a load), hands errors back as they were raised, and when it
    dies the calls it had fail with a sentence and the next call starts a new child."""
    import os

    from cxlens.service.loadworker import PAGE_MODULES, LoadWorker

    worker = LoadWorker(tmp_path / "spool.sqlite")
    try:
        assert "scipy.stats" in PAGE_MODULES and worker.call(_not_imported, PAGE_MODULES) == []
        started = time.monotonic()
        results: list[int] = []
        threads = [threading.Thread(target=lambda: results.append(worker.call(_pid_and_sleep, 1.0))) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert results == [worker.pid, worker.pid]
        assert time.monotonic() - started < 1.8  # together, not 2 s one after the other
        with pytest.raises(ValueError, match="invalid literal"):
            worker.call(int, "not a number")
        with pytest.raises(WorkspaceError, match="loader's process ended"):
            worker.call(os._exit, 3)
        assert worker.call(_pid_and_sleep, 0) not in (worker.pid, os.getpid())  # a new child
    finally:
        worker.close()


def test_backpressure_lifts_when_another_process_drains_and_old_ids_are_pruned(tmp_path: Path) -> None:
    ws = tmp_path / "ws.duckdb"
    with Workspace.open(ws) as w:
        key, _ = create_key(w, "write", "loadtest")
    # 0.00003 days = 2.6 s of memory for event_ids; no periodic loads.
    server = Server(ws, "--load-interval", "3600", "--backlog-limit", "100", "--seen-days", "0.00003").start()
    try:
        deadline = time.monotonic() + 60
        while httpx.get(server.url + "/healthz").json()["last_load"] is None and time.monotonic() < deadline:
            time.sleep(0.1)  # the start-up load is done: no load runs until another process drains
        assert send(server.url, key, events("b", 100)).json()["accepted"] == 100
        full = send(server.url, key, events("b2", 10))
        assert full.status_code == 503 and full.headers["retry-after"] == "5"
        flushed = run_cli("collect", "flush", "--format", "json", workspace=ws)  # another process drains the spool
        assert json.loads(flushed.stdout)["loaded"] == 100, flushed.stderr
        deadline = time.monotonic() + 10
        while (r := send(server.url, key, events("b2", 10))).status_code == 503 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert r.json()["accepted"] == 10
        time.sleep(3.5)  # past the retention window: the loader forgets the first ids
        assert send(server.url, key, events("b", 100)).json() == {"accepted": 100, "duplicates": 0, "rejected": []}
        assert re.search(r"forgot \d+ event_ids first seen over 3e-05 days ago", server.log.read_text())
    finally:
        assert server.stop() in (0, -15)
    assert stored(ws, "b") == {f"b-{i}": 1 for i in range(100)}
    assert stored(ws, "b2") == {f"b2-{i}": 1 for i in range(10)}


def test_a_backlog_defers_the_profile_rebuild_but_not_identities(tmp_path: Path) -> None:
    ws = tmp_path / "ws.duckdb"
    spool = Spool(spool_path_for(ws))
    sent = events("v", 100)
    try:
        spool.append(sent, "http")
        first = flush(ws, spool, batch=60, max_batches=1, profiles=False)
        assert (first.loaded, first.backlog) == (60, 40)
        with Workspace.open(ws) as w:
            assert w.sql("SELECT count(*), count(profile_id) FROM events").fetchone() == (60, 60)
            # deferred while 40 wait: no profiles table has been built yet
            assert w.sql("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'profiles'").fetchone()[0] == 0
        assert flush(ws, spool, batch=60, profiles=False).backlog == 0  # the batch that empties the spool rebuilds
        with Workspace.open(ws) as w:
            profiles = w.sql("SELECT count(*) FROM profiles").fetchone()[0]
            per_event = w.sql("SELECT event_id, profile_id FROM events").fetchdf()
    finally:
        spool.close()
    visitors = pd.DataFrame(sent)["anonymous_id"].nunique()
    assert profiles == visitors == per_event["profile_id"].nunique() == 13


def test_events_arriving_during_a_load_defer_the_profile_rebuild(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A steady stream: when events arrive while a load runs, that load resolves identities but
    leaves the profile rebuild (it reads every record) to a load after which the spool is empty."""
    import cxlens.ingest.loader as ingest_loader

    ws = tmp_path / "ws.duckdb"
    spool = Spool(spool_path_for(ws))
    real = ingest_loader.ingest_file
    arriving = [events("late", 5)]

    def arrive_while_loading(*args: object, **kwargs: object) -> object:
        if arriving:  # the stream goes on while the first batch is being loaded
            spool.append(arriving.pop(), "http")
        return real(*args, **kwargs)

    monkeypatch.setattr(ingest_loader, "ingest_file", arrive_while_loading)
    try:
        spool.append(events("v", 30), "http")
        first = flush(ws, spool, max_batches=1, profiles=False)
        assert (first.loaded, first.backlog) == (30, 5)
        with Workspace.open(ws) as w:
            assert w.sql("SELECT count(*), count(profile_id) FROM events").fetchone() == (30, 30)
            assert w.sql("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'profiles'").fetchone()[0] == 0
        assert flush(ws, spool, profiles=False).backlog == 0  # nothing arrived meanwhile: rebuilt
        with Workspace.open(ws) as w:
            people = w.sql("SELECT count(*) FROM profiles").fetchone()[0]
            linked = w.sql("SELECT count(DISTINCT profile_id) FROM events").fetchone()[0]
    finally:
        spool.close()
    assert people == linked > 0


def test_a_load_gives_way_to_a_reader_keeps_nothing_and_loads_everything_later(tmp_path: Path) -> None:
    """A load that stops for a reader's page (computed beside it) rolls back whatever it had done
    and leaves its events in the spool; the next load stores each of them once."""
    from cxlens.service.loader import GaveWay
    from cxlens.service.loadworker import PageReaders

    class Computing(PageReaders):
        def computing(self) -> bool:
            return True  # a reader's page is being computed all along

    ws = tmp_path / "ws.duckdb"
    spool = Spool(spool_path_for(ws))
    try:
        spool.append(events("first", 40), "http")
        assert flush(ws, spool).loaded == 40
        spool.append(events("w", 120), "http")
        with pytest.raises(GaveWay):
            flush(ws, spool, readers=Computing(), give_way=True)
        assert spool.quick_backlog() == 120
        with Workspace.open(ws) as w:
            assert w.sql("SELECT count(*) FROM events").fetchone()[0] == 40
            assert w.sql("SELECT count(*) FROM sources").fetchone()[0] == 1  # no trace of the stopped load
        report = flush(ws, spool, readers=PageReaders(), give_way=True)  # nobody reads now
        assert (report.loaded, report.duplicates, report.backlog) == (120, 0, 0)
    finally:
        spool.close()
    assert stored(ws, "w") == {f"w-{i}": 1 for i in range(120)}


def test_a_load_that_may_not_give_way_pauses_for_a_readers_page_and_commits_after_it(tmp_path: Path) -> None:
    """A load that may no longer give way waits between its steps while a reader's page is being
    computed in the same process, and commits only once no page is (so the page's queries all see
    the data before the load); a page does not start while a load commits."""
    from cxlens.service import loadworker

    calls: list[str] = []

    class Recording(loadworker.PageReaders):
        def wait(self) -> None:
            calls.append("wait")
            super().wait()

        def quiet_commit(self):  # type: ignore[no-untyped-def]
            calls.append("commit")
            return super().quiet_commit()

    ws = tmp_path / "ws.duckdb"
    spool = Spool(spool_path_for(ws))
    try:
        spool.append(events("q", 50), "http")
        reports: list[LoadReport] = []
        with loadworker.computing():  # a reader's page is being computed
            loader = threading.Thread(target=lambda: reports.append(flush(ws, spool, readers=Recording())))
            loader.start()
            deadline = time.monotonic() + 60
            while not calls and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)
            assert loader.is_alive() and calls == ["wait"]  # paused after its first step
            with Workspace.open(ws) as w:  # the page's queries: nothing of the load yet
                assert w.sql("SELECT count(*) FROM events").fetchone()[0] == 0
        loader.join(60)
        assert reports and reports[0].loaded == 50
        assert calls[-1] == "commit" and calls.count("wait") >= 2
    finally:
        spool.close()
    assert stored(ws, "q") == {f"q-{i}": 1 for i in range(50)}
    started = threading.Event()

    def page() -> None:
        with loadworker.computing():
            started.set()

    with loadworker.quiet_commit():  # a load commits: a page waits to start
        reader = threading.Thread(target=page)
        reader.start()
        assert not started.wait(0.3)
    assert started.wait(5)
    reader.join(5)
    assert not loadworker.reader_computing()


def test_loads_give_way_to_readers_only_so_long(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    """Readers that never stop computing hold pending events back for GIVE_WAY_SECONDS, then a
    load runs to its end beside them."""
    import logging

    import cxlens.service.runtime as runtime_module
    from cxlens.service.loadworker import PageReaders

    monkeypatch.setattr(runtime_module, "GIVE_WAY_SECONDS", 1.0)
    monkeypatch.setattr(PageReaders, "computing", lambda self: True)
    ws = tmp_path / "ws.duckdb"
    runtime = Runtime(ServiceSettings(workspace=ws, load_interval=0.2, load_process=False))
    caplog.set_level(logging.INFO, logger="cxlens.service")
    runtime.start()
    try:
        deadline = time.monotonic() + 60
        while runtime.last_load is None and time.monotonic() < deadline:  # the start-up load (never gives way)
            time.sleep(0.05)
        runtime.spool.append(events("held", 30), "http")
        appended = time.monotonic()
        while runtime.spool.quick_backlog() and time.monotonic() < deadline:
            time.sleep(0.05)
        waited = time.monotonic() - appended
    finally:
        runtime.stop()
    assert 1.0 <= waited < 30
    assert "a load gave way to a dashboard reader" in caplog.text
    assert stored(ws, "held") == {f"held-{i}": 1 for i in range(30)}


def test_background_work_and_loads_do_not_start_beside_a_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Background work and a load may run beside a page (runtime.Access), but one started while a
    page is being computed would be stopped, or give way, at once, its start-up paid by the page:
    neither starts until the page is done. A read API call (not urgent) holds neither back."""
    ws = tmp_path / "ws.duckdb"
    runtime = Runtime(ServiceSettings(workspace=ws, load_interval=0.1, key_ttl=0.1, load_process=False))
    entered, leave, ran = threading.Event(), threading.Event(), threading.Event()
    page = _reading(runtime, entered, leave)
    background = threading.Thread(target=lambda: runtime.run(ran.set, background=True))
    background.start()
    assert not ran.wait(0.5)
    leave.set()
    page.join(10)
    assert ran.wait(10)
    background.join(10)
    entered, leave, ran = threading.Event(), threading.Event(), threading.Event()
    api = _reading(runtime, entered, leave, page=False)
    runtime.run(ran.set, background=True)  # beside a read API call: at once
    assert ran.is_set()
    leave.set()
    api.join(10)

    held, released, started = _loads_beside_a_page(runtime, monkeypatch, "beside", 1.0)  # ten load intervals
    assert not [t for t in started if held < t < released]
    assert [t for t in started if t >= released]
    assert stored(ws, "beside") == {f"beside-{i}": 1 for i in range(10)}


def test_a_page_holds_loads_back_only_so_long(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The time a load waits for a page to be done counts against GIVE_WAY_SECONDS: a page that
    takes longer cannot hold events back longer; the load then starts beside it (and pauses
    between its steps while the page is computed)."""
    import cxlens.service.runtime as runtime_module

    monkeypatch.setattr(runtime_module, "GIVE_WAY_SECONDS", 0.5)
    ws = tmp_path / "ws.duckdb"
    runtime = Runtime(ServiceSettings(workspace=ws, load_interval=0.1, key_ttl=0.1, load_process=False))
    held, released, started = _loads_beside_a_page(runtime, monkeypatch, "long", 2.0)
    beside = [t - held for t in started if held < t < released]
    assert beside and 0.4 <= beside[0] < 1.5
    assert stored(ws, "long") == {f"long-{i}": 1 for i in range(10)}


def _reading(runtime: Runtime, entered: threading.Event, leave: threading.Event, page: bool = True) -> threading.Thread:
    """A thread reading through `runtime.run` from `entered` until `leave`: a dashboard page being
    computed (loadworker.computing), or a read API call with `page` False."""
    from cxlens.service import loadworker

    def fn() -> None:
        with loadworker.computing(urgent=page):
            entered.set()
            leave.wait(30)

    thread = threading.Thread(target=lambda: runtime.run(fn, reader=True, urgent=page))
    thread.start()
    assert entered.wait(10)
    return thread


def _loads_beside_a_page(runtime: Runtime, monkeypatch: pytest.MonkeyPatch, prefix: str,
                         seconds: float) -> tuple[float, float, list[float]]:
    """Start the runtime's loader, then hold a page for `seconds` while 10 events wait in the spool,
    until they are loaded; (when the page began, when it ended, when each flush began)."""
    import cxlens.service.runtime as runtime_module

    started: list[float] = []
    real = runtime_module.flush

    def spied(*args: object, **kwargs: object) -> LoadReport:
        started.append(time.monotonic())
        return real(*args, **kwargs)

    monkeypatch.setattr(runtime_module, "flush", spied)
    runtime.start()
    try:
        deadline = time.monotonic() + 60
        while runtime.last_load is None and time.monotonic() < deadline:  # the start-up load
            time.sleep(0.05)
        # The loader's key refresh (EXCLUSIVE) would wait for the page, and the loader with it,
        # whatever it does about loads: not what this checks.
        monkeypatch.setattr(runtime, "refresh_keys", lambda wait=-1: None)
        entered, leave = threading.Event(), threading.Event()
        page = _reading(runtime, entered, leave)
        runtime.spool.append(events(prefix, 10), "http")
        held = time.monotonic()
        time.sleep(seconds)
        released = time.monotonic()
        leave.set()
        page.join(10)
        while runtime.spool.quick_backlog() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        runtime.stop()
    return held, released, started


def test_concurrent_appends_share_commits_and_each_id_is_accepted_once(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "ws.duckdb.spool")
    answers: list[Appended] = []

    def client(i: int) -> None:
        for k in range(20):  # every request also carries one id all clients send
            answers.append(spool.append(events(f"g{i}-{k}", 25) + [{"event_id": "everyone", "event_type": "x"}], "http"))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert len(answers) == 240
        assert sum(a.accepted for a in answers) == 12 * 20 * 25 + 1 == spool.backlog().events == spool.pending_estimate()
        assert sum(a.duplicates for a in answers) == 239
        _, _, lines = spool.take(100_000)
        ids = pd.Series([json.loads(line)["event_id"] for line in lines])
        assert ids.is_unique and len(ids) == 6001
    finally:
        spool.close()


def _count_twice(ws: Workspace, started: threading.Event | None = None, go_on: threading.Event | None = None) -> tuple[int, int]:
    first = ws.sql("SELECT count(*) FROM t").fetchone()[0]
    if started is not None and go_on is not None:
        started.set()
        go_on.wait(30)
    return first, ws.sql("SELECT count(*) FROM t").fetchone()[0]


def test_a_read_api_call_runs_beside_a_load_and_sees_one_version_of_the_data(tmp_path: Path) -> None:
    """The read API reads as a READ (Runtime.read): it neither waits for a load in progress nor sees
    its rows; a load does not give way to it (a polling script would hold loads back), and the
    load's commit waits until the read is done, so all of the read's queries see the same data."""
    import contextlib

    from cxlens.service import loadworker
    from cxlens.service.runtime import LOAD

    ws = tmp_path / "ws.duckdb"
    with Workspace.open(ws) as w:
        w.sql("CREATE TABLE t AS SELECT range AS i FROM range(10)")
    runtime = Runtime(ServiceSettings(workspace=ws))
    written, commit_now, committed = threading.Event(), threading.Event(), threading.Event()

    def load() -> None:
        assert runtime.access.acquire(LOAD, 10)
        try:
            with Workspace.open(ws) as w, contextlib.ExitStack() as gate:
                with w.transaction():
                    w.sql("INSERT INTO t SELECT range FROM range(5)")
                    written.set()
                    commit_now.wait(30)
                    gate.enter_context(loadworker.quiet_commit())  # as loader.load_batch commits
            committed.set()
        finally:
            runtime.access.release(LOAD)

    loading = threading.Thread(target=load)
    loading.start()
    started, go_on = threading.Event(), threading.Event()
    answers: list[tuple[int, int]] = []
    try:
        assert written.wait(30)
        reading = threading.Thread(target=lambda: answers.append(runtime.read(_count_twice, started, go_on)))
        reading.start()
        assert started.wait(10)  # beside the load, which still holds the workspace
        assert not loadworker.reader_computing()  # the load is not asked to give way
        commit_now.set()
        assert not committed.wait(0.5)  # the load's commit waits for the read
        go_on.set()
        reading.join(30)
        assert committed.wait(30)
    finally:
        commit_now.set()
        go_on.set()
        loading.join(30)
    assert answers == [(10, 10)]
    assert runtime.read(_count_twice) == (15, 15)
