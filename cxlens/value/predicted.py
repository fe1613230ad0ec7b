"""Predicted value per profile: BG/NBD P(alive) and Gamma-Gamma CLV, as evidence for the value classes.

Historical value favours long-standing customers; a customer who joined three months ago and
buys like the best ones has little history yet. The purchase and spend models (the same fit as
`cxlens clv predict`: BG/NBD on weekly RFM summaries, Gamma-Gamma on repeat spend, monthly
discounting) predict what each customer is worth ahead, and P(alive) says whether a silent
customer has probably gone. When the models cannot be fitted (too few repeat buyers, degenerate
spend) the predictions are missing and the classes fall back to historical evidence.
"""

from __future__ import annotations

import pandas as pd

from cxlens.errors import ModelError

HORIZON_WEEKS = 52.0
DISCOUNT_RATE = 0.01
"""Monthly discount rate for CLV, as in `cxlens clv predict`."""


def predicted_value(ws: object, as_of: str, *, use_margin: bool, horizon_weeks: float = HORIZON_WEEKS,
                    discount_rate: float = DISCOUNT_RATE) -> pd.DataFrame | None:
    """profile_id, predicted_clv, p_alive from orders up to `as_of` (ISO date); None when the models cannot be fitted."""
    from cxlens.clv.workspace import predict_workspace

    try:
        prediction = predict_workspace(ws, horizon=f"{horizon_weeks:g}w", discount_rate=discount_rate, unit="W",
                                       use_margin=use_margin, as_of=as_of)
    except ModelError:
        return None
    summary = prediction.fit.summary
    if len(summary) < 20 or int((summary["frequency"] > 0).sum()) < 10:
        return None
    return prediction.frame[["profile_id", "clv", "p_alive"]].rename(columns={"clv": "predicted_clv"})
