"""Identity resolution on a real DuckDB workspace: merges, namespaces, the guard, stable ids."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cxlens import Workspace
from cxlens.errors import IdentityError
from cxlens.identity import evaluate, identity_stats, resolve
from cxlens.workspace.backend import ibis_schema
from cxlens.workspace.internal import INTERNAL_TABLES
from cxlens.workspace.schema import TABLES, all_columns

from conftest import run_cli

REQUIRED_DEFAULTS: dict[str, Any] = {
    "occurred_at": "2024-01-01T00:00:00", "event_type": "page_view", "ordered_at": "2024-01-01T00:00:00",
    "revenue": 10.0,
}
_row_counter = itertools.count()


def frame(name: str, rows: list[dict[str, Any]], source: str, ingest_id: int) -> pa.Table:
    """Rows for canonical table `name` with every column, typed like the workspace table."""
    cols = all_columns(TABLES[name])
    full = []
    for r in rows:
        rec = {c.name: None for c in cols}
        rec.update({k: v for k, v in REQUIRED_DEFAULTS.items() if k in rec})
        rec.update(r)
        rec.update(source=source, ingest_id=ingest_id, record_key=rec.get("record_key") or f"r{next(_row_counter)}")
        full.append(rec)
    schema = ibis_schema(cols).to_pyarrow()
    data = {c.name: [rec[c.name] for rec in full] for c in cols}
    return pa.table({c: pa.array(v).cast(schema.field(c).type) if any(x is not None for x in v) else pa.nulls(len(v), schema.field(c).type) for c, v in data.items()}, schema=schema)


def sources_row(ingest_id: int, name: str, source: str) -> pa.Table:
    cols = INTERNAL_TABLES["sources"]
    schema = ibis_schema(cols).to_pyarrow()
    values = {c.name: None for c in cols}
    values.update(ingest_id=ingest_id, table_name=name, source=source, resolved=False, file=f"{source}.csv")
    return pa.table({k: pa.array([v], schema.field(k).type) for k, v in values.items()}, schema=schema)


class Loader:
    """Inserts rows the way an ingest would: a sources row (resolved = false) plus the rows."""

    def __init__(self, ws: Workspace):
        self.ws = ws
        self.next_id = 1

    def add(self, name: str, rows: list[dict[str, Any]], source: str = "crm") -> int:
        ingest_id = self.next_id
        self.next_id += 1
        self.insert("sources", sources_row(ingest_id, name, source))
        self.insert(name, frame(name, rows, source, ingest_id))
        return ingest_id

    def insert(self, name: str, data: pa.Table) -> None:
        session = getattr(self.ws.backend, "session", None)
        if session is None:
            self.ws.backend.insert(name, data)
        else:  # straight from Arrow: Ibis' pandas route would store NULL strings as 'NaN'
            session.createDataFrame(data).write.insertInto(name)


def profiles(ws: Workspace, name: str, column: str = "record_key") -> dict[str, str | None]:
    rows = ws.table(name).select(column, "profile_id").to_pyarrow().to_pylist()
    return {r[column]: r["profile_id"] for r in rows}


def record_partition(ws: Workspace) -> set[frozenset[str]]:
    """Records grouped by profile (table/source/record_key), NULL profiles kept apart."""
    groups: dict[str, set[str]] = {}
    for name, table in TABLES.items():
        if not table.person and name != "order_items":
            continue
        for r in ws.table(name).select("source", "record_key", "profile_id").to_pyarrow().to_pylist():
            rid = f"{name}/{r['source']}/{r['record_key']}"
            groups.setdefault(r["profile_id"] or f"none:{rid}", set()).add(rid)
    return {frozenset(v) for v in groups.values()}


@pytest.fixture
def load(ws: Workspace) -> Loader:
    return Loader(ws)


def test_transitive_merge_across_tables_and_sources(ws: Workspace, load: Loader) -> None:
    load.add("customers", [{"customer_id": "c1", "email": "Ann@Example.com", "record_key": "c1"}], "crm")
    load.add("customers", [{"customer_id": "w9", "email": "  ann@example.COM ", "record_key": "w9"}], "webshop")
    load.add("events", [
        {"anonymous_id": "a1", "record_key": "e1"},
        {"anonymous_id": "a1", "customer_id": "w9", "event_type": "signup", "record_key": "e2"},
        {"anonymous_id": "a2", "record_key": "e3"},
    ], "webshop")
    load.add("orders", [{"order_id": "o1", "customer_id": "w9", "record_key": "o1"}], "webshop")
    ws.backend.insert("order_items", frame("order_items", [{"order_id": "o1", "product_id": "p", "quantity": 1.0, "unit_price": 2.0}], "webshop", 4))

    report = resolve(ws)
    crm, shop = profiles(ws, "customers")["c1"], profiles(ws, "customers")["w9"]
    assert crm is not None and crm == shop
    ev = profiles(ws, "events")
    assert ev["e1"] == ev["e2"] == crm
    assert ev["e3"] not in (None, crm)
    assert profiles(ws, "orders")["o1"] == crm
    assert ws.table("order_items").profile_id.to_pyarrow().to_pylist() == [crm]
    assert report.profiles == 2 and report.ingests == 4 and report.rows_assigned == 7


def test_customer_ids_are_namespaced_by_source(ws: Workspace, load: Loader) -> None:
    load.add("customers", [{"customer_id": "42", "record_key": "a"}], "crm")
    load.add("customers", [{"customer_id": "42", "record_key": "b"}], "pos")
    resolve(ws)
    p = profiles(ws, "customers")
    assert p["a"] and p["b"] and p["a"] != p["b"]


def test_phone_variants_normalize_to_one_key(ws: Workspace, load: Loader) -> None:
    load.add("customers", [
        {"customer_id": "1", "phone": "+1 (555) 010-9999", "record_key": "1"},
        {"customer_id": "2", "phone": "555.010.9999", "record_key": "2"},
        {"customer_id": "3", "phone": "001 555 010 9999", "record_key": "3"},
        {"customer_id": "4", "phone": "0555 010 9999", "record_key": "4"},
        {"customer_id": "5", "phone": "+44 20 7946 0000", "record_key": "5"},
    ])
    resolve(ws)
    p = profiles(ws, "customers")
    assert p["1"] == p["2"] == p["3"] == p["4"]
    assert p["5"] != p["1"]
    phones = ws.sql("SELECT key FROM identity_keys WHERE key_type = 'phone' ORDER BY key").fetchall()
    assert phones == [("phone:15550109999",), ("phone:442079460000",)]


@pytest.mark.parametrize(("sharers", "merged"), [(50, True), (51, False)])
def test_shared_email_guard(ws: Workspace, load: Loader, sharers: int, merged: bool) -> None:
    rows = [{"customer_id": str(i), "email": "family@home.net", "record_key": str(i)} for i in range(sharers)]
    load.add("customers", rows)
    load.add("events", [{"email": "FAMILY@home.net", "record_key": "only-email"},
                        {"email": "family@home.net", "anonymous_id": "z", "record_key": "email-anon"}], "web")
    report = resolve(ws)
    p = profiles(ws, "customers")
    ev = profiles(ws, "events")
    if merged:
        assert len(set(p.values())) == 1 and report.flagged == 0
        assert ev["only-email"] == p["0"]
        return
    assert len(set(p.values())) == sharers and None not in p.values()
    assert report.flagged == 1
    flags = ws.sql("SELECT key, key_type, distinct_customers FROM identity_flags").fetchall()
    assert flags == [("email:family@home.net", "email", sharers)]
    assert ws.sql("SELECT profile_id, flagged FROM identity_keys WHERE key = 'email:family@home.net'").fetchall() == [(None, True)]
    assert ev["only-email"] is None
    assert ev["email-anon"] is not None and ev["email-anon"] not in p.values()
    stats = identity_stats(ws)
    assert stats["flagged"] == [{"key": "email:family@home.net", "key_type": "email", "distinct_customers": sharers}]


def test_rows_without_identifiers_stay_null(ws: Workspace, load: Loader) -> None:
    load.add("events", [{"record_key": "anon-less"}, {"anonymous_id": "  ", "record_key": "blank"},
                        {"email": "not-an-email", "record_key": "bad"}], "web")
    resolve(ws)
    assert set(profiles(ws, "events").values()) == {None}
    stats = identity_stats(ws)
    assert stats["records"]["without_profile"] == 3 and stats["profiles"] == 0


def test_ids_are_stable_and_merges_keep_smallest(ws: Workspace, load: Loader) -> None:
    load.add("customers", [{"customer_id": "1", "email": "a@x.io", "record_key": "1"},
                           {"customer_id": "2", "email": "b@x.io", "record_key": "2"}])
    resolve(ws)
    first = profiles(ws, "customers")
    assert resolve(ws, full=True).rows_assigned == 0
    assert profiles(ws, "customers") == first

    load.add("customers", [{"customer_id": "3", "email": "c@x.io", "record_key": "3"}])
    resolve(ws)
    second = profiles(ws, "customers")
    assert {k: second[k] for k in first} == first

    load.add("events", [{"email": "a@x.io", "anonymous_id": "s", "record_key": "e1"},
                        {"email": "b@x.io", "anonymous_id": "s", "record_key": "e2"}], "web")
    report = resolve(ws)
    merged = profiles(ws, "customers")
    assert report.merges == 1
    assert merged["1"] == merged["2"] == min(first["1"], first["2"])
    assert merged["3"] == second["3"]
    assert set(profiles(ws, "events").values()) == {merged["1"]}


def test_new_flag_splits_and_keeps_id_on_largest_part(ws: Workspace, load: Loader) -> None:
    load.add("customers", [{"customer_id": str(i), "email": "shared@x.io", "record_key": str(i)} for i in range(3)]
             + [{"customer_id": "0", "phone": "5550001111", "record_key": "0b"}])
    resolve(ws, max_shared=3)
    before = profiles(ws, "customers")
    assert len(set(before.values())) == 1
    load.add("customers", [{"customer_id": "9", "email": "shared@x.io", "record_key": "9"}], "crm")
    report = resolve(ws, max_shared=3)
    after = profiles(ws, "customers")
    assert report.full and report.flagged == 1 and report.splits >= 1
    assert len(set(after.values())) == 4
    # customer 0 has two keys (its id and phone): the largest part keeps the old id.
    assert after["0"] == after["0b"] == before["0"]


def test_incremental_equals_full_and_is_idempotent(tmp_path: Path) -> None:
    batches = [
        ("customers", "crm", [{"customer_id": "1", "email": "a@x.io"}, {"customer_id": "2", "phone": "555 111 2222"}]),
        ("events", "web", [{"anonymous_id": "v1"}, {"anonymous_id": "v1", "email": "A@x.io"}, {"anonymous_id": "v2"}]),
        ("orders", "pos", [{"order_id": "9", "loyalty_id": "L7", "phone": "+15551112222"}, {"order_id": "10", "loyalty_id": "L8"}]),
        ("interactions", "desk", [{"interaction_id": "i", "channel": "chat", "loyalty_id": "L7", "anonymous_id": "v2"}]),
    ]
    with Workspace.open(tmp_path / "inc.duckdb") as inc, Workspace.open(tmp_path / "full.duckdb") as full:
        li, lf = Loader(inc), Loader(full)
        for i, (name, source, rows) in enumerate(batches):
            rows = [{**r, "record_key": f"{name}{i}{j}"} for j, r in enumerate(rows)]
            li.add(name, rows, source)
            lf.add(name, rows, source)
            resolve(inc)
        resolve(full, full=True)
        assert record_partition(inc) == record_partition(full)
        keys_before = inc.sql("SELECT * FROM identity_keys ORDER BY key").fetchall()
        again = resolve(inc)
        assert again.rows_assigned == 0 and again.ingests == 0
        assert resolve(inc, full=True).rows_assigned == 0
        assert inc.sql("SELECT * FROM identity_keys ORDER BY key").fetchall() == keys_before
        assert inc.sql("SELECT count(*) FROM sources WHERE NOT resolved").fetchone() == (0,)


class UnionFind:
    """Reference partition, independent of the engine."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


