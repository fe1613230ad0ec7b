"""The `profiles` table: one row per unified person, the 360° view every surface reads.

It is computed in the engine with Ibis only, so the same code runs on the DuckDB file and on
Spark. Each block (orders, surveys, CRM, …) is aggregated to one row per profile *before* it is
joined to the list of profiles, so a person with many orders and many events is never counted
once per combination (no join fan-out).
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from cxlens.profiles.records import CHANNEL_TABLES, person_keys, person_rows, trimmed
from cxlens.workspace import DuckDBBackend, Workspace
from cxlens.workspace.schema import Column

PROFILE_COLUMNS: tuple[Column, ...] = (
    Column("profile_id", "string", description="Unified person from identity resolution."),
    Column("first_seen", "timestamp", description="Earliest timestamp of any of the person's records (signup, order, event, contact, survey, subscription, assignment)."),
    Column("last_seen", "timestamp", description="Latest such timestamp."),
    Column("records", "int64", description="Rows naming the person across every person table."),
    Column("sources", "string", description="Sources the person appears in: sorted, comma-separated."),
    Column("channels", "string", description="Channels of the person's orders, events, contacts and surveys (lower-case): sorted, comma-separated."),
    Column("orders", "int64", description="Completed orders: status 'completed' or empty; returned and cancelled orders are excluded."),
    Column("revenue", "float64", description="Sum of revenue over those completed orders (0 when none)."),
    Column("aov", "float64", description="Average order value: revenue / orders (NULL without orders)."),
    Column("last_order_at", "timestamp", description="Time of the latest completed order."),
    Column("returned_orders", "int64", description="Orders with status 'returned'."),
    Column("loyalty_member", "boolean", description="Latest non-empty CRM value (CRM rows ordered by loaded_at, then signup_at)."),
    Column("loyalty_tier", "string", description="Latest non-empty CRM value."),
    Column("latest_nps", "float64", description="Score (0-10) of the person's most recent NPS response."),
    Column("latest_csat", "float64", description="Score (1-5) of the most recent CSAT response."),
    Column("latest_ces", "float64", description="Score (1-7) of the most recent CES response."),
    Column("open_cases", "int64", description="Distinct support cases (source, case_id) whose latest interaction has resolved = false."),
    Column("customer_ids", "int64", description="Distinct customer ids, namespaced by source, on the person's records."),
    Column("emails", "int64", description="Distinct normalized emails on the person's records."),
    Column("phones", "int64", description="Distinct normalized phones on the person's records."),
    Column("loyalty_ids", "int64", description="Distinct loyalty ids on the person's records."),
    Column("anonymous_ids", "int64", description="Distinct anonymous (device/cookie) ids on the person's records."),
    Column("primary_email", "string", description="Normalized email of the latest CRM row that has one; otherwise the most recently seen email."),
    Column("first_name", "string", description="Latest non-empty CRM value."),
    Column("last_name", "string", description="Latest non-empty CRM value."),
    Column("country", "string", description="Latest non-empty CRM value."),
)
"""Columns of the `profiles` table, in order, with the definition the docs print."""

CRM_FIELDS: tuple[str, ...] = ("first_name", "last_name", "country", "loyalty_member", "loyalty_tier")
COUNTED_KEYS: dict[str, str] = {
    "customer_ids": "customer_id",
    "emails": "email",
    "phones": "phone",
    "loyalty_ids": "loyalty_id",
    "anonymous_ids": "anonymous_id",
}


def build_profiles(ws: Workspace) -> int:
    """Create or replace `profiles` from the resolved records; returns the number of profiles."""
    expr = profiles_expr(ws.con)
    if isinstance(ws.backend, DuckDBBackend):
        ws.backend.replace_table("profiles", expr)
    else:
        # The expression never reads `profiles`, so the engine can overwrite it straight from the
        # query; SparkBackend.replace_table's Arrow round trip goes through pandas and would turn
        # NULL strings into 'NaN'.
        ws.con.create_table("profiles", expr, overwrite=True)
    return int(ws.table("profiles").count().execute())


def profiles_expr(con: object) -> ir.Table:
    """The profiles table as one Ibis expression over the canonical tables on `con`."""
    joined = _activity(con)
    for block in (_orders(con), _crm(con), _surveys(con), _open_cases(con)):
        joined = joined.left_join(block, "profile_id").drop("profile_id_right")
    out = joined.mutate(
        orders=joined.orders.fill_null(0),
        revenue=joined.revenue.fill_null(0.0),
        returned_orders=joined.returned_orders.fill_null(0),
        open_cases=joined.open_cases.fill_null(0),
    )
    out = out.mutate(aov=ibis.ifelse(out.orders > 0, out.revenue / out.orders, ibis.null("float64")))
    return out.select(
        *[out[c.name].cast(_IBIS_TYPE[c.type]).name(c.name) for c in PROFILE_COLUMNS]
    ).order_by("profile_id")


_IBIS_TYPE = {"string": "string", "timestamp": "timestamp", "int64": "int64", "float64": "float64", "boolean": "boolean"}


def _activity(con: object) -> ir.Table:
    """Seen times, record count, sources and channels (one pass over every record), joined with
    identifier counts and the primary email (one pass over the distinct identifier combinations).

    The primary email is the CRM's (latest loaded CRM row) when there is one, otherwise the email
    of the person's most recent record: combinations are ranked in that order and the first kept.
    """
    r = person_rows(con)
    in_touch = r.table_name.isin(CHANNEL_TABLES) & r.channel.notnull() & (r.channel != "")
    seen = r.group_by("profile_id").aggregate(
        first_seen=r.at.min(),
        last_seen=r.at.max(),
        records=r.count(),
        sources=r.source.collect(distinct=True).sort().join(","),
        channels=r.channel.collect(distinct=True, where=in_touch).sort().join(","),
    )
    k = person_keys(con)
    crm = k.table_name == "customers"
    email_rank = ibis.row_number().over(
        group_by="profile_id",
        order_by=[
            k.k_email.isnull(),
            ibis.ifelse(crm, 0, 1),
            ibis.desc(ibis.ifelse(crm, k.loaded_at, k.at), nulls_first=False),
            ibis.desc(k.at, nulls_first=False),
            k.k_email,
        ],
    )
    k = k.mutate(_email_rank=email_rank)
    keys = k.group_by("profile_id").aggregate(
        primary_email=k.k_email.argmin(k._email_rank, where=k.k_email.notnull()).substr(len("email:")),
        **{name: k[f"k_{kt}"].nunique() for name, kt in COUNTED_KEYS.items()},
    )
    return seen.left_join(keys, "profile_id").drop("profile_id_right")


def _orders(con: object) -> ir.Table:
    t = con.table("orders")  # type: ignore[attr-defined]
    t = t.filter(t.profile_id.notnull())
    status = trimmed(t.status).lower()
    completed = status.isnull() | (status == "completed")
    return t.group_by("profile_id").aggregate(
        orders=t.count(where=completed),
        revenue=t.revenue.sum(where=completed),
        last_order_at=t.ordered_at.max(where=completed),
        returned_orders=t.count(where=status == "returned"),
    )


def _ranked(t: ir.Table, partition: list[str], order: list[ir.Value]) -> ir.Table:
    """`t` with _rank = position in its partition under `order` (0 = first); a window, so any engine."""
    return t.mutate(_rank=ibis.row_number().over(group_by=partition, order_by=order))


def _crm(con: object) -> ir.Table:
    """Latest non-empty value of each CRM field: a CRM and a loyalty program may each fill only some.

    CRM rows are ordered by loaded_at, then signup_at, then record_key, newest first.
    """
    t = con.table("customers")  # type: ignore[attr-defined]
    t = t.filter(t.profile_id.notnull())
    r = _ranked(t, ["profile_id"], [
        ibis.desc(t.loaded_at, nulls_first=False),
        ibis.desc(t.signup_at, nulls_first=False),
        ibis.desc(t.record_key, nulls_first=False),
    ])

    def filled(field: str) -> ir.BooleanValue:
        present = r[field].notnull()
        return present & (trimmed(r[field]) != "") if r[field].type().is_string() else present

    return r.group_by("profile_id").aggregate(
        **{f: r[f].argmin(r._rank, where=filled(f)) for f in CRM_FIELDS}
    )


def _surveys(con: object) -> ir.Table:
    t = con.table("survey_responses")  # type: ignore[attr-defined]
    t = t.filter(t.profile_id.notnull()).mutate(kind=trimmed(t.survey_type).lower())
    r = _ranked(t, ["profile_id", "kind"], [
        ibis.desc(t.responded_at, nulls_first=False), ibis.desc(t.response_id, nulls_first=False),
    ])
    latest = r.filter(r._rank == 0)
    return latest.group_by("profile_id").aggregate(
        **{f"latest_{k}": latest.score.max(where=latest.kind == k) for k in ("nps", "csat", "ces")}
    )


def _open_cases(con: object) -> ir.Table:
    """A case is open when its most recent interaction says resolved = false (unknown is not open)."""
    t = con.table("interactions")  # type: ignore[attr-defined]
    t = t.filter(t.profile_id.notnull() & t.case_id.notnull())
    r = _ranked(t, ["profile_id", "source", "case_id"], [
        ibis.desc(t.started_at, nulls_first=False), ibis.desc(t.interaction_id, nulls_first=False),
    ])
    latest = r.filter(r._rank == 0)
    return latest.group_by("profile_id").aggregate(
        open_cases=latest.count(where=latest.resolved == ibis.literal(False))
    )
