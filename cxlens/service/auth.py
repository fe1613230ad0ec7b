"""Bearer-key checks as FastAPI dependencies: 401 for a missing, unknown or revoked key, 403 for a
valid key whose scope does not cover the endpoint."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from cxlens.service.keys import KeyRecord, hash_key
from cxlens.service.runtime import Runtime

bearer = HTTPBearer(auto_error=False, description="An API key from `cxlens keys create`.")

UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


def runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def require(scope: str) -> Callable[..., KeyRecord]:
    """A dependency admitting only active keys of `scope`; it tags the request with the key's name."""

    def check(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> KeyRecord:
        if credentials is None or not credentials.credentials:
            raise HTTPException(401, "Send an API key as `Authorization: Bearer KEY` (create one with `cxlens keys create`).",
                                headers=UNAUTHORIZED)
        record = runtime(request).key(hash_key(credentials.credentials))
        if record is None:
            raise HTTPException(401, "This API key is unknown or revoked.", headers=UNAUTHORIZED)
        request.state.key_name = record.name
        if record.scope != scope:
            raise HTTPException(403, f"The key `{record.name}` has scope `{record.scope}`; this endpoint needs a `{scope}` key.")
        return record

    return check
