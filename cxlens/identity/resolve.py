"""Identity resolution: records -> identity graph -> components -> stable profile ids -> rows.

Incremental by default: only ingests not yet resolved (sources.resolved = false) and the
profiles their keys touch are recomputed, which can only grow or merge profiles. Anything that
can split a profile (a key newly over the sharing guard, changed settings) or an explicit
`full=True` recomputes the whole graph; ids still carry over (see assign.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone

import ibis
import ibis.expr.types as ir

from cxlens.errors import IdentityError
from cxlens.identity import engine, graph
from cxlens.identity.assign import assign_ids, count
from cxlens.identity.components import MAX_ITERATIONS, connected_components
from cxlens.identity.engine import Scratch, scalar
from cxlens.identity.writeback import write_profiles
from cxlens.workspace import Workspace

SETTINGS_KEY = "identity_settings"


@dataclass(frozen=True)
class ResolveReport:
    """What one resolution run did; the totals describe the workspace after it."""

    keys: int
    edges: int
    profiles: int
    merges: int
    splits: int
    flagged: int
    rows_assigned: int
    seconds: float
    full: bool = False
    ingests: int = 0
    iterations: int = 0


@dataclass(frozen=True)
class Staged:
    """Records an ingest is about to load, inside its open transaction: resolving them first lets
    the load write their profile_id as it inserts them instead of updating every row after."""

    ingest_id: int
    combos: ir.Table
    """One row per distinct identifier combination of the records: source and identity columns."""


def resolve(
    ws: Workspace,
    *,
    max_shared: int = 50,
    country_code: str = "1",
    full: bool = False,
    max_iterations: int = MAX_ITERATIONS,
    staged: Staged | None = None,
) -> ResolveReport:
    """Resolve identities of pending ingests (or everything with `full`) and write profile_id.

    With `staged`, its records count as one more pending ingest whose rows are not in the tables
    yet; the caller loads them with the profile ids the resolution gives their keys.
    """
    if not isinstance(max_shared, int) or isinstance(max_shared, bool) or max_shared < 1:
        raise IdentityError(f"max_shared must be a whole number of customers, at least 1; got {max_shared!r}.")
    if not (isinstance(country_code, str) and country_code.isdigit() and 1 <= len(country_code) <= 3):
        raise IdentityError(f"country_code must be 1 to 3 digits such as '1' or '44'; got {country_code!r}.")
    started = time.perf_counter()
    settings = f"max_shared={max_shared};country_code={country_code}"
    stored = _read_setting(ws)
    pending = _pending_ingests(ws)
    extra = staged.combos if staged is not None else None
    if staged is not None and staged.ingest_id not in pending:
        pending = sorted([*pending, staged.ingest_id])
    has_keys = count(ws.table("identity_keys")) > 0
    if stored != settings and (stored is not None or has_keys):
        full = True
    if not full and not pending:
        return _report(ws, started, full=False, ingests=0)

    with ws.transaction(), Scratch(ws) as scratch:
        everything = full or set(pending) >= set(_all_ingests(ws))
        scope = None if everything else pending
        records = graph.record_keys(ws, country_code, scope, staged=extra)
        if records is not None:
            # Materialized once: the guard and the graph read the same normalized records.
            records = scratch.save(records, "scope_records")
        link_rows = graph.links(ws, scope)
        stored_flags = ws.table("identity_flags").select("key", "key_type", "distinct_customers")
        if scope is not None and _guard_holds(ws, stored_flags, records, link_rows, max_shared):
            flags = stored_flags  # no key the new records touch can pass the guard: no scan of every record
        else:
            all_records = records
            if scope is not None:
                all_records = graph.record_keys(ws, country_code, staged=extra)
                all_records = scratch.save(all_records, "all_records") if all_records is not None else None
            flags = scratch.save(_flags(ws, all_records, graph.links(ws), max_shared), "flags")
            if not full and _flags_differ(ws, flags):
                full = True  # a key newly over the guard can split profiles: resolve everything
                scope, records, link_rows = None, all_records, graph.links(ws)
        flagged = flags if count(flags) else None

        parts = [graph.link_edges_clean(link_rows, flagged)]
        node_parts = [graph.edge_nodes(parts[0])]
        if records is not None:
            rec = scratch.save(graph.without_flagged(records, flagged), "records")
            parts.append(graph.star_edges(rec))
            node_parts.append(graph.record_nodes(rec))
        new_edges = scratch.save(graph.union_all(parts).distinct(), "new_edges")
        new_nodes = scratch.save(graph.union_all(node_parts).distinct(), "new_nodes")

        ik = ws.table("identity_keys")
        known = ik.filter(ik.profile_id.notnull())
        if full:
            old = scratch.save(known.select("key", "profile_id"), "old")
            nodes, edges = new_nodes, new_edges
        else:
            touched = known.semi_join(new_nodes, known.key == new_nodes.key).select("profile_id").distinct()
            old = scratch.save(
                known.semi_join(touched, known.profile_id == touched.profile_id).select("key", "profile_id"),
                "old",
            )
            ie = ws.table("identity_edges")
            inside = ie.semi_join(old, ie.key_a == old.key)
            nodes = new_nodes.union(old.select("key")).distinct()
            edges = new_edges.union(inside.select("key_a", "key_b")).distinct()

        comps = connected_components(scratch, nodes, edges, max_iterations=max_iterations)
        assigned = assign_ids(scratch, comps.labels, old, known.select("profile_id"))
        now = ibis.literal(datetime.now(timezone.utc).replace(tzinfo=None), type="timestamp")
        key_rows = _key_rows(ik, assigned.key_profiles, flagged if full else None, now)
        if full:
            engine.overwrite(ws, scratch, "identity_keys", key_rows)
            engine.overwrite(ws, scratch, "identity_edges", new_edges)
            engine.overwrite(ws, scratch, "identity_flags", _flag_rows(ws, flags, now))
        else:
            engine.replace_rows(ws, scratch, "identity_keys", "key", key_rows)
            ie = ws.table("identity_edges")
            fresh = new_edges.anti_join(ie, [new_edges.key_a == ie.key_a, new_edges.key_b == ie.key_b])
            engine.append_rows(ws, scratch, "identity_edges", fresh)

        rows = write_profiles(
            ws, scratch, ws.table("identity_keys"), country_code,
            ingest_ids=None if full else pending,
            changed=None if full else assigned.changed,
        )
        engine.mark_sources_resolved(ws, scratch, _pending_ingests(ws) if full else pending)
        _write_setting(ws, scratch, settings)

    return _report(
        ws, started, full=full, ingests=len(pending), merges=assigned.merges,
        splits=assigned.splits, rows=rows, iterations=comps.iterations,
    )


def _flags(ws: Workspace, records: ir.Table | None, link_rows: ir.Table, max_shared: int) -> ir.Table:
    if records is None:
        empty = ws.table("identity_flags")
        return empty.filter(ibis.literal(False)).select("key", "key_type", "distinct_customers")
    return graph.shared_keys(records, link_rows, max_shared)


def _guard_holds(ws: Workspace, flags: ir.Table, records: ir.Table | None, link_rows: ir.Table, max_shared: int) -> bool:
    """Whether the sharing guard's verdict must stay as stored (graph.sharing_bound): flags only
    grow as records are added, and no key the new records touch can reach more than max_shared."""
    bound = graph.sharing_bound(ws.table("identity_keys"), flags, records, link_rows)
    return int(scalar(bound.bound.max().fill_null(0))) <= max_shared


def _flags_differ(ws: Workspace, flags: ir.Table) -> bool:
    """Whether the guard's verdict changed since the last run (then profiles may split)."""
    old = ws.table("identity_flags").select("key")
    new = flags.select("key")
    return count(old.anti_join(new, "key")) + count(new.anti_join(old, "key")) > 0


