"""Shared machinery of the CLV models: summary validation, the fit loop and standard errors.

Every model maximizes its log-likelihood over the logarithms of its (positive) parameters with
L-BFGS-B and the model's analytic gradient, from a few starting points. Standard errors come from
the inverse Hessian of the negative log-likelihood on the log scale (central differences of the
analytic gradient), carried to the natural parameters by the delta method
(``cov(theta) = diag(theta) cov(log theta) diag(theta)``). An optimum on a bound of the log scale
or a Hessian that is not positive definite means the data cannot identify the model: a
:class:`~cxlens.errors.ModelError` says so instead of returning meaningless numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy.optimize import minimize

from cxlens.errors import ModelError
from cxlens.stopping import checkpoint

Summary = pd.DataFrame | Mapping[str, Any]

# Parameters are searched within exp(-LOG_BOUND) .. exp(LOG_BOUND); an optimum this close to a
# bound is a parameter running off to 0 or infinity.
LOG_BOUND = 18.0
_AT_BOUND = 1e-3
# A log-scale Hessian this ill-conditioned has a direction the likelihood does not see.
_MAX_CONDITION = 1e12


def validate_summary(summary: Summary, columns: Sequence[str]) -> dict[str, np.ndarray]:
    """The named columns as float arrays of one length, checked row by row (first problem raised).

    Rules: every value finite and non-negative; ``frequency`` a whole number; ``T`` positive;
    ``recency`` at most ``T``; ``monetary_value`` positive where ``frequency`` is positive.
    """
    labels: Sequence[Any] | None = summary.index if isinstance(summary, pd.DataFrame) else None
    available = list(summary.columns) if isinstance(summary, pd.DataFrame) else list(summary.keys())
    arrays: dict[str, np.ndarray] = {}
    for name in columns:
        if name not in available:
            raise ModelError(f"The summary has no column {name!r}; expected columns {', '.join(columns)}.")
        try:
            arrays[name] = np.atleast_1d(np.asarray(summary[name], dtype=float))
        except (TypeError, ValueError):
            raise ModelError(f"Column {name!r} of the summary is not numeric.") from None
    try:
        shaped = np.broadcast_arrays(*arrays.values())
    except ValueError:
        sizes = ", ".join(f"{k} {v.size}" for k, v in arrays.items())
        raise ModelError(f"The summary columns have different lengths ({sizes}).") from None
    arrays = {name: np.ascontiguousarray(a).ravel() for name, a in zip(arrays, shaped)}
    n = next(iter(arrays.values())).size
    if n == 0:
        raise ModelError("The summary has no rows; a CLV model needs at least one customer.")

    def fail(name: str, mask: np.ndarray, rule: str) -> None:
        if mask.any():
            i = int(np.argmax(mask))
            row = labels[i] if labels is not None else i
            row = row.item() if isinstance(row, np.generic) else row
            raise ModelError(f"Row {row!r}: {name} = {float(arrays[name][i])!r} {rule}.")

    for name, a in arrays.items():
        fail(name, ~np.isfinite(a), "is not a finite number")
        fail(name, a < 0, "is negative; counts, times and amounts are non-negative")
    if "frequency" in arrays:
        x = arrays["frequency"]
        fail("frequency", x != np.floor(x), "is not a whole number of repeat purchases")
    if "T" in arrays:
        fail("T", arrays["T"] <= 0, "is not positive; T is the customer's age, time since the first purchase")
    if "recency" in arrays and "T" in arrays:
        fail("recency", arrays["recency"] > arrays["T"] * (1 + 1e-12),
             "is greater than T; recency is the age at the last repeat purchase, at most T")
    if "monetary_value" in arrays and "frequency" in arrays:
        fail("monetary_value", (arrays["frequency"] > 0) & (arrays["monetary_value"] <= 0),
             "is not positive for a repeat buyer; it is the mean spend of the repeat purchases")
    return arrays


def frequency_index(data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`data` plus the distinct frequencies (``_ux``) and each row's position among them (``_inv``).

    Repeat-purchase counts take a few dozen values across a million customers, so the special
    functions of r + x, b + x, p x ... are evaluated once per distinct x and gathered per row:
    the likelihood then costs a few logarithms per row instead of a dozen gammaln/digamma calls.
    """
    ux, inv = np.unique(data["frequency"], return_inverse=True)
    return {**data, "_ux": ux, "_inv": inv}


