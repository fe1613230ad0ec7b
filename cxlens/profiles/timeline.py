"""One person's story: every record across every table, in time order, and their profile card.

The engine filters each table to the person and phrases each record (kind, summary, value) with
Ibis expressions; Python only receives the person's rows.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import ibis
import ibis.expr.types as ir
import pandas as pd
import pyarrow as pa

from cxlens.errors import NotFoundError
from cxlens.profiles.build import build_profiles
from cxlens.profiles.records import PERSON_TABLES, TIME_COLUMNS, carried_keys
from cxlens.workspace import DuckDBBackend, Workspace

TIMELINE_COLUMNS: tuple[str, ...] = ("at", "table", "source", "kind", "summary", "value", "record_key")
SEP = " · "

_MARK = "cxlens:profile-id:3b7e0f"
"""A profile id no profile has, compiled into a query in place of the one asked for."""
_COMPILED: dict[tuple[str, Any], str] = {}
_COMPILED_LOCK = threading.Lock()


def for_profile(ws: Workspace, name: str, build: Callable[[str], ir.Table], profile_id: str, *key: Any) -> pa.Table:
    """`build(profile_id)`'s rows. On DuckDB the query is compiled once per process (with `$1` where
    the id goes) and run with the id as a parameter: compiling the identifiers' and the timeline's
    queries over every person table cost more than running them (0.2 s and 0.1 s per lookup on the
    demo workspace), and a customer page runs both each time. `key` holds what else shapes the query."""
    if not isinstance(ws.backend, DuckDBBackend):
        return build(profile_id).to_pyarrow()
    with _COMPILED_LOCK:
        sql = _COMPILED.get((name, key))
    if sql is None:
        compiled = str(ibis.to_sql(build(_MARK), dialect="duckdb"))
        sql = compiled.replace(f"'{_MARK}'", "$1")
        if _MARK in sql or sql == compiled:  # the id is not where a parameter can go: run it as built
            return build(profile_id).to_pyarrow()
        with _COMPILED_LOCK:
            _COMPILED[(name, key)] = sql
    return ws.sql(sql, [profile_id]).fetch_arrow_table()


def _s(value: ir.Value) -> ir.StringValue:
    return value.cast("string")


def _number(value: ir.Value) -> ir.StringValue:
    """9.0 reads as 9, 4.5 stays 4.5."""
    return ibis.ifelse(value == value.floor(), _s(value.cast("int64")), _s(value))


def _prefixed(prefix: str, value: ir.Value) -> ir.StringValue:
    return ibis.ifelse(value.isnull(), ibis.null("string"), prefix + _s(value))


def _joined(*parts: ir.Value, sep: str = SEP) -> ir.StringValue:
    """Non-empty parts joined by `sep` (CONCAT_WS skips NULLs on every engine)."""
    return ibis.literal(sep).join([_s(p) for p in parts])


def _phrase(name: str, t: ir.Table) -> dict[str, ir.Value]:
    """kind, summary and value of one record of table `name`."""
    no_value = ibis.null("float64")
    if name == "customers":
        return {
            "kind": ibis.literal("crm record"),
            "summary": _joined(_joined(t.first_name, t.last_name, sep=" "), t.email, t.city, t.country,
                               _prefixed("loyalty tier ", t.loyalty_tier)),
            "value": no_value,
        }
    if name == "orders":
        return {
            "kind": _joined(ibis.literal("order"), t.status.fill_null("completed"), sep=" "),
            "summary": _joined(_prefixed("order ", t.order_id), t.channel, _prefixed("store ", t.store_id),
                               _prefixed("items ", t.items_count), _prefixed("coupon ", t.coupon_code), t.currency),
            "value": t.revenue,
        }
    if name == "events":
        return {
            "kind": _s(t.event_type),
            "summary": _joined(t.channel, t.page_url, _prefixed("campaign ", t.campaign_id),
                               _prefixed("content ", t.content_id), _prefixed("variant ", t.variant)),
            "value": t.value,
        }
    if name == "interactions":
        resolved = ibis.cases((t.resolved, "resolved"), (~t.resolved, "unresolved"), else_=ibis.null("string"))
        return {
            "kind": _joined(t.channel, t.topic, sep=" / "),
            "summary": _joined(_prefixed("case ", t.case_id), resolved, _prefixed("agent ", t.agent_id),
                               _prefixed("wait s ", t.wait_seconds.round(0).cast("int64"))),
            "value": t.handle_seconds,
        }
    if name == "survey_responses":
        return {
            "kind": _joined(t.survey_type, _number(t.score), sep=" "),
            "summary": _joined(t.touchpoint, t.channel, t.comment),
            "value": t.score,
        }
    if name == "subscriptions":
        return {
            "kind": ibis.literal("subscription"),
            "summary": _joined(t.plan, _prefixed("ended ", t.ended_at)),
            "value": t.mrr,
        }
    return {
        "kind": ibis.literal("assignment"),
        "summary": _joined(t.experiment_id, _prefixed("variant ", t.variant)),
        "value": no_value,
    }


def timeline_expr(con: object, profile_id: str) -> ir.Table:
    """Every record of `profile_id` as (at, table, source, kind, summary, value, record_key)."""
    parts = []
    for name in PERSON_TABLES:
        t = con.table(name)  # type: ignore[attr-defined]
        t = t.filter(t.profile_id == profile_id)
        phrase = _phrase(name, t)
        parts.append(
            t.select(
                at=t[TIME_COLUMNS[name]].cast("timestamp"),
                table=ibis.literal(name),
                source=_s(t.source),
                kind=_s(phrase["kind"]),
                summary=_s(phrase["summary"]),
                value=phrase["value"].cast("float64"),
                record_key=_s(t.record_key),
            )
        )
    return ibis.union(*parts)


def profile_timeline(ws: Workspace, profile_id: str, limit: int | None = None) -> pd.DataFrame:
    """The person's records oldest first; with `limit`, only the most recent `limit` of them.

    Undated records (e.g. a CRM row without signup_at) come first.
    """
    def build(pid: str) -> ir.Table:
        u = timeline_expr(ws.con, pid)
        if limit:
            u = u.order_by(ibis.desc(u.at, nulls_first=False), ibis.desc(u.table), ibis.desc(u.record_key)).limit(limit)
        return u.order_by(ibis.asc(u.at, nulls_first=True), u.table, u.record_key)

    df = for_profile(ws, "timeline", build, profile_id, limit).to_pandas()
    return df[list(TIMELINE_COLUMNS)].reset_index(drop=True)


def profile_card(ws: Workspace, profile_id: str) -> dict[str, Any]:
    """The person's `profiles` row plus `identifiers`: every key they carry, shared ones flagged."""
    if "profiles" not in ws.backend.tables():
        build_profiles(ws)
    p = ws.table("profiles")
    rows = p.filter(p.profile_id == profile_id).to_pyarrow().to_pylist()
    if not rows:
        raise NotFoundError(
            f"There is no profile {profile_id!r} in the profiles table; rebuild profiles "
            "(cxlens ingest does it after identity resolution) or check the id."
        )
    return {**rows[0], "identifiers": identifiers(ws, profile_id)}


def identifiers(ws: Workspace, profile_id: str) -> list[dict[str, Any]]:
    """Keys of `profile_id` from identity_keys and from its records, with flagged and first_seen."""
    def build(pid: str) -> ir.Table:
        ik = ws.table("identity_keys")
        own = ik.filter(ik.profile_id == pid).select("key", "key_type")
        carried = carried_keys(ws.con, lambda t: t.profile_id == pid).select("key", "key_type")
        keys = ibis.union(own, carried, distinct=True)
        info = ik.group_by("key").aggregate(flagged=ik.flagged.max(), first_seen=ik.first_seen.min())
        return keys.left_join(info, "key").drop("key_right").order_by("key_type", "key")

    rows = for_profile(ws, "identifiers", build, profile_id).to_pylist()
    return [
        {
            "key": r["key"],
            "type": r["key_type"],
            "value": r["key"][len(r["key_type"]) + 1:],
            "flagged": bool(r["flagged"]),
            "first_seen": r["first_seen"],
        }
        for r in rows
    ]
