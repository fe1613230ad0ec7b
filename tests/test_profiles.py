"""Unified profiles, timeline, lookup and erasure on a real DuckDB workspace file and the real CLI.

The fixture writes three people straight into the canonical tables with profile_id set and fills
identity_keys by hand, so these tests do not depend on identity resolution:
- Ann (p_ann): two CRM rows (crm, loyalty), three orders (one returned) in two sources, events,
  one NPS/CSAT/CES each plus an older NPS, a resolved and an unresolved case, a subscription, an
  assignment; one of her events carries the shared family email;
- Bob (p_bob): a CRM row, an order carrying the shared (flagged) family email;
- Carl (p_carl): customer "C1" of source pos, so a bare "C1" is ambiguous with Ann's crm:C1.
Plus unresolved rows (profile_id NULL): one with Ann's anonymous id, one with only the family email.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cxlens import Workspace
from cxlens.errors import NotFoundError, UsageError, WorkspaceError
from cxlens.profiles import (
    PROFILE_COLUMNS,
    build_profiles,
    find_profile,
    forget,
    profile_card,
    profile_timeline,
)
from cxlens.workspace.internal import INTERNAL_TABLES
from cxlens.workspace.schema import TABLES, all_columns
from tests.conftest import run_cli

T = datetime
LOADED = T(2024, 1, 1)


def _rows() -> dict[str, list[dict[str, Any]]]:
    ann = {"profile_id": "p_ann"}
    bob = {"profile_id": "p_bob"}
    return {
        "customers": [
            {**ann, "source": "crm", "record_key": "C1", "customer_id": "C1", "email": "Ann@Example.com",
             "phone": "+1 555 010 1234", "loyalty_id": "L-1", "first_name": "Ann", "last_name": "Lee",
             "country": "US", "loyalty_member": True, "loyalty_tier": "gold", "signup_at": T(2023, 1, 5),
             "loaded_at": LOADED},
            {**ann, "source": "loyalty", "record_key": "LY9", "customer_id": "LY9", "loyalty_id": "L-1",
             "loyalty_member": True, "loyalty_tier": "platinum", "first_name": "", "signup_at": T(2022, 6, 1),
             "loaded_at": T(2024, 3, 1)},
            {**bob, "source": "crm", "record_key": "C2", "customer_id": "C2", "email": "bob@example.com",
             "first_name": "Bob", "last_name": "Ray", "country": "CA", "loyalty_member": False,
             "signup_at": T(2023, 2, 1), "loaded_at": LOADED},
            {"profile_id": "p_carl", "source": "pos", "record_key": "C1", "customer_id": "C1",
             "first_name": "Carl", "signup_at": T(2023, 8, 1), "loaded_at": LOADED},
        ],
        "orders": [
            {**ann, "source": "webshop", "record_key": "O1", "order_id": "O1", "customer_id": "W7",
             "email": "ann@example.com", "ordered_at": T(2023, 2, 1), "revenue": 100.0, "channel": "online",
             "status": "completed"},
            {**ann, "source": "webshop", "record_key": "O2", "order_id": "O2", "customer_id": "W7",
             "ordered_at": T(2023, 3, 1), "revenue": 50.0, "channel": "online", "status": "returned"},
            {**ann, "source": "pos", "record_key": "O3", "order_id": "O3", "loyalty_id": "L-1",
             "ordered_at": T(2023, 4, 1), "revenue": 30.5, "channel": "store", "status": None},
            {**bob, "source": "webshop", "record_key": "O9", "order_id": "O9", "customer_id": "W8",
             "email": "family@example.com", "ordered_at": T(2023, 5, 5), "revenue": 20.0,
             "channel": "online", "status": "completed"},
        ],
        "order_items": [
            {**ann, "source": "webshop", "record_key": "O1-1", "order_id": "O1", "product_id": "A", "quantity": 1.0, "unit_price": 60.0},
            {**ann, "source": "webshop", "record_key": "O1-2", "order_id": "O1", "product_id": "B", "quantity": 2.0, "unit_price": 20.0},
            {**ann, "source": "webshop", "record_key": "O2-1", "order_id": "O2", "product_id": "C", "quantity": 1.0, "unit_price": 50.0},
            {**ann, "source": "pos", "record_key": "O3-1", "order_id": "O3", "product_id": "D", "quantity": 1.0, "unit_price": 30.5},
            {**bob, "source": "webshop", "record_key": "O9-1", "order_id": "O9", "product_id": "A", "quantity": 1.0, "unit_price": 20.0},
        ],
        "events": [
            {**ann, "source": "web", "record_key": "e1", "event_id": "e1", "anonymous_id": "anon-1",
             "occurred_at": T(2023, 1, 20), "event_type": "page_view", "channel": "Web", "page_url": "/home"},
            {**ann, "source": "esp", "record_key": "e2", "event_id": "e2", "email": "ann@example.com",
             "occurred_at": T(2023, 3, 10), "event_type": "message_opened", "channel": "email"},
            {**ann, "source": "web", "record_key": "e3", "event_id": "e3", "anonymous_id": "anon-1",
             "email": "family@example.com", "occurred_at": T(2023, 6, 1), "event_type": "add_to_cart",
             "channel": "app", "value": 12.5},
            {"profile_id": None, "source": "web", "record_key": "e4", "event_id": "e4", "anonymous_id": "anon-1",
             "occurred_at": T(2023, 7, 1), "event_type": "page_view", "channel": "web"},
            {"profile_id": None, "source": "esp", "record_key": "e5", "event_id": "e5",
             "email": "family@example.com", "occurred_at": T(2023, 7, 2), "event_type": "message_opened",
             "channel": "email"},
        ],
        "interactions": [
            {**ann, "source": "desk", "record_key": "i1", "interaction_id": "i1", "customer_id": "C1",
             "started_at": T(2023, 3, 3), "channel": "phone", "case_id": "K1", "topic": "delivery", "resolved": False},
            {**ann, "source": "desk", "record_key": "i2", "interaction_id": "i2", "customer_id": "C1",
             "started_at": T(2023, 3, 5), "channel": "chat", "case_id": "K1", "topic": "delivery", "resolved": True},
            {**ann, "source": "desk", "record_key": "i3", "interaction_id": "i3", "customer_id": "C1",
             "started_at": T(2023, 4, 5), "channel": "chat", "case_id": "K2", "topic": "refund", "resolved": False},
        ],
        "survey_responses": [
            {**ann, "source": "surveys", "record_key": "s1", "response_id": "s1", "email": "ann@example.com",
             "responded_at": T(2023, 2, 2), "survey_type": "nps", "score": 6.0, "channel": "email"},
            {**ann, "source": "surveys", "record_key": "s2", "response_id": "s2", "email": "ann@example.com",
             "responded_at": T(2023, 5, 1), "survey_type": "nps", "score": 9.0, "comment": "great"},
            {**ann, "source": "surveys", "record_key": "s3", "response_id": "s3", "email": "ann@example.com",
             "responded_at": T(2023, 3, 2), "survey_type": "csat", "score": 4.0},
            {**ann, "source": "surveys", "record_key": "s4", "response_id": "s4", "email": "ann@example.com",
             "responded_at": T(2023, 4, 2), "survey_type": "ces", "score": 5.0},
            {**bob, "source": "surveys", "record_key": "s9", "response_id": "s9", "email": "bob@example.com",
             "responded_at": T(2023, 5, 6), "survey_type": "nps", "score": 10.0},
        ],
        "subscriptions": [
            {**ann, "source": "crm", "record_key": "sub1", "subscription_id": "sub1", "customer_id": "C1",
             "started_at": T(2023, 1, 10), "plan": "plus", "mrr": 9.0},
        ],
        "assignments": [
            {**ann, "source": "lab", "record_key": "x1:anon-1", "experiment_id": "x1", "unit_id": "anon-1",
             "anonymous_id": "anon-1", "variant": "treatment", "assigned_at": T(2023, 1, 15)},
        ],
        "quarantine": [
            {"source": "webshop", "table_name": "orders", "raw_value": "abc", "reason": "bad_number",
             "record": json.dumps({"Email": "ANN@example.com ", "Amount": "abc"})},
            {"source": "crm", "table_name": "customers", "raw_value": "x", "reason": "bad_date",
             "record": json.dumps({"CustomerID": "C1", "Born": "x"})},
            {"source": "loyalty", "table_name": "customers", "raw_value": "L-1", "reason": "missing_required",
             "record": json.dumps({})},
            {"source": "crm", "table_name": "customers", "raw_value": "", "reason": "missing_required",
             "record": json.dumps({"Phone": "+1 555 010 1234", "CustomerID": None})},
            {"source": "pos", "table_name": "customers", "raw_value": "y", "reason": "bad_date",
             "record": json.dumps({"CustomerID": "C1", "Born": "y"})},
            {"source": "crm", "table_name": "customers", "raw_value": "z", "reason": "bad_date",
             "record": json.dumps({"Email": "bob@example.com", "Born": "z"})},
            {"source": "esp", "table_name": "events", "raw_value": "q", "reason": "bad_timestamp",
             "record": json.dumps({"Email": "family@example.com", "At": "q"})},
            {"source": "web", "table_name": "events", "raw_value": "anon-10", "reason": "bad_json",
             "record": "not json {"},
        ],
        "identity_keys": [
            *[{"key": k, "key_type": k.split(":")[0], "profile_id": "p_ann", "flagged": False, "first_seen": T(2023, 1, 5)}
              for k in ("customer_id:crm:C1", "customer_id:loyalty:LY9", "customer_id:webshop:W7",
                        "customer_id:desk:C1", "email:ann@example.com",
                        "phone:15550101234", "loyalty_id:L-1", "anonymous_id:anon-1")],
            *[{"key": k, "key_type": k.split(":")[0], "profile_id": "p_bob", "flagged": False, "first_seen": T(2023, 2, 1)}
              for k in ("customer_id:crm:C2", "customer_id:webshop:W8", "email:bob@example.com")],
            {"key": "customer_id:pos:C1", "key_type": "customer_id", "profile_id": "p_carl", "flagged": False, "first_seen": T(2023, 8, 1)},
            {"key": "email:family@example.com", "key_type": "email", "profile_id": None, "flagged": True, "first_seen": T(2023, 5, 5)},
        ],
        "identity_edges": [
            {"key_a": "customer_id:crm:C1", "key_b": "email:ann@example.com"},
            {"key_a": "customer_id:webshop:W7", "key_b": "email:ann@example.com"},
            {"key_a": "customer_id:crm:C2", "key_b": "email:bob@example.com"},
        ],
        "identity_links": [
            {"key_a": "customer_id:crm:C1", "key_b": "loyalty_id:L-1", "source": "crm", "ingest_id": 1},
            {"key_a": "customer_id:crm:C2", "key_b": "email:bob@example.com", "source": "crm", "ingest_id": 1},
        ],
    }


def _frame(name: str, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows as a frame with every column of the table, typed like the table."""
    cols = all_columns(TABLES[name]) if name in TABLES else INTERNAL_TABLES[name]
    kinds = {"string": "object", "json": "object", "timestamp": "datetime64[us]", "date": "datetime64[us]",
             "float64": "float64", "int64": "Int64", "boolean": "boolean"}
    df = pd.DataFrame([{c.name: r.get(c.name) for c in cols} for r in rows], columns=[c.name for c in cols])
    return df.astype({c.name: kinds[c.type] for c in cols})


