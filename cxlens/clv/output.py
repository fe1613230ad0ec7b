"""The JSON of `cxlens clv predict --format json`, and the same summary read back from the stored
`clv_predictions` table (what `GET /v1/clv` answers: a GET must not refit nor write)."""

from __future__ import annotations

from typing import Any

import ibis

from cxlens.clv.workspace import PREDICTIONS_TABLE, Prediction
from cxlens.errors import NotFoundError

TOP = 10
"""Customers listed with the highest CLV."""
TOP_COLUMNS = ("profile_id", "model", "horizon", "expected_purchases", "p_alive", "expected_spend", "clv", "basis")
"""The prediction columns a top customer is listed with (all but predicted_at)."""


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def prediction_json(prediction: Prediction) -> dict[str, Any]:
    """Settings, totals and the top customers of a fresh prediction."""
    fit, frame = prediction.fit, prediction.frame
    totals = {k: (int(v) if k == "customers" else v) for k, v in prediction.totals.items()}
    top = frame.sort_values(["clv", "profile_id"], ascending=[False, True]).head(TOP)
    return {"model": fit.model, "horizon": prediction.horizon, "horizon_units": prediction.horizon_units, "unit": fit.unit,
            "basis": "margin" if fit.use_margin else "revenue", "discount_rate": prediction.discount_rate,
            "table": PREDICTIONS_TABLE, "summary": totals,
            "top": [{k: _plain(v) for k, v in r.items() if k != "predicted_at"} for r in top.to_dict("records")]}


def stored_predictions_json(ws: Any) -> dict[str, Any]:
    """The stored predictions' model, horizon, basis, when they were made, totals and top customers,
    aggregated in the engine. The horizon in units, the unit and the discount rate are not stored,
    so they are not repeated here."""
    if PREDICTIONS_TABLE not in ws.backend.tables():
        raise NotFoundError("No CLV predictions are stored in this workspace yet; run `cxlens clv predict` first.")
    t = ws.table(PREDICTIONS_TABLE)
    agg = t.aggregate(customers=t.count(), expected_purchases=t.expected_purchases.sum(), clv=t.clv.sum(),
                      mean_clv=t.clv.mean(), mean_p_alive=t.p_alive.mean(), predicted_at=t.predicted_at.max(),
                      model=t.model.arbitrary(), horizon=t.horizon.arbitrary(),
                      basis=(t.basis.arbitrary() if "basis" in t.columns else ibis.null("string")))
    (row,) = agg.to_pyarrow().to_pylist()
    n = int(row["customers"])
    totals = {"customers": n, "expected_purchases": float(row["expected_purchases"] or 0.0), "clv": float(row["clv"] or 0.0),
              "mean_clv": float(row["mean_clv"] or 0.0), "mean_p_alive": float(row["mean_p_alive"] or 0.0)}
    columns = [c for c in TOP_COLUMNS if c in t.columns]
    top = t.order_by([ibis.desc("clv"), ibis.asc("profile_id")]).limit(TOP).select(*columns).to_pyarrow().to_pylist()
    return {"model": row["model"], "horizon": row["horizon"], "basis": row["basis"], "table": PREDICTIONS_TABLE,
            "predicted_at": row["predicted_at"], "summary": totals, "top": top}
