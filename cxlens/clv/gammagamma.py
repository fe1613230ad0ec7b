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

from cxlens.clv.base import CLVModel, frequency_index, validate_summary
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
        """Everything but log(v + x zbar) is fixed during the fit: keep its weighted sums.

        The log-likelihood is linear in p and q given the per-row ``log(v + x zbar)``, so an
        evaluation costs one logarithm and one reciprocal per row plus four dot products; the
        gammaln/digamma terms are per distinct frequency, weighted by how many rows have it.
        """
        data = frequency_index(data)
        x, m = data["frequency"], data["monetary_value"]
        w = data["weight"] if "weight" in data else np.ones_like(x)
        xm = x * m
        log_xm = np.log(xm)
        return {**data, "_xm": xm, "_w": w, "_wx": w * x,
                "_count": np.bincount(data["_inv"], weights=w, minlength=data["_ux"].size),
                "_sums": np.array([w.sum(), float(np.dot(w * x, log_xm)), float(np.dot(w, np.log(m)))])}

    def _log_likelihood(self, params: np.ndarray, data: dict[str, np.ndarray]) -> tuple[float, np.ndarray]:
        p, q, v = params
        if "_sums" not in data:
            data = self._precompute(data)
        ux, count, (total, sum_x_log_xm, sum_log_m) = data["_ux"], data["_count"], data["_sums"]
        w, wx = data["_w"], data["_wx"]
        log_total = np.log(data["_xm"] + v)
        inverse = 1.0 / (data["_xm"] + v)
        sum_log_total, sum_x_log_total = float(np.dot(w, log_total)), float(np.dot(wx, log_total))
        sum_inverse, sum_x_inverse = float(np.dot(w, inverse)), float(np.dot(wx, inverse))
        upx = p * ux  # gammaln/digamma of p x (+ q): once per distinct frequency, weighted by its count
        d_pxq = digamma(upx + q)
        ll = (float(np.dot(count, gammaln(upx + q) - gammaln(upx))) + total * (q * np.log(v) - gammaln(q))
              + p * sum_x_log_xm - sum_log_m - p * sum_x_log_total - q * sum_log_total)
        grad_p = float(np.dot(count * ux, d_pxq - digamma(upx))) + sum_x_log_xm - sum_x_log_total
        grad_q = float(np.dot(count, d_pxq)) + total * (np.log(v) - digamma(q)) - sum_log_total
        grad_v = total * q / v - p * sum_x_inverse - q * sum_inverse
        return ll, np.array([grad_p, grad_q, grad_v])

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
        if not hasattr(transactions_model, "expected_purchases"):
            raise ModelError(f"{type(transactions_model).__name__} has no expected_purchases; pass a fitted BGNBD or ParetoNBD.")
        spend = self.conditional_expected_spend(frequency, monetary_value) * np.asarray(margin, dtype=float)
        months = range(1, int(time) + 1)
        factor = _PER_MONTH[freq]
        purchases = transactions_model.discounted_purchases([m * factor for m in months], [(1 + discount_rate) ** -m for m in months],
                                                            frequency, recency, T)
        return spend * purchases