record_strategy = st.lists(
    st.fixed_dictionaries({
        "customer_id": st.one_of(st.none(), st.integers(0, 15).map(str)),
        "email": st.one_of(st.none(), st.integers(0, 15).map(lambda i: f"u{i}@x.io")),
        "anonymous_id": st.one_of(st.none(), st.integers(0, 15).map(lambda i: f"anon{i}")),
    }),
    min_size=1, max_size=40,
)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=record_strategy, split_at=st.integers(0, 40))
def test_partition_matches_union_find(tmp_path_factory: pytest.TempPathFactory, records: list[dict], split_at: int) -> None:
    path = tmp_path_factory.mktemp("hyp") / "ws.duckdb"
    with Workspace.open(path) as w:
        loader = Loader(w)
        rows = [{**r, "record_key": f"r{i}"} for i, r in enumerate(records)]
        for part in (rows[:split_at], rows[split_at:]):
            if part:
                loader.add("events", part, "web")
                resolve(w)
        uf = UnionFind()
        for r in rows:
            keys = [f"customer_id:web:{r['customer_id']}" if r["customer_id"] else None,
                    f"email:{r['email']}" if r["email"] else None,
                    f"anonymous_id:{r['anonymous_id']}" if r["anonymous_id"] else None]
            keys = [k for k in keys if k]
            for k in keys:
                uf.find(k)
            for a, b in zip(keys, keys[1:]):
                uf.union(a, b)
        expected: dict[str, set[str]] = {}
        for k in uf.parent:
            expected.setdefault(uf.find(k), set()).add(k)
        got: dict[str, set[str]] = {}
        for key, pid in w.sql("SELECT key, profile_id FROM identity_keys").fetchall():
            got.setdefault(pid, set()).add(key)
        assert {frozenset(v) for v in got.values()} == {frozenset(v) for v in expected.values()}


