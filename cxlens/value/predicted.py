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
    from cxlens.clv import BGNBD
    from cxlens.clv.summary import rfm_summary
    from cxlens.clv.workspace import fit_rows, fit_spend, horizon_clv

    try:
        summary = fit_rows(rfm_summary(ws, observation_end=as_of, unit="W", use_margin=use_margin))
        if len(summary) < 20 or int((summary["frequency"] > 0).sum()) < 10:
            return None
        purchases = BGNBD().fit(summary)
        spend = fit_spend(summary)
        args = (summary["frequency"], summary["recency"], summary["T"])
        return pd.DataFrame({
            "profile_id": summary["profile_id"].astype(str).to_numpy(),
            "predicted_clv": horizon_clv(spend, purchases, summary, horizon_weeks, discount_rate=discount_rate, unit="W"),
            "p_alive": purchases.probability_alive(*args),
        })
    except ModelError:
        return None
