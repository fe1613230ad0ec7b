"""The person tables seen as one stream of records: when each happened and which keys it carries.

Profiles, the timeline, lookups and erasure all need the same two views over every table that
names a person, so they are built here once, as Ibis expressions that run on any engine.
"""

from __future__ import annotations

from collections.abc import Callable

import ibis
import ibis.expr.types as ir

from cxlens.identity.keys import KEY_TYPES, column_key
from cxlens.workspace.schema import TABLES

TIME_COLUMNS: dict[str, str] = {
    "customers": "signup_at",
    "orders": "ordered_at",
    "events": "occurred_at",
    "interactions": "started_at",
    "survey_responses": "responded_at",
    "subscriptions": "started_at",
    "assignments": "assigned_at",
}
"""The timestamp that places a record of each person table on the person's timeline."""

PERSON_TABLES: tuple[str, ...] = tuple(name for name, table in TABLES.items() if table.person)

CHANNEL_TABLES: tuple[str, ...] = ("orders", "events", "interactions", "survey_responses")
"""Tables whose `channel` column says where the person was in touch with the company."""

RowFilter = Callable[[ir.Table], ir.BooleanValue]

_EDGE_SPACE = "^[ \t\n\r]+|[ \t\n\r]+$"


def trimmed(value: ir.Value) -> ir.StringValue:
    """`value` as text without leading/trailing blanks.

    Not StringValue.strip(): Ibis compiles its character set with \\v and \\f, which Spark SQL
    reads as the letters v and f (the same reason cxlens.identity.keys avoids it).
    """
    return value.cast("string").re_replace(_EDGE_SPACE, "")


def person_rows(con: object) -> ir.Table:
    """One row per resolved record of every person table: what the profile needs per record.

    Columns: profile_id, table_name, source, at (the record's time), channel (lower-cased, NULL
    outside CHANNEL_TABLES). One union serves every per-person aggregate, so each table is scanned
    once (this matters on Spark, where every scan is a job). Identity keys are in `person_keys`.
    """
    parts = []
    for name in PERSON_TABLES:
        t = con.table(name)  # type: ignore[attr-defined]
        t = t.filter(t.profile_id.notnull())
        channel = trimmed(t.channel).lower() if name in CHANNEL_TABLES else ibis.null("string")
        parts.append(
            t.select(
                profile_id=t.profile_id.cast("string"),
                table_name=ibis.literal(name),
                source=t.source.cast("string"),
                at=t[TIME_COLUMNS[name]].cast("timestamp"),
                channel=channel,
            )
        )
    return ibis.union(*parts)


def person_keys(con: object) -> ir.Table:
    """One row per distinct identifier combination of each person's records, per table and source.

    Columns: profile_id, table_name, source, at and loaded_at (the latest of the records with that
    combination), and k_<type> for each identity key. Millions of events carry a few identifier
    combinations per person, so keys are normalized per combination, not per record.
    """
    parts = []
    for name in PERSON_TABLES:
        t = con.table(name)  # type: ignore[attr-defined]
        t = t.filter(t.profile_id.notnull())
        ids = [k for k in KEY_TYPES if k in t.columns]
        combos = t.group_by(["profile_id", "source", *ids]).aggregate(
            at=t[TIME_COLUMNS[name]].cast("timestamp").max(), loaded_at=t.loaded_at.cast("timestamp").max()
        )
        keys = {f"k_{k}": (column_key(combos, k) if k in ids else ibis.null("string")) for k in KEY_TYPES}
        parts.append(
            combos.select(
                profile_id=combos.profile_id.cast("string"),
                table_name=ibis.literal(name),
                source=combos.source.cast("string"),
                at=combos.at,
                loaded_at=combos.loaded_at,
                **keys,
            )
        )
    return ibis.union(*parts)


def keyed_rows(t: ir.Table) -> ir.Table:
    """(profile_id, key_type, key) for every identity key the rows of `t` carry (NULL keys dropped)."""
    parts = []
    for key_type in KEY_TYPES:
        if key_type not in t.columns:
            continue
        parts.append(
            t.select(
                profile_id=t.profile_id.cast("string"),
                key_type=ibis.literal(key_type),
                key=column_key(t, key_type),
            )
        )
    union = ibis.union(*parts)
    return union.filter(union.key.notnull())


def carried_keys(con: object, row_filter: RowFilter | None = None) -> ir.Table:
    """Distinct (profile_id, key_type, key) over every person table, optionally filtered first."""
    parts = []
    for name in PERSON_TABLES:
        t = con.table(name)  # type: ignore[attr-defined]
        if row_filter is not None:
            t = t.filter(row_filter(t))
        parts.append(keyed_rows(t))
    return ibis.union(*parts, distinct=True)


def carries_any(t: ir.Table, keys: list[str]) -> ir.BooleanValue:
    """Whether a row of `t` carries one of `keys` in any of its identity columns."""
    if not keys:
        return ibis.literal(False)
    checks = [column_key(t, k).isin(keys).fill_null(False) for k in KEY_TYPES if k in t.columns]
    return ibis.or_(*checks) if checks else ibis.literal(False)
