"""Sessions kept in the workspace, maintained per session key whenever data is loaded.

Building sessions is the costliest part of the catalogue (two thirds of it on 10M events: a
group-by over every web event and the inactivity windows), and it gives the same answer until
the events change. So a DuckDB workspace keeps them in `cxlens_sessions`, refreshed at the end
of every ingest, spool load and identity resolution, and metrics read that table instead of the
events.

Correctness never depends on a refresh having run. The table is stamped with a fingerprint of the
web events it was built from (count and sum of row hashes over every column sessions read); a
reader computes the same fingerprint (0.5 s on 10M events) and falls back to building sessions
from the events when the two differ, e.g. after rows were written by hand with SQL.

A refresh is incremental. Every session is a group of events under one key: (source, session_id)
for a session the source named, or the visitor for visits cut by 30 minutes of inactivity. The
refresh fingerprints each key's events, and only keys whose fingerprint changed (new events, a
profile merged by identity resolution, a forgotten customer's events deleted) have their sessions
deleted and rebuilt; then the `new` flag (a visitor's first session) is set again on every
session of every visitor whose sessions were touched, so a late event cannot leave a stale flag.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import ibis
import ibis.expr.types as ir

from cxlens.semantic.sessions import NON_SESSION_EVENTS, SESSION_COLUMNS, SESSION_KEY, mark_new, session_rows

TABLE = "cxlens_sessions"
KEYS = "cxlens_session_keys"
META_KEY = "sessions_fingerprint"
VERSION = "1"
"""Bumped when the session definition changes: a table built by older code is then rebuilt."""
FULL_SHARE = 0.25
"""Above this share of session keys changed, one full rebuild is cheaper than deleting and re-inserting."""


@dataclass(frozen=True)
class Refresh:
    """What one refresh did, for logs and the ingest benchmark."""

    mode: str
    """"current" (nothing changed), "incremental", "full", or "skipped" (not a DuckDB workspace)."""
    keys: int = 0
    """Session keys (named sessions, or visitors' unnamed visits) rebuilt: all of them when full."""
    sessions: int = 0
    """Sessions in the table afterwards."""
    seconds: float = 0.0


def _is_duckdb(ws: object) -> bool:
    from cxlens.workspace.backend import DuckDBBackend

    return isinstance(getattr(ws, "backend", None), DuckDBBackend)


def _web_events_sql() -> str:
    kinds = ", ".join(f"'{k}'" for k in NON_SESSION_EVENTS)
    return f"SELECT * FROM events WHERE event_type NOT IN ({kinds})"


_HASH = f"hash({', '.join(SESSION_COLUMNS)})"
"""Every column sessions read: a change to any of them, even by hand, shows in the fingerprint."""
_VISITOR = "coalesce(anonymous_id, source || ':' || customer_id, profile_id)"
_K1 = "CASE WHEN session_id IS NULL THEN '~' ELSE source END"
_K2 = f"coalesce(CASE WHEN session_id IS NULL THEN {_VISITOR} ELSE session_id END, chr(1))"
"""The session key of an event as in `session_rows` (chr(1) for visits without any visitor id,
which make no session; NULL would never compare equal)."""


def fingerprint(ws: object) -> str:
    """The stamp of the web events sessions are built from (one scan: 0.5 s on 10M events)."""
    n, h = ws.sql(f"SELECT count(*), coalesce(sum({_HASH}), 0) FROM ({_web_events_sql()})").fetchone()  # type: ignore[attr-defined]
    return f"v{VERSION}:{n}:{h}"


def _stored(ws: object) -> str | None:
    row = ws.sql("SELECT value FROM cxlens_meta WHERE key = ?", [META_KEY]).fetchone()  # type: ignore[attr-defined]
    return row[0] if row else None


def kept_sessions(ws: object) -> ir.Table | None:
    """The kept sessions when they match the events now, else None (then build them)."""
    if not _is_duckdb(ws) or TABLE not in ws.backend.tables():  # type: ignore[attr-defined]
        return None
    stored = _stored(ws)
    if stored is None or stored != fingerprint(ws):
        return None
    return ws.table(TABLE).drop(*SESSION_KEY)  # type: ignore[attr-defined]


def refresh_sessions(ws: object, *, progress: Callable[[str], None] | None = None) -> Refresh:
    """Bring `cxlens_sessions` up to date with the events, in one transaction.

    Cheap when nothing changed (one fingerprint scan); otherwise proportional to the sessions
    whose events changed, or a full rebuild when more than a quarter of the keys did.
    """
    if not _is_duckdb(ws):
        return Refresh("skipped")
    started = time.perf_counter()
    say = progress or (lambda s: None)
    now = fingerprint(ws)
    have = ws.backend.tables()  # type: ignore[attr-defined]
    if TABLE in have and KEYS in have and _stored(ws) == now:
        return Refresh("current", sessions=_count(ws, TABLE), seconds=time.perf_counter() - started)
    with ws.transaction():  # type: ignore[attr-defined]
        say("fingerprinting sessions")
        ws.sql(  # type: ignore[attr-defined]
            f"CREATE OR REPLACE TEMP TABLE _cx_fp AS SELECT {_K1} AS k1, {_K2} AS k2, count(*) AS n, "
            f"sum({_HASH}) AS h FROM ({_web_events_sql()}) GROUP BY 1, 2"
        )
        # The stamp of exactly the events fingerprinted here (the same sums as `fingerprint`).
        n, h = ws.sql("SELECT coalesce(sum(n), 0), coalesce(sum(h), 0) FROM _cx_fp").fetchone()  # type: ignore[attr-defined]
        now = f"v{VERSION}:{n}:{h}"
        stored_ok = TABLE in have and KEYS in have and (_stored(ws) or "").startswith(f"v{VERSION}:")
        total = _count(ws, "_cx_fp")
        dirty = _dirty(ws) if stored_ok else total
        if not stored_ok or dirty > FULL_SHARE * max(total, 1):
            say("building sessions")
            _full(ws)
            mode, changed = "full", total
        elif dirty:
            say(f"rebuilding {dirty:,} sessions' keys")
            _incremental(ws)
            mode, changed = "incremental", dirty
        else:
            mode, changed = "current", 0
        ws.sql("DELETE FROM cxlens_meta WHERE key = ?", [META_KEY])  # type: ignore[attr-defined]
        ws.sql("INSERT INTO cxlens_meta VALUES (?, ?)", [META_KEY, now])  # type: ignore[attr-defined]
        for t in ("_cx_fp", "_cx_dirty", "_cx_touched"):
            ws.sql(f"DROP TABLE IF EXISTS {t}")  # type: ignore[attr-defined]
    return Refresh(mode, changed, _count(ws, TABLE), time.perf_counter() - started)


def _count(ws: object, name: str) -> int:
    return int(ws.sql(f'SELECT count(*) FROM "{name}"').fetchone()[0])  # type: ignore[attr-defined]


def _dirty(ws: object) -> int:
    """Session keys whose events changed since the last refresh, into `_cx_dirty`; returns how many."""
    ws.sql(  # type: ignore[attr-defined]
        "CREATE OR REPLACE TEMP TABLE _cx_dirty AS SELECT coalesce(a.k1, b.k1) AS k1, coalesce(a.k2, b.k2) AS k2 "
        f"FROM _cx_fp a FULL JOIN {KEYS} b ON a.k1 = b.k1 AND a.k2 = b.k2 "
        "WHERE a.n IS DISTINCT FROM b.n OR a.h IS DISTINCT FROM b.h"
    )
    return _count(ws, "_cx_dirty")


def _rows_sql(events: ir.Table, *, new: bool = True) -> str:
    rows = session_rows(events)
    rows = mark_new(rows) if new else rows.mutate(new=ibis.literal(0, "int64"))
    return str(ibis.to_sql(rows, dialect="duckdb"))


def _full(ws: object) -> None:
    ws.sql(f"CREATE OR REPLACE TABLE {TABLE} AS {_rows_sql(ws.table('events'))}")  # type: ignore[attr-defined]
    ws.sql(f"CREATE OR REPLACE TABLE {KEYS} AS SELECT * FROM _cx_fp")  # type: ignore[attr-defined]


def _incremental(ws: object) -> None:
    """Delete and rebuild the sessions of the changed keys, then their visitors' `new` flags."""
    of_dirty = f"SELECT visitor FROM {TABLE} SEMI JOIN _cx_dirty d ON _k1 = d.k1 AND _k2 = d.k2 WHERE visitor IS NOT NULL"
    # Visitors whose `new` flags are set again at the end: those of the sessions replaced, before and after.
    ws.sql(f"CREATE OR REPLACE TEMP TABLE _cx_touched AS {of_dirty}")  # type: ignore[attr-defined]
    ws.sql(f"DELETE FROM {TABLE} USING _cx_dirty d WHERE {TABLE}._k1 = d.k1 AND {TABLE}._k2 = d.k2")  # type: ignore[attr-defined]
    scope = ws.con.sql(  # type: ignore[attr-defined]
        f"SELECT e.* FROM events e SEMI JOIN _cx_dirty d ON {_K1} = d.k1 AND {_K2} = d.k2"
    )
    ws.sql(f"INSERT INTO {TABLE} {_rows_sql(scope, new=False)}")  # type: ignore[attr-defined]
    ws.sql(f"INSERT INTO _cx_touched {of_dirty}")  # type: ignore[attr-defined]
    ws.sql(  # type: ignore[attr-defined]
        f"UPDATE {TABLE} SET new = f.new FROM (SELECT rowid AS r, new AS was, CASE WHEN row_number() OVER "
        f"(PARTITION BY visitor ORDER BY ts, session_key) = 1 THEN 1 ELSE 0 END AS new FROM {TABLE} "
        f"WHERE visitor IN (SELECT DISTINCT visitor FROM _cx_touched)) f WHERE {TABLE}.rowid = f.r AND f.was <> f.new"
    )
    ws.sql(f"UPDATE {TABLE} SET new = 1 WHERE visitor IS NULL AND new <> 1")  # type: ignore[attr-defined]
    ws.sql(f"DELETE FROM {KEYS} USING _cx_dirty d WHERE {KEYS}.k1 = d.k1 AND {KEYS}.k2 = d.k2")  # type: ignore[attr-defined]
    ws.sql(f"INSERT INTO {KEYS} SELECT f.* FROM _cx_fp f SEMI JOIN _cx_dirty d ON f.k1 = d.k1 AND f.k2 = d.k2")  # type: ignore[attr-defined]
