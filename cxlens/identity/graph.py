"""From records to an identity graph: the keys each record carries, over-shared keys, and edges.

A record (one row of a person table) is a hyperedge joining all of its keys; it is stored as a
star from its first usable key (KEY_TYPES order) to each other key, which yields the same
connected components with one edge per extra key instead of a clique. `identity_links` rows
(declared identifiers, identify calls) are plain edges.

Over-merge guard: a non-customer key (a family email, a shop's phone number, a shared loyalty
card) that co-occurs with more than `max_shared` distinct customer ids is flagged; its edges are
dropped, so it neither merges those customers nor receives a profile.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import ibis
import ibis.expr.types as ir

from cxlens.identity.keys import KEY_TYPES, row_keys
from cxlens.workspace import Workspace
from cxlens.workspace.schema import TABLES

PERSON_TABLES: tuple[str, ...] = tuple(name for name, t in TABLES.items() if t.person)
CUSTOMER = "customer_id"


def kcol(key_type: str) -> str:
    """Name of the column holding a record's key of `key_type` in a record-keys table."""
    return f"k_{key_type}"


KEY_COLUMNS: tuple[str, ...] = tuple(kcol(k) for k in KEY_TYPES)


def key_type_of(key: ir.StringValue) -> ir.StringValue:
    """'email' for 'email:a@b.c', 'customer_id' for 'customer_id:crm:42'."""
    return key.re_extract(r"^([^:]+):", 1)


def union_all(tables: Iterable[ir.Table]) -> ir.Table | None:
    items = list(tables)
    if not items:
        return None
    return functools.reduce(lambda a, b: a.union(b, distinct=False), items)


def record_keys(
    ws: Workspace, country_code: str, ingest_ids: list[int] | None = None, staged: ir.Table | None = None
) -> ir.Table | None:
    """One row per distinct identifier combination with its normalized keys (k_customer_id, ...).

    `ingest_ids` restricts to the records of those ingests (incremental resolution). `staged` adds
    the distinct combinations (source and identity columns) of records an ingest is about to load.
    """
    have = ws.backend.tables()
    tables = []
    for name in PERSON_TABLES:
        if name not in have:
            continue
        t = ws.table(name)
        if ingest_ids is not None:
            t = t.filter(t.ingest_id.isin(ingest_ids))
        # Millions of events carry a few thousand distinct identifier combinations: normalize
        # those, not every row (the graph, the guard and the nodes only need distinct tuples).
        tables.append(t.select("source", *[c for c in KEY_TYPES if c in t.columns]).distinct())
    if staged is not None:
        tables.append(staged)
    parts = []
    for t in tables:
        keys = row_keys(t, country_code)
        cols = {kcol(k): keys.get(k, ibis.null("string")) for k in KEY_TYPES}
        parts.append(t.select(**cols))
    out = union_all(parts)
    if out is None:
        return None
    any_key = functools.reduce(lambda a, b: a | b, [out[c].notnull() for c in KEY_COLUMNS])
    return out.filter(any_key)


def links(ws: Workspace, ingest_ids: list[int] | None = None) -> ir.Table:
    """Declared edges (key_a, key_b), blank or self links dropped."""
    t = ws.table("identity_links")
    if ingest_ids is not None:
        t = t.filter(t.ingest_id.isin(ingest_ids))
    t = t.filter(t.key_a.notnull() & t.key_b.notnull() & (t.key_a != t.key_b))
    return t.select("key_a", "key_b")


def customer_pairs(records: ir.Table | None, link_edges: ir.Table) -> ir.Table:
    """(cust, key): a customer id key and a non-customer key seen together in a record or a link, distinct."""
    pairs = []
    if records is not None:
        cust = records[kcol(CUSTOMER)]
        for k in KEY_TYPES:
            if k == CUSTOMER:
                continue
            other = records[kcol(k)]
            pairs.append(records.filter(cust.notnull() & other.notnull()).select(cust=cust, key=other))
    a_is = key_type_of(link_edges.key_a) == CUSTOMER
    b_is = key_type_of(link_edges.key_b) == CUSTOMER
    pairs.append(link_edges.filter(a_is & ~b_is).select(cust=link_edges.key_a, key=link_edges.key_b))
    pairs.append(link_edges.filter(b_is & ~a_is).select(cust=link_edges.key_b, key=link_edges.key_a))
    return union_all(pairs).distinct()


