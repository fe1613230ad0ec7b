"""Dashboard sessions and CSRF tokens: HMAC-signed values, never the key itself.

A session cookie names the key's SHA-256 hash, a random session id and an expiry, signed with a
secret the app generates at start (restarting the server signs everyone out). The key is looked
up on every request, so revoking it ends its sessions within the key cache's lifetime. A CSRF
token is an HMAC of the session id (or, before sign-in, of a random login nonce kept in its own
cookie), so a page of another site can neither read nor forge it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

SESSION_COOKIE = "cxlens_session"
LOGIN_COOKIE = "cxlens_login"
SESSION_SECONDS = 8 * 3600
"""A working day: after that the dashboard asks for the key again."""


@dataclass(frozen=True)
class Session:
    """A signed-in browser: which key (by hash), its session id and when it ends."""

    key_hash: str
    sid: str
    expires: int


class Signer:
    """Signs and checks session cookies and CSRF tokens with one app's secret."""

    def __init__(self, secret: bytes | None = None):
        self._secret = secret or secrets.token_bytes(32)

    def _mac(self, purpose: str, value: str) -> str:
        digest = hmac.new(self._secret, f"{purpose}\n{value}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def new_session(self, key_hash: str, seconds: int = SESSION_SECONDS) -> tuple[Session, str]:
        """A fresh session and its cookie value."""
        session = Session(key_hash, secrets.token_urlsafe(16), int(time.time()) + seconds)
        body = base64.urlsafe_b64encode(json.dumps([session.key_hash, session.sid, session.expires]).encode()).decode()
        return session, f"{body}.{self._mac('session', body)}"

    def session(self, cookie: str | None) -> Session | None:
        """The session a cookie carries, or None when it is missing, forged, malformed or expired."""
        if not cookie or len(cookie) > 512 or "." not in cookie:
            return None
        body, _, mac = cookie.rpartition(".")
        if not hmac.compare_digest(mac, self._mac("session", body)):
            return None
        try:
            key_hash, sid, expires = json.loads(base64.urlsafe_b64decode(body.encode()))
        except (ValueError, TypeError):
            return None
        if not (isinstance(key_hash, str) and isinstance(sid, str) and isinstance(expires, int)):
            return None
        if expires < time.time():
            return None
        return Session(key_hash, sid, expires)

    def csrf(self, nonce: str) -> str:
        """The CSRF token of a session id or login nonce."""
        return self._mac("csrf", nonce)

    def csrf_ok(self, nonce: str | None, token: str | None) -> bool:
        if not nonce or not token or len(token) > 128:
            return False
        return hmac.compare_digest(token, self.csrf(nonce))
