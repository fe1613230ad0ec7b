"""CLV on the workspace: fit the purchase and spend models on its orders, predict per customer.

The CLI (`cxlens clv fit|predict`), the HTML report and the value classes all go through these
functions, so a number means the same thing on every surface. The per-customer summary is
computed in the engine (`cxlens.clv.summary`); only the fitted models and predictions live in
Python.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

import numpy as np
import pandas as pd

from cxlens.clv.base import CLVModel
from cxlens.clv.bgnbd import BGNBD
from cxlens.clv.gammagamma import _PER_MONTH, GammaGamma
from cxlens.clv.paretonbd import ParetoNBD
from cxlens.clv.summary import DAYS_PER_UNIT, rfm_summary
from cxlens.errors import UsageError
from cxlens.semantic.ordered import order_key

PREDICTIONS_TABLE = "clv_predictions"
BUCKETS = ("0", "1", "2", "3", "4", "5", "6", "7+")
"""Calibration repeat-purchase buckets of the holdout comparison."""
ModelName = Literal["bgnbd", "pareto-nbd"]
MODELS: tuple[str, ...] = ("bgnbd", "pareto-nbd")


def purchase_model(name: str) -> CLVModel:
    """A fresh purchase model by name: bgnbd (dropout after a purchase) or pareto-nbd (any time)."""
    if name not in MODELS:
        raise UsageError(f"Unknown purchase model {name!r}; use one of {', '.join(MODELS)}.")
    return BGNBD() if name == "bgnbd" else ParetoNBD()


def fit_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """Customers with T > 0: one whose first purchase is on the calibration end day carries no information yet."""
    return summary[summary["T"] > 0]


def spend_rows(summary: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(frequency, monetary_value) for Gamma-Gamma; repeat buyers with no positive spend count as having none."""
    x = summary["frequency"].to_numpy(dtype=float)
    m = summary["monetary_value"].to_numpy(dtype=float)
    usable = (x > 0) & (m > 0)
    return np.where(usable, x, 0.0), np.where(usable, m, 0.0)


def fit_spend(summary: pd.DataFrame) -> GammaGamma:
    """Gamma-Gamma on the repeat buyers of `summary`."""
    x, m = spend_rows(summary)
    return GammaGamma().fit({"frequency": x, "monetary_value": m})


def holdout_check(model: CLVModel, summary: pd.DataFrame) -> dict[str, Any]:
    """Predicted vs actual repeat purchases in the holdout, in total and per calibration frequency."""
    predicted = model.expected_purchases(summary["duration_holdout"], summary["frequency"], summary["recency"], summary["T"])  # type: ignore[attr-defined]
    actual = summary["frequency_holdout"].to_numpy(dtype=float)
    bucket = summary["frequency"].clip(upper=7).to_numpy()
    rows = []
    for k, label in enumerate(BUCKETS):
        mask = bucket == k
        rows.append({"frequency": label, "customers": int(mask.sum()), "actual": float(actual[mask].sum()),
                     "predicted": float(predicted[mask].sum())})
    total_actual, total_predicted = float(actual.sum()), float(predicted.sum())
    return {"duration": float(summary["duration_holdout"].iloc[0]), "actual": total_actual, "predicted": total_predicted,
            "relative_error": (total_predicted - total_actual) / total_actual if total_actual else None,
            "by_frequency": rows}


def parse_horizon(text: str, unit: str) -> float:
    """A horizon such as 52w, 90d or 12m as a number of `unit`s; a month is the Gamma-Gamma month of that unit."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([wdmWDM])\s*", text)
    if not match or float(match.group(1)) <= 0:
        raise UsageError(f"--horizon {text!r} is not a duration; write a positive number of weeks, days or months, e.g. 52w, 90d or 12m.")
    n, kind = float(match.group(1)), match.group(2).lower()
    if kind == "m":
        return n * _PER_MONTH[unit]
    return n * (7.0 if kind == "w" else 1.0) / DAYS_PER_UNIT[unit]


def horizon_clv(spend_model: GammaGamma, purchases: CLVModel, summary: pd.DataFrame, horizon: float, *,
                discount_rate: float, unit: str) -> np.ndarray:
    """Discounted value over `horizon` units: sum over months i of spend x purchases in month i / (1+d)^i.

    The same sum as lifetimes' customer_lifetime_value (GammaGamma.clv), with the last month cut at
    the horizon when it is not a whole number of months.
    """
    x, m = spend_rows(summary)
    spend = spend_model.conditional_expected_spend(x, m)
    month = _PER_MONTH[unit]
    months = range(1, math.ceil(horizon / month - 1e-9) + 1)
    return spend * purchases.discounted_purchases([min(i * month, horizon) for i in months], [(1 + discount_rate) ** -i for i in months],
                                                  summary["frequency"], summary["recency"], summary["T"])


@dataclass
class Fit:
    """Models fitted on the workspace's orders (and the holdout check when there is one)."""

    model: str
    unit: str
    purchases: CLVModel
    spend: GammaGamma | None
    summary: pd.DataFrame
    holdout: dict[str, Any] | None = None
    use_margin: bool = False


