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
from typing import TYPE_CHECKING

import ibis
import ibis.expr.types as ir

from cxlens.semantic.sessions import SESSION_COLUMNS, SESSION_KEY, mark_new, session_events, session_rows

if TYPE_CHECKING:
    from cxlens.workspace import Workspace

TABLE = "cxlens_sessions"
KEYS = "cxlens_session_keys"
META_KEY = "sessions_fingerprint"
VERSION = "2"
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


def _keyed(events: ir.Table) -> ir.Table:
    """The web events (as sessions read them) with their session key (k1, k2), as in `session_rows`:
    (source, session_id) for a named session, ("~", visitor) for unnamed visits (chr(1) stands for
    a missing visitor: such events make no session, and NULL would never compare equal)."""
    ev = session_events(events)
    named = ev.session_id.notnull()
    return ev.mutate(k1=ibis.ifelse(named, ev.source, "~"),
                     k2=ibis.ifelse(named, ev.session_id, ev.visitor).fill_null(_NONE))


def _sql(expr: ir.Table) -> str:
    return str(ibis.to_sql(expr, dialect="duckdb"))


_COMPILED: dict[tuple[str, object], str] = {}
"""SQL of the refresh's queries by (query, events table schema): they read only `events` (and
`_cx_dirty`) by name, so compiling them once per process is enough; compiling from Ibis was
0.45 s of each spool load's 1 s refresh, and 0.15 s of every fingerprint a dashboard view checks."""


def _events_sql(ws: Workspace, query: str) -> str:
    events = ws.table("events")
    key = (query, events.schema())
    if key not in _COMPILED:
        _COMPILED[key] = _sql(_QUERIES[query](ws, events))
    return _COMPILED[key]


def _dirty_rows(ws: Workspace, events: ir.Table) -> ir.Table:
    """The sessions of the changed keys only (`_cx_dirty`), `new` set afterwards."""
    keyed = _keyed(events)
    dirty = ws.con.sql("SELECT k1 AS d1, k2 AS d2 FROM _cx_dirty")
    scope = keyed.semi_join(dirty, [keyed.k1 == dirty.d1, keyed.k2 == dirty.d2]).drop("k1", "k2", "visitor")
    return _with_new(session_rows(scope), False)


_QUERIES: dict[str, Callable[[Workspace, ir.Table], ir.Table]] = {
    "events": lambda ws, events: session_events(events),
    "keyed": lambda ws, events: _keyed(events),
    "rows": lambda ws, events: _with_new(session_rows(events), True),
    "dirty rows": _dirty_rows,
}


_HASH = f"hash({', '.join(SESSION_COLUMNS)})"
"""Every column sessions read: a change to any of them, even by hand, shows in the fingerprint."""
_NONE = chr(1)


def fingerprint(ws: Workspace) -> str:
    """The stamp of the web events sessions are built from (one scan: 0.5 s on 10M events)."""
    n, h = ws.sql(f"SELECT count(*), coalesce(sum({_HASH}), 0) FROM ({_events_sql(ws, 'events')})").fetchone()
    return f"v{VERSION}:{n}:{h}"


def _stored(ws: Workspace) -> str | None:
    row = ws.sql("SELECT value FROM cxlens_meta WHERE key = ?", [META_KEY]).fetchone()
    return row[0] if row else None


def kept_sessions(ws: Workspace) -> ir.Table | None:
    """The kept sessions when they match the events now, else None (then build them)."""
    if not _is_duckdb(ws) or TABLE not in ws.backend.tables():
        return None
    stored = _stored(ws)
    if stored is None or stored != fingerprint(ws):
        return None
    return kept_table(ws)


def kept_table(ws: Workspace) -> ir.Table:
    """The kept sessions as they are (only after `kept_sessions` found them current)."""
    return ws.table(TABLE).drop(*SESSION_KEY)


