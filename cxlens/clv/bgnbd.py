"""BG/NBD: how many purchases a customer will make, and whether they are still a customer.

Fader, Hardie and Lee (2005), "'Counting Your Customers' the Easy Way: An Alternative to the
Pareto/NBD Model", Marketing Science 24(2):275-284. Assumptions: while active, a customer buys
as a Poisson process with rate lambda, and lambda ~ Gamma(r, alpha) across customers; after each
purchase the customer drops out with probability p, and p ~ Beta(a, b) across customers; rates
and dropout probabilities are independent. Data per customer: ``frequency`` x (repeat
purchases), ``recency`` t_x (age at the last repeat purchase, 0 if none) and ``T`` (age at the
end of the calibration period), all in one time unit.

The likelihood (eq. 6) is evaluated in log space with ``gammaln``/``betaln`` and a log-sum-exp
of its two terms. The conditional expectation (eq. 10) and E[X(t)] (eq. 9) use 2F1 after Euler's
transformation 2F1(A, B; C; z) = (1 - z)^(C-A-B) 2F1(C-A, C-B; C; z), which turns
``((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; z)`` into
``(1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z)``: its first two parameters no longer grow with x, so
the series stays in scipy's accurate range for heavy buyers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import betaln, digamma, expit, gammaln, hyp2f1

from cxlens.clv.base import CLVModel, distinct_pairs, frequency_index, validate_summary

# Eq. 10 divides by (a - 1); within this distance of a = 1 it is the mean of a = 1 -/+ this.
_NEAR_ONE = 1e-6


class BGNBD(CLVModel):
    """Beta-geometric/NBD model fitted by maximum likelihood; ``params_`` has r, alpha, a, b."""

    param_names: ClassVar[tuple[str, ...]] = ("r", "alpha", "a", "b")
    columns: ClassVar[tuple[str, ...]] = ("frequency", "recency", "T")

    def _starting_points(self, data: dict[str, np.ndarray]) -> list[np.ndarray]:
        rate = max(data["frequency"].sum() / data["T"].sum(), 1e-6)
        return [np.array([1.0, 1.0 / rate, 1.0, 2.0]), np.array([0.5, 0.5 / rate, 0.5, 1.0]), np.ones(4)]

    def _precompute(self, data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Split non-repeaters from repeaters and keep per-frequency weights.

        A customer without repeat purchases contributes only ``r log(alpha / (alpha + T))``; for
        the others the terms in x alone are summed per distinct frequency with its total weight,
        so an evaluation costs two logarithms, a log-sum-exp and a few products per row.
        """
        x = data["frequency"]
        w = data["weight"] if "weight" in data else np.ones_like(x)
        zero = x == 0
        rep = {k: v[~zero] for k, v in data.items() if k != "weight"}
        rep = frequency_index(rep)
        wr = w[~zero]
        return {**data, "_T0": data["T"][zero], "_w0": w[zero], "_x": rep["frequency"], "_tx": rep["recency"], "_T": rep["T"],
                "_w": wr, "_ux": rep["_ux"], "_inv": rep["_inv"],
                "_count": np.bincount(rep["_inv"], weights=wr, minlength=rep["_ux"].size)}

    def _log_likelihood(self, params: np.ndarray, data: dict[str, np.ndarray]) -> tuple[float, np.ndarray]:
        r, alpha, a, b = params
        if "_count" not in data:
            data = self._precompute(data)
        log_alpha = np.log(alpha)
        # Non-repeaters: (alpha / (alpha + T))^r.
        w0, T0 = data["_w0"], data["_T0"]
        log_ratio0 = log_alpha - np.log(alpha + T0)
        ll = r * float(np.dot(w0, log_ratio0))
        grad = np.array([float(np.dot(w0, log_ratio0)), r * float(np.dot(w0, 1 / alpha - 1 / (alpha + T0))), 0.0, 0.0])
        ux, inv, count, w = data["_ux"], data["_inv"], data["_count"], data["_w"]
        if ux.size == 0:
            return ll, grad
        x, tx, T = data["_x"], data["_tx"], data["_T"]
        total = float(count.sum())
        # Repeaters (eq. 6): common terms per distinct frequency, then log(A1 + A2) per row.
        common = float(np.dot(count, gammaln(r + ux) - gammaln(r) - betaln(a, b))) + r * log_alpha * total
        log_at, log_atx = np.log(alpha + T), np.log(alpha + tx)
        rx = r + x
        term1 = betaln(a, b + ux)[inv] - rx * log_at
        term2 = betaln(a + 1, b + ux - 1)[inv] - rx * log_atx
        # log(e^term1 + e^term2) and the second term's share, from one exp (np.logaddexp is 10x slower)
        gap = term2 - term1
        log_sum = np.maximum(term1, term2) + np.log1p(np.exp(-np.abs(gap)))
        w2 = expit(gap)  # share of the "dropped out after the last purchase" term
        ww2 = w * w2
        ll += common + float(np.dot(w, log_sum))
        sum_w2 = float(ww2.sum())
        per_x_w2 = np.bincount(inv, weights=ww2, minlength=ux.size)
        d_abx = digamma(a + b) - digamma(a + b + ux)
        grad[0] += (float(np.dot(count, digamma(r + ux) - digamma(r))) + total * log_alpha
                    - float(np.dot(w, log_at)) + float(np.dot(ww2, log_at - log_atx)))
        inv_at, inv_atx = np.exp(-log_at), np.exp(-log_atx)
        grad[1] += total * r / alpha - float(np.dot(w * rx, inv_at + w2 * (inv_atx - inv_at)))
        grad[2] += float(np.dot(count, d_abx)) + sum_w2 * (digamma(a + 1) - digamma(a))
        grad[3] += (-total * digamma(b) + float(np.dot(count, d_abx))
                    + float(np.dot(count - per_x_w2, digamma(b + ux))) + float(np.dot(per_x_w2, digamma(b + ux - 1))))
        return ll, grad

    def _flat_meaning(self, flat: list[int]) -> str:
        if {self.param_names[i] for i in flat} <= {"a", "b"} and self.params_["a"] / (self.params_["a"] + self.params_["b"]) < 1e-3:
            return ("no dropout is detectable (a/(a+b), the chance of leaving after a purchase, is "
                    f"{self.params_['a'] / (self.params_['a'] + self.params_['b']):.1e}): BG/NBD behaves as the NBD "
                    "model without dropout, so P(alive) is close to 1 for everyone. Refit on a longer history to see churn.")
        return super()._flat_meaning(flat)

    def probability_alive(self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> np.ndarray:
        """P(still active at T | x, t_x, T) (FHL 2005 eq. 11 / Hardie's note); 1 for x = 0."""
        r, alpha, a, b = self._param_array()
        d = validate_summary({"frequency": frequency, "recency": recency, "T": T}, self.columns)
        x, tx, T_ = d["frequency"], d["recency"], d["T"]
        log_odds_dead = np.log(a) - np.log(np.maximum(b + x - 1, 1e-300)) + (r + x) * (np.log(alpha + T_) - np.log(alpha + tx))
        return np.where(x > 0, expit(-log_odds_dead), 1.0)

    def expected_purchases(self, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> np.ndarray:
        """E[purchases in (T, T + t] | x, t_x, T] (FHL 2005 eq. 10), per customer."""
        if np.ndim(t) == 0:
            return self.discounted_purchases([float(t)], [1.0], frequency, recency, T)  # type: ignore[arg-type]
        r, alpha, a, b = self._param_array()
        d = validate_summary({"t": t, "frequency": frequency, "recency": recency, "T": T}, ("t", *self.columns))
        x = d["frequency"]
        alive = self.probability_alive(x, d["recency"], d["T"])
        return _alive_purchases(d["t"], r + x, alpha + d["T"], a, b + x) * alive

    def discounted_purchases(self, times: Sequence[float], discounts: Sequence[float], frequency: ArrayLike,
                             recency: ArrayLike, T: ArrayLike) -> np.ndarray:
        """Eq. 10 summed over horizons: P(alive) once per customer, the 2F1 term once per distinct (x, T)."""
        r, alpha, a, b = self._param_array()
        check = validate_summary({"t": np.asarray(times, dtype=float)}, ("t",))["t"]
        d = validate_summary({"frequency": frequency, "recency": recency, "T": T}, self.columns)
        alive = self.probability_alive(d["frequency"], d["recency"], d["T"])
        ux, uT, inv = distinct_pairs(d["frequency"], d["T"])
        total = np.zeros(ux.size)
        previous = np.zeros(ux.size)
        for t, discount in zip(check, discounts, strict=True):
            cumulative = _alive_purchases(np.full(ux.size, t), r + ux, alpha + uT, a, b + ux)
            total += discount * (cumulative - previous)
            previous = cumulative
        return total[inv] * alive

    def expected_purchases_new(self, t: ArrayLike) -> np.ndarray:
        """E[X(t)], purchases of a randomly chosen new customer in (0, t] (FHL 2005 eq. 9)."""
        r, alpha, a, b = self._param_array()
        t_ = validate_summary({"t": t}, ("t",))["t"]
        return _alive_purchases(t_, r, alpha, a, b)


def _alive_purchases(t: np.ndarray, r: ArrayLike, alpha: ArrayLike, a: float, b: ArrayLike) -> np.ndarray:
    """(a+b-1)/(a-1) [1 - (alpha/(alpha+t))^r 2F1(r, b; a+b-1; t/(alpha+t))], Euler-transformed."""
    if abs(a - 1.0) < _NEAR_ONE:
        return (_alive_purchases(t, r, alpha, 1.0 - _NEAR_ONE, b) + _alive_purchases(t, r, alpha, 1.0 + _NEAR_ONE, b)) / 2
    t, r, alpha, b = np.broadcast_arrays(np.asarray(t, float), np.asarray(r, float), np.asarray(alpha, float), np.asarray(b, float))
    z = t / (alpha + t)
    log_one_minus_z = np.log(alpha) - np.log(alpha + t)
    with np.errstate(all="ignore"):
        f = hyp2f1(a + b - 1 - r, a - 1, a + b - 1, z)
        # in log space for accuracy near zero; a + b < 1 can make the (transformed) 2F1 negative
        out = (a + b - 1) / (a - 1) * np.where(f > 0, -np.expm1((a - 1) * log_one_minus_z + np.log(np.where(f > 0, f, 1.0))),
                                               1 - np.exp((a - 1) * log_one_minus_z) * f)
    bad = ~np.isfinite(out) & (r > 0) & (b > 0) & (a + b - 1 > 0)
    if bad.any():
        # Very large a and b (a dropout probability with almost no spread across customers) put
        # scipy's 2F1 out of range; sum the original series in log space instead.
        log_f = _log_hyp2f1_series(r[bad], b[bad], a + b[bad] - 1, z[bad])
        out = out.copy()
        out[bad] = (a + b[bad] - 1) / (a - 1) * -np.expm1(r[bad] * log_one_minus_z[bad] + log_f)
    return out


def _log_hyp2f1_series(A: np.ndarray, B: np.ndarray, C: np.ndarray, z: np.ndarray, *, max_terms: int = 20_000) -> np.ndarray:
    """log 2F1(A, B; C; z) for A, B, C > 0 and 0 <= z < 1 by its power series, every term positive,
    accumulated in log space (no overflow for large A, B, C); stops at 1e-17 relative."""
    log_sum = np.zeros_like(z)
    log_term = np.zeros_like(z)
    log_z = np.log(np.where(z > 0, z, 1.0))
    active = z > 0
    for k in range(1, max_terms + 1):
        if not active.any():
            break
        idx = np.flatnonzero(active)
        log_term[idx] += (np.log(A[idx] + k - 1) + np.log(B[idx] + k - 1) - np.log(C[idx] + k - 1) - np.log(k) + log_z[idx])
        log_sum[idx] = np.logaddexp(log_sum[idx], log_term[idx])
        ratio = (A[idx] + k) * (B[idx] + k) / ((C[idx] + k) * (k + 1)) * z[idx]
        active[idx] = ~((log_term[idx] - log_sum[idx] < -40) & (ratio < 1))
    return log_sum