def distinct_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct (a, b) pairs and each row's index into them, by hashing (no sort).

    A million customers recorded by the day hold a few thousand distinct (frequency, T) pairs,
    and BG/NBD's hypergeometric term depends on nothing else.
    """
    codes_a, uniq_a = pd.factorize(a)
    codes_b, uniq_b = pd.factorize(b)
    codes, uniq = pd.factorize(codes_a.astype(np.int64) * len(uniq_b) + codes_b)
    return np.asarray(uniq_a)[uniq // len(uniq_b)], np.asarray(uniq_b)[uniq % len(uniq_b)], codes


def compress(data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Identical customers once each, with a ``weight`` counting them.

    Purchase histories recorded by the day repeat a lot (every one-time buyer of a given day has
    the same frequency, recency and T), so a million customers are often a few hundred thousand
    distinct rows; the likelihood is a weighted sum over those.
    """
    names = list(data)
    if not names or data[names[0]].size == 0:
        return {**data, "weight": np.ones(0)}
    import pandas as pd

    # A hash group-by: np.unique(axis=0) sorts rows as structured values, 15x slower on 1M rows.
    frame = pd.DataFrame({k: data[k].astype(np.float64) for k in names})
    counts = frame.groupby(names, sort=False).size()
    if len(counts) > 0.8 * len(frame):  # continuous values (spend) barely repeat: keep the rows
        return {**{k: frame[k].to_numpy() for k in names}, "weight": np.ones(len(frame))}
    rows = counts.index.to_frame(index=False)
    return {**{k: rows[k].to_numpy(dtype=np.float64) for k in names}, "weight": counts.to_numpy(dtype=np.float64)}


