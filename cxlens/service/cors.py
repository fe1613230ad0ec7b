"""Cross-origin requests from the company's own web pages to the collection endpoints.

A shop's pages (https://shop.example.com) that send events or in-app survey answers straight to
the service (https://cx.example.com) make cross-origin requests: the browser first asks with an
OPTIONS preflight and then reads the answer only if the service names the page's origin. Only the
endpoints a page may call get that answer, and only for the origins the operator lists
(`cxlens serve --cors-origin https://shop.example.com`): events, identify and survey answers,
which need a write key (it can only collect) or a survey token. Reading, admin and the dashboard
never answer a cross-origin request — a read key does not belong in a web page.

Pure ASGI, like the access log: it adds nothing to requests without an `Origin` header.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cxlens.errors import UsageError

CORS_PATHS = re.compile(r"^/v1/(?:events|identify|surveys/[^/]+/responses)$")
"""Endpoints a web page may call from another origin (POST only)."""
ALLOWED_HEADERS = "authorization, content-type"
MAX_AGE = "600"
"""Seconds a browser may reuse a preflight's answer."""
_ORIGIN = re.compile(r"^https?://[a-z0-9.\-]+(?::\d{1,5})?$")


def check_origins(origins: Iterable[str]) -> tuple[str, ...]:
    """Origins as a browser sends them (scheme://host[:port], lower case), or `*` for any page.

    A path, a trailing slash or a missing scheme never matches a browser's Origin header, so they
    are refused here rather than silently never matching.
    """
    out: list[str] = []
    for raw in origins:
        origin = raw.strip().lower()
        if origin != "*" and not _ORIGIN.match(origin):
            raise UsageError(f"The CORS origin `{raw}` is not an origin like https://shop.example.com "
                             "(scheme and host, an optional port, no path or trailing slash), or `*` for any.")
        out.append(origin)
    return tuple(dict.fromkeys(out))


class Cors:
    """Answers preflights and names the allowed origin on the collection endpoints only."""

    def __init__(self, app: ASGIApp, origins: tuple[str, ...]):
        self.app = app
        self.origins = frozenset(origins)
        self.any = "*" in self.origins

    def _allowed(self, origin: str) -> bool:
        return self.any or origin.lower() in self.origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.origins:
            await self.app(scope, receive, send)
            return
        origin = _header(scope, b"origin")
        if origin is None or not CORS_PATHS.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        allowed = self._allowed(origin)
        if scope["method"] == "OPTIONS" and _header(scope, b"access-control-request-method") is not None:
            await _preflight(send, origin if allowed else None, self.any)
            return
        if not allowed:
            await self.app(scope, receive, send)  # answered as usual; the browser hides it from the page
            return
        allow = b"*" if self.any else origin.encode("latin-1")

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"access-control-allow-origin", allow),
                                      (b"vary", b"Origin")]
            await send(message)

        await self.app(scope, receive, send_with_cors)


async def _preflight(send: Send, origin: str | None, any_origin: bool) -> None:
    if origin is None:
        body = json.dumps({"detail": "This origin may not call the service from a web page; start the service "
                                     "with --cors-origin naming it."}).encode()
        headers = [(b"content-type", b"application/json"), (b"vary", b"Origin")]
        await send({"type": "http.response.start", "status": 403, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    headers = [(b"access-control-allow-origin", b"*" if any_origin else origin.encode("latin-1")),
               (b"access-control-allow-methods", b"POST"),
               (b"access-control-allow-headers", ALLOWED_HEADERS.encode()),
               (b"access-control-max-age", MAX_AGE.encode()), (b"vary", b"Origin")]
    await send({"type": "http.response.start", "status": 204, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None
