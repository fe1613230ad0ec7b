"""Rule-based attribution: each converting path's conversions and value split over its touches by a fixed rule.

With L touches on a path, the touch at position i (1..L) gets a fraction f(i, L) that sums to 1:
first (i = 1), last (i = L), last non-direct (the last touch whose channel is not direct, or the
last touch when all are direct), linear (1/L), position-based (Google Analytics' "position
based": 40% first, 40% last, 20% split over the middle; one touch gets 100%, two get 50% each).
Time decay needs touch times and lives with the workspace's journeys (cxlens.attribution.workspace).
The split runs in DuckDB over the distinct paths.
"""

from __future__ import annotations

from typing import Literal

from cxlens.attribution.paths import PathCounts
from cxlens.attribution.result import AttributionResult, make_result

RuleName = Literal["first", "last", "last-non-direct", "linear", "position"]
RULES: tuple[RuleName, ...] = ("first", "last", "last-non-direct", "linear", "position")
DIRECT_CHANNELS: tuple[str, ...] = ("direct", "(direct)")
"""Channel names (compared in lower case) the last-non-direct rule skips."""
POSITION_ENDS = 0.4
"""Share of the first and of the last touch in the position-based rule (the middle gets 1 - 2 x 0.4)."""

_FRACTION = {
    "first": "CASE WHEN i = 1 THEN 1.0 ELSE 0.0 END",
    "last": "CASE WHEN i = l THEN 1.0 ELSE 0.0 END",
    "last-non-direct": "CASE WHEN i = j THEN 1.0 ELSE 0.0 END",
    "linear": "1.0 / l",
    "position": (f"CASE WHEN l = 1 THEN 1.0 WHEN l = 2 THEN 0.5 WHEN i = 1 OR i = l THEN {POSITION_ENDS} "
                 f"ELSE {1 - 2 * POSITION_ENDS} / (l - 2) END"),
}


def rule_based(paths: PathCounts, rule: RuleName, *, direct: tuple[str, ...] = DIRECT_CHANNELS) -> AttributionResult:
    """Credited conversions and value per channel under one rule."""
    if rule not in _FRACTION:
        raise ValueError(rule)
    names = ", ".join("'" + d.lower().replace("'", "''") + "'" for d in direct)
    sql = f"""
    WITH p AS (
        SELECT channels AS ch, conversions AS c, value AS v, len(channels) AS l,
               coalesce(len(channels) + 1 - list_position(list_reverse(list_transform(channels, x -> lower(x) NOT IN ({names}))), true),
                        len(channels)) AS j
        FROM paths WHERE conversions > 0 OR value <> 0),
    touches AS (SELECT ch[i] AS channel, c, v, i, l, j FROM (SELECT *, unnest(range(1, l + 1)) AS i FROM p))
    SELECT channel, sum(c * f)::DOUBLE AS conversions, sum(v * f)::DOUBLE AS value
    FROM (SELECT channel, c, v, {_FRACTION[rule]} AS f FROM touches) GROUP BY channel
    """
    con = paths.connect()
    try:
        rows = con.sql(sql).fetchall()
    finally:
        con.close()
    credits = {str(channel): (conv, value) for channel, conv, value in rows}
    for channel in paths.channels():
        credits.setdefault(channel, (0.0, 0.0))
    return make_result(rule, credits, paths.total_conversions, paths.total_value)
