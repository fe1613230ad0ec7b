"""Calendar periods of the report's grain: where one starts and ends, its neighbours, its label.

The semantic layer truncates timestamps in the engine (weeks start on Monday, quarters in January,
April, July and October); these helpers step through the same calendar in Python so the report can
name the period a tile shows, find the one before it and tell a full period from a partial one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

ReportGrain = Literal["week", "month", "quarter"]
REPORT_GRAINS: tuple[str, ...] = ("week", "month", "quarter")
MONTHS_IN: dict[str, int] = {"month": 1, "quarter": 3}


def floor(day: date, grain: str) -> date:
    """The first day of the period holding `day`."""
    if grain == "week":
        return day - timedelta(days=day.weekday())
    if grain == "quarter":
        return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    return date(day.year, day.month, 1)


def shift(start: date, grain: str, periods: int = 1) -> date:
    """The start of the period `periods` after (or before, when negative) the one starting at `start`."""
    if grain == "week":
        return start + timedelta(days=7 * periods)
    m = start.month - 1 + MONTHS_IN[grain] * periods
    return date(start.year + m // 12, m % 12 + 1, 1)


def last_day(start: date, grain: str) -> date:
    """The last day (inclusive) of the period starting at `start`."""
    return shift(start, grain) - timedelta(days=1)


def label(start: date, grain: str) -> str:
    """How a person names the period: `Dec 2025`, `2025 Q4`, `week of 2025-12-29`."""
    if grain == "week":
        return f"week of {start.isoformat()}"
    if grain == "quarter":
        return f"{start.year} Q{(start.month - 1) // 3 + 1}"
    return start.strftime("%b %Y")


@dataclass(frozen=True)
class DataSpan:
    """The first and last moment with activity in the workspace, clipped to --since/--until."""

    first: datetime
    last: datetime

    def trailing_partial(self, grain: str) -> date | None:
        """The start of the last period if the data stops before it ends and an earlier period exists.

        A month holding one stray order past the end of the data would otherwise be the "current"
        month of every tile, down 100% from the one before.
        """
        start = floor(self.last.date(), grain)
        if self.last.date() >= last_day(start, grain) or start <= self.first.date():
            return None
        return start

    def to_json(self) -> dict[str, str]:
        return {"first": self.first.isoformat(), "last": self.last.isoformat()}