def fit_workspace(ws: Any, *, model: str = "bgnbd", spend: bool = True, calibration_end: date | datetime | str | None = None,
                  observation_end: date | datetime | str | None = None, unit: str = "W", use_margin: bool = False) -> Fit:
    """Fit the purchase model (and Gamma-Gamma) on valid orders, up to `calibration_end` if given
    (or, without a holdout, up to `observation_end`: the model as it stood on that day)."""
    summary = fit_rows(rfm_summary(ws, calibration_end=calibration_end, observation_end=observation_end, unit=unit,  # type: ignore[arg-type]
                                   use_margin=use_margin))
    purchases = purchase_model(model).fit(summary)
    spend_model = fit_spend(summary) if spend else None
    holdout = holdout_check(purchases, summary) if calibration_end is not None else None
    return Fit(model, unit, purchases, spend_model, summary, holdout, use_margin)


@dataclass
class Prediction:
    """Per-customer predictions (one row per profile) and the models behind them."""

    frame: pd.DataFrame
    fit: Fit
    horizon: str
    horizon_units: float
    discount_rate: float
    totals: dict[str, float] = field(default_factory=dict)


def predict_workspace(ws: Any, *, model: str = "bgnbd", horizon: str = "52w", discount_rate: float = 0.01,
                      unit: str = "W", use_margin: bool = False, as_of: date | datetime | str | None = None) -> Prediction:
    """Fit on all valid orders and predict per customer: purchases over the horizon, P(alive),
    expected spend (or margin) per purchase and discounted CLV. Nothing is written."""
    if not (math.isfinite(discount_rate) and discount_rate > -1):
        raise UsageError(f"--discount-rate {discount_rate!r} is not a rate above -1 per month.")
    t = parse_horizon(horizon, unit)
    fitted = fit_workspace(ws, model=model, unit=unit, use_margin=use_margin, observation_end=as_of)
    summary, purchases, spend_model = fitted.summary, fitted.purchases, fitted.spend
    assert spend_model is not None
    args = (summary["frequency"], summary["recency"], summary["T"])
    x, m = spend_rows(summary)
    frame = pd.DataFrame({
        "profile_id": summary["profile_id"].astype(str).to_numpy(),
        "model": model,
        "horizon": horizon.strip().lower(),
        "expected_purchases": purchases.expected_purchases(t, *args),  # type: ignore[attr-defined]
        "p_alive": purchases.probability_alive(*args),  # type: ignore[attr-defined]
        "expected_spend": spend_model.conditional_expected_spend(x, m),
        "clv": horizon_clv(spend_model, purchases, summary, t, discount_rate=discount_rate, unit=unit),
        "basis": "margin" if use_margin else "revenue",
        "predicted_at": pd.Timestamp(datetime.now(UTC).replace(tzinfo=None)).floor("us"),
    })
    totals = {"customers": float(len(frame)), "expected_purchases": float(frame["expected_purchases"].sum()),
              "clv": float(frame["clv"].sum()), "mean_clv": float(frame["clv"].mean()) if len(frame) else 0.0,
              "mean_p_alive": float(frame["p_alive"].mean()) if len(frame) else 0.0}
    return Prediction(frame, fitted, horizon, t, discount_rate, totals)


def save_predictions(ws: Any, prediction: Prediction) -> None:
    """Replace the workspace table `clv_predictions` with these predictions, in one step."""
    with ws.transaction():
        ws.backend.replace_table(PREDICTIONS_TABLE, prediction.frame)


def clv_to_cac_by_channel(ws: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """Mean predicted CLV, CAC and their ratio per acquisition channel.

    Customers take their profile's acquisition channel (latest CRM value; "(unknown)" without
    one). CAC per channel is the acquisition costs booked on that channel (`costs`, kind
    acquisition) divided by the channel's predicted customers; without such costs, the mean of
    the CRM's per-customer `acquisition_cost`. A channel with neither has no CAC and no ratio.
    """
    customers = ws.table("customers")
    crm = customers.filter(customers.profile_id.notnull()).group_by("profile_id").aggregate(
        acquisition_channel=customers.acquisition_channel.argmax(order_key(customers.loaded_at, customers.record_key),
                                                                 where=customers.acquisition_channel.notnull()),
        acquisition_cost=customers.acquisition_cost.max(),
    )
    attrs = crm.to_pandas()
    merged = frame[["profile_id", "clv"]].merge(attrs, on="profile_id", how="left")
    merged["acquisition_channel"] = merged["acquisition_channel"].fillna("(unknown)")
    costs = ws.table("costs")
    booked = costs.filter((costs.kind == "acquisition") & costs.channel.notnull())
    booked = booked.group_by(channel=booked.channel).aggregate(spend=booked.amount.sum()).to_pandas()
    spend = dict(zip(booked["channel"], booked["spend"], strict=True))
    rows = []
    for channel, g in merged.groupby("acquisition_channel", sort=True):
        n = len(g)
        if channel in spend:
            cac, basis = float(spend[channel]) / n, "costs"
        elif g["acquisition_cost"].notna().any():
            cac, basis = float(g["acquisition_cost"].mean()), "crm"
        else:
            cac, basis = math.nan, None
        mean_clv = float(g["clv"].mean())
        rows.append({"acquisition_channel": channel, "customers": n, "mean_clv": mean_clv, "cac": cac,
                     "clv_to_cac": mean_clv / cac if cac and math.isfinite(cac) and cac > 0 else math.nan, "cac_basis": basis})
    return pd.DataFrame(rows, columns=["acquisition_channel", "customers", "mean_clv", "cac", "clv_to_cac", "cac_basis"])


__all__ = [
    "BUCKETS", "MODELS", "PREDICTIONS_TABLE", "Fit", "Prediction", "clv_to_cac_by_channel", "fit_rows", "fit_spend",
    "fit_workspace", "holdout_check", "horizon_clv", "parse_horizon", "predict_workspace", "purchase_model",
    "save_predictions", "spend_rows",
]
