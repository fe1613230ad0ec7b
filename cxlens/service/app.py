"""The FastAPI app factory: `create_app(settings)` builds one independent app (no global state).

Middleware writes one JSON access-log line per request and adds security headers; CxlensErrors
become 4xx answers whose `detail` is the error's sentence (404 for things that do not exist).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cxlens import __version__
from cxlens.errors import CxlensError, NotFoundError
from cxlens.service.cors import Cors, check_origins
from cxlens.service.dashboard import router as dashboard_router
from cxlens.service.dashboard.state import state_of
from cxlens.service.runtime import Runtime
from cxlens.service.settings import ServiceSettings

access_log = logging.getLogger("cxlens.access")

SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


class AccessLog:
    """Pure ASGI middleware (cheaper than BaseHTTPMiddleware on the collection hot path)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.get("headers", [])
                present = {k.lower() for k, _ in headers}  # a response's own cache-control wins (static files)
                message["headers"] = [*headers, *(h for h in SECURITY_HEADERS if h[0] not in present)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            if access_log.isEnabledFor(logging.INFO):
                state = scope.get("state") or {}
                client = scope.get("client") or ("", 0)
                access_log.info(json.dumps({
                    "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "method": scope["method"],
                    "path": scope["path"], "status": status, "ms": round((time.perf_counter() - started) * 1000, 2),
                    "client": client[0], "key": state.get("key_name"),
                }))


def _error_status(exc: CxlensError) -> int:
    if isinstance(exc, NotFoundError):
        return 404
    return 400


def _segment_ids(settings: ServiceSettings) -> list[str]:
    """The segments the definitions file declares (the dashboard keeps a view per segment current)."""
    from cxlens.semantic import Catalog
    from cxlens.semantic.registry import definitions_path

    try:
        return list(Catalog.load(definitions_path(settings.workspace)).segments)
    except CxlensError:  # the dashboard's pages say what is wrong with the file when read
        return []


def create_app(settings: ServiceSettings) -> FastAPI:
    """One app over `settings.workspace`: its own spool, key cache and loader thread."""
    from cxlens.service.routes import admin, analyses, collect, read, surveys

    runtime = Runtime(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime.start()
        dashboard = state_of(app)
        dashboard.start(_segment_ids(settings))
        try:
            yield
        finally:
            dashboard.stop()
            runtime.stop()

    app = FastAPI(
        title="cxlens",
        version=__version__,
        description="Collect events durably and read every cxlens analysis. Send `Authorization: Bearer KEY` "
                    "(keys come from `cxlens keys create`).",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.settings = settings

    @app.exception_handler(CxlensError)
    async def cxlens_error(request: Request, exc: CxlensError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=_error_status(exc))

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, Any]:
        """Liveness, the collection backlog, the last load (null until the start-up load is done) and
        how many dashboard views wait for a refresh or for their date-range queries to be compiled
        (no key needed)."""
        dashboard = state_of(app)
        last = runtime.last_load
        return {"status": "ok", "backlog": runtime.spool.quick_backlog(), "loader_error": runtime.last_error,
                "last_load": last.to_dict() if last is not None else None, "dashboard": dashboard.status()}

    app.include_router(collect.router)
    app.include_router(read.router)
    app.include_router(analyses.router)
    app.include_router(admin.router)
    app.include_router(dashboard_router)
    app.include_router(surveys.router)
    if settings.cors_origins:
        app.add_middleware(Cors, origins=check_origins(settings.cors_origins))
    app.add_middleware(AccessLog)
    return app
