"""The kept sessions table (cxlens/semantic/kept.py): maintained per visitor, always equal to
sessions built from scratch, never trusted when the events changed behind its back.

The reference is `build_sessions` over all events, the definition the conformance suite checks
against pandas; what these tests check is the maintenance: after every batch, profile merge,
late event and deletion, the kept rows (with their `new` flags) equal a fresh build.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxlens import Workspace
from cxlens.ingest.loader import ingest
from cxlens.semantic import Catalog, Measurer
from cxlens.semantic import kept as kept_module
from cxlens.semantic.kept import TABLE, kept_sessions, refresh_sessions
from cxlens.semantic.sessions import SESSION_KEY, build_sessions

COLUMNS = ("event_id", "occurred_at", "event_type", "anonymous_id", "customer_id", "session_id", "channel",
           "referrer", "utm_source", "utm_medium", "utm_campaign", "value", "profile_id", "source", "properties")
T0 = datetime(2025, 3, 1, 8, 0, 0)


def random_events(rng: np.random.Generator, n: int, start: int, visitors: int = 40) -> list[dict]:
    """Events of a few dozen visitors: named and unnamed visits, gaps around 30 minutes, visitors
    known only by customer id or only by profile, events with no visitor at all, message events."""
    rows = []
    for i in range(n):
        v = int(rng.integers(0, visitors))
        kind = rng.choice(["page_view", "product_view", "add_to_cart", "purchase", "lead", "message_opened"],
                          p=[0.45, 0.2, 0.1, 0.1, 0.05, 0.1])
        who = rng.random()
        anon = f"a{v}" if who < 0.7 else None
        cust = f"c{v}" if 0.7 <= who < 0.85 else None
        named = rng.random() < 0.4
        rows.append({
            "event_id": f"e{start + i}",
            "occurred_at": T0 + timedelta(minutes=int(rng.integers(0, 6 * 24 * 60)) // 7 * 7),
            "event_type": str(kind),
            "anonymous_id": anon, "customer_id": cust,
            # Named sessions are shared by a few visitors, so one can hold several visitors' events.
            "session_id": f"s{int(rng.integers(0, 30))}" if named else None,
            "channel": str(rng.choice(["web", "app"])),
            "referrer": rng.choice([None, "https://www.google.com/x", "https://news.example.com/"]),
            "utm_source": rng.choice([None, "newsletter"]), "utm_medium": rng.choice([None, "email", "cpc"]),
            "utm_campaign": None, "value": float(rng.integers(10, 90)) if kind == "purchase" else None,
            "profile_id": f"p{v}" if rng.random() < 0.8 else None,
            "source": "web", "properties": json.dumps({"device": str(rng.choice(["mobile", "desktop"]))}),
        })
    return rows


def insert(ws: Workspace, rows: list[dict]) -> None:
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    ws.con.con.register("_new_events", df)
    ws.sql(f"INSERT INTO events ({', '.join(COLUMNS)}) SELECT {', '.join(COLUMNS)} FROM _new_events")
    ws.con.con.unregister("_new_events")


def frame(t) -> pd.DataFrame:
    df = t.to_pandas()
    return df.sort_values("session_key").reset_index(drop=True)[sorted(df.columns)]


def assert_kept_equals_fresh(ws: Workspace) -> None:
    kept = kept_sessions(ws)
    assert kept is not None, "the kept sessions should be current after a refresh"
    fresh = frame(build_sessions(ws.table("events")))
    got = frame(kept)
    assert len(got) == len(fresh) and len(fresh) > 0
    pd.testing.assert_frame_equal(got, fresh, check_dtype=False)


def test_batches_merges_late_events_and_deletions_keep_the_table_equal_to_a_fresh_build(ws: Workspace) -> None:
    rng = np.random.default_rng(7)
    insert(ws, random_events(rng, 600, 0))
    assert refresh_sessions(ws).mode == "full"
    assert_kept_equals_fresh(ws)

    # A small batch: only the visitors it touches are rebuilt.
    insert(ws, random_events(rng, 12, 10_000, visitors=40))
    r = refresh_sessions(ws)
    assert r.mode == "incremental" and 0 < r.keys <= 12
    assert_kept_equals_fresh(ws)

    # A late event before a visitor's first session: that visitor's `new` flag moves to it.
    first = ws.sql("SELECT visitor, min(ts) FROM cxlens_sessions WHERE _k1 = '~' GROUP BY 1 ORDER BY 1 LIMIT 1").fetchone()
    insert(ws, [{**random_events(rng, 1, 20_000)[0], "anonymous_id": first[0], "customer_id": None, "session_id": None,
                 "event_type": "page_view", "occurred_at": first[1] - timedelta(hours=3)}])
    assert refresh_sessions(ws).mode == "incremental"
    assert_kept_equals_fresh(ws)
    assert ws.sql("SELECT new FROM cxlens_sessions WHERE visitor = ? ORDER BY ts LIMIT 1", [first[0]]).fetchone()[0] == 1

    # Identity resolution merges two profiles: the sessions of the merged visitors carry the new id.
    ws.sql("UPDATE events SET profile_id = 'p1' WHERE profile_id = 'p2'")
    r = refresh_sessions(ws)
    assert r.mode == "incremental" and r.keys > 0
    assert_kept_equals_fresh(ws)

    # Nothing changed: one fingerprint, no rebuild.
    assert refresh_sessions(ws).mode == "current"

    # Deleted events (as `profiles forget` does): the sessions that held them are rebuilt without
    # them, named sessions shared with other visitors included, and nothing of them lingers.
    shared = ws.sql("SELECT count(DISTINCT session_id) FROM events WHERE anonymous_id = 'a3' AND session_id IS NOT NULL").fetchone()[0]
    assert shared > 0
    ws.sql("DELETE FROM events WHERE anonymous_id = 'a3'")
    assert refresh_sessions(ws).mode == "incremental"
    assert_kept_equals_fresh(ws)
    assert ws.sql("SELECT count(*) FROM cxlens_sessions WHERE visitor = 'a3'").fetchone()[0] == 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_many_small_batches_stay_equal(ws: Workspace, seed: int) -> None:
    rng = np.random.default_rng(seed)
    insert(ws, random_events(rng, 300, 0, visitors=60))
    refresh_sessions(ws)
    modes = []
    for b in range(6):
        insert(ws, random_events(rng, int(rng.integers(1, 8)), 1_000 * (b + 1), visitors=60))
        modes.append(refresh_sessions(ws).mode)
        assert_kept_equals_fresh(ws)
    assert "incremental" in modes


def test_events_changed_behind_its_back_are_never_read_from_the_kept_table(ws: Workspace) -> None:
    rng = np.random.default_rng(11)
    insert(ws, random_events(rng, 200, 0))
    refresh_sessions(ws)
    with Measurer(ws, Catalog.built_in()) as m:
        before = m.measure("sessions", grain="all").frame.value.iloc[0]
        assert "sessions" in m.context.kept_sources
    # A row written by hand, without a refresh: the fingerprint no longer matches.
    insert(ws, [{**random_events(rng, 1, 5_000)[0], "event_type": "page_view", "session_id": "brand-new"}])
    assert kept_sessions(ws) is None
    with Measurer(ws, Catalog.built_in()) as m:
        after = m.measure("sessions", grain="all").frame.value.iloc[0]
        assert "sessions" not in m.context.kept_sources
    assert after == before + 1
    # Any column sessions read counts, not only the keys: a channel changed by hand.
    refresh_sessions(ws)
    assert kept_sessions(ws) is not None
    ws.sql("UPDATE events SET channel = 'kiosk' WHERE event_id = 'e7'")
    assert kept_sessions(ws) is None


def test_a_failed_refresh_leaves_the_table_and_its_stamp_as_they_were(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    insert(ws, random_events(rng, 200, 0))
    refresh_sessions(ws)
    rows = ws.sql(f"SELECT * FROM {TABLE} ORDER BY session_key").fetchall()
    stamp = ws.sql("SELECT value FROM cxlens_meta WHERE key = 'sessions_fingerprint'").fetchone()
    insert(ws, random_events(rng, 5, 9_000))

    def boom(*a: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(kept_module, "_incremental", boom)
    with pytest.raises(RuntimeError):
        refresh_sessions(ws)
    assert ws.sql(f"SELECT * FROM {TABLE} ORDER BY session_key").fetchall() == rows
    assert ws.sql("SELECT value FROM cxlens_meta WHERE key = 'sessions_fingerprint'").fetchone() == stamp
    assert kept_sessions(ws) is None  # stale, so metrics build sessions from the events
    monkeypatch.undo()
    assert refresh_sessions(ws).mode == "incremental"
    assert_kept_equals_fresh(ws)


def test_ingest_leaves_the_kept_sessions_current(ws: Workspace, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    rows = random_events(rng, 150, 0)
    for part, chunk in enumerate((rows[:120], rows[120:])):
        f = tmp_path / f"events{part}.ndjson"
        f.write_text("\n".join(json.dumps({k: (v.isoformat() if isinstance(v, datetime) else v)
                                           for k, v in r.items() if k not in ("profile_id", "source")}) for r in chunk))
        ingest(ws, "events", [f], source="web")
        assert_kept_equals_fresh(ws)
    assert set(SESSION_KEY) <= set(ws.table(TABLE).columns)
    # Resolved profiles reached the sessions: every visitor with an id has one.
    assert ws.sql(f"SELECT count(*) FROM {TABLE} WHERE profile_id IS NULL AND visitor IS NOT NULL").fetchone()[0] == 0


def test_profiles_forget_removes_the_person_from_the_kept_sessions(ws: Workspace, tmp_path: Path) -> None:
    from cxlens.profiles.forget import forget

    rng = np.random.default_rng(4)
    f = tmp_path / "events.ndjson"
    f.write_text("\n".join(json.dumps({k: (v.isoformat() if isinstance(v, datetime) else v)
                                       for k, v in r.items() if k not in ("profile_id", "source")})
                           for r in random_events(rng, 200, 0)))
    ingest(ws, "events", [f], source="web")
    assert ws.sql(f"SELECT count(*) FROM {TABLE} WHERE visitor = 'a5'").fetchone()[0] > 0
    forget(ws, "anonymous_id:a5")
    assert ws.sql(f"SELECT count(*) FROM {TABLE} WHERE visitor = 'a5'").fetchone()[0] == 0
    assert_kept_equals_fresh(ws)


def test_cli_metrics_refresh_after_rows_written_by_hand(ws_path: Path) -> None:
    from conftest import run_cli

    with Workspace.open(ws_path) as w:
        insert(w, random_events(np.random.default_rng(8), 150, 0))
    res = run_cli("metrics", "refresh", "--format", "json", workspace=ws_path)
    assert res.returncode == 0, res.stderr
    first = json.loads(res.stdout)
    with Workspace.open(ws_path) as w:
        fresh = len(build_sessions(w.table("events")).to_pandas())
        insert(w, random_events(np.random.default_rng(9), 3, 5_000))
        assert kept_sessions(w) is None
    assert first["mode"] == "full" and first["sessions"] == fresh and first["seconds"] >= 0
    res = run_cli("metrics", "refresh", "--format", "json", workspace=ws_path)
    again = json.loads(res.stdout)
    assert again["mode"] == "incremental" and 0 < again["keys"] <= 3
    table = run_cli("metrics", "refresh", workspace=ws_path)
    assert table.returncode == 0 and "already current" in table.stdout
    with Workspace.open(ws_path) as w:
        assert_kept_equals_fresh(w)


def test_a_server_brings_the_kept_sessions_up_to_date_at_start(ws_path: Path) -> None:
    """Events written by other code (or a workspace kept by an older cxlens) leave the kept
    sessions out of date; `cxlens serve` refreshes them once at start-up, before any load."""
    import time

    from test_service_helpers import Server

    with Workspace.open(ws_path) as w:
        insert(w, random_events(np.random.default_rng(11), 200, 0))
        assert kept_sessions(w) is None
    server = Server(ws_path).start()
    try:
        deadline = time.monotonic() + 60
        while "kept sessions brought up to date (full)" not in server.log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        server.stop()
    assert "kept sessions brought up to date (full)" in server.log.read_text()
    with Workspace.open(ws_path) as w:
        assert_kept_equals_fresh(w)
