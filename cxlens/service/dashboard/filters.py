"""The dashboard's filters (period, grain, segment, channel), checked before anything is queried.

Filters travel in the query string, so a filtered page is a link one can share. Every value is
validated here: a date must be a date, a segment must be one the definitions file declares and a
channel a plain word. Anything else is a 400 naming the field, never text passed to the engine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import urlencode

from fastapi import HTTPException

from cxlens.report.periods import REPORT_GRAINS

CHANNEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,39}$")
FIELDS: tuple[str, ...] = ("since", "until", "grain", "segment", "channel")


@dataclass(frozen=True)
class Filters:
    """What the reader asked for; the empty filter is the whole workspace by month."""

    since: date | None = None
    until: date | None = None
    grain: str = "month"
    segment: str | None = None
    channel: str | None = None

    @property
    def active(self) -> bool:
        return any((self.since, self.until, self.segment, self.channel)) or self.grain != "month"

    def query(self, **extra: str) -> str:
        """The filters as a query string (for links between pages), plus `extra`."""
        values: dict[str, str] = {}
        for name in FIELDS:
            v = getattr(self, name)
            if v is not None and not (name == "grain" and v == "month"):
                values[name] = v.isoformat() if isinstance(v, date) else str(v)
        values.update(extra)
        return ("?" + urlencode(values)) if values else ""

    def key(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in FIELDS)


def bad(field: str, message: str) -> HTTPException:
    return HTTPException(400, f"{field}: {message}")


def _day(field: str, value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise bad(field, "expected a date as YYYY-MM-DD.") from None


def parse_filters(params: dict[str, str], segments: dict[str, Any]) -> Filters:
    """Filters from the query string; `segments` are the declared ones (id -> Segment)."""
    since, until = _day("since", params.get("since")), _day("until", params.get("until"))
    if since and until and since > until:
        raise bad("since", f"{since} is after until {until}.")
    grain = params.get("grain") or "month"
    if grain not in REPORT_GRAINS:
        raise bad("grain", f"expected one of {', '.join(REPORT_GRAINS)}.")
    segment = params.get("segment") or None
    if segment is not None and segment not in segments:
        known = ", ".join(sorted(segments)) or "none are declared"
        raise bad("segment", f"not a declared segment (declared: {known}).")
    channel = params.get("channel") or None
    if channel is not None and not CHANNEL.match(channel):
        raise bad("channel", "expected a channel name: letters, digits, space, '.', '_' or '-', at most 40.")
    return Filters(since, until, grain, segment, channel)