def _key_rows(ik: ir.Table, key_profiles: ir.Table, flagged: ir.Table | None, now: ir.Scalar) -> ir.Table:
    """identity_keys rows for the recomputed keys (first_seen kept), plus flagged keys."""
    seen = ik.select(skey=ik.key, old_first=ik.first_seen)
    kp = key_profiles.left_join(seen, key_profiles.key == seen.skey)
    rows = kp.select(
        key=kp.key,
        key_type=graph.key_type_of(kp.key),
        profile_id=kp.profile_id,
        flagged=ibis.literal(False),
        first_seen=ibis.coalesce(kp.old_first, now),
    )
    if flagged is None:
        return rows
    fk = flagged.left_join(seen, flagged.key == seen.skey)
    frows = fk.select(
        key=fk.key,
        key_type=fk.key_type,
        profile_id=ibis.null("string"),
        flagged=ibis.literal(True),
        first_seen=ibis.coalesce(fk.old_first, now),
    )
    return rows.union(frows, distinct=False)


def _flag_rows(ws: Workspace, flags: ir.Table, now: ir.Scalar) -> ir.Table:
    old = ws.table("identity_flags")
    old = old.select(okey=old.key, old_at=old.flagged_at)
    j = flags.left_join(old, flags.key == old.okey)
    return j.select("key", "key_type", "distinct_customers", flagged_at=ibis.coalesce(j.old_at, now))


def _all_ingests(ws: Workspace) -> list[int]:
    ids = ws.table("sources").ingest_id
    return [int(v) for v in ids.to_pyarrow().to_pylist() if v is not None]


def _pending_ingests(ws: Workspace) -> list[int]:
    s = ws.table("sources")
    ids = s.filter(s.resolved.isnull() | ~s.resolved).ingest_id
    return sorted(int(v) for v in ids.to_pyarrow().to_pylist() if v is not None)


def _read_setting(ws: Workspace) -> str | None:
    m = ws.table("cxlens_meta")
    values = m.filter(m.key == SETTINGS_KEY).value.to_pyarrow().to_pylist()
    return values[0] if values else None


def _write_setting(ws: Workspace, scratch: Scratch, value: str) -> None:
    if engine.is_duckdb(ws):
        ws.sql("DELETE FROM cxlens_meta WHERE key = ?", [SETTINGS_KEY])
        ws.sql("INSERT INTO cxlens_meta VALUES (?, ?)", [SETTINGS_KEY, value])
        return
    m = ws.table("cxlens_meta")
    kept = m.filter(m.key != SETTINGS_KEY)
    row = kept.limit(1).select(key=ibis.literal(SETTINGS_KEY), value=ibis.literal(value))
    engine.spark_replace(ws, scratch, "cxlens_meta", kept.union(row))


def _report(
    ws: Workspace, started: float, *, full: bool, ingests: int, merges: int = 0, splits: int = 0,
    rows: int = 0, iterations: int = 0,
) -> ResolveReport:
    ik = ws.table("identity_keys")
    totals = ik.aggregate(
        keys=ik.count(),
        profiles=ik.profile_id.nunique(),
        flagged=ibis.coalesce(ik.flagged, False).cast("int64").sum(),
    ).to_pyarrow().to_pylist()[0]
    return ResolveReport(
        keys=int(totals["keys"] or 0),
        edges=count(ws.table("identity_edges")),
        profiles=int(totals["profiles"] or 0),
        merges=merges,
        splits=splits,
        flagged=int(totals["flagged"] or 0),
        rows_assigned=rows,
        seconds=round(time.perf_counter() - started, 3),
        full=full,
        ingests=ingests,
        iterations=iterations,
    )
