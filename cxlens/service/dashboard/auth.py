"""Sign-in for the dashboard: a read key exchanged once for a signed session cookie, and CSRF checks.

The cookie is HttpOnly (scripts cannot read it), SameSite=Strict (other sites' pages do not send
it), limited to /dashboard and Secure over https. Every page checks that the session's key is
still active and still a read key, so `cxlens keys revoke` signs its browsers out.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from urllib.parse import parse_qs

from fastapi import HTTPException, Request, Response

from cxlens.service.auth import runtime
from cxlens.service.dashboard.session import LOGIN_COOKIE, SESSION_COOKIE, SESSION_SECONDS, Session
from cxlens.service.dashboard.state import state_of
from cxlens.service.keys import KeyRecord

PATH = "/dashboard"
FORM_BYTES = 4096
"""A sign-in or sign-out form is a key and a token: anything larger is refused unread."""


@dataclass(frozen=True)
class Reader:
    """A signed-in browser: its session and the read key behind it."""

    session: Session
    key: KeyRecord


class SignInRequired(HTTPException):
    """Raised by `reader`: the page answers with a redirect to the sign-in form."""

    def __init__(self) -> None:
        super().__init__(303, "Sign in with a read key.", headers={"Location": f"{PATH}/login"})


def reader(request: Request) -> Reader:
    """The signed-in reader, or a redirect to the sign-in page (no, forged, expired or revoked session)."""
    session = state_of(request.app).signer.session(request.cookies.get(SESSION_COOKIE))
    record = runtime(request).key(session.key_hash) if session is not None else None
    if session is None or record is None or record.scope != "read":
        raise SignInRequired()
    request.state.key_name = record.name
    return Reader(session, record)


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, path=PATH, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")


def login_nonce(request: Request) -> str:
    """The login form's nonce, kept in its own cookie so the form's CSRF token can be checked
    (the browser's existing one, so two open sign-in tabs both work)."""
    nonce = request.cookies.get(LOGIN_COOKIE)
    if not nonce or len(nonce) > 64:
        nonce = secrets.token_urlsafe(16)
    return nonce


def start_session(request: Request, response: Response, key_hash: str) -> None:
    _, cookie = state_of(request.app).signer.new_session(key_hash)
    set_cookie(request, response, SESSION_COOKIE, cookie, SESSION_SECONDS)
    response.delete_cookie(LOGIN_COOKIE, path=PATH)


def end_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path=PATH, httponly=True, samesite="strict")


async def form(request: Request) -> dict[str, str]:
    """A small urlencoded form (python-multipart is not needed for two fields)."""
    body = await request.body()
    if len(body) > FORM_BYTES:
        raise HTTPException(413, f"The form is larger than {FORM_BYTES} bytes.")
    try:
        fields = parse_qs(body.decode("utf-8"), max_num_fields=10)
    except (UnicodeDecodeError, ValueError):
        raise HTTPException(400, "The form could not be read.") from None
    return {k: v[0] for k, v in fields.items()}


def check_csrf(request: Request, nonce: str | None, fields: dict[str, str]) -> None:
    """403 unless the form carries the token signed for this session (or login nonce)."""
    if not state_of(request.app).signer.csrf_ok(nonce, fields.get("csrf")):
        raise HTTPException(403, "The form's CSRF token is missing or wrong; reload the page and try again.")
