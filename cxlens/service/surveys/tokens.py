"""Signed survey tokens: who may answer which survey, until when, without an account or a key.

A token is `base64url(json [source, customer_id, expires])` + "." + `base64url(HMAC-SHA256)` over
the survey id and that payload, keyed by a secret generated once per workspace (table
`survey_secret`). Anyone holding the link can answer once for that customer; changing any part
breaks the signature. `source` is the namespace of the customer id (None: the server's `--source`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from cxlens.errors import CxlensError
from cxlens.workspace import Workspace

SECRET_TABLE = "survey_secret"
DEFAULT_DAYS_VALID = 30
MAX_TOKEN = 2048


class TokenError(CxlensError):
    """A survey token is malformed, signed for something else, or expired (`expired` tells which)."""

    def __init__(self, message: str, *, expired: bool = False):
        super().__init__(message)
        self.expired = expired


@dataclass(frozen=True)
class Grant:
    """What a valid token allows: one answer to `survey_id` for `customer_id` of `source`."""

    survey_id: str
    source: str | None
    customer_id: str
    expires: int
    response_id: str
    """Derived from the token, so answering twice with one link stores one response."""


def secret(ws: Workspace) -> bytes:
    """The workspace's signing secret, created on first use (32 random bytes)."""
    ws.sql(f"CREATE TABLE IF NOT EXISTS {SECRET_TABLE} (id INTEGER PRIMARY KEY, secret VARCHAR NOT NULL, "
           "created_at TIMESTAMP NOT NULL DEFAULT current_timestamp)")
    ws.sql(f"INSERT INTO {SECRET_TABLE} (id, secret) SELECT 1, ? WHERE NOT EXISTS (SELECT 1 FROM {SECRET_TABLE})",
           [secrets.token_hex(32)])
    return bytes.fromhex(ws.sql(f"SELECT secret FROM {SECRET_TABLE} WHERE id = 1").fetchone()[0])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, survey_id: str, payload: str) -> bytes:
    return hmac.new(key, f"{survey_id}\n{payload}".encode(), hashlib.sha256).digest()


def response_id(survey_id: str, payload: str) -> str:
    """From the signed payload, not the whole token: a re-encoded signature is the same answer."""
    return "sr_" + hashlib.sha256(f"{survey_id}\n{payload}".encode()).hexdigest()[:32]


def sign(key: bytes, survey_id: str, customer_id: str, *, source: str | None = None,
         days_valid: float = DEFAULT_DAYS_VALID, now: float | None = None) -> str:
    """A token letting `customer_id` answer `survey_id` for `days_valid` days from `now`."""
    if not customer_id:
        raise CxlensError("A survey link needs a customer id.")
    expires = int((time.time() if now is None else now) + days_valid * 86_400)
    payload = _b64(json.dumps([source, str(customer_id), expires], separators=(",", ":")).encode())
    return f"{payload}.{_b64(_mac(key, survey_id, payload))}"


def verify(key: bytes, survey_id: str, token: str | None, *, now: float | None = None) -> Grant:
    """The grant of a genuine, unexpired token for this survey; TokenError otherwise."""
    invalid = TokenError("This survey link is not valid: it is incomplete or was changed. Use the link exactly as you received it.")
    if not token or len(token) > MAX_TOKEN or token.count(".") != 1:
        raise invalid
    payload, mac = token.split(".")
    try:
        given = _unb64(mac)
    except (binascii.Error, ValueError):
        raise invalid from None
    if not hmac.compare_digest(given, _mac(key, survey_id, payload)):
        raise invalid
    try:
        source, customer_id, expires = json.loads(_unb64(payload))
    except (binascii.Error, ValueError, TypeError):
        raise invalid from None
    if (time.time() if now is None else now) > expires:
        raise TokenError("This survey link has expired; thank you for your interest.", expired=True)
    return Grant(survey_id, source, str(customer_id), int(expires), response_id(survey_id, payload))
