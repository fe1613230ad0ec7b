"""The right to erasure: delete everything the workspace holds about one person, in one transaction.

What is deleted, for the person the identifier resolves to (profile P, own keys K):
- rows of every person table whose profile_id is P, and rows whose profile_id is NULL (not
  resolved, e.g. loaded after the last resolution) that carry one of K in an identity column. K
  holds the person's keys *except* flagged (over-shared) ones, so the rows of other people who share
  a family email are left alone; rows already resolved to another profile are never touched;
- order_items of P and of every deleted order (matched on source and order_id);
- quarantine rows whose raw_value, or any top-level value of the raw `record` JSON, equals one of
  the person's identifier values (compared trimmed and lower-cased): the raw values on the deleted
  rows, the normalized forms of K (email, phone digits with and without '+'). A customer id only
  matches quarantine rows of its own source, since ids are namespaced by source. Values are
  compared whole, never as substrings, so '42' does not match '1420';
- identity_keys rows of K (and of P), identity_edges and identity_links rows touching K; flagged
  keys and identity_flags stay, because they belong to several people;
- the profiles row of P.
Deletion statements are DuckDB SQL (Spark has no transactions to make them all-or-nothing).
"""

from __future__ import annotations

from collections.abc import Iterable

import ibis
import ibis.expr.types as ir

from cxlens.errors import NotFoundError, UsageError, WorkspaceError
from cxlens.identity.keys import KEY_TYPES, column_key
from cxlens.profiles.lookup import Match, candidate_keys, resolve_identifier
from cxlens.semantic.kept import refresh_sessions
from cxlens.profiles.records import PERSON_TABLES, carried_keys, carries_any, trimmed
from cxlens.workspace import DuckDBBackend, Workspace

ERASED_TABLES: tuple[str, ...] = (
    *PERSON_TABLES, "order_items", "quarantine", "identity_keys", "identity_edges", "identity_links", "profiles",
)
"""Tables `forget` reports on, in report order."""

Value = tuple[str, str | None]
"""A lower-cased identifier value and, for customer ids, the source it belongs to."""


def forget(ws: Workspace, identifier: str, dry_run: bool = False) -> dict[str, int]:
    """Delete (or with dry_run, count) every row about the person `identifier` names, per table."""
    if not isinstance(ws.backend, DuckDBBackend):
        raise WorkspaceError(
            f"forget runs on a DuckDB workspace, where the deletions commit together; this one runs on {ws.backend.name}."
        )
    match = erasure_subject(ws, identifier)
    own = _own_keys(ws, match)
    statements = _statements(ws, match.profile_id, own)
    counts: dict[str, int] = {}
    with ws.transaction():
        for table, rowids in statements:
            if dry_run:
                counts[table] = int(ws.sql(f"SELECT count(*) FROM ({rowids})").fetchone()[0])
            else:
                counts[table] = int(ws.sql(f'DELETE FROM "{table}" WHERE rowid IN ({rowids})').fetchone()[0])
        if not dry_run:
            # The kept sessions hold the person's visits too (derived data is personal data).
            refresh_sessions(ws)
    ordered = {t: counts.get(t, 0) for t in ERASED_TABLES}
    if match.profile_id is None and not any(ordered.values()):
        raise NotFoundError(f"Nothing in the workspace carries {identifier.strip()!r}; nothing was deleted.")
    return ordered


def erasure_subject(ws: Workspace, identifier: str) -> Match:
    """The person, or when no profile knows the identifier, only the keys it spells out itself."""
    try:
        match = resolve_identifier(ws, identifier)
    except NotFoundError:
        text = identifier.strip()
        return Match(text, None, tuple(_self_describing_keys(ws, text)))
    if match.profile_id is None and match.flagged and set(match.keys) <= set(match.flagged):
        raise UsageError(
            f"{identifier.strip()!r} is shared by several people (flagged during identity resolution); "
            "name the person by a profile id or another identifier."
        )
    return match


def _self_describing_keys(ws: Workspace, text: str) -> list[str]:
    """Keys an unknown identifier names unambiguously: an email, a phone, a typed key or SOURCE:ID."""
    keys = [k for k in candidate_keys(ws, text) if k.startswith(("email:", "phone:"))]
    if ":" in text:
        kind = text.split(":", 1)[0]
        keys.append(text if kind in KEY_TYPES else f"customer_id:{text}")
    return keys


def _own_keys(ws: Workspace, match: Match) -> list[str]:
    """The person's keys that are theirs alone: every key of P (or of the match) minus flagged ones."""
    keys = set(match.keys)
    pid = match.profile_id
    if pid is not None:
        ik = ws.table("identity_keys")
        keys |= set(ik.filter(ik.profile_id == pid).key.to_pyarrow().to_pylist())
        carried = carried_keys(ws.con, lambda t: t.profile_id == pid)
        keys |= set(carried.key.to_pyarrow().to_pylist())
    ik = ws.table("identity_keys")
    flagged = set(ik.filter(ik.flagged & ik.key.isin(sorted(keys))).key.to_pyarrow().to_pylist()) if keys else set()
    return sorted(keys - flagged)


