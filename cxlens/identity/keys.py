"""Identity keys: how an identifier value becomes a node of the identity graph.

A key is ``type:value``. Customer ids are namespaced by source (customer 42 of the web shop is not
customer 42 of the POS): ``customer_id:webshop:42``. Emails are trimmed and lower-cased, phones
reduced to digits with the country code, other identifiers trimmed. The functions build Ibis
expressions, so the same normalization runs on every engine (and ingest compiles them to SQL).
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from cxlens.workspace.schema import IDENTITY_COLUMNS

KEY_TYPES: tuple[str, ...] = IDENTITY_COLUMNS
"""Built-in key types, in the order a record's profile is looked up."""

DEFAULT_COUNTRY_CODE = "1"


_EDGE_SPACE = "^[ \t\n\r]+|[ \t\n\r]+$"
"""Leading/trailing blanks. Not StringValue.strip(): Ibis compiles its character set with \\v and \\f,
which Spark SQL reads as the letters v and f (so 'family@x' lost its 'f')."""


def _blank_to_null(value: ir.StringValue) -> ir.StringValue:
    v = value.cast("string").re_replace(_EDGE_SPACE, "")
    return ibis.ifelse(v == "", ibis.null("string"), v)


def customer_key(source: ir.StringValue, customer_id: ir.Value) -> ir.StringValue:
    v = _blank_to_null(customer_id)
    return ibis.literal("customer_id:") + source + ":" + v


def email_key(email: ir.Value) -> ir.StringValue:
    v = _blank_to_null(email).lower()
    return ibis.ifelse(v.contains("@"), "email:" + v, ibis.null("string"))


def phone_key(phone: ir.Value, country_code: str = DEFAULT_COUNTRY_CODE) -> ir.StringValue:
    """Digits with the country code: '+' or '00' means it is there; a leading 0 is a trunk prefix."""
    raw = _blank_to_null(phone)
    digits = raw.re_replace(r"[^0-9]", "")
    full = ibis.cases(
        (raw.startswith("+"), digits),
        (digits.startswith("00"), digits.substr(2)),
        (digits.startswith("0"), country_code + digits.substr(1)),
        (digits.length() <= 10, country_code + digits),
        else_=digits,
    )
    return ibis.ifelse(digits.length() >= 6, "phone:" + full, ibis.null("string"))


def plain_key(key_type: str, value: ir.Value) -> ir.StringValue:
    v = _blank_to_null(value)
    return ibis.literal(f"{key_type}:") + v


def column_key(t: ir.Table, column: str, country_code: str = DEFAULT_COUNTRY_CODE) -> ir.StringValue:
    """The key an identity column of `t` contributes (NULL when the value is empty)."""
    if column == "customer_id":
        return customer_key(t.source, t[column])
    if column == "email":
        return email_key(t[column])
    if column == "phone":
        return phone_key(t[column], country_code)
    return plain_key(column, t[column])


def row_keys(t: ir.Table, country_code: str = DEFAULT_COUNTRY_CODE) -> dict[str, ir.StringValue]:
    """Every identity key a row of `t` carries, by key type (columns the table lacks are skipped)."""
    return {c: column_key(t, c, country_code) for c in KEY_TYPES if c in t.columns}


def primary_key(t: ir.Table, country_code: str = DEFAULT_COUNTRY_CODE) -> ir.StringValue:
    """The first non-empty key of a row, in KEY_TYPES order."""
    keys = list(row_keys(t, country_code).values())
    return ibis.coalesce(*keys) if keys else ibis.null("string")