class CLVModel:
    """Base of the CLV models, scikit-learn style: ``fit`` returns self, fitted state ends in ``_``.

    A subclass names its parameters and summary columns and supplies the total log-likelihood
    with its gradient in the natural parameters, and starting points.
    """

    param_names: ClassVar[tuple[str, ...]]
    columns: ClassVar[tuple[str, ...]]

    params_: dict[str, float]
    standard_errors_: dict[str, float]
    covariance_: np.ndarray
    log_likelihood_: float
    n_customers_: int
    warnings_: list[str]

    def fit(self, summary: Summary) -> Self:
        """Maximum-likelihood parameters from a per-customer summary (DataFrame or dict of arrays)."""
        data = self._prepare(validate_summary(summary, self.columns))
        n = next(iter(data.values())).size
        data = self._precompute(compress(data))
        bounds = [(-LOG_BOUND, LOG_BOUND)] * len(self.param_names)

        def objective(log_params: np.ndarray) -> tuple[float, np.ndarray]:
            checkpoint()  # a fit is up to ~0.5 s of Python: a dashboard view stopped for a reader ends here
            params = np.exp(log_params)
            with np.errstate(all="ignore"):
                ll, grad = self._log_likelihood(params, data)
            if not np.isfinite(ll) or not np.all(np.isfinite(grad)):
                return np.inf, np.zeros_like(log_params)
            return -ll / n, -grad * params / n

        best = None
        for start in self._starting_points(data):
            result = minimize(objective, np.log(start), jac=True, method="L-BFGS-B", bounds=bounds,
                              options={"maxiter": 2000, "ftol": 1e-13, "gtol": 1e-9})
            if np.isfinite(result.fun) and (best is None or result.fun < best.fun - 1e-12):
                best = result
            if best is not None and best.success and np.all(np.abs(best.x) < LOG_BOUND - _AT_BOUND):
                break
        if best is None:
            raise ModelError(f"{type(self).__name__} found no starting point with a finite likelihood on this data.")
        at_bound = np.abs(best.x) >= LOG_BOUND - _AT_BOUND
        if at_bound.any():
            name = self.param_names[int(np.argmax(at_bound))]
            raise ModelError(
                f"The data cannot identify {type(self).__name__}: parameter {name} runs off to "
                f"{'infinity' if best.x[at_bound][0] > 0 else 'zero'} (too few customers or too few repeat purchases)."
            )
        cov_log, flat = self._log_scale_covariance(objective, best.x, n)
        params = np.exp(best.x)
        self.params_ = dict(zip(self.param_names, map(float, params)))
        self.covariance_ = cov_log * np.outer(params, params)
        self.standard_errors_ = dict(zip(self.param_names, map(float, np.sqrt(np.diag(self.covariance_)))))
        self.warnings_ = []
        if flat:
            names = ", ".join(self.param_names[i] for i in flat)
            self.warnings_.append(
                f"The likelihood is flat in {names} at its maximum, so their standard errors are undefined: "
                f"{self._flat_meaning(flat)}"
            )
        self.log_likelihood_ = float(-best.fun * n)
        self.n_customers_ = int(n)
        return self

    def _log_scale_covariance(self, objective: Any, log_params: np.ndarray, n: int) -> tuple[np.ndarray, list[int]]:
        """Covariance of the log parameters from the observed information, and the parameters on
        flat directions (NaN variance) when the maximum is a ridge rather than a peak.

        A ridge is a real answer, not a failure: on Online Retail's first nine months BG/NBD's
        dropout parameters drift to a -> 0, b -> inf (nobody seems to leave yet) while r and alpha
        are sharp, and predictions from that limit are sound. A saddle or a flat likelihood in
        every direction still raises.
        """
        k = log_params.size
        hessian = np.empty((k, k))
        step = 1e-5
        for j in range(k):
            e = np.zeros(k)
            e[j] = step
            hessian[:, j] = (objective(log_params + e)[1] - objective(log_params - e)[1]) * n / (2 * step)
        hessian = (hessian + hessian.T) / 2
        unidentified = ModelError(
            f"The data cannot identify {type(self).__name__}: the likelihood is flat in some direction "
            "at its maximum (too few customers or too little variation in their purchases)."
        )
        if not np.all(np.isfinite(hessian)):
            raise unidentified
        eigen, vectors = np.linalg.eigh(hessian)
        top = eigen.max()
        if top <= 0 or eigen.min() < -1e-6 * top:
            raise unidentified
        sharp = eigen > top / _MAX_CONDITION
        if sharp.all():
            return np.linalg.inv(hessian), []
        loads = np.abs(vectors[:, ~sharp]).max(axis=1) > 0.05
        flat = [i for i in range(k) if loads[i]]
        if len(flat) >= k - 1:
            raise unidentified
        cov = (vectors[:, sharp] / eigen[sharp]) @ vectors[:, sharp].T
        cov[flat, :] = np.nan
        cov[:, flat] = np.nan
        return cov, flat

    def discounted_purchases(self, times: Sequence[float], discounts: Sequence[float], frequency: ArrayLike,
                             recency: ArrayLike, T: ArrayLike) -> np.ndarray:
        """Per customer, sum over i of discounts[i] x the expected purchases between times[i-1] and times[i] (from 0).

        The purchase part of a discounted CLV (GammaGamma.clv): one call instead of one
        ``expected_purchases`` per month, so a model can share the work across the months.
        """
        total: np.ndarray | float = 0.0
        previous: np.ndarray | float = 0.0
        for t, discount in zip(times, discounts, strict=True):
            cumulative = self.expected_purchases(t, frequency, recency, T)  # type: ignore[attr-defined]
            total = total + discount * (cumulative - previous)
            previous = cumulative
        return np.asarray(total, dtype=float)

    def _flat_meaning(self, flat: list[int]) -> str:
        """What a ridge in these parameters means for this model (subclasses say more)."""
        return "the data do not pin them down; predictions use the maximum found."

    def summary_frame(self) -> pd.DataFrame:
        """Fitted parameters with standard errors and 95% Wald intervals, one row per parameter."""
        self._check_fitted()
        coef = pd.Series(self.params_)
        se = pd.Series(self.standard_errors_)
        return pd.DataFrame({"coef": coef, "se": se, "lower 95%": coef - 1.959964 * se, "upper 95%": coef + 1.959964 * se})

    def _check_fitted(self) -> None:
        if not hasattr(self, "params_"):
            raise ModelError(f"{type(self).__name__} is not fitted; call fit(summary) first.")

    def _param_array(self) -> np.ndarray:
        self._check_fitted()
        return np.array([self.params_[p] for p in self.param_names])

    def _prepare(self, data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return data

    def _precompute(self, data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Add what every likelihood evaluation reuses (after identical customers are merged)."""
        return data

    def _starting_points(self, data: dict[str, np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    def _log_likelihood(self, params: np.ndarray, data: dict[str, np.ndarray]) -> tuple[float, np.ndarray]:
        """Total log-likelihood and its gradient in the natural parameters."""
        raise NotImplementedError

    def __repr__(self) -> str:
        if not hasattr(self, "params_"):
            return f"{type(self).__name__}()"
        return f"{type(self).__name__}({', '.join(f'{k}={v:.4g}' for k, v in self.params_.items())})"
