"""The canonical tables of DESIGN.md as data: names, columns, types, required flags, keys.

Everything that creates, validates, loads or documents a canonical table reads this module, so
the contract lives in one place. Column names and table names here are a user-facing contract:
extend, never rename.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ColumnType = Literal["string", "timestamp", "date", "float64", "int64", "boolean", "json"]

IDENTITY_COLUMNS: tuple[str, ...] = ("customer_id", "email", "phone", "loyalty_id", "anonymous_id")
"""Columns that name a person; any of them may appear in every person table."""

ENUMS: dict[str, tuple[str, ...]] = {
    "order_channel": ("online", "store", "app", "phone"),
    "order_status": ("completed", "returned", "cancelled"),
    "survey_type": ("nps", "csat", "ces"),
    "cost_kind": ("acquisition", "personalization", "media", "service"),
}

SURVEY_SCALES: dict[str, tuple[int, int]] = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}
"""Inclusive score range per survey type (DESIGN.md, Scales)."""

STANDARD_EVENT_TYPES: tuple[str, ...] = (
    "page_view", "product_view", "search", "add_to_cart", "remove_from_cart", "checkout_started",
    "purchase", "signup", "lead", "message_sent", "message_opened", "message_clicked",
    "message_unsubscribed", "ad_impression", "ad_click", "store_visit", "coupon_redeemed",
    "loyalty_enrolled", "recommendation_shown", "recommendation_clicked",
)
"""Known event types; others are kept as they come, never rejected."""


@dataclass(frozen=True)
class Column:
    """One canonical column: its type, whether a row needs it, and its allowed values."""

    name: str
    type: ColumnType = "string"
    required: bool = False
    enum: str | None = None
    description: str = ""


@dataclass(frozen=True)
class Table:
    """One canonical table and how its rows are told apart within a source."""

    name: str
    columns: tuple[Column, ...]
    natural_key: tuple[str, ...] = ()
    """Columns whose values identify a row within a source; empty means a content hash."""
    person: bool = True
    """Whether rows name a person (gets every identity column and a resolved profile_id)."""
    description: str = ""
    repeatable_lines: bool = False
    """Identical lines are real (two scans of one product in one order), not duplicates."""

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


def _c(name: str, type: ColumnType = "string", *, req: bool = False, enum: str | None = None) -> Column:
    return Column(name=name, type=type, required=req, enum=enum)


def _with_identity(columns: list[Column]) -> tuple[Column, ...]:
    """Append the identity columns a person table lacks, keeping the declared order first."""
    present = {c.name for c in columns}
    return tuple(columns + [_c(n) for n in IDENTITY_COLUMNS if n not in present])


TABLES: dict[str, Table] = {}


def _register(table: Table) -> None:
    TABLES[table.name] = table


_register(Table("customers", _with_identity([
    _c("customer_id", req=True), _c("email"), _c("phone"), _c("loyalty_id"), _c("first_name"),
    _c("last_name"), _c("city"), _c("region"), _c("country"), _c("postal_code"), _c("gender"),
    _c("birth_date", "date"), _c("signup_at", "timestamp"), _c("loyalty_member", "boolean"),
    _c("loyalty_tier"), _c("acquisition_channel"), _c("acquisition_cost", "float64"),
]), natural_key=("customer_id",), description="CRM customer records."))

_register(Table("orders", _with_identity([
    _c("order_id", req=True), _c("customer_id"), _c("ordered_at", "timestamp", req=True),
    _c("revenue", "float64", req=True), _c("channel", enum="order_channel"), _c("store_id"),
    _c("currency"), _c("discount", "float64"), _c("cost", "float64"), _c("coupon_code"),
    _c("items_count", "int64"), _c("status", enum="order_status"), _c("campaign_id"), _c("email"),
    _c("loyalty_id"),
]), natural_key=("order_id",), description="One row per order, online or in store."))

_register(Table("order_items", (
    _c("order_id", req=True), _c("product_id", req=True), _c("quantity", "float64", req=True),
    _c("unit_price", "float64", req=True), _c("category"), _c("product_name"),
), person=False, repeatable_lines=True, description="Order lines; profile_id follows the order."))

_register(Table("events", _with_identity([
    _c("event_id"), _c("occurred_at", "timestamp", req=True), _c("event_type", req=True),
    _c("anonymous_id"), _c("customer_id"), _c("session_id"), _c("channel"), _c("page_url"),
    _c("referrer"), _c("utm_source"), _c("utm_medium"), _c("utm_campaign"), _c("campaign_id"),
    _c("content_id"), _c("variant"), _c("personalized", "boolean"), _c("value", "float64"),
    _c("properties", "json"),
]), natural_key=("event_id",), description="Web, app, messaging, ad and store events."))

_register(Table("interactions", _with_identity([
    _c("interaction_id", req=True), _c("customer_id"), _c("started_at", "timestamp", req=True),
    _c("channel", req=True), _c("case_id"), _c("topic"), _c("agent_id"), _c("transfers", "int64"),
    _c("resolved", "boolean"), _c("wait_seconds", "float64"), _c("handle_seconds", "float64"),
]), natural_key=("interaction_id",), description="Support contacts (phone, chat, email, store)."))

_register(Table("survey_responses", _with_identity([
    _c("response_id", req=True), _c("customer_id"), _c("responded_at", "timestamp", req=True),
    _c("survey_type", req=True, enum="survey_type"), _c("score", "float64", req=True),
    _c("comment"), _c("channel"), _c("touchpoint"), _c("order_id"), _c("interaction_id"),
]), natural_key=("response_id",), description="NPS, CSAT and CES answers."))

_register(Table("subscriptions", _with_identity([
    _c("subscription_id", req=True), _c("customer_id", req=True),
    _c("started_at", "timestamp", req=True), _c("ended_at", "timestamp"), _c("plan"),
    _c("mrr", "float64"),
]), natural_key=("subscription_id",), description="Contractual memberships."))

_register(Table("campaigns", (
    _c("campaign_id", req=True), _c("name"), _c("channel"), _c("personalized", "boolean"),
    _c("content_id"), _c("cost", "float64"), _c("started_at", "timestamp"),
    _c("ended_at", "timestamp"),
), natural_key=("campaign_id",), person=False, description="Marketing campaigns and content."))

_register(Table("assignments", _with_identity([
    _c("experiment_id", req=True), _c("unit_id", req=True), _c("variant", req=True),
    _c("assigned_at", "timestamp", req=True),
]), natural_key=("experiment_id", "unit_id"), description="Experiment and holdout assignments."))

_register(Table("costs", (
    _c("incurred_on", "date", req=True), _c("amount", "float64", req=True),
    _c("kind", req=True, enum="cost_kind"), _c("channel"), _c("campaign_id"),
), person=False, description="Acquisition, personalization, media and service costs."))

_register(Table("store_traffic", (
    _c("store_id", req=True), _c("day", "date", req=True), _c("visitors", "int64", req=True),
), natural_key=("store_id", "day"), person=False, description="Store door counters per day."))


META_COLUMNS: tuple[Column, ...] = (
    Column("profile_id", "string", description="Resolved unified profile (NULL when unknown)."),
    Column("source", "string", description="Namespace of the export the row came from."),
    Column("record_key", "string", description="Natural key or content hash; unique per source."),
    Column("ingest_id", "int64", description="The ingest (see the sources table) that loaded it."),
    Column("loaded_at", "timestamp", description="When the row was loaded (UTC)."),
    Column("attributes", "json", description="Source columns with no canonical place."),
)
"""Columns every canonical table carries after its own."""

LOADABLE_TABLES: tuple[str, ...] = (*TABLES, "order_lines")
"""Targets of `cxlens ingest`: the canonical tables plus the denormalized order_lines layout."""

ORDER_LINE_COLUMNS: tuple[Column, ...] = tuple(
    [*TABLES["orders"].columns]
    + [c for c in TABLES["order_items"].columns if c.name not in TABLES["orders"].column_names]
)
ORDER_LINES = Table(
    "order_lines",
    tuple(c if c.name != "revenue" else Column("revenue", "float64") for c in ORDER_LINE_COLUMNS),
    description="Denormalized line-level export; fills orders and order_items.",
)


def target_table(name: str) -> Table:
    """The column spec a file loaded as `name` must fit (order_lines included)."""
    if name == "order_lines":
        return ORDER_LINES
    return TABLES[name]


def all_columns(table: Table) -> tuple[Column, ...]:
    """Canonical then meta columns, in storage order."""
    return (*table.columns, *META_COLUMNS)
