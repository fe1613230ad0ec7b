"""Numbers as a reader expects them, by the metric's unit, and whether a change is good news.

The semantic layer keeps shares as fractions and NPS in points; here shares become percentages,
their changes percentage points, NPS changes points, durations minutes and hours, and totals get
a relative change. The HTML report and the CLI table use the same functions so they agree.
"""

from __future__ import annotations

import math
from typing import Literal

Tone = Literal["good", "bad", "neutral"]

CURRENCY_SYMBOLS: dict[str, str] = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹", "CNY": "¥"}
ABSOLUTE_CHANGE_UNITS: frozenset[str] = frozenset({"share", "points"})
"""Units whose change reads best as a difference (pp, points); the rest get a relative change."""


def is_number(value: float | None) -> bool:
    return value is not None and not (isinstance(value, float) and (math.isnan(value) or math.isinf(value)))


def currency_prefix(code: str | None) -> str:
    """`$` for USD, `CHF ` for a code without a symbol, nothing when the currency is unknown or mixed."""
    if not code:
        return ""
    return CURRENCY_SYMBOLS.get(code.upper(), f"{code.upper()} ")


def _grouped(value: float, decimals: int) -> str:
    return f"{value:,.{decimals}f}"


def _compact(value: float) -> str:
    """12,345,678 -> 12.3M; smaller values keep every digit (a tile has room for 9 of them)."""
    a = abs(value)
    if a >= 1e9:
        return f"{value / 1e9:,.2f}B"
    if a >= 1e7:
        return f"{value / 1e6:,.1f}M"
    return _grouped(value, 0)


def format_duration(seconds: float) -> str:
    s = abs(seconds)
    sign = "−" if seconds < 0 else ""
    if s < 60:
        return f"{sign}{s:.0f} s"
    if s < 3600:
        return f"{sign}{int(s // 60)} min {int(round(s % 60)):02d} s"
    return f"{sign}{int(s // 3600)} h {int(round((s % 3600) / 60)):02d} min"


def format_value(value: float | None, unit: str, currency: str = "") -> str:
    """A metric value for a tile or a table cell ('—' when there is none)."""
    if not is_number(value):
        return "—"
    assert value is not None
    if unit == "share":
        return f"{100 * value:.1f}%"
    if unit == "points":
        return _minus(f"{value:.1f}")
    if unit == "currency":
        digits = _compact(abs(value)) if abs(value) >= 1000 else _grouped(abs(value), 2)
        return f"{'−' if value < 0 else ''}{currency}{digits}"
    if unit == "count":
        return _minus(_compact(value))
    if unit == "seconds":
        return format_duration(value)
    if unit == "days":
        return f"{value:,.1f} days"
    if unit == "ratio":
        return _minus(f"{value:,.2f}×")
    if unit == "score":
        return _minus(f"{value:,.1f}") if abs(value) >= 10 else _minus(f"{value:,.2f}")
    return _minus(f"{value:,.2f}")


def _minus(text: str) -> str:
    return text.replace("-", "−", 1) if text.startswith("-") else text


def _signed(text: str, delta: float) -> str:
    if not any(c in "123456789" for c in text):
        return "±" + text.lstrip("-−")
    if delta > 0:
        return "+" + text
    if delta < 0:
        return "−" + text.lstrip("-−")
    return "±" + text.lstrip("-−")


def change(current: float | None, reference: float | None) -> float | None:
    """current − reference, or None when either is missing."""
    if not (is_number(current) and is_number(reference)):
        return None
    assert current is not None and reference is not None
    return current - reference


def relative(current: float | None, reference: float | None) -> float | None:
    d = change(current, reference)
    if d is None or not reference:
        return None
    assert reference is not None
    return d / abs(reference)


def format_change(current: float | None, reference: float | None, unit: str, currency: str = "") -> str:
    """The change from `reference` to `current`: pp for shares, points for NPS, else relative %."""
    d = change(current, reference)
    if d is None:
        return "—"
    if unit == "share":
        return _signed(f"{abs(100 * d):.1f} pp", d)
    if unit == "points":
        return _signed(f"{abs(d):.1f} pts", d)
    rel = relative(current, reference)
    if rel is None:
        return _signed(format_value(abs(d), unit, currency), d)
    return _signed(f"{abs(100 * rel):.1f}%", d)


def format_delta(delta: float | None, unit: str, currency: str = "") -> str:
    """An absolute difference in the metric's unit (pp for shares), e.g. an interval's bound."""
    if not is_number(delta):
        return "—"
    assert delta is not None
    if unit == "share":
        return _signed(f"{abs(100 * delta):.1f} pp", delta)
    if unit == "points":
        return _signed(f"{abs(delta):.1f} pts", delta)
    return _signed(format_value(abs(delta), unit, currency), delta)


def tone(delta: float | None, direction: str) -> Tone:
    """Good when the metric moved the way its definition says is better, bad the other way."""
    if not is_number(delta) or delta == 0 or direction not in ("up", "down"):
        return "neutral"
    assert delta is not None
    return "good" if (delta > 0) == (direction == "up") else "bad"