shared_strategy = st.lists(
    st.lists(st.fixed_dictionaries({
        "customer_id": st.one_of(st.none(), st.integers(0, 9).map(str)),
        "email": st.one_of(st.none(), st.integers(0, 3).map(lambda i: f"home{i}@x.io")),
        "phone": st.one_of(st.none(), st.integers(0, 2).map(lambda i: f"555000111{i}")),
        "anonymous_id": st.one_of(st.none(), st.integers(0, 5).map(lambda i: f"anon{i}")),
    }), min_size=1, max_size=8),
    min_size=2, max_size=5,
)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=shared_strategy, max_shared=st.integers(1, 3))
def test_incremental_sharing_guard_equals_a_full_run(tmp_path_factory: pytest.TempPathFactory, batches: list[list[dict]],
                                                     max_shared: int) -> None:
    """Batches resolved one by one (the guard checks only the keys each batch touches, and scans
    every record only when one of them could pass it) end with the profiles and flags of one full
    run over all of them, with few customers per shared email or phone so keys cross the guard."""
    root = tmp_path_factory.mktemp("guard")
    with Workspace.open(root / "inc.duckdb") as inc, Workspace.open(root / "full.duckdb") as full:
        li, lf = Loader(inc), Loader(full)
        for b, rows in enumerate(batches):
            rows = [{**r, "record_key": f"b{b}r{j}"} for j, r in enumerate(rows)]
            li.add("customers", rows, "crm")
            lf.add("customers", rows, "crm")
            resolve(inc, max_shared=max_shared)
        resolve(full, max_shared=max_shared, full=True)
        assert record_partition(inc) == record_partition(full)
        flags = "SELECT key FROM identity_keys WHERE flagged ORDER BY key"
        assert inc.sql(flags).fetchall() == full.sql(flags).fetchall()
        assert inc.sql("SELECT key FROM identity_flags ORDER BY key").fetchall() == full.sql(
            "SELECT key FROM identity_flags ORDER BY key").fetchall()


