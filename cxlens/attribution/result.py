"""What an attribution model returns: credited conversions and value per channel, JSON-ready."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ChannelCredit:
    """One channel's (or campaign's) credited conversions and value; removal_effect for Markov only."""

    channel: str
    conversions: float
    revenue: float
    share: float
    removal_effect: float | None = None

    def to_dict(self) -> dict[str, Any]:
        row: dict[str, Any] = {"channel": self.channel, "conversions": self.conversions, "revenue": self.revenue,
                               "share": self.share}
        if self.removal_effect is not None:
            row["removal_effect"] = self.removal_effect
        return row


@dataclass(frozen=True)
class AttributionResult:
    """Credits of one model; shares are credited conversions over total conversions.

    `extra` holds model facts a reader needs (Markov order, P(conversion), states, half-life).
    """

    model: str
    total_conversions: float
    total_revenue: float
    channels: tuple[ChannelCredit, ...]
    extra: dict[str, Any] = field(default_factory=dict)

    def credit(self, channel: str) -> ChannelCredit:
        """The row of one channel (KeyError when the channel got no row)."""
        for c in self.channels:
            if c.channel == channel:
                return c
        raise KeyError(channel)

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract: {model, total_conversions, channels: [{channel, conversions, revenue, share[, removal_effect]}]}."""
        return {"model": self.model, "total_conversions": self.total_conversions, "total_revenue": self.total_revenue,
                **self.extra, "channels": [c.to_dict() for c in self.channels]}


def make_result(model: str, credits: dict[str, tuple[float, float]], total_conversions: float, total_revenue: float,
                removal_effects: dict[str, float] | None = None, extra: dict[str, Any] | None = None) -> AttributionResult:
    """Rows sorted by credited conversions (then name, so equal credits keep a fixed order)."""
    rows = [ChannelCredit(channel=name, conversions=float(conv), revenue=float(value),
                          share=float(conv / total_conversions) if total_conversions else 0.0,
                          removal_effect=None if removal_effects is None else float(removal_effects.get(name, 0.0)))
            for name, (conv, value) in credits.items()]
    rows.sort(key=lambda r: (-r.conversions, -r.revenue, r.channel))
    return AttributionResult(model=model, total_conversions=float(total_conversions), total_revenue=float(total_revenue),
                             channels=tuple(rows), extra=dict(extra or {}))
