"""Administration (admin keys): create, list and revoke API keys over HTTP."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from cxlens.service import keys as keystore
from cxlens.service.auth import require, runtime

router = APIRouter(prefix="/v1/keys", tags=["admin"], dependencies=[Depends(require("admin"))])


class NewKey(BaseModel):
    scope: keystore.Scope
    name: str | None = Field(None, max_length=64)
    pii: bool = False


@router.get("")
def list_keys(request: Request) -> dict[str, Any]:
    """Every key (never its secret): name, scope, pii, prefix, created_at, revoked_at."""
    with runtime(request).workspace() as ws:
        return {"keys": [k.to_dict() for k in keystore.list_keys(ws)]}


@router.post("", status_code=201)
def create_key(request: Request, body: NewKey) -> dict[str, Any]:
    """A new key; the answer is the only time its secret is shown (same JSON as `cxlens keys create`)."""
    with runtime(request).workspace() as ws:
        key, record = keystore.create_key(ws, body.scope, body.name, pii=body.pii)
    return {"key": key, "scope": record.scope, "name": record.name, "pii": record.pii}


@router.delete("/{key_or_name}")
def revoke_key(request: Request, key_or_name: str) -> dict[str, Any]:
    """Revoke a key by name (or full key); it stops working at once on this server."""
    rt = runtime(request)
    with rt.workspace() as ws:
        record = keystore.revoke_key(ws, key_or_name)
    rt.refresh_keys()
    return record.to_dict()