def _with_rowid(ws: Workspace, table: str) -> ir.Table:
    return ws.con.sql(f'SELECT rowid AS _rowid, * FROM "{table}"')


def _doomed(t: ir.Table, pid: str | None, own: list[str]) -> ir.BooleanValue:
    unresolved = t.profile_id.isnull() & carries_any(t, own)
    return unresolved if pid is None else (t.profile_id == pid).fill_null(False) | unresolved


def _sql(expr: ir.Table) -> str:
    return str(ibis.to_sql(expr, dialect="duckdb"))


def _statements(ws: Workspace, pid: str | None, own: list[str]) -> list[tuple[str, str]]:
    """(table, SELECT of doomed rowids) in a safe order: order_items before the orders they follow."""
    out: list[tuple[str, str]] = []
    orders = ws.table("orders")
    doomed_orders = orders.filter(_doomed(orders, pid, own)).select("source", "order_id")
    items = _with_rowid(ws, "order_items")
    by_order = items.semi_join(doomed_orders, ["source", "order_id"]).select("_rowid")
    if pid is not None:
        by_order = ibis.union(items.filter(items.profile_id == pid).select("_rowid"), by_order, distinct=True)
    out.append(("order_items", _sql(by_order)))

    values = _values(ws, pid, own)
    for name in PERSON_TABLES:
        t = _with_rowid(ws, name)
        out.append((name, _sql(t.filter(_doomed(t, pid, own)).select("_rowid"))))
    out.append(("quarantine", _quarantine_sql(values)))

    for name, columns in (("identity_keys", ("key",)), ("identity_edges", ("key_a", "key_b")),
                          ("identity_links", ("key_a", "key_b"))):
        t = _with_rowid(ws, name)
        hit = ibis.or_(*[t[c].isin(own) for c in columns]) if own else ibis.literal(False)
        if name == "identity_keys" and pid is not None:
            hit = hit | (t.profile_id == pid).fill_null(False)
        out.append((name, _sql(t.filter(hit).select("_rowid"))))

    if pid is not None and "profiles" in ws.backend.tables():
        p = _with_rowid(ws, "profiles")
        out.append(("profiles", _sql(p.filter(p.profile_id == pid).select("_rowid"))))
    return out


def _values(ws: Workspace, pid: str | None, own: list[str]) -> set[Value]:
    """Values to look for in quarantine: K's normalized forms plus the raw spellings of K on the rows."""
    values: set[Value] = set()
    for key in own:
        values |= set(_key_values(key))
    if not own:
        return values
    for name in PERSON_TABLES:
        t = ws.table(name)
        doomed = t.filter(_doomed(t, pid, own))
        for col in (c for c in KEY_TYPES if c in t.columns):
            spelled = doomed.select(source=doomed.source, raw=trimmed(doomed[col]),
                                    key=column_key(doomed, col))
            spelled = spelled.filter(spelled.key.isin(own)).select("source", "raw").distinct()
            for row in spelled.to_pyarrow().to_pylist():
                values.add((row["raw"].lower(), row["source"] if col == "customer_id" else None))
    return values


def _key_values(key: str) -> Iterable[Value]:
    kind, _, rest = key.partition(":")
    if kind == "customer_id":
        source, _, value = rest.partition(":")
        yield value.lower(), source
    elif kind == "phone":
        yield rest, None
        yield "+" + rest, None
    else:
        yield rest.lower(), None


def _quarantine_sql(values: set[Value]) -> str:
    """rowids of quarantine rows whose raw_value or a top-level record value equals a person's value."""
    if not values:
        return "SELECT rowid FROM quarantine WHERE false"
    rows = ", ".join(f"({_lit(v)}, {_lit(s)})" for v, s in sorted(values, key=lambda x: (x[0], x[1] or "")))
    return (
        "SELECT q.rowid FROM quarantine AS q WHERE EXISTS ("
        f" SELECT 1 FROM (VALUES {rows}) AS v(val, src)"
        " WHERE (v.src IS NULL OR v.src = q.source) AND ("
        "  lower(trim(q.raw_value)) = v.val"
        "  OR CASE WHEN json_valid(q.record) THEN coalesce(list_contains("
        "      list_transform(json_extract_string(q.record, '$.*'), x -> lower(trim(x))), v.val), false)"
        "     ELSE false END))"
    )


def _lit(value: str | None) -> str:
    """A SQL string literal (quotes doubled) or NULL; values come from the workspace, not from SQL."""
    return "NULL" if value is None else "'" + value.replace("'", "''") + "'"