def shared_keys(records: ir.Table, link_edges: ir.Table, max_shared: int) -> ir.Table:
    """Keys (key, key_type, distinct_customers) over the guard: > max_shared customer ids."""
    co = customer_pairs(records, link_edges)
    counts = co.group_by("key").agg(distinct_customers=co.cust.count())
    over = counts.filter(counts.distinct_customers > max_shared)
    return over.select("key", key_type=key_type_of(over.key), distinct_customers=over.distinct_customers.cast("int64"))


def sharing_bound(identity_keys: ir.Table, flags: ir.Table, records: ir.Table | None, link_edges: ir.Table) -> ir.Table:
    """(key, bound): for each unflagged key the new records and links pair with a customer id, at
    least as many customer ids as share it once they are resolved, without reading old records.

    Every customer id an unflagged key was already seen with shares its profile (the record or
    link joins them, and neither end is flagged: customer ids never are), so the customer ids of
    that profile plus the new pairs bound the key's count. When no bound passes the guard, the
    guard's verdict cannot change and incremental resolution skips its scan of every record.
    """
    new = customer_pairs(records, link_edges)
    new = new.anti_join(flags, new.key == flags.key)
    fresh = new.group_by("key").agg(_new=new.cust.count())
    ik = identity_keys.filter(identity_keys.profile_id.notnull())
    c = ik.filter(ik.key_type == CUSTOMER)
    custs = c.group_by(_pid="profile_id").agg(_old=c.count())
    of = ik.select(_key="key", _kp="profile_id")
    b = fresh.left_join(of, fresh.key == of._key)
    b = b.left_join(custs, b._kp == custs._pid)
    return b.select("key", bound=b._new + b._old.fill_null(0))


def without_flagged(records: ir.Table, flagged: ir.Table | None) -> ir.Table:
    """Blank out flagged keys in a record-keys table (left joins; skipped when none are flagged)."""
    if flagged is None:
        return records
    out = records
    for c in KEY_COLUMNS:
        f = flagged.select(_flag_key=flagged.key, _hit=ibis.literal(True))
        j = out.left_join(f, out[c] == f._flag_key)
        out = j.mutate(**{c: ibis.ifelse(j._hit.notnull(), ibis.null("string"), j[c])}).drop("_flag_key", "_hit")
    return out


def star_edges(records: ir.Table) -> ir.Table:
    """Each record's keys joined to its first key: (key_a, key_b) with key_a < key_b, distinct."""
    center = ibis.coalesce(*[records[c] for c in KEY_COLUMNS])
    parts = []
    for c in KEY_COLUMNS[1:]:
        other = records[c]
        sel = records.filter(other.notnull() & (other != center))
        parts.append(sel.select(a=center, b=other))
    return normalize_edges(union_all(parts))


def normalize_edges(edges: ir.Table) -> ir.Table:
    """Undirected edges as (key_a, key_b) with key_a < key_b, without duplicates or self loops."""
    e = edges.filter(edges.a.notnull() & edges.b.notnull() & (edges.a != edges.b))
    return e.select(key_a=ibis.least(e.a, e.b), key_b=ibis.greatest(e.a, e.b)).distinct()


def link_edges_clean(link_edges: ir.Table, flagged: ir.Table | None) -> ir.Table:
    """Declared edges whose ends are both usable, normalized."""
    e = link_edges
    if flagged is not None:
        other = flagged.view()
        fa, fb = flagged.select(fa=flagged.key), other.select(fb=other.key)
        e = e.anti_join(fa, e.key_a == fa.fa)
        e = e.anti_join(fb, e.key_b == fb.fb)
    return normalize_edges(e.select(a=e.key_a, b=e.key_b))


def record_nodes(records: ir.Table) -> ir.Table:
    """Every non-null key of the (already guard-filtered) records, one row per key."""
    parts = [records.filter(records[c].notnull()).select(key=records[c]) for c in KEY_COLUMNS]
    return union_all(parts).distinct()


def edge_nodes(edges: ir.Table) -> ir.Table:
    return edges.select(key=edges.key_a).union(edges.select(key=edges.key_b)).distinct()
