"""API keys: created once, shown once, stored only as a SHA-256 hash in the workspace.

A key is `cxk_` plus 43 URL-safe characters (256 random bits), so a leaked key is recognizable in
logs and secret scanners, and hashing it without a salt is safe (nothing to brute-force). Scopes
do not nest: a write key only collects, a read key only reads, an admin key only manages keys;
`pii` lets a read key see raw email and phone values.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from cxlens.errors import NotFoundError, UsageError
from cxlens.workspace import Workspace

Scope = Literal["write", "read", "admin"]
SCOPES: tuple[str, ...] = get_args(Scope)
PREFIX = "cxk_"
TABLE = "service_keys"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


@dataclass(frozen=True)
class KeyRecord:
    """A stored key, without its secret."""

    name: str
    scope: str
    pii: bool
    prefix: str
    created_at: datetime
    revoked_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["created_at"] = self.created_at.isoformat()
        d["revoked_at"] = self.revoked_at.isoformat() if self.revoked_at else None
        return d


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def ensure_table(ws: Workspace) -> None:
    ws.sql(
        f"CREATE TABLE IF NOT EXISTS {TABLE} (key_hash VARCHAR PRIMARY KEY, name VARCHAR NOT NULL UNIQUE, "
        "scope VARCHAR NOT NULL, pii BOOLEAN NOT NULL, prefix VARCHAR NOT NULL, created_at TIMESTAMP NOT NULL, "
        "revoked_at TIMESTAMP)"
    )


def create_key(ws: Workspace, scope: str, name: str | None = None, *, pii: bool = False) -> tuple[str, KeyRecord]:
    """A new key (the only time its secret exists) and its stored record."""
    if scope not in SCOPES:
        raise UsageError(f"Unknown key scope `{scope}` (valid: {', '.join(SCOPES)}).")
    if pii and scope != "read":
        raise UsageError("--pii only applies to read keys (it lets them see raw email and phone).")
    ensure_table(ws)
    key = PREFIX + secrets.token_urlsafe(32)
    if name is None:
        name = f"{scope}-{key[len(PREFIX):len(PREFIX) + 8]}"
    if not NAME_PATTERN.match(name):
        raise UsageError(f"The key name `{name}` must be 1 to 64 letters, digits or . _ @ - (starting with a letter or digit).")
    if ws.sql(f"SELECT count(*) FROM {TABLE} WHERE name = ?", [name]).fetchone()[0]:
        raise UsageError(f"A key named `{name}` already exists; choose another --name.")
    now = datetime.now(UTC).replace(tzinfo=None)
    record = KeyRecord(name=name, scope=scope, pii=pii, prefix=key[:len(PREFIX) + 6], created_at=now)
    ws.sql(f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?, ?, ?, NULL)",
           [hash_key(key), name, scope, pii, record.prefix, now])
    return key, record


def list_keys(ws: Workspace) -> list[KeyRecord]:
    """Every key, active and revoked, oldest first."""
    ensure_table(ws)
    rows = ws.sql(f"SELECT name, scope, pii, prefix, created_at, revoked_at FROM {TABLE} ORDER BY created_at, name").fetchall()
    return [KeyRecord(*r) for r in rows]


def revoke_key(ws: Workspace, key_or_name: str) -> KeyRecord:
    """Revoke by full key or by name; revoking twice keeps the first time."""
    ensure_table(ws)
    where = "key_hash = ?" if key_or_name.startswith(PREFIX) else "name = ?"
    value = hash_key(key_or_name) if key_or_name.startswith(PREFIX) else key_or_name
    now = datetime.now(UTC).replace(tzinfo=None)
    ws.sql(f"UPDATE {TABLE} SET revoked_at = coalesce(revoked_at, ?) WHERE {where}", [now, value])
    rows = ws.sql(f"SELECT name, scope, pii, prefix, created_at, revoked_at FROM {TABLE} WHERE {where}", [value]).fetchall()
    if not rows:
        shown = key_or_name[:len(PREFIX) + 6] + "…" if key_or_name.startswith(PREFIX) else key_or_name
        raise NotFoundError(f"No key named or equal to `{shown}` (see `cxlens keys list`).")
    return KeyRecord(*rows[0])


def active_keys(ws: Workspace) -> dict[str, KeyRecord]:
    """Active keys by hash: what the service checks a bearer token against."""
    ensure_table(ws)
    rows = ws.sql(f"SELECT key_hash, name, scope, pii, prefix, created_at, revoked_at FROM {TABLE} "
                  "WHERE revoked_at IS NULL").fetchall()
    return {r[0]: KeyRecord(*r[1:]) for r in rows}