def seed(ws: Workspace) -> dict[str, pd.DataFrame]:
    frames = {name: _frame(name, rows) for name, rows in _rows().items()}
    raw = ws.backend.raw
    for name, df in frames.items():
        raw.register("_seed", df)
        raw.execute(f"INSERT INTO {name} BY NAME SELECT * FROM _seed")
        raw.unregister("_seed")
    return frames


@pytest.fixture
def seeded(ws: Workspace) -> dict[str, pd.DataFrame]:
    return seed(ws)


@pytest.fixture
def seeded_path(ws_path: Path) -> Path:
    with Workspace.open(ws_path) as w:
        seed(w)
        build_profiles(w)
    return ws_path


# ---------------------------------------------------------------- independent reference (pandas)

TIME = {"customers": "signup_at", "orders": "ordered_at", "events": "occurred_at", "interactions": "started_at",
        "survey_responses": "responded_at", "subscriptions": "started_at", "assignments": "assigned_at"}


def _phone(raw: str) -> str | None:
    digits = re.sub(r"[^0-9]", "", raw.strip())
    if len(digits) < 6:
        return None
    if raw.strip().startswith("+"):
        return digits
    if digits.startswith("00"):
        return digits[2:]
    if digits.startswith("0"):
        return "1" + digits[1:]
    return "1" + digits if len(digits) <= 10 else digits


