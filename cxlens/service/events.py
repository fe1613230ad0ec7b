"""Checking collected events one by one, with the rules file ingest applies to a column.

The HTTP API must say which event of a batch failed and why before it acknowledges the rest, so
the checks run here in Python per event; the reason codes are ingest's (`missing_required`,
`bad_timestamp`, `bad_number`, `bad_boolean`, `bad_json`, see `workspace.internal.REASONS`) plus
four that only a JSON body can produce. Values leave normalized (UTC timestamps, JSON text), and
the loader runs the ordinary file ingest over them, so HTTP and file ingest store the same rows.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cxlens.ingest.validate import FALSE_WORDS, TRUE_WORDS
from cxlens.workspace.schema import IDENTITY_COLUMNS, TABLES

EVENT_COLUMNS: dict[str, str] = {c.name: c.type for c in TABLES["events"].columns}
REQUIRED: tuple[str, ...] = TABLES["events"].required
MAX_TEXT = 2048
MAX_JSON = 16 * 1024

SERVICE_REASONS: dict[str, str] = {
    "not_an_object": "an event must be a JSON object",
    "unknown_field": "not a canonical event field (put custom data in `properties`)",
    "not_text": "must be a string or a number",
    "too_long": f"longer than {MAX_TEXT} characters ({MAX_JSON} for properties)",
}
"""Reason codes only the HTTP API produces, next to ingest's."""


@dataclass(frozen=True)
class Rejection:
    index: int
    field: str | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "reason": self.reason}


class Invalid(Exception):
    """One field of one event is wrong (internal: becomes a Rejection)."""

    def __init__(self, field: str | None, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


def parse_timestamp(value: Any) -> str | None:
    """ISO 8601 text to 'YYYY-MM-DD HH:MM:SS.ffffff' in UTC (an offset is applied, none means UTC)."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    try:
        ts = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        return None
    if ts.tzinfo is not None:
        ts = ts.astimezone(UTC).replace(tzinfo=None)
    return ts.strftime("%Y-%m-%d %H:%M:%S.%f")


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def _text(name: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise Invalid(name, "not_text")
    if isinstance(value, float) and not math.isfinite(value):
        raise Invalid(name, "not_text")
    text = value if isinstance(value, str) else json.dumps(value)
    if len(text) > MAX_TEXT:
        raise Invalid(name, "too_long")
    return text


def _value(name: str, kind: str, value: Any) -> Any:
    """The normalized value of one present, non-blank field."""
    if kind == "string":
        return _text(name, value)
    if kind == "timestamp":
        ts = parse_timestamp(value)
        if ts is None:
            raise Invalid(name, "bad_timestamp")
        return ts
    if kind == "float64":
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise Invalid(name, "bad_number") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
            raise Invalid(name, "bad_number")
        return float(value)
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower() if isinstance(value, (str, int)) else None
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise Invalid(name, "bad_boolean")
    if kind == "json":
        if isinstance(value, str):
            try:
                json.loads(value)
            except ValueError:
                raise Invalid(name, "bad_json") from None
            text = value
        elif isinstance(value, (dict, list)):
            text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        else:
            raise Invalid(name, "bad_json")
        if len(text) > MAX_JSON:
            raise Invalid(name, "too_long")
        return text
    raise Invalid(name, "unknown_field")  # pragma: no cover - the schema's types are closed


def content_id(event: dict[str, Any]) -> str:
    """A stable id for an event sent without one: a hash of its normalized content."""
    body = json.dumps(event, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def check_event(raw: Any) -> dict[str, Any]:
    """One event normalized to every canonical column (None when absent), or Invalid.

    Unknown fields are checked first, then columns in canonical order, as ingest does, so an
    event carries exactly one reason.
    """
    if not isinstance(raw, dict):
        raise Invalid(None, "not_an_object")
    for name in raw:
        if name not in EVENT_COLUMNS:
            raise Invalid(str(name)[:64], "unknown_field")
    out: dict[str, Any] = {}
    for name, kind in EVENT_COLUMNS.items():
        value = raw.get(name)
        if _blank(value):
            if name in REQUIRED:
                raise Invalid(name, "missing_required")
            out[name] = None
            continue
        out[name] = _value(name, kind, value)
    if out["event_id"] is None:
        out["event_id"] = content_id(out)
    return out


def check_events(items: list[Any]) -> tuple[list[dict[str, Any]], list[Rejection]]:
    """Valid events normalized, and one rejection per invalid event (by its index in the batch)."""
    valid, rejected = [], []
    for i, raw in enumerate(items):
        try:
            valid.append(check_event(raw))
        except Invalid as exc:
            rejected.append(Rejection(i, exc.field, exc.reason))
    return valid, rejected


IDENTIFY_KEYS: tuple[str, ...] = tuple(c for c in IDENTITY_COLUMNS if c != "anonymous_id")


def identify_event(raw: Any, now: datetime) -> dict[str, Any]:
    """An identify call as an `identify` event: its row joins the anonymous id to the customer's
    other identifiers in the identity graph, like any record carrying both (see identity/graph.py)."""
    if not isinstance(raw, dict):
        raise Invalid(None, "not_an_object")
    allowed = {"anonymous_id", *IDENTIFY_KEYS, "occurred_at", "traits", "channel", "event_id"}
    for name in raw:
        if name not in allowed:
            raise Invalid(str(name)[:64], "unknown_field")
    if _blank(raw.get("anonymous_id")):
        raise Invalid("anonymous_id", "missing_required")
    if all(_blank(raw.get(k)) for k in IDENTIFY_KEYS):
        raise Invalid("customer_id", "missing_required")
    event = {k: raw.get(k) for k in ("anonymous_id", *IDENTIFY_KEYS, "channel", "event_id")}
    event["event_type"] = "identify"
    event["occurred_at"] = raw.get("occurred_at") or now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if raw.get("traits") is not None:
        event["properties"] = raw["traits"]
    return check_event(event)
