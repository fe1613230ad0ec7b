"""Pareto/NBD: purchases and survival with dropout at any time, not only after a purchase.

Schmittlein, Morrison and Colombo (1987), "Counting Your Customers: Who Are They and What Will
They Do Next?", Management Science 33(1):1-24; likelihood and P(alive) as in Fader and Hardie
(2005), "A Note on Deriving the Pareto/NBD Model and Related Expressions". Assumptions: while
active a customer buys as Poisson(lambda), lambda ~ Gamma(r, alpha); the lifetime is
exponential(mu), mu ~ Gamma(s, beta); lambda and mu are independent. Data as for BG/NBD:
``frequency`` x, ``recency`` t_x, ``T``.

The likelihood is ``Gamma(r+x) alpha^r beta^s / Gamma(r) * [(alpha+T)^-(r+x) (beta+T)^-s + s I]``
with ``I = integral_{t_x}^{T} (alpha+tau)^-(r+x) (beta+tau)^-(s+1) dtau`` (the note's
``s/(r+s+x) A0``). I = F(t_x) - F(T) with the tail ``F(tau) = integral_tau^inf (alpha+u)^-k (beta+u)^-j du``,
evaluated in log space as ``(larger+tau)^-(...) (smaller+tau)^-(...) / m * 2F1(1, .; m+1; z)`` with
``m = k + j - 1`` and ``z = |alpha - beta| / (max(alpha, beta) + tau)`` in [0, 1): the note's A0
(cases alpha >= beta and alpha < beta) after Pfaff's transformation, so 2F1 lies in (0, 1] and
never overflows. The gradient is analytic in alpha and beta (I with an exponent raised by one) and
differentiates log I in its exponents by central differences for r and s.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import digamma, expit, gammaln, hyp2f1

from cxlens.clv.base import CLVModel, validate_summary
from cxlens.errors import ModelError

_EXPONENT_STEP = 1e-5


def log_tail(k: ArrayLike, j: ArrayLike, alpha: float, beta: float, tau: ArrayLike) -> np.ndarray:
    """log of integral_tau^inf (alpha+u)^-k (beta+u)^-j du, for k + j > 1 (Fader & Hardie's A0 terms)."""
    k, j, tau = np.broadcast_arrays(np.asarray(k, float), np.asarray(j, float), np.asarray(tau, float))
    m = k + j - 1
    if alpha >= beta:
        z = (alpha - beta) / (alpha + tau)
        base = -(j - 1) * np.log(beta + tau) - k * np.log(alpha + tau)
        f = hyp2f1(1.0, k, m + 1, z)
    else:
        z = (beta - alpha) / (beta + tau)
        base = -(k - 1) * np.log(alpha + tau) - j * np.log(beta + tau)
        f = hyp2f1(1.0, j, m + 1, z)
    return base - np.log(m) + np.log(f)


def log_window(k: ArrayLike, j: ArrayLike, alpha: float, beta: float, lo: ArrayLike, hi: ArrayLike) -> np.ndarray:
    """log of integral_lo^hi (alpha+u)^-k (beta+u)^-j du; -inf when lo == hi."""
    upper = log_tail(k, j, alpha, beta, lo)
    lower = log_tail(k, j, alpha, beta, hi)
    with np.errstate(divide="ignore", invalid="ignore"):
        return upper + np.log1p(-np.exp(np.minimum(lower - upper, 0.0)))


class ParetoNBD(CLVModel):
    """Pareto/NBD model fitted by maximum likelihood; ``params_`` has r, alpha, s, beta."""

    param_names: ClassVar[tuple[str, ...]] = ("r", "alpha", "s", "beta")
    columns: ClassVar[tuple[str, ...]] = ("frequency", "recency", "T")

    def _starting_points(self, data: dict[str, np.ndarray]) -> list[np.ndarray]:
        rate = max(data["frequency"].sum() / data["T"].sum(), 1e-6)
        age = float(np.mean(data["T"]))
        return [np.array([1.0, 1.0 / rate, 1.0, age]), np.array([0.5, 0.5 / rate, 0.5, age / 2]), np.ones(4)]

    @staticmethod
    def _terms(params: np.ndarray, x: np.ndarray, tx: np.ndarray, T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """log of the 'alive at T' and 'died in (t_x, T]' terms, without the common factor."""
        r, alpha, s, beta = params
        alive = -(r + x) * np.log(alpha + T) - s * np.log(beta + T)
        died = np.log(s) + log_window(r + x, s + 1, alpha, beta, tx, T)
        return alive, died

    def _log_likelihood(self, params: np.ndarray, data: dict[str, np.ndarray]) -> tuple[float, np.ndarray]:
        r, alpha, s, beta = params
        x, tx, T = data["frequency"], data["recency"], data["T"]
        k, j = r + x, s + 1
        alive, died = self._terms(params, x, tx, T)
        log_sum = np.logaddexp(alive, died)
        w_died = np.exp(died - log_sum)
        w_alive = 1.0 - w_died
        has = w_died > 0
        log_i = np.where(has, died - np.log(s), 0.0)

        def ratio(dk: float, dj: float) -> np.ndarray:
            return np.where(has, np.exp(log_window(k + dk, j + dj, alpha, beta, tx, T) - log_i), 0.0)

        h = _EXPONENT_STEP
        d_k = np.where(has, (np.log(ratio(h, 0) + 1e-300) - np.log(ratio(-h, 0) + 1e-300)) / (2 * h), 0.0)
        d_j = np.where(has, (np.log(ratio(0, h) + 1e-300) - np.log(ratio(0, -h) + 1e-300)) / (2 * h), 0.0)
        common = gammaln(k) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
        grad_r = digamma(k) - digamma(r) + np.log(alpha) - w_alive * np.log(alpha + T) + w_died * d_k
        grad_alpha = r / alpha - w_alive * k / (alpha + T) - w_died * k * ratio(1, 0)
        grad_s = np.log(beta) - w_alive * np.log(beta + T) + w_died * (1 / s + d_j)
        grad_beta = s / beta - w_alive * s / (beta + T) - w_died * j * ratio(0, 1)
        w = data.get("weight", 1.0)  # identical customers counted once with their weight (base.compress)
        ll = float(np.sum(w * (common + log_sum)))
        return ll, np.array([(w * grad_r).sum(), (w * grad_alpha).sum(), (w * grad_s).sum(), (w * grad_beta).sum()])

    def _flat_meaning(self, flat: list[int]) -> str:
        if {self.param_names[i] for i in flat} <= {"s", "beta"} and self.params_["s"] / self.params_["beta"] < 1e-4:
            return ("no dropout is detectable (s/beta, the mean dropout rate, is "
                    f"{self.params_['s'] / self.params_['beta']:.1e} per time unit): Pareto/NBD behaves as the NBD "
                    "model without dropout, so P(alive) is close to 1 for everyone. Refit on a longer history to see churn.")
        return super()._flat_meaning(flat)

    def probability_alive(self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> np.ndarray:
        """P(still active at T | x, t_x, T) (Fader & Hardie 2005 note, eq. 19)."""
        params = self._param_array()
        d = validate_summary({"frequency": frequency, "recency": recency, "T": T}, self.columns)
        with np.errstate(all="ignore"):
            alive, died = self._terms(params, d["frequency"], d["recency"], d["T"])
        p = expit(alive - died)
        bad = ~np.isfinite(p)
        if bad.any():
            i = int(np.argmax(bad))
            raise ModelError(f"Row {i}: the Pareto/NBD likelihood cannot be evaluated in floating point for this customer.")
        return p

    def expected_purchases(self, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> np.ndarray:
        """E[purchases in (T, T + t] | x, t_x, T] (Schmittlein et al. 1987; Fader & Hardie note eq. 22)."""
        r, alpha, s, beta = self._param_array()
        d = validate_summary({"t": t, "frequency": frequency, "recency": recency, "T": T}, ("t", *self.columns))
        x, T_, t_ = d["frequency"], d["T"], d["t"]
        log_growth = np.log1p(t_ / (beta + T_))
        if abs(s - 1) < 1e-9:
            survival = log_growth
        else:
            survival = -np.expm1(-(s - 1) * log_growth) / (s - 1)
        alive = self.probability_alive(x, d["recency"], T_)
        return (r + x) * (beta + T_) / (alpha + T_) * survival * alive
