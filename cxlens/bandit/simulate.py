"""Simulate a Thompson-sampling bandit against uniform allocation on offers with known true rewards.

Each round, the bandit assigns a batch of trials with ``Bandit.choose``, sees their rewards and
updates once (batch Thompson sampling, as a service recomputing weights each period would);
uniform allocation assigns each trial to an offer at random with equal probability, like an
A/B/n test. Regret is the expected reward lost against always showing the best offer: each trial
on offer i costs best_mean - mean_i (pseudo-regret, so reward noise does not blur the comparison).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cxlens.bandit.thompson import DRAWS, Bandit
from cxlens.errors import BanditError


@dataclass(frozen=True)
class SimulationResult:
    """Cumulative regret after each round for both policies, and the bandit's allocation per round."""

    offers: tuple[str, ...]
    true_means: np.ndarray
    rounds: int
    batch: int
    regret_thompson: np.ndarray
    regret_uniform: np.ndarray
    allocation: np.ndarray  # (rounds, offers): trials the bandit gave each offer in each round

    @property
    def best(self) -> str:
        return self.offers[int(np.argmax(self.true_means))]

    @property
    def ratio(self) -> float:
        """Final regret of Thompson sampling over that of uniform allocation (lower is better)."""
        return float(self.regret_thompson[-1] / self.regret_uniform[-1]) if self.regret_uniform[-1] > 0 else float("nan")

    def late_share_best(self, last: float = 0.2) -> float:
        """Share of the bandit's trials on the best offer over the last ``last`` fraction of rounds."""
        tail = self.allocation[-max(1, round(self.rounds * last)):]
        return float(tail[:, int(np.argmax(self.true_means))].sum() / tail.sum())

    def to_json(self, points: int = 10) -> dict[str, Any]:
        """``{"offers", "rounds", "batch", "best_offer", "best_mean", "regret_thompson", "regret_uniform",
        "ratio", "late_share_best", "curve": [{"round", "trials", "thompson", "uniform"}]}`` with
        final regrets and ``points`` evenly spaced rounds of the curve (the last one included)."""
        marks = sorted({max(1, round(self.rounds * (i + 1) / points)) for i in range(points)})
        return {"offers": len(self.offers), "rounds": self.rounds, "batch": self.batch, "best_offer": self.best,
                "best_mean": float(self.true_means.max()), "regret_thompson": float(self.regret_thompson[-1]),
                "regret_uniform": float(self.regret_uniform[-1]), "ratio": self.ratio,
                "late_share_best": self.late_share_best(),
                "curve": [{"round": r, "trials": r * self.batch, "thompson": float(self.regret_thompson[r - 1]),
                           "uniform": float(self.regret_uniform[r - 1])} for r in marks]}


def example_rates(offers: int, seed: int = 0) -> np.ndarray:
    """Conversion rates for ``offers`` offers drawn from Beta(5, 95): around 5%, most between 2% and 9%."""
    if offers < 2:
        raise BanditError(f"A simulation needs at least 2 offers, got {offers}.")
    return np.random.default_rng([seed, 0xBA]).beta(5, 95, size=offers)


def simulate(rates: Sequence[float], *, values: Sequence[float] | None = None, value_sigma: float = 1.0,
             rounds: int = 100, batch: int = 200, min_weight: float = 0.01, draws: int = DRAWS,
             seed: int = 0) -> SimulationResult:
    """Run both policies for ``rounds`` rounds of ``batch`` trials on offers with true conversion ``rates``.

    Without ``values`` rewards are binary. With ``values`` (mean order value per offer) rewards are
    revenue: a trial converts with its offer's rate and then earns a log-normal amount with that
    mean and log-scale sd ``value_sigma``, so offer i's true mean reward is rates[i] * values[i].
    The bandit uses ``min_weight`` and ``draws`` and the seed; the same seed gives the same result.
    """
    p = np.asarray(rates, dtype=float)
    if p.ndim != 1 or len(p) < 2 or not np.all((p >= 0) & (p <= 1)):
        raise BanditError("rates must be a list of at least 2 conversion rates between 0 and 1.")
    for name, v in (("rounds", rounds), ("batch", batch)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise BanditError(f"{name} must be a whole number >= 1, got {v!r}.")
    if values is None:
        means, reward = p, "binary"
    else:
        amounts = np.asarray(values, dtype=float)
        if amounts.shape != p.shape or not np.all(np.isfinite(amounts) & (amounts > 0)):
            raise BanditError("values must give one positive mean amount per offer, like rates.")
        if not value_sigma >= 0:
            raise BanditError(f"value_sigma must be >= 0, got {value_sigma!r}.")
        means, reward = p * amounts, "revenue"
    offers = tuple(f"offer_{i + 1:0{len(str(len(p)))}d}" for i in range(len(p)))
    names = np.asarray(offers, dtype=object)
    index = {o: i for i, o in enumerate(offers)}
    gap = means.max() - means
    bandit = Bandit(offers, reward, min_weight=min_weight, seed=seed)
    env = np.random.default_rng([seed, 1])
    uniform = np.random.default_rng([seed, 2])
    allocation = np.zeros((rounds, len(p)), dtype=np.int64)
    lost_uniform = np.zeros(rounds)
    for r in range(rounds):
        chosen = np.fromiter((index[o] for o in bandit.choose(batch, draws=draws)), dtype=np.int64, count=batch)
        allocation[r] = np.bincount(chosen, minlength=len(p))
        got = (env.random(batch) < p[chosen]).astype(float)
        if reward == "revenue":
            got *= _amounts(env, amounts[chosen], value_sigma)
        bandit.update(names[chosen], got)
        lost_uniform[r] = uniform.multinomial(batch, np.full(len(p), 1 / len(p))) @ gap
    return SimulationResult(offers, means, rounds, batch, np.cumsum(allocation @ gap), np.cumsum(lost_uniform),
                            allocation)


def _amounts(rng: np.random.Generator, mean: np.ndarray, sigma: float) -> np.ndarray:
    """Log-normal amounts with the given means and log-scale sd ``sigma``."""
    return mean * np.exp(rng.normal(-sigma**2 / 2, sigma, size=len(mean)))
