"""Least squares with heteroskedasticity-robust (HC1) standard errors, in numpy.

Friction's cost is estimated by regressing an outcome (a CES score, churned 0/1) on friction
counts and confounders. Outcomes like churn are binary and scores are bounded, so the error
variance is not constant; White's sandwich estimator with the n / (n - k) small-sample factor
(MacKinnon & White 1985, "HC1") keeps the standard errors honest without modelling it. Intervals
and p-values use the normal distribution, as statsmodels does with `cov_type="HC1"`. A linear
probability model for a 0/1 outcome reads directly in percentage points (Angrist & Pischke 2009,
ch. 3.1.3).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.stats

from cxlens.errors import StatsError


@dataclass(frozen=True)
class Coefficient:
    """One regressor's estimate with its robust standard error and 95% interval."""

    name: str
    estimate: float
    std_error: float
    ci_low: float
    ci_high: float
    p_value: float


@dataclass(frozen=True)
class RobustFit:
    """An OLS fit: coefficients in the order asked (columns that were constant or collinear are in `dropped`)."""

    coefficients: tuple[Coefficient, ...]
    n: int
    r_squared: float
    dropped: tuple[str, ...]

    def get(self, name: str) -> Coefficient | None:
        return next((c for c in self.coefficients if c.name == name), None)


def ols_hc1(X: np.ndarray, y: np.ndarray, names: list[str], *, level: float = 0.95) -> RobustFit:
    """Fit y = X b by least squares; HC1 covariance (X'X)^-1 X' diag(e^2) X (X'X)^-1 n / (n - k).

    `X` should hold an intercept column. Columns that do not vary (other than the intercept) or
    that are linear combinations of earlier ones are dropped (a greedy rank test in column order) and named
    in `dropped`, so a confounder absent from the data never turns the fit into an error.
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    if X.ndim != 2 or X.shape[0] != y.shape[0] or X.shape[1] != len(names):
        raise StatsError(f"The design matrix is {X.shape} for {y.shape[0]} outcomes and {len(names)} names; they must agree.")
    ok = np.isfinite(y) & np.isfinite(X).all(axis=1)
    X, y = X[ok], y[ok]
    n = X.shape[0]
    if n == 0:
        raise StatsError("No complete rows to fit: every row lacks the outcome or a regressor.")
    keep = _independent_columns(X)
    dropped = tuple(names[j] for j in range(len(names)) if j not in keep)
    Xk = X[:, keep]
    k = Xk.shape[1]
    if n <= k:
        raise StatsError(f"{n} rows cannot fit {k} coefficients; at least {k + 1} are needed.")
    XtX_inv = np.linalg.inv(Xk.T @ Xk)
    beta = XtX_inv @ (Xk.T @ y)
    resid = y - Xk @ beta
    meat = (Xk * resid[:, None] ** 2).T @ Xk
    cov = XtX_inv @ meat @ XtX_inv * (n / (n - k))
    se = np.sqrt(np.clip(np.diag(cov), 0, None))
    z = scipy.stats.norm.ppf(0.5 + level / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = 2 * scipy.stats.norm.sf(np.abs(beta / se))
    tss = float(((y - y.mean()) ** 2).sum())
    r2 = 1 - float(resid @ resid) / tss if tss > 0 else float("nan")
    coefs = tuple(Coefficient(names[j], float(b), float(s), float(b - z * s), float(b + z * s), float(pv))
                  for j, b, s, pv in zip(keep, beta, se, p))
    return RobustFit(coefs, n, r2, dropped)


def _independent_columns(X: np.ndarray) -> list[int]:
    """Indices of a full-rank subset of columns, preferring earlier ones; constant non-first columns go."""
    varies = [j for j in range(X.shape[1]) if j == 0 or np.ptp(X[:, j]) > 0]
    sub = X[:, varies]
    if sub.shape[1] == 0:
        return []
    scale = np.linalg.norm(sub, axis=0)
    scale[scale == 0] = 1
    # Greedy rank test in column order on the (k x k) Gram matrix, so the named friction
    # measures (first) are kept and the cost does not grow with the rows.
    unit = sub / scale
    gram = unit.T @ unit
    kept: list[int] = []
    for j in range(sub.shape[1]):
        trial = kept + [j]
        eig = np.linalg.eigvalsh(gram[np.ix_(trial, trial)])
        if eig.min() > 1e-10 * max(eig.max(), 1.0):
            kept.append(j)
    return [varies[j] for j in kept]


__all__ = ["Coefficient", "RobustFit", "ols_hc1"]
