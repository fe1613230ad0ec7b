"""Gamma-Gamma: how much a customer spends per purchase, and their lifetime value.

Fader, Hardie and Lee (2005), "RFM and CLV: Using Iso-Value Curves for Customer Base Analysis",
Journal of Marketing Research 42(4):415-430, section "Spend per transaction", after Colombo and
Jiang (1999). Assumptions: a customer's spend per purchase is Gamma(p, nu), nu ~ Gamma(q, gamma)
across customers (``params_`` p, q, v with v = gamma); spend is independent of the purchase
process (check that frequency and mean spend are barely correlated before trusting CLV). Fitted
on the repeat buyers only: ``frequency`` x > 0 and ``monetary_value`` zbar, the mean of the x
repeat purchases; rows with x = 0 carry no spend and are ignored.

The density of zbar given x is
``Gamma(px+q) / (Gamma(px) Gamma(q)) * v^q x^(px) zbar^(px-1) / (v + x zbar)^(px+q)``, and the
conditional expected spend ``E[M | x, zbar] = p (v + x zbar) / (p x + q - 1)`` is a weighted mean of the
population mean ``p v / (q - 1)`` and the customer's own zbar (needs q > 1).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import digamma, gammaln

from cxlens.clv.base import CLVModel, frequency_index, per_frequency, validate_summary
from cxlens.errors import ModelError

Frequency = Literal["H", "D", "W", "M"]
# Periods of the transaction model's time unit in one month, as lifetimes' customer_lifetime_value.
_PER_MONTH: dict[str, float] = {"H": 30 * 24, "D": 30, "W": 4.345, "M": 1.0}


class GammaGamma(CLVModel):
    """Gamma-Gamma spend model fitted by maximum likelihood; ``params_`` has p, q, v."""

    param_names: ClassVar[tuple[str, ...]] = ("p", "q", "v")
    columns: ClassVar[tuple[str, ...]] = ("frequency", "monetary_value")

    def _prepare(self, data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        repeat = data["frequency"] > 0
        if not repeat.any():
            raise ModelError("No customer has a repeat purchase; Gamma-Gamma is fitted on repeat buyers' mean spend.")
        return {k: v[repeat] for k, v in data.items()}

    def _starting_points(self, data: dict[str, np.ndarray]) -> list[np.ndarray]:
        mean = float(np.mean(data["monetary_value"]))
        return [np.array([1.0, 2.0, mean]), np.array([5.0, 3.0, 2.0 * mean / 5.0]), np.ones(3)]

    def _precompute(self, data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        data = frequency_index(data)
        log_xm = np.log(data["frequency"] * data["monetary_value"])
        return {**data, "_log_xm": log_xm, "_log_m": np.log(data["monetary_value"]), "_xm": data["frequency"] * data["monetary_value"]}

    def _log_likelihood(self, params: np.ndarray, data: dict[str, np.ndarray]) -> tuple[float, np.ndarray]:
        p, q, v = params
        x, m = data["frequency"], data["monetary_value"]
        ux, inv = per_frequency(data)  # gammaln/digamma of p x (+ q): once per distinct frequency
        xm = data["_xm"] if "_xm" in data else x * m
        log_xm = data["_log_xm"] if "_log_xm" in data else np.log(xm)
        log_m = data["_log_m"] if "_log_m" in data else np.log(m)
        px = p * x
        upx = p * ux
        log_total = np.log(xm + v)
        d_pxq = digamma(upx + q)
        ll = ((gammaln(upx + q) - gammaln(upx))[inv] - gammaln(q) + q * np.log(v) + px * log_xm - log_m
              - (px + q) * log_total)
        grad_p = x * ((d_pxq - digamma(upx))[inv] + log_xm - log_total)
        grad_q = d_pxq[inv] - digamma(q) + np.log(v) - log_total
        grad_v = q / v - (px + q) / (xm + v)
        w = data.get("weight", 1.0)  # identical customers counted once with their weight (base.compress)
        return float((w * ll).sum()), np.array([(w * grad_p).sum(), (w * grad_q).sum(), (w * grad_v).sum()])

    def conditional_expected_spend(self, frequency: ArrayLike, monetary_value: ArrayLike) -> np.ndarray:
        """E[spend per purchase | x, zbar]; the population mean p v / (q - 1) for x = 0."""
        p, q, v = self._param_array()
        if q <= 1:
            raise ModelError(f"q = {q:.4g} is at most 1, so the mean spend per purchase is infinite; CLV needs q > 1.")
        d = validate_summary({"frequency": frequency, "monetary_value": monetary_value}, self.columns)
        x, m = d["frequency"], d["monetary_value"]
        return p * (v + x * m) / (p * x + q - 1)

    def clv(
        self,
        transactions_model: CLVModel,
        frequency: ArrayLike,
        recency: ArrayLike,
        T: ArrayLike,
        monetary_value: ArrayLike,
        *,
        time: int = 12,
        discount_rate: float = 0.01,
        freq: Frequency = "W",
        margin: ArrayLike = 1.0,
    ) -> np.ndarray:
        """Discounted value over ``time`` months: sum over months i of margin x spend x new purchases / (1+d)^i.

        ``freq`` is the time unit of the transaction model (``recency``/``T``); ``discount_rate`` is
        per month; ``margin`` (a fraction, or one per customer) turns revenue into profit when costs
        are known. Follows lifetimes' ``customer_lifetime_value``: month i contributes the expected
        purchases between months i - 1 and i, times the conditional expected spend.
        """
        if freq not in _PER_MONTH:
            raise ModelError(f"freq {freq!r} is not a time unit; use one of {', '.join(_PER_MONTH)}.")
        if time < 1 or int(time) != time:
            raise ModelError(f"time = {time!r} is not a whole number of months of at least 1.")
        if not (np.isfinite(discount_rate) and discount_rate > -1):
            raise ModelError(f"discount_rate = {discount_rate!r} is not a rate above -1 per month.")
        predict = getattr(transactions_model, "expected_purchases", None)
        if predict is None:
            raise ModelError(f"{type(transactions_model).__name__} has no expected_purchases; pass a fitted BGNBD or ParetoNBD.")
        spend = self.conditional_expected_spend(frequency, monetary_value) * np.asarray(margin, dtype=float)
        factor = _PER_MONTH[freq]
        value = np.zeros_like(spend)
        previous = np.zeros_like(spend)
        for month in range(1, int(time) + 1):
            cumulative = predict(month * factor, frequency, recency, T)
            value = value + spend * (cumulative - previous) / (1 + discount_rate) ** month
            previous = cumulative
        return value
