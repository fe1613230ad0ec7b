"""Collection: POST /v1/events and POST /v1/identify (write keys), durable before they answer."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from cxlens.service.auth import require, runtime
from cxlens.service.body import json_body
from cxlens.service.events import EVENT_COLUMNS, Invalid, Rejection, check_events, identify_event
from cxlens.service.runtime import Runtime
from cxlens.service.spool import Appended

router = APIRouter(prefix="/v1", tags=["collect"])


class Rejected(BaseModel):
    index: int = Field(description="Position of the event in the request's `events` list.")
    field: str | None = Field(description="The first field found wrong (canonical order), or null when the event is not an object.")
    reason: str = Field(description="missing_required, bad_timestamp, bad_number, bad_boolean, bad_json, unknown_field, not_text, too_long or not_an_object.")


class CollectResult(BaseModel):
    accepted: int = Field(description="Events stored durably now (loaded into the workspace within seconds).")
    duplicates: int = Field(description="Events whose event_id was received before: stored once.")
    rejected: list[Rejected]


EVENTS_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {
            "type": "object", "required": ["events"],
            "properties": {"events": {"type": "array", "maxItems": 1000, "items": {
                "type": "object", "required": ["occurred_at", "event_type"],
                "properties": {c: {"type": "string"} for c in EVENT_COLUMNS},
            }}},
        }}},
    }
}

IDENTIFY_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {
            "type": "object", "required": ["anonymous_id"],
            "properties": {c: {"type": "string"} for c in
                           ("anonymous_id", "customer_id", "email", "phone", "loyalty_id", "occurred_at", "channel", "event_id")}
            | {"traits": {"type": "object"}},
        }}},
    }
}


def _backpressure(rt: Runtime) -> None:
    """503 when the backlog is over the limit; runs on the event loop, so it must not wait for the
    spool's lock (an append holds it through its fsync): it reads the in-memory estimate."""
    if rt.spool.pending_estimate() >= rt.settings.backlog_limit:
        raise HTTPException(503, f"The collection backlog is over {rt.settings.backlog_limit} events; retry later.",
                            headers={"Retry-After": str(rt.settings.retry_after)})


@router.post("/events", response_model=CollectResult, openapi_extra=EVENTS_BODY,
             dependencies=[Depends(require("write"))])
async def collect_events(request: Request) -> Any:
    """Collect up to 1,000 events; valid ones are stored even when others are rejected.

    The answer comes after the events are fsynced to the spool; an event_id received before is
    counted as a duplicate and stored once; an event without event_id gets a hash of its content.
    """
    rt = runtime(request)
    _backpressure(rt)
    body = await json_body(request, rt.settings.max_body_bytes)
    items = body.get("events") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise HTTPException(422, "The body must be a JSON object with an `events` list.")
    if len(items) > rt.settings.max_events:
        raise HTTPException(413, f"`events` holds {len(items)} events; send at most {rt.settings.max_events} per request.")
    appended, rejected = await run_in_threadpool(_check_and_append, rt, items)
    return {"accepted": appended.accepted, "duplicates": appended.duplicates,
            "rejected": [r.to_dict() for r in rejected]}


def _check_and_append(rt: Runtime, items: list[Any]) -> tuple[Appended, list[Rejection]]:
    """Validation and the fsynced append in one trip to the thread pool (each trip costs a thread
    wake-up on the hot path); neither may run on the event loop."""
    valid, rejected = check_events(items)
    return rt.spool.append(valid, rt.settings.source), rejected


@router.post("/identify", response_model=CollectResult, openapi_extra=IDENTIFY_BODY,
             dependencies=[Depends(require("write"))])
async def identify(request: Request) -> Any:
    """Link an anonymous_id to a customer_id, email, phone or loyalty_id.

    Stored as an `identify` event whose row carries both identifiers, so identity resolution puts
    the visitor's earlier and later anonymous events in the customer's profile.
    """
    rt = runtime(request)
    _backpressure(rt)
    body = await json_body(request, rt.settings.max_body_bytes)
    try:
        event = identify_event(body, datetime.now(UTC))
    except Invalid as exc:
        return JSONResponse({"accepted": 0, "duplicates": 0, "rejected": [{"index": 0, "field": exc.field, "reason": exc.reason}]},
                            status_code=422)
    appended = await run_in_threadpool(rt.spool.append, [event], rt.settings.source)
    return {"accepted": appended.accepted, "duplicates": appended.duplicates, "rejected": []}
