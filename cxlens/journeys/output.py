"""The JSON documents of `cxlens journeys paths|funnel|friction|map --format json`.

They live here rather than in the CLI so the HTTP read API (`GET /v1/journeys/...`) answers with
the very same documents: a script can switch between the two without changing a key.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from cxlens.journeys.friction import FrictionResult, FrictionSettings
from cxlens.journeys.funnel import FunnelResult
from cxlens.journeys.map import JourneyMap


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A frame's rows as dicts, missing numbers as None (JSON null)."""
    return [{k: (None if isinstance(v, float) and pd.isna(v) else v) for k, v in r.items()} for r in frame.to_dict("records")]


def paths_json(result: dict[str, Any], limit: int) -> dict[str, Any]:
    """`path_counts`' result with its `limit` most common paths and the Sankey flows."""
    return {**{k: result[k] for k in ("outcome", "level", "lookback_days", "max_steps")},
            "paths": records(result["paths"].head(limit)), "sankey": records(result["sankey"])}


def funnel_json(result: FunnelResult, window_days: float | None, by: str | None) -> dict[str, Any]:
    """A funnel's steps, its settings and one row per (group, step)."""
    return {"steps": list(result.steps), "window_days": window_days, "by": by, "rows": records(result.frame)}


def friction_json(result: FrictionResult, settings: FrictionSettings) -> dict[str, Any]:
    """Friction prevalence, its effects with intervals, the models behind them and per-touchpoint figures."""
    return {"settings": settings.__dict__, "churn_cutoff": result.window.cutoff.isoformat(),
            "prevalence": result.prevalence, "effects": records(result.effects), "models": result.models,
            "by_touchpoint": records(result.by_touchpoint), "notes": list(result.notes)}


def map_json(m: JourneyMap, limit: int) -> dict[str, Any]:
    """The journey map's touchpoints and its `limit` micro-journeys with the largest effect on churn."""
    return {"customers": m.customers, "churn_rate": m.churn_rate, "touchpoints": records(m.touchpoints),
            "micro_journeys": records(m.micro_journeys.head(limit))}