def test_an_incremental_run_far_under_the_guard_reads_only_its_records(ws: Workspace, load: Loader,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The guard's scan of every record (record_keys without ingest ids) runs only when a key the
    new records touch could pass max_shared; a key that could is still caught (then a full run)."""
    from cxlens.identity import graph

    load.add("customers", [{"customer_id": str(i), "email": f"u{i}@x.io"} for i in range(20)]
             + [{"customer_id": str(i), "email": "family@x.io"} for i in range(3)])
    resolve(ws, max_shared=3)
    scans: list[object] = []
    real = graph.record_keys
    monkeypatch.setattr(graph, "record_keys", lambda w, cc, ids=None, staged=None: (scans.append(ids), real(w, cc, ids, staged))[1])
    load.add("events", [{"email": "u1@x.io", "anonymous_id": "a1"}, {"customer_id": "5", "email": "u5@x.io"}], "crm")
    report = resolve(ws, max_shared=3)
    assert scans == [[2]] and not report.full and report.merges == 0
    load.add("events", [{"customer_id": "7", "email": "family@x.io"}], "crm")  # a 4th customer on the family email
    report = resolve(ws, max_shared=3)
    assert None in scans[1:] and report.full and report.flagged == 1


def test_evaluate_against_hand_computed_pairs(ws: Workspace, load: Loader) -> None:
    # Predicted: {c1, a@, b@} and {c2}; truth: person 1 = {c1, a@}, person 2 = {b@, c2}.
    load.add("customers", [{"customer_id": "1", "email": "a@x.io", "record_key": "1"},
                           {"customer_id": "2", "record_key": "2"}])
    load.add("events", [{"email": "a@x.io", "anonymous_id": "s"}, {"email": "b@x.io", "anonymous_id": "s"}], "web")
    resolve(ws)
    truth = {"customer_id:crm:1": 1, "email:a@x.io": 1, "email:b@x.io": 2, "customer_id:crm:2": 2,
             "email:nobody@x.io": 3}
    result = evaluate(ws, truth)
    # Predicted pairs among truth keys: {c1,a},{c1,b},{a,b} = 3; true pairs {c1,a},{b,c2} = 2; correct 1.
    assert result["keys"] == 4
    assert (result["predicted_pairs"], result["true_pairs"], result["correct_pairs"]) == (3, 2, 1)
    assert result["precision"] == pytest.approx(1 / 3) and result["recall"] == pytest.approx(1 / 2)
    assert result["f1"] == pytest.approx(0.4)


def test_bad_settings_are_a_sentence(ws: Workspace) -> None:
    with pytest.raises(IdentityError, match="max_shared"):
        resolve(ws, max_shared=0)
    with pytest.raises(IdentityError, match="country_code"):
        resolve(ws, country_code="+44")


def test_cli_resolve_and_stats_json(ws_path: Path) -> None:
    with Workspace.open(ws_path) as w:
        Loader(w).add("customers", [{"customer_id": "1", "email": "a@x.io"}, {"customer_id": "2", "email": "A@x.io"}])
    res = run_cli("identity", "resolve", "--format", "json", workspace=ws_path)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["profiles"] == 1 and report["rows_assigned"] == 2 and report["ingests"] == 1
    res = run_cli("identity", "stats", "--format", "json", workspace=ws_path)
    assert res.returncode == 0, res.stderr
    stats = json.loads(res.stdout)
    assert stats["profiles"] == 1 and stats["keys"] == {"customer_id": 2, "email": 1}
    assert stats["component_sizes"]["histogram"]["3-5"] == 1
    assert stats["records"]["with_profile"] == 2
    res = run_cli("identity", "resolve", "--max-shared", "0", workspace=ws_path)
    assert res.returncode != 0 and "Traceback" not in res.stderr