def refresh_sessions(ws: Workspace, *, progress: Callable[[str], None] | None = None) -> Refresh:
    """Bring `cxlens_sessions` up to date with the events, in one transaction.

    Cheap when nothing changed (one fingerprint scan); otherwise proportional to the sessions
    whose events changed, or a full rebuild when more than a quarter of the keys did.
    """
    if not _is_duckdb(ws):
        return Refresh("skipped")
    started = time.perf_counter()
    say = progress or (lambda s: None)
    now = fingerprint(ws)
    have = ws.backend.tables()
    if TABLE in have and KEYS in have and _stored(ws) == now:
        return Refresh("current", sessions=_count(ws, TABLE), seconds=time.perf_counter() - started)
    with ws.transaction():
        say("fingerprinting sessions")
        ws.sql(f"CREATE OR REPLACE TEMP TABLE _cx_fp AS SELECT k1, k2, count(*) AS n, sum({_HASH}) AS h "
               f"FROM ({_events_sql(ws, 'keyed')}) GROUP BY 1, 2")
        # The stamp of exactly the events fingerprinted here (the same sums as `fingerprint`).
        n, h = ws.sql("SELECT coalesce(sum(n), 0), coalesce(sum(h), 0) FROM _cx_fp").fetchone()
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
        ws.sql("DELETE FROM cxlens_meta WHERE key = ?", [META_KEY])
        ws.sql("INSERT INTO cxlens_meta VALUES (?, ?)", [META_KEY, now])
        for t in ("_cx_fp", "_cx_dirty", "_cx_touched"):
            ws.sql(f"DROP TABLE IF EXISTS {t}")
    return Refresh(mode, changed, _count(ws, TABLE), time.perf_counter() - started)


def _count(ws: Workspace, name: str) -> int:
    return int(ws.sql(f'SELECT count(*) FROM "{name}"').fetchone()[0])


def _dirty(ws: Workspace) -> int:
    """Session keys whose events changed since the last refresh, into `_cx_dirty`; returns how many."""
    ws.sql(
        "CREATE OR REPLACE TEMP TABLE _cx_dirty AS SELECT coalesce(a.k1, b.k1) AS k1, coalesce(a.k2, b.k2) AS k2 "
        f"FROM _cx_fp a FULL JOIN {KEYS} b ON a.k1 = b.k1 AND a.k2 = b.k2 "
        "WHERE a.n IS DISTINCT FROM b.n OR a.h IS DISTINCT FROM b.h"
    )
    return _count(ws, "_cx_dirty")


def _with_new(rows: ir.Table, new: bool) -> ir.Table:
    return mark_new(rows) if new else rows.mutate(new=ibis.literal(0, "int64"))


def _full(ws: Workspace) -> None:
    ws.sql(f"CREATE OR REPLACE TABLE {TABLE} AS {_events_sql(ws, 'rows')}")
    ws.sql(f"CREATE OR REPLACE TABLE {KEYS} AS SELECT * FROM _cx_fp")


def _incremental(ws: Workspace) -> None:
    """Delete and rebuild the sessions of the changed keys, then their visitors' `new` flags."""
    of_dirty = f"SELECT visitor FROM {TABLE} SEMI JOIN _cx_dirty d ON _k1 = d.k1 AND _k2 = d.k2 WHERE visitor IS NOT NULL"
    # Visitors whose `new` flags are set again at the end: those of the sessions replaced, before and after.
    ws.sql(f"CREATE OR REPLACE TEMP TABLE _cx_touched AS {of_dirty}")
    ws.sql(f"DELETE FROM {TABLE} USING _cx_dirty d WHERE {TABLE}._k1 = d.k1 AND {TABLE}._k2 = d.k2")
    ws.sql(f"INSERT INTO {TABLE} {_events_sql(ws, 'dirty rows')}")
    ws.sql(f"INSERT INTO _cx_touched {of_dirty}")
    ws.sql(
        f"UPDATE {TABLE} SET new = f.new FROM (SELECT rowid AS r, new AS was, CASE WHEN row_number() OVER "
        f"(PARTITION BY visitor ORDER BY ts, session_key) = 1 THEN 1 ELSE 0 END AS new FROM {TABLE} "
        f"WHERE visitor IN (SELECT DISTINCT visitor FROM _cx_touched)) f WHERE {TABLE}.rowid = f.r AND f.was <> f.new"
    )
    ws.sql(f"UPDATE {TABLE} SET new = 1 WHERE visitor IS NULL AND new <> 1")
    ws.sql(f"DELETE FROM {KEYS} USING _cx_dirty d WHERE {KEYS}.k1 = d.k1 AND {KEYS}.k2 = d.k2")
    ws.sql(f"INSERT INTO {KEYS} SELECT f.* FROM _cx_fp f SEMI JOIN _cx_dirty d ON f.k1 = d.k1 AND f.k2 = d.k2")