def _keys(row: pd.Series) -> dict[str, str | None]:
    def val(c: str) -> str | None:
        v = row.get(c)
        return None if v is None or pd.isna(v) or not str(v).strip() else str(v).strip()

    email = val("email")
    return {
        "customer_ids": f"{row['source']}:{val('customer_id')}" if val("customer_id") else None,
        "emails": email.lower() if email and "@" in email else None,
        "phones": _phone(val("phone")) if val("phone") else None,
        "loyalty_ids": val("loyalty_id"),
        "anonymous_ids": val("anonymous_id"),
    }


def reference_profiles(f: dict[str, pd.DataFrame]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    people = sorted({p for t in TIME for p in f[t].profile_id.dropna()})
    for pid in people:
        mine = {t: f[t][f[t].profile_id == pid] for t in TIME}
        times = pd.concat([mine[t][TIME[t]] for t in TIME]).dropna()
        chans = pd.concat([mine[t]["channel"] for t in ("orders", "events", "interactions", "survey_responses")]).dropna()
        chans = sorted({c.strip().lower() for c in chans if c.strip()})
        o = mine["orders"]
        done = o[o.status.isna() | (o.status == "completed")]
        crm = mine["customers"].sort_values(["loaded_at", "signup_at", "record_key"], ascending=False)

        def latest(col: str) -> Any:
            vals = [v for v in crm[col] if not pd.isna(v) and str(v).strip() != ""]
            return vals[0] if vals else None

        s = mine["survey_responses"].sort_values(["responded_at", "response_id"], ascending=False)
        latest_score = {k: (s[s.survey_type == k].score.iloc[0] if (s.survey_type == k).any() else None)
                        for k in ("nps", "csat", "ces")}
        i = mine["interactions"].dropna(subset=["case_id"]).sort_values(["started_at", "interaction_id"], ascending=False)
        last = i.groupby(["source", "case_id"]).head(1)
        keys: dict[str, set[str]] = {k: set() for k in ("customer_ids", "emails", "phones", "loyalty_ids", "anonymous_ids")}
        for t in TIME:
            for _, row in mine[t].iterrows():
                for k, v in _keys(row).items():
                    if v:
                        keys[k].add(v)
        crm_emails = [_keys(r)["emails"] for _, r in crm.iterrows() if _keys(r)["emails"]]
        others = []
        for t in TIME:
            if t == "customers":
                continue
            for _, row in mine[t].iterrows():
                if _keys(row)["emails"]:
                    others.append((row[TIME[t]], _keys(row)["emails"]))
        primary = crm_emails[0] if crm_emails else (max(others)[1] if others else None)
        out[pid] = {
            "profile_id": pid,
            "first_seen": times.min(),
            "last_seen": times.max(),
            "records": sum(len(mine[t]) for t in TIME),
            "sources": ",".join(sorted({s for t in TIME for s in mine[t].source})),
            "channels": ",".join(chans) or None,
            "orders": len(done),
            "revenue": float(done.revenue.sum()),
            "aov": float(done.revenue.sum()) / len(done) if len(done) else None,
            "last_order_at": done.ordered_at.max() if len(done) else None,
            "returned_orders": int((o.status == "returned").sum()),
            "loyalty_member": latest("loyalty_member"),
            "loyalty_tier": latest("loyalty_tier"),
            "latest_nps": latest_score["nps"],
            "latest_csat": latest_score["csat"],
            "latest_ces": latest_score["ces"],
            "open_cases": int((last.resolved == False).sum()),  # noqa: E712
            **{k: len(v) for k, v in keys.items()},
            "primary_email": primary,
            "first_name": latest("first_name"),
            "last_name": latest("last_name"),
            "country": latest("country"),
        }
    return out


def _naive(v: Any) -> Any:
    if isinstance(v, (datetime, pd.Timestamp)) and v.tzinfo is not None:
        return pd.Timestamp(v).tz_convert("UTC").tz_localize(None)
    return v


def _same(a: Any, b: Any) -> bool:
    a, b = _naive(a), _naive(b)
    if a is None or (not isinstance(a, str) and pd.isna(a)):
        return b is None or (not isinstance(b, str) and pd.isna(b))
    if isinstance(a, float) or isinstance(b, float):
        return b is not None and abs(float(a) - float(b)) < 1e-9
    if isinstance(a, (datetime, pd.Timestamp)):
        return pd.Timestamp(a) == pd.Timestamp(b)
    return bool(a == b)


def _table(ws: Workspace, name: str) -> pd.DataFrame:
    return ws.table(name).to_pyarrow().to_pandas()


# ---------------------------------------------------------------- build_profiles

def test_every_profiles_column_matches_an_independent_computation(ws: Workspace, seeded: dict[str, pd.DataFrame]) -> None:
    assert build_profiles(ws) == 3
    got = {r["profile_id"]: r for r in ws.table("profiles").to_pyarrow().to_pylist()}
    assert list(ws.table("profiles").columns) == [c.name for c in PROFILE_COLUMNS]
    want = reference_profiles(seeded)
    assert set(got) == set(want)
    for pid, expected in want.items():
        for col, value in expected.items():
            assert _same(value, got[pid][col]), (pid, col, value, got[pid][col])


def test_ann_profile_by_hand(ws: Workspace, seeded: dict[str, pd.DataFrame]) -> None:
    """Pinned values, so a shared mistake in the reference cannot hide (no fan-out double counting)."""
    build_profiles(ws)
    ann = profile_card(ws, "p_ann")
    assert ann["orders"] == 2 and ann["revenue"] == pytest.approx(130.5) and ann["aov"] == pytest.approx(65.25)
    assert ann["returned_orders"] == 1
    assert ann["last_order_at"] == T(2023, 4, 1)
    assert ann["first_seen"] == T(2022, 6, 1) and ann["last_seen"] == T(2023, 6, 1)
    assert ann["records"] == 2 + 3 + 3 + 3 + 4 + 1 + 1
    assert ann["sources"] == "crm,desk,esp,lab,loyalty,pos,surveys,web,webshop"
    assert ann["channels"] == "app,chat,email,online,phone,store,web"
    assert (ann["latest_nps"], ann["latest_csat"], ann["latest_ces"]) == (9.0, 4.0, 5.0)
    assert ann["open_cases"] == 1
    assert ann["loyalty_tier"] == "platinum" and ann["loyalty_member"] is True
    assert (ann["first_name"], ann["last_name"], ann["country"]) == ("Ann", "Lee", "US")
    assert ann["primary_email"] == "ann@example.com"
    assert (ann["customer_ids"], ann["emails"], ann["phones"], ann["loyalty_ids"], ann["anonymous_ids"]) == (4, 2, 1, 1, 1)
    ids = {i["key"]: i for i in ann["identifiers"]}
    assert ids["email:family@example.com"]["flagged"] is True
    assert ids["email:ann@example.com"]["flagged"] is False and ids["email:ann@example.com"]["value"] == "ann@example.com"


def test_profiles_rebuild_replaces_the_table(ws: Workspace, seeded: dict[str, pd.DataFrame]) -> None:
    build_profiles(ws)
    ws.sql("DELETE FROM orders WHERE profile_id = 'p_bob'")
    assert build_profiles(ws) == 3
    bob = profile_card(ws, "p_bob")
    assert bob["orders"] == 0 and bob["revenue"] == 0.0 and bob["aov"] is None and bob["last_order_at"] is None


def test_empty_workspace_builds_an_empty_profiles_table(ws: Workspace) -> None:
    assert build_profiles(ws) == 0
    assert list(ws.table("profiles").columns) == [c.name for c in PROFILE_COLUMNS]


# ---------------------------------------------------------------- timeline

def test_timeline_covers_every_record_in_time_order(ws: Workspace, seeded: dict[str, pd.DataFrame]) -> None:
    tl = profile_timeline(ws, "p_ann")
    expected = {(t, k) for t in TIME for k in seeded[t][seeded[t].profile_id == "p_ann"].record_key}
    assert set(zip(tl["table"], tl["record_key"])) == expected and len(tl) == len(expected)
    assert tl["at"].is_monotonic_increasing
    order_rows = tl[tl["table"] == "orders"].set_index("record_key")
    assert order_rows.loc["O2", "kind"] == "order returned" and order_rows.loc["O2", "value"] == 50.0
    assert order_rows.loc["O3", "kind"] == "order completed"
    survey = tl[tl["record_key"] == "s2"].iloc[0]
    assert survey["kind"] == "nps 9" and survey["summary"] == "great"
    chat = tl[tl["record_key"] == "i3"].iloc[0]
    assert chat["kind"] == "chat / refund" and "case K2" in chat["summary"] and "unresolved" in chat["summary"]


def test_timeline_limit_keeps_the_most_recent(ws: Workspace, seeded: dict[str, pd.DataFrame]) -> None:
    full = profile_timeline(ws, "p_ann")
    last5 = profile_timeline(ws, "p_ann", limit=5)
    assert list(last5["record_key"]) == list(full["record_key"].iloc[-5:])


def test_lookups_compiled_once_equal_the_ibis_queries_for_every_profile(ws: Workspace, seeded: dict[str, pd.DataFrame]) -> None:
    """The timeline and the identifiers are compiled once with the profile id as a parameter: each
    profile gets what its own Ibis query gives, and an id is data (quotes stay inert)."""
    from cxlens.profiles import timeline

    timeline._COMPILED.clear()
    for pid in ("p_ann", "p_bob", "p_ann", "x' OR '1'='1", "$1"):
        got = profile_timeline(ws, pid)
        want = timeline.timeline_expr(ws.con, pid).to_pyarrow().to_pandas()
        assert sorted(got.record_key) == sorted(want.record_key), pid
        ids = timeline.identifiers(ws, pid)
        carried = {r["key"] for r in ids}
        ik = ws.table("identity_keys")
        own = set(ik.filter(ik.profile_id == pid).key.to_pyarrow().to_pylist())
        assert own <= carried and (bool(carried) == (pid in ("p_ann", "p_bob"))), pid
    assert {k[0] for k in timeline._COMPILED} == {"timeline", "identifiers"}
    assert len(profile_timeline(ws, "p_ann")) > len(profile_timeline(ws, "p_bob")) > 0


# ---------------------------------------------------------------- find_profile

@pytest.mark.parametrize("identifier", [
    "p_ann", " Ann@Example.COM ", "(555) 010-1234", "+1 555 010 1234", "L-1", "anon-1", "crm:C1",
    "webshop:W7", "W7", "LY9", "email:ann@example.com",
])
def test_find_profile_for_each_identifier_kind(ws: Workspace, seeded: dict[str, pd.DataFrame], identifier: str) -> None:
    assert find_profile(ws, identifier) == "p_ann"


def test_find_profile_falls_back_to_records_without_identity_keys(ws: Workspace, seeded: dict[str, pd.DataFrame]) -> None:
    ws.sql("DELETE FROM identity_keys")
    assert find_profile(ws, "BOB@example.com") == "p_bob"


def test_bare_customer_id_shared_by_two_sources_is_ambiguous(ws: Workspace, seeded: dict[str, pd.DataFrame]) -> None:
    with pytest.raises(UsageError, match=r"p_ann.*p_carl"):
        find_profile(ws, "C1")
    assert find_profile(ws, "pos:C1") == "p_carl"


def test_shared_flagged_email_lists_the_people(ws: Workspace, seeded: dict[str, pd.DataFrame]) -> None:
    with pytest.raises(UsageError, match=r"shared.*p_ann.*p_bob"):
        find_profile(ws, "family@example.com")


def test_unknown_identifier_is_a_sentence(ws: Workspace, seeded: dict[str, pd.DataFrame]) -> None:
    with pytest.raises(NotFoundError, match="No profile matches 'nobody@example.com'"):
        find_profile(ws, "nobody@example.com")


# ---------------------------------------------------------------- forget

ANN_COUNTS = {
    "customers": 2, "orders": 3, "events": 4, "interactions": 3, "survey_responses": 4, "subscriptions": 1,
    "assignments": 1, "order_items": 4, "quarantine": 4, "identity_keys": 8, "identity_edges": 2,
    "identity_links": 1, "profiles": 1,
}
ERASED = (*TIME, "order_items", "quarantine", "identity_keys", "identity_edges", "identity_links", "profiles")


def _snapshot(ws: Workspace) -> dict[str, pd.DataFrame]:
    return {t: _table(ws, t) for t in ERASED}


def test_forget_removes_exactly_that_person(ws: Workspace, seeded: dict[str, pd.DataFrame]) -> None:
    build_profiles(ws)
    before = _snapshot(ws)
    counts = forget(ws, " ANN@example.com")
    assert counts == ANN_COUNTS
    after = _snapshot(ws)
    for t in ERASED:
        assert len(before[t]) - len(after[t]) == ANN_COUNTS[t], t
    for t in (*TIME, "order_items", "profiles"):
        assert "p_ann" not in set(after[t].profile_id.dropna()), t
    assert set(after["events"].record_key) == {"e5"}  # only the family-email event (not Ann's alone)
    assert set(after["orders"].record_key) == {"O9"} and set(after["order_items"].record_key) == {"O9-1"}
    assert sorted(after["customers"].record_key) == ["C1", "C2"]  # Carl's pos:C1 and Bob
    q = after["quarantine"]
    assert sorted(q.raw_value) == ["anon-10", "q", "y", "z"]  # Carl's pos C1, Bob, family, bad JSON
    assert set(after["identity_keys"].key) == {
        "customer_id:crm:C2", "customer_id:webshop:W8", "email:bob@example.com", "customer_id:pos:C1",
        "email:family@example.com",
    }
    assert list(after["identity_edges"].key_a) == ["customer_id:crm:C2"]
    assert list(after["identity_links"].key_a) == ["customer_id:crm:C2"]
    build_profiles(ws)
    assert profile_card(ws, "p_bob")["orders"] == 1
    with pytest.raises(NotFoundError):
        find_profile(ws, "ann@example.com")


def test_forget_dry_run_deletes_nothing(ws: Workspace, seeded: dict[str, pd.DataFrame]) -> None:
    build_profiles(ws)
    before = {t: len(v) for t, v in _snapshot(ws).items()}
    assert forget(ws, "p_ann", dry_run=True) == ANN_COUNTS
    assert {t: len(v) for t, v in _snapshot(ws).items()} == before


def test_forget_an_identifier_known_only_to_quarantine(ws: Workspace, seeded: dict[str, pd.DataFrame]) -> None:
    ws.sql("""INSERT INTO quarantine (source, raw_value, record) VALUES ('crm', 'bad', '{"Email": "Zoe@Example.com"}')""")
    counts = forget(ws, "zoe@example.com")
    assert counts["quarantine"] == 1 and sum(counts.values()) == 1
    with pytest.raises(NotFoundError, match="nothing was deleted"):
        forget(ws, "zoe@example.com")


def test_forget_refuses_a_shared_identifier(ws: Workspace, seeded: dict[str, pd.DataFrame]) -> None:
    with pytest.raises(UsageError):
        forget(ws, "family@example.com")


# ---------------------------------------------------------------- CLI (real console script)

def test_cli_profile_json(seeded_path: Path) -> None:
    res = run_cli("profile", " Ann@Example.COM ", "--format", "json", workspace=seeded_path)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert set(doc) == {"profile", "identifiers", "timeline"}
    assert doc["profile"]["profile_id"] == "p_ann" and doc["profile"]["orders"] == 2
    assert doc["profile"]["last_seen"].startswith("2023-06-01")
    assert len(doc["timeline"]) == 17
    assert {"key": "email:ann@example.com"}.items() <= next(i for i in doc["identifiers"] if i["type"] == "email" and not i["flagged"]).items()


def test_cli_profile_table_and_limit(seeded_path: Path) -> None:
    res = run_cli("profile", "crm:C1", "--limit", "3", workspace=seeded_path)
    assert res.returncode == 0, res.stderr
    assert "Ann Lee" in res.stdout and "p_ann" in res.stdout and "last 3 records" in res.stdout


def test_cli_profiles_json_sorted(seeded_path: Path) -> None:
    res = run_cli("profiles", "--sort", "revenue", "--top", "2", "--format", "json", workspace=seeded_path)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["total"] == 3 and [p["profile_id"] for p in doc["profiles"]] == ["p_ann", "p_bob"]
    table = run_cli("profiles", "--sort", "last_seen", workspace=seeded_path)
    assert table.returncode == 0 and "p_carl" in table.stdout


def test_cli_forget(seeded_path: Path) -> None:
    exe = Path(sys.executable).parent / "cxlens"
    refused = subprocess.run([str(exe), "--workspace", str(seeded_path), "forget", "ann@example.com"],
                             capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert refused.returncode != 0 and "--yes" in refused.stderr and "Traceback" not in refused.stderr
    dry = run_cli("forget", "ann@example.com", "--dry-run", "--format", "json", workspace=seeded_path)
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["deleted"] == ANN_COUNTS
    res = run_cli("forget", "ann@example.com", "--yes", "--format", "json", workspace=seeded_path)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["profile_id"] == "p_ann" and doc["deleted"] == ANN_COUNTS and doc["dry_run"] is False
    gone = run_cli("profile", "ann@example.com", workspace=seeded_path)
    assert gone.returncode != 0


def test_cli_unknown_identifier_is_one_sentence(seeded_path: Path) -> None:
    res = run_cli("profile", "nobody@example.com", workspace=seeded_path)
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    assert "No profile matches 'nobody@example.com'" in res.stderr
    assert res.stderr.strip().count("\n") <= 2


def test_every_command_has_help_with_examples() -> None:
    for command in ("profile", "profiles", "forget"):
        res = run_cli(command, "--help")
        assert res.returncode == 0 and "Examples" in res.stdout, command


# ---------------------------------------------------------------- Spark

@pytest.mark.spark
def test_build_profiles_on_spark_matches_duckdb(ws: Workspace, seeded: dict[str, pd.DataFrame], spark) -> None:
    from cxlens.workspace import SparkBackend

    build_profiles(ws)
    duck = {r["profile_id"]: r for r in ws.table("profiles").to_pyarrow().to_pylist()}
    _drop_spark_database(spark, "profiles_test")
    try:
        sw = Workspace.on(SparkBackend(spark, database="profiles_test"))
        for name in TIME:  # straight from Arrow: the pandas route would store NULL strings as 'NaN'
            spark.createDataFrame(ws.table(name).to_pyarrow()).write.saveAsTable(name, mode="overwrite")
        assert build_profiles(sw) == 3
        got = {r["profile_id"]: r for r in sw.table("profiles").to_pyarrow().to_pylist()}
        assert set(got) == set(duck)
        for pid, row in duck.items():
            for col, value in row.items():
                assert _same(value, got[pid][col]), (pid, col, value, got[pid][col])
        with pytest.raises(WorkspaceError, match="DuckDB"):
            forget(sw, "p_ann")
    finally:
        spark.catalog.setCurrentDatabase("default")
        _drop_spark_database(spark, "profiles_test")


def _drop_spark_database(spark: Any, name: str) -> None:
    """Drop the database and any folder an earlier, interrupted run left in the warehouse."""
    import shutil
    from urllib.parse import urlparse

    spark.sql(f"DROP DATABASE IF EXISTS {name} CASCADE")
    warehouse = urlparse(spark.conf.get("spark.sql.warehouse.dir")).path
    shutil.rmtree(Path(warehouse) / f"{name}.db", ignore_errors=True)
