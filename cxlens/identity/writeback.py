"""Writing resolved profile ids into the canonical tables.

A record takes the profile of its first key, in KEY_TYPES order, that has one (flagged keys have
none; all unflagged keys of a record sit in one component, so the order only matters for which
key is consulted). Order lines follow their order (same source, same order_id).

DuckDB updates only the rows whose id changes, by rowid, inside the run's transaction; engines
without UPDATE (Spark) rewrite the table.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from cxlens.identity.engine import Scratch, is_duckdb, ref, scalar, spark_replace
from cxlens.identity.graph import PERSON_TABLES
from cxlens.identity.keys import KEY_TYPES, row_keys
from cxlens.workspace import Workspace

ROWID = "_cx_rid"


def profile_of_rows(t: ir.Table, key_profiles: ir.Table, country_code: str) -> ir.Table:
    """`t` plus a column _cx_pid: the profile of the row's first key that has one.

    Keys are normalized and looked up once per distinct identifier combination (a few thousand
    for millions of events), then joined back to the rows null-safely.
    """
    idc = ["source", *[k for k in KEY_TYPES if k in t.columns]]
    tuples = _profile_of_tuples(t.select(*idc).distinct(), key_profiles, country_code)
    tp = tuples.rename(**{f"_cx_t_{c}": c for c in idc})
    j = t.left_join(tp, [t[c].identical_to(tp[f"_cx_t_{c}"]) for c in idc])
    return j.select(*[t[c] for c in t.columns], j._cx_pid)


def profiles_of_combinations(ws: Workspace, combos: ir.Table, country_code: str) -> ir.Table:
    """`combos` (source and identity columns) plus _cx_pid: the profile each combination resolves
    to now, by the same rule as the rows written back (its first key that has a profile)."""
    ik = ws.table("identity_keys")
    usable = ik.filter(ik.profile_id.notnull()).select("key", "profile_id")
    return _profile_of_tuples(combos, usable, country_code)


def _profile_of_tuples(t: ir.Table, key_profiles: ir.Table, country_code: str) -> ir.Table:
    keys = row_keys(t, country_code)
    out = t.mutate(**{f"_cx_k_{k}": v for k, v in keys.items()})
    found = []
    for k in keys:
        km = key_profiles.view()
        km = km.select(**{f"_cx_j_{k}": km.key, f"_cx_p_{k}": km.profile_id})
        out = out.left_join(km, out[f"_cx_k_{k}"] == km[f"_cx_j_{k}"])
        found.append(f"_cx_p_{k}")
    pid = ibis.coalesce(*[out[c] for c in found]) if found else ibis.null("string")
    drop = [c for c in out.columns if c.startswith("_cx_k_") or c.startswith("_cx_j_") or c.startswith("_cx_p_")]
    return out.mutate(_cx_pid=pid).drop(*drop)


def write_profiles(
    ws: Workspace,
    scratch: Scratch,
    key_profiles: ir.Table,
    country_code: str,
    *,
    ingest_ids: list[int] | None = None,
    changed: ir.Table | None = None,
) -> int:
    """Set profile_id on every person table and order_items; returns rows whose id changed.

    With `ingest_ids` (incremental), DuckDB only looks at rows of those ingests and rows holding
    an id listed in `changed`; other rows cannot change because their keys kept their ids.
    """
    have = ws.backend.tables()
    usable = key_profiles.filter(key_profiles.profile_id.notnull()).select("key", "profile_id")
    total = 0
    for name in PERSON_TABLES:
        if name not in have:
            continue
        if is_duckdb(ws):
            total += _update_in_place(ws, scratch, name, usable, country_code, ingest_ids, changed)
        else:
            total += _rewrite(ws, scratch, name, profile_of_rows(ws.table(name), usable, country_code))
    if "order_items" in have and "orders" in have:
        total += _order_items(ws, scratch)
    return total


def _update_in_place(ws: Workspace, scratch: Scratch, name: str, usable: ir.Table, country_code: str,
                     ingest_ids: list[int] | None, changed: ir.Table | None) -> int:
    """One UPDATE ... FROM per table: rows in scope take the profile of their identifier combination.

    The combinations (a few per person) are resolved first; joining them back null-safely inside
    the UPDATE avoids materializing a row-level diff of millions of rows.
    """
    t = ws.table(name)
    idc = ["source", *[k for k in KEY_TYPES if k in t.columns]]
    scope_sql = "true"
    if ingest_ids is not None:
        t = t.filter(t.ingest_id.isin(ingest_ids) if changed is None
                     else t.ingest_id.isin(ingest_ids) | t.profile_id.isin(changed.old_pid))
        ids = ", ".join(str(int(i)) for i in ingest_ids) or "NULL"
        scope_sql = f'"{name}".ingest_id IN ({ids})'
        if changed is not None:
            scope_sql = f'({scope_sql} OR "{name}".profile_id IN (SELECT old_pid FROM "{ref(changed)}"))'
    if ingest_ids is not None and not ws.sql(f'SELECT EXISTS (SELECT 1 FROM "{name}" WHERE {scope_sql})').fetchone()[0]:
        return 0  # nothing in scope (e.g. the pending ingest's rows go in after the resolution)
    tuples = scratch.save(_profile_of_tuples(t.select(*idc).distinct(), usable, country_code), "tuples")
    same = " AND ".join(f'"{name}"."{c}" IS NOT DISTINCT FROM m."{c}"' for c in idc)
    row = ws.sql(
        f'UPDATE "{name}" SET profile_id = m._cx_pid FROM "{ref(tuples)}" m '
        f'WHERE {same} AND "{name}".profile_id IS DISTINCT FROM m._cx_pid AND {scope_sql}'
    ).fetchone()
    scratch.drop(tuples)
    return int(row[0]) if row else 0


def _update_duckdb(ws: Workspace, scratch: Scratch, name: str, rows: ir.Table) -> int:
    diff = rows.filter(~rows._cx_pid.identical_to(rows.profile_id)).select(ROWID, "_cx_pid")
    tmp = scratch.save(diff, "writeback")
    n = int(scalar(tmp.count()))
    if n:
        ws.sql(
            f'UPDATE "{name}" SET profile_id = m._cx_pid FROM "{ref(tmp)}" m '
            f'WHERE "{name}".rowid = m.{ROWID}'
        )
    scratch.drop(tmp)
    return n


def _rewrite(ws: Workspace, scratch: Scratch, name: str, rows: ir.Table) -> int:
    n = int(scalar((~rows._cx_pid.identical_to(rows.profile_id)).sum()) or 0)
    if n:
        cols = [c for c in ws.table(name).columns]
        out = rows.mutate(profile_id=rows._cx_pid).select(*cols)
        spark_replace(ws, scratch, name, out)
    return n


def _order_items(ws: Workspace, scratch: Scratch) -> int:
    o = ws.table("orders")
    per_order = o.group_by(["source", "order_id"]).agg(_cx_pid=o.profile_id.max())
    if is_duckdb(ws):
        ws.sql(f'CREATE OR REPLACE TEMP VIEW "{scratch.prefix}_items" AS SELECT rowid AS {ROWID}, * FROM order_items')
        items = ws.con.table(f"{scratch.prefix}_items")
    else:
        items = ws.table("order_items")
    j = items.left_join(per_order, [items.source == per_order.source, items.order_id == per_order.order_id])
    j = j.select(*[items[c] for c in items.columns], per_order._cx_pid)
    if is_duckdb(ws):
        return _update_duckdb(ws, scratch, "order_items", j)
    return _rewrite(ws, scratch, "order_items", j)
