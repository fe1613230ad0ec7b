"""Per-customer RFM summaries (frequency, recency, T, monetary value) computed in the engine.

The CLV models need one row per customer; the workspace holds orders. This module reduces valid
orders (status completed or missing, with a resolved profile_id) to that row with Ibis, so only
the per-customer result reaches Python. Conventions follow lifetimes'
``summary_data_from_transaction_data`` and ``calibration_and_holdout_data``:

- The purchase grain is the UTC day: several orders of one customer on one day are one purchase
  (their amounts add up). Dates are whole days, so the calibration end day is included.
- ``frequency`` is the number of repeat purchase days (purchase days after the first);
  ``recency`` the time from the first to the last purchase day; ``T`` the time from the first
  purchase day to the end of calibration; all in ``unit`` (W weeks, D days, M 30-day months).
- ``monetary_value`` is the mean amount of the repeat purchase days (0 when frequency is 0);
  the amount is revenue, or margin = revenue - cost (cost missing counts as 0) with ``use_margin``.
- With ``calibration_end``: purchases after it up to ``observation_end`` (default: the last order
  day) give ``frequency_holdout`` (purchase days), ``monetary_value_holdout`` (their mean amount,
  0 when none) and ``duration_holdout`` (observation_end - calibration_end). Customers whose first
  purchase is after calibration_end are left out.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

import ibis
import pandas as pd

from cxlens.errors import ModelError

Unit = Literal["W", "D", "M"]
DAYS_PER_UNIT: dict[str, float] = {"W": 7.0, "D": 1.0, "M": 30.0}
_EPOCH = date(1970, 1, 1)


def _day_number(value: date | datetime | str, name: str) -> int:
    """Days since 1970-01-01 of a date (a datetime's day; text in ISO 8601)."""
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value.strip()[:10])
        except ValueError:
            raise ModelError(f"{name} {value!r} is not a date; write it as YYYY-MM-DD.") from None
    if isinstance(value, datetime):
        value = value.date()
    return (value - _EPOCH).days


def _iso(day: int) -> str:
    return date.fromordinal(_EPOCH.toordinal() + day).isoformat()


def rfm_summary(
    ws: object,
    *,
    calibration_end: date | datetime | str | None = None,
    observation_end: date | datetime | str | None = None,
    unit: Unit = "W",
    use_margin: bool = False,
) -> pd.DataFrame:
    """One row per profile: profile_id, frequency, recency, T, monetary_value (+ holdout columns).

    Without ``calibration_end`` every order up to ``observation_end`` (default: the last order day)
    is calibration data. Raises ModelError when there are no valid orders with a profile, or when a
    date lies outside the orders.
    """
    from cxlens.semantic.sources import Context, valid_orders

    if unit not in DAYS_PER_UNIT:
        raise ModelError(f"unit {unit!r} is not a time unit; use W (weeks), D (days) or M (30-day months).")
    per_unit = DAYS_PER_UNIT[unit]
    o = valid_orders(Context(ws.table))  # type: ignore[attr-defined]
    o = o.filter(o.profile_id.notnull())
    amount = o.margin if use_margin else o.revenue
    o = o.mutate(day=(o.ordered_at.epoch_seconds() // 86_400).cast("int64"), amount=amount.fill_null(0).cast("float64"))
    days = o.group_by([o.profile_id, o.day]).aggregate(amount=o.amount.sum())

    span = days.aggregate(lo=days.day.min(), hi=days.day.max()).execute()
    if span.empty or pd.isna(span.lo.iloc[0]):
        raise ModelError("The workspace has no valid orders with a profile; ingest orders and run `cxlens identity resolve` first.")
    lo, hi = int(span.lo.iloc[0]), int(span.hi.iloc[0])
    obs = hi if observation_end is None else _day_number(observation_end, "observation_end")
    if obs < lo:
        raise ModelError(f"observation_end {_iso(obs)} is before the first order ({_iso(lo)}); choose a date from {_iso(lo)} on.")
    cal = obs if calibration_end is None else _day_number(calibration_end, "calibration_end")
    if calibration_end is not None and not lo <= cal < obs:
        raise ModelError(
            f"The calibration end {_iso(cal)} is outside the orders' days ({_iso(lo)} .. {_iso(obs)}); "
            f"choose a date on or after {_iso(lo)} and before {_iso(obs)}."
        )

    days = days.filter(days.day <= obs)
    first = days.group_by(days.profile_id).aggregate(first_day=days.day.min())
    first = first.filter(first.first_day <= cal)
    d = days.join(first, "profile_id")
    in_cal = d.day <= cal
    repeat = in_cal & (d.day > d.first_day)
    holdout = d.day > cal
    per = d.group_by(d.profile_id).aggregate(
        first_day=d.first_day.max(),
        last_day=ibis.ifelse(in_cal, d.day, None).max(),
        frequency=repeat.cast("int64").sum(),
        repeat_amount=ibis.ifelse(repeat, d.amount, 0.0).sum(),
        frequency_holdout=holdout.cast("int64").sum(),
        holdout_amount=ibis.ifelse(holdout, d.amount, 0.0).sum(),
    )
    out = per.select(
        profile_id=per.profile_id,
        frequency=per.frequency,
        recency=(per.last_day - per.first_day).cast("float64") / per_unit,
        T=(ibis.literal(cal) - per.first_day).cast("float64") / per_unit,
        monetary_value=ibis.ifelse(per.frequency > 0, per.repeat_amount / per.frequency.cast("float64"), 0.0),
        frequency_holdout=per.frequency_holdout,
        monetary_value_holdout=ibis.ifelse(per.frequency_holdout > 0,
                                           per.holdout_amount / per.frequency_holdout.cast("float64"), 0.0),
    ).order_by("profile_id")
    frame = out.execute()
    frame["frequency"] = frame["frequency"].astype("int64")
    if calibration_end is None:
        return frame.drop(columns=["frequency_holdout", "monetary_value_holdout"]).reset_index(drop=True)
    frame["frequency_holdout"] = frame["frequency_holdout"].astype("int64")
    frame["duration_holdout"] = (obs - cal) / per_unit
    return frame.reset_index(drop=True)
