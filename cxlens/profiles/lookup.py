"""From whatever a user types (email, phone, loyalty id, SOURCE:ID, profile id …) to one profile.

The typed value is normalized with the very Ibis functions identity resolution uses
(`cxlens.identity.keys`), so " Ann@Example.COM " finds the key `email:ann@example.com` exactly as
resolution wrote it. Lookup goes through `identity_keys` first and falls back to the records
themselves, so it also works on rows that were never resolved.
"""

from __future__ import annotations

from dataclasses import dataclass

import ibis
import ibis.expr.types as ir

from cxlens.errors import NotFoundError, UsageError
from cxlens.identity.keys import KEY_TYPES, email_key, phone_key, plain_key
from cxlens.profiles.records import PERSON_TABLES, carried_keys, trimmed
from cxlens.workspace import Workspace

MAX_LISTED = 10


@dataclass(frozen=True)
class Match:
    """What an identifier points at: a profile (when one) and the identity keys it matched."""

    identifier: str
    profile_id: str | None
    keys: tuple[str, ...]
    flagged: tuple[str, ...] = ()


def find_profile(ws: Workspace, identifier: str) -> str:
    """The profile_id `identifier` names; NotFoundError or UsageError (ambiguous) otherwise."""
    match = resolve_identifier(ws, identifier)
    if match.profile_id is None:
        raise NotFoundError(
            f"{identifier.strip()!r} appears only on records that are not resolved to a profile yet; "
            "run identity resolution (cxlens ingest does it) and try again."
        )
    return match.profile_id


def resolve_identifier(ws: Workspace, identifier: str) -> Match:
    """Match `identifier` against profile ids, then identity_keys, then the records' own keys."""
    text = identifier.strip()
    if not text:
        raise UsageError("The identifier is empty; give a profile id, email, phone, loyalty id, anonymous id or customer id.")
    if profile_exists(ws, text):
        return Match(text, text, ())
    exact = candidate_keys(ws, text)
    found = _from_identity_keys(ws, text, exact)
    if not found:
        found = _from_records(ws, text, exact)
    if not found:
        raise NotFoundError(
            f"No profile matches {text!r}: it is not a profile id, email, phone, loyalty id, "
            "anonymous id or customer id (SOURCE:ID) known to this workspace."
        )
    return _decide(ws, text, found)


def profile_exists(ws: Workspace, profile_id: str) -> bool:
    """Whether any identity key, profiles row or record carries `profile_id`."""
    have = ws.backend.tables()
    ik = ws.table("identity_keys")
    if _any(ik.filter(ik.profile_id == profile_id)):
        return True
    if "profiles" in have:
        p = ws.table("profiles")
        if _any(p.filter(p.profile_id == profile_id)):
            return True
    if not profile_id.startswith("p_"):
        return False
    return any(_any(ws.table(t).filter(ws.table(t).profile_id == profile_id)) for t in PERSON_TABLES)


def candidate_keys(ws: Workspace, text: str) -> list[str]:
    """Every key `text` could be: as email, phone, loyalty id, anonymous id, SOURCE:ID or a raw key."""
    row = ibis.memtable({"v": [text]})
    values = row.select(
        email=email_key(row.v),
        phone=phone_key(row.v),
        loyalty_id=plain_key("loyalty_id", row.v),
        anonymous_id=plain_key("anonymous_id", row.v),
        customer_id=ibis.literal("customer_id:") + trimmed(row.v),
    )
    out = ws.con.to_pyarrow(values).to_pylist()[0]
    keys = [k for k in out.values() if k]
    if ":" in text:
        keys.append(text)
    return sorted(set(keys))


def _suffix_customer(key: ir.StringValue, key_type: ir.StringValue, text: str) -> ir.BooleanValue:
    """A bare customer id matches `customer_id:<any source>:<text>`; declared ids match `type:text`."""
    builtin = list(KEY_TYPES)
    return ((key_type == "customer_id") & key.endswith(f":{text}")) | (
        ~key_type.isin(builtin) & (key == key_type + ":" + text)
    )


def _from_identity_keys(ws: Workspace, text: str, exact: list[str]) -> list[dict]:
    ik = ws.table("identity_keys")
    hits = ik.filter(ik.key.isin(exact) | _suffix_customer(ik.key, ik.key_type, text))
    rows = hits.select("key", "key_type", "profile_id", "flagged").distinct().to_pyarrow().to_pylist()
    return rows


def _from_records(ws: Workspace, text: str, exact: list[str]) -> list[dict]:
    """Keys carried by records when identity_keys does not know them (e.g. before resolution)."""
    keys = carried_keys(ws.con)
    hits = keys.filter(keys.key.isin(exact) | _suffix_customer(keys.key, keys.key_type, text))
    rows = hits.select("key", "key_type", "profile_id").distinct().to_pyarrow().to_pylist()
    return [{**r, "flagged": False} for r in rows]


def profiles_carrying(ws: Workspace, keys: list[str]) -> list[str]:
    """Distinct profile ids of records that carry one of `keys` (used for shared, flagged keys)."""
    if not keys:
        return []
    carried = carried_keys(ws.con)
    hits = carried.filter(carried.key.isin(keys) & carried.profile_id.notnull())
    return sorted(hits.select("profile_id").distinct().to_pyarrow().column(0).to_pylist())


def _decide(ws: Workspace, text: str, found: list[dict]) -> Match:
    keys = tuple(sorted({r["key"] for r in found}))
    flagged = tuple(sorted({r["key"] for r in found if r.get("flagged")}))
    owners: dict[str, set[str]] = {}
    for r in found:
        if r["profile_id"]:
            owners.setdefault(r["profile_id"], set()).add(r["key"])
    if not owners and flagged:
        for pid in profiles_carrying(ws, list(flagged)):
            owners.setdefault(pid, set()).update(flagged)
        if len(owners) > 1:
            raise UsageError(
                f"{text!r} is a shared identifier ({', '.join(flagged)}) flagged during identity "
                f"resolution; it names {_listing(owners)}. Use one of these profile ids or another "
                "identifier of the person."
            )
    if len(owners) > 1:
        raise UsageError(
            f"{text!r} matches several people: {_listing(owners)}. Use SOURCE:CUSTOMER_ID or a profile id."
        )
    profile_id = next(iter(owners)) if owners else None
    return Match(text, profile_id, keys, flagged)


def _listing(owners: dict[str, set[str]]) -> str:
    items = [f"{pid} ({', '.join(sorted(keys))})" for pid, keys in sorted(owners.items())]
    more = len(items) - MAX_LISTED
    text = "; ".join(items[:MAX_LISTED])
    return text + (f" and {more} more" if more > 0 else "")


def _any(t: ir.Table) -> bool:
    return bool(t.limit(1).count().to_pyarrow().as_py())
