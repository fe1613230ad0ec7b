"""Thompson sampling across many offers: allocate traffic by each offer's probability of being best.

Models (every offer independent; rewards independent given the offer):

- ``"binary"`` (converted or not): Beta-Bernoulli. Conversion rate p ~ Beta(alpha0, beta0), by
  default Beta(1, 1); after s successes in n trials the posterior is Beta(alpha0 + s, beta0 + n - s).
- ``"revenue"`` (a non-negative amount per trial, mostly 0): reward = conversion x value, the
  decomposition of Stucchio (2015, "Bayesian A/B testing at VWO", its revenue model). The mean reward is
  p * mu with p ~ Beta(alpha0 + k, beta0 + n - k) (k = non-zero rewards) and mu, the mean of the
  non-zero rewards, from the Normal-Gamma model of those k values (Murphy 2007, "Conjugate Bayesian
  analysis of the Gaussian distribution", section 3): prior mu0 = the non-zero mean pooled over
  every offer, kappa0 = ``Prior.value_weight`` observations, shape a0 = 1 and rate b0 = the pooled
  variance (the square of the pooled mean while fewer than two values or no spread are known), so
  mu's marginal posterior is Student t with 2 a_n degrees of freedom, location mu_n and scale
  sqrt(b_n / (a_n kappa_n)); draws of mu below 0, possible only while an offer has few values, are
  set to 0. p and mu are drawn independently and multiplied. Until some offer has a
  non-zero reward there is no value to learn, so offers are compared on conversion alone.

Allocation (Thompson 1933; in batch form, Scott 2010, "A modern Bayesian look at the multi-armed
bandit", Applied Stochastic Models in Business and Industry 26:639-658): the weight of an offer is
the posterior probability that its mean reward is the highest, estimated from Monte-Carlo draws
(one draw of every active offer per row; the share of rows each offer wins), then floored at
``min_weight`` (see ``floor_weights``). Offers with identical statistics are exchangeable, so they
share the average of their estimates: no data gives exactly uniform weights. The draws are seeded
by the settings' seed and a hash of the statistics, so the same results give the same weights —
however they were batched, in whichever process, before or after a save and load.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from cxlens.bandit.state import BanditState, Prior, Reward, Settings, new_seed
from cxlens.errors import BanditError

DRAWS = 10_000
# Draws are made in blocks of about this many values (2 MiB of float64) to stay in cache.
_BLOCK = 2**18
_WEIGHTS, _CHOOSE, _INTERVAL = 0, 1, 2


@dataclass(frozen=True)
class Posterior:
    """The posterior of each offer's mean reward, as arrays aligned with ``offers``.

    Conversion ~ Beta(``alpha``, ``beta``). Revenue adds the mean non-zero reward ~ Student t with
    ``value_df`` degrees of freedom, location ``value_mean`` and scale ``value_scale``; those are
    None for binary rewards and while no offer has a non-zero reward.
    """

    offers: tuple[str, ...]
    alpha: np.ndarray
    beta: np.ndarray
    value_mean: np.ndarray | None = None
    value_scale: np.ndarray | None = None
    value_df: np.ndarray | None = None

    def mean(self) -> np.ndarray:
        """Posterior mean of the mean reward (conversion times mean value for revenue)."""
        p = self.alpha / (self.alpha + self.beta)
        return p if self.value_mean is None else p * self.value_mean

    def sample(self, rng: np.random.Generator, rows: int) -> np.ndarray:
        """``rows`` independent draws of every offer's mean reward, shape (rows, offers)."""
        size = (rows, len(self.offers))
        g1 = rng.standard_gamma(self.alpha, size=size)
        g2 = rng.standard_gamma(self.beta, size=size)
        p = g1 / (g1 + g2)  # Beta(alpha, beta) as a ratio of gammas
        if self.value_mean is None:
            return p
        value = self.value_mean + self.value_scale * rng.standard_t(self.value_df, size=size)
        return p * np.maximum(value, 0.0)  # a mean of amounts >= 0 is >= 0

    def params(self) -> np.ndarray:
        """One row of parameters per offer; offers with equal rows have the same posterior."""
        cols = [self.alpha, self.beta]
        if self.value_mean is not None:
            cols += [self.value_mean, self.value_scale, self.value_df]
        return np.column_stack(cols)


def posterior(state: BanditState, mask: np.ndarray) -> Posterior:
    """The posterior of the offers selected by ``mask`` (see the module docstring for the models)."""
    prior = state.settings.prior
    offers = tuple(o for o, keep in zip(state.offers, mask) if keep)
    n, total, total_sq, k = state.n[mask], state.sum[mask], state.sum_sq[mask], state.nonzero[mask]
    if state.settings.reward == "binary":
        return Posterior(offers, prior.alpha + total, prior.beta + (n - total))
    alpha, beta = prior.alpha + k, prior.beta + (n - k)
    pooled_k = int(state.nonzero.sum())
    if pooled_k == 0:
        return Posterior(offers, alpha, beta)
    pooled_sum = float(state.sum.sum())
    mu0 = pooled_sum / pooled_k
    spread = (float(state.sum_sq.sum()) - pooled_sum**2 / pooled_k) / (pooled_k - 1) if pooled_k > 1 else 0.0
    a0, b0, kappa0 = 1.0, spread if spread > 0 else mu0**2, prior.value_weight
    kappa = kappa0 + k
    mu = (kappa0 * mu0 + total) / kappa
    a = a0 + k / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(k > 0, total / np.maximum(k, 1), mu0)
        within = np.maximum(total_sq - np.where(k > 0, total**2 / np.maximum(k, 1), 0.0), 0.0)
    b = b0 + within / 2 + kappa0 * k * (mean - mu0) ** 2 / (2 * kappa)
    return Posterior(offers, alpha, beta, mu, np.sqrt(b / (a * kappa)), 2 * a)


def probability_best(post: Posterior, rng: np.random.Generator, draws: int = DRAWS) -> np.ndarray:
    """P(offer has the highest mean reward), the share of ``draws`` Monte-Carlo rows it wins.

    Offers with identical posteriors get the average of their estimates (they are exchangeable),
    so identical offers, and no data at all, give exactly equal probabilities.
    """
    k = len(post.offers)
    if k == 1:
        return np.ones(1)
    _, group, size = np.unique(post.params(), axis=0, return_inverse=True, return_counts=True)
    if len(size) == 1:
        return np.full(k, 1 / k)
    wins = np.zeros(k, dtype=np.int64)
    block = max(1, _BLOCK // k)
    for start in range(0, draws, block):
        wins += np.bincount(post.sample(rng, min(block, draws - start)).argmax(axis=1), minlength=k)
    p = wins / draws
    return (np.bincount(group.ravel(), weights=p) / size)[group.ravel()]


def floor_weights(p: np.ndarray, min_weight: float) -> np.ndarray:
    """Weights from probabilities ``p`` (summing to 1): every weight >= ``min_weight``, sum 1.

    The weights are max(min_weight, c * p) with the one c that makes them sum to 1: offers below
    the floor are raised to it and the rest keep their proportions, scaled down to pay for it. c is
    found by raising the offers whose scaled weight falls below the floor until none does (at most
    one pass per offer). Unlike clamping once and renormalizing (GrowthBook's gbstats), no weight
    ends below the floor. Needs min_weight * len(p) <= 1; at equality every weight is 1/len(p).
    """
    p = np.asarray(p, dtype=float)
    k = len(p)
    if min_weight * k >= 1 - 1e-12:
        return np.full(k, 1 / k)
    floored = np.zeros(k, dtype=bool)
    while True:
        free_mass = p[~floored].sum()
        if free_mass <= 0:  # only when every free offer has p == 0: share what is left equally
            w = np.full(k, min_weight)
            w[~floored] = (1 - min_weight * floored.sum()) / (~floored).sum()
            return w
        w = p * ((1 - min_weight * floored.sum()) / free_mass)
        low = ~floored & (w < min_weight)
        if not low.any():
            w[floored] = min_weight
            return w
        floored |= low


@dataclass(frozen=True)
class OfferSummary:
    """One offer's results and allocation. ``mean`` is the observed mean reward (None without
    trials); ``low``/``high`` bound the posterior interval of the mean reward; ``conversion`` and
    ``value`` (mean non-zero reward) are for revenue; retired offers have no probability and weight 0.
    """

    offer: str
    active: bool
    n: int
    mean: float | None
    low: float | None
    high: float | None
    prob_best: float | None
    weight: float
    conversion: float | None = None
    value: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Bandit:
    """Thompson sampling over offers, with batch updates, a minimum weight and a reproducible seed.

    ``Bandit(["a", "b", "c"], "binary", min_weight=0.01, seed=7)``; ``update(offer_ids, rewards)``
    adds a batch of results; ``weights()`` is the allocation for the next period; ``choose(k)``
    draws k assignments from it. ``seed=None`` draws a seed and records it in the state.
    """

    def __init__(self, offers: Iterable[str], reward: Reward = "binary", *, min_weight: float = 0.01,
                 prior: Prior | None = None, seed: int | None = None) -> None:
        if isinstance(offers, str):
            raise BanditError(f"offers must be a list of offer ids, got the text {offers!r}.")
        settings = Settings(reward=reward, min_weight=min_weight, seed=new_seed() if seed is None else seed,
                            prior=prior or Prior())
        self.state = BanditState.new(settings, list(offers))
        self._cache: tuple[tuple[bytes, int], np.ndarray] | None = None

    @classmethod
    def from_state(cls, state: BanditState) -> Bandit:
        """A bandit continuing from a state (its own copy)."""
        bandit = cls.__new__(cls)
        bandit.state = state.copy()
        bandit.state.check()
        bandit._cache = None
        return bandit

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Bandit:
        return cls.from_state(BanditState.load(path))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the state atomically (see ``BanditState.save``)."""
        self.state.save(path)

    @property
    def offers(self) -> list[str]:
        """The active offers, in the order added."""
        return [o for o, a in zip(self.state.offers, self.state.active) if a]

    @property
    def settings(self) -> Settings:
        return self.state.settings

    # --- results ------------------------------------------------------------------------------

    def update(self, offer_ids: Sequence[str] | np.ndarray, rewards: Sequence[float] | np.ndarray, *,
               source: str = "the results") -> Bandit:
        """Add a batch of results, one (offer, reward) per trial; all rows are checked before any counts.

        Binary rewards are 0 or 1 (or booleans); revenue rewards are amounts >= 0. Results for a
        retired offer still count (late conversions). ``source`` names the batch in error messages.
        """
        import pandas as pd

        ids = offer_ids.to_numpy() if hasattr(offer_ids, "to_numpy") else np.asarray(offer_ids, dtype=object)
        values = _rewards(rewards, source)
        if ids.ndim != 1 or len(ids) != len(values):
            raise BanditError(f"Offer ids and rewards in {source} must be two lists of the same length, "
                              f"got {ids.size} ids and {len(values)} rewards.")
        if len(ids) == 0:
            return self
        codes, uniques = pd.factorize(ids, use_na_sentinel=True)
        if (codes < 0).any():
            raise BanditError(f"Row {int(np.argmax(codes < 0)) + 1} of {source} has no offer id.")
        index = self.state.index()
        position = np.empty(len(uniques), dtype=np.int64)
        for j, offer in enumerate(uniques):
            if offer not in index:
                rows = np.flatnonzero(codes == j)
                shown = ", ".join(self.state.offers[:5]) + (", …" if len(self.state.offers) > 5 else "")
                more = f" and {len(rows) - 1} more" if len(rows) > 1 else ""
                raise BanditError(f"Offer {offer!r} in {source} (row {rows[0] + 1}{more}) is not in this bandit, "
                                  f"whose offers are {shown}.")
            position[j] = index[offer]
        self._check_rewards(values, source)
        where = position[codes]
        k = len(self.state.offers)
        s = self.state
        s.n += np.bincount(where, minlength=k)
        s.sum += np.bincount(where, weights=values, minlength=k)
        s.sum_sq += np.bincount(where, weights=values * values, minlength=k)
        s.nonzero += np.bincount(where[values != 0], minlength=k)
        s.updates += 1
        return self

    def _check_rewards(self, values: np.ndarray, source: str) -> None:
        if self.settings.reward == "binary":
            bad = (values != 0) & (values != 1)
            what = "0 or 1 (binary rewards)"
        else:
            bad = values < 0
            what = "an amount >= 0 (revenue rewards)"
        if bad.any():
            i = int(np.argmax(bad))
            raise BanditError(f"Row {i + 1} of {source} has reward {values[i]:g}; each reward must be {what}.")

    # --- allocation ---------------------------------------------------------------------------

    def posterior(self) -> Posterior:
        """The posterior of every active offer's mean reward."""
        return posterior(self.state, self.state.active)

    def probability_best(self, draws: int = DRAWS) -> dict[str, float]:
        """P(best) of every active offer, from ``draws`` seeded Monte-Carlo rows (before the floor)."""
        return dict(zip(self.offers, self._probability_best(draws).tolist()))

    def weights(self, draws: int = DRAWS) -> dict[str, float]:
        """The allocation for the next period: P(best) floored at ``min_weight`` (``floor_weights``)."""
        return dict(zip(self.offers, floor_weights(self._probability_best(draws), self.settings.min_weight).tolist()))

    def choose(self, k: int = 1, *, draws: int = DRAWS) -> list[str]:
        """k offer assignments drawn independently from ``weights()``.

        Assigning by P(best) is Thompson sampling in batch form (Scott 2010); the floor is kept.
        The draw is seeded by the seed, the statistics and the assignments drawn so far, which
        the state records, so repeated calls give new assignments and a reloaded bandit continues.
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
            raise BanditError(f"choose needs a whole number of assignments >= 0, got {k!r}.")
        w = floor_weights(self._probability_best(draws), self.settings.min_weight)
        picks = self._rng(_CHOOSE, self.state.assigned).choice(len(w), size=int(k), p=w)
        self.state.assigned += int(k)
        offers = self.offers
        return [offers[i] for i in picks]

    def _probability_best(self, draws: int) -> np.ndarray:
        if isinstance(draws, bool) or not isinstance(draws, (int, np.integer)) or draws < 1:
            raise BanditError(f"draws must be a whole number >= 1, got {draws!r}.")
        key = (self._digest(), int(draws))
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, probability_best(self.posterior(), self._rng(_WEIGHTS), int(draws)))
        return self._cache[1].copy()

    def _digest(self) -> bytes:
        """A hash of everything the posterior depends on: offers, activity, statistics, prior."""
        s = self.state
        h = hashlib.blake2b(digest_size=16)
        h.update(json.dumps([s.settings.reward, asdict(s.settings.prior), s.offers]).encode())
        for arr in (s.active, s.n, s.sum, s.sum_sq, s.nonzero):
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.digest()

    def _rng(self, purpose: int, *extra: int) -> np.random.Generator:
        return np.random.default_rng([self.settings.seed, purpose, int.from_bytes(self._digest(), "little"), *extra])

    # --- offers -------------------------------------------------------------------------------

    def add_offer(self, offer: str) -> Bandit:
        """Start allocating to a new offer (no results yet)."""
        s = self.state
        if offer in s.index():
            status = "active" if s.active[s.index()[offer]] else "retired"
            raise BanditError(f"Offer {offer!r} is already in this bandit ({status}); give the new offer another id.")
        grown = BanditState(s.settings, [*s.offers, offer], np.append(s.active, True), np.append(s.n, 0),
                            np.append(s.sum, 0.0), np.append(s.sum_sq, 0.0), np.append(s.nonzero, 0),
                            s.updates, s.assigned)
        grown.check()
        self.state = grown
        return self

    def retire_offer(self, offer: str) -> Bandit:
        """Stop allocating to an offer; its results stay in the state and late results still count."""
        index = self.state.index()
        if offer not in index:
            raise BanditError(f"Offer {offer!r} is not in this bandit; its offers are {', '.join(self.offers)}.")
        if not self.state.active[index[offer]]:
            raise BanditError(f"Offer {offer!r} is already retired.")
        if len(self.offers) == 1:
            raise BanditError(f"Offer {offer!r} is the last active offer; add another before retiring it.")
        self.state.active[index[offer]] = False
        return self

    # --- reporting ----------------------------------------------------------------------------

    def summary(self, draws: int = DRAWS, level: float = 0.95) -> list[OfferSummary]:
        """Per offer: trials, observed mean reward, posterior interval, P(best) and weight.

        Binary intervals are exact Beta quantiles; revenue intervals are quantiles of ``draws``
        seeded posterior draws (None while no offer has a non-zero reward).
        """
        if not 0 < level < 1:
            raise BanditError(f"level must be between 0 and 1, got {level!r}.")
        s = self.state
        everyone = np.ones(len(s.offers), dtype=bool)
        post = posterior(s, everyone)
        lo, hi = (1 - level) / 2, (1 + level) / 2
        if s.settings.reward == "binary":
            from scipy.special import betaincinv

            low, high = betaincinv(post.alpha, post.beta, lo), betaincinv(post.alpha, post.beta, hi)
        elif post.value_mean is None:
            low = high = np.full(len(s.offers), np.nan)
        else:
            sample = np.empty((draws, len(s.offers)))
            rng, block = self._rng(_INTERVAL), max(1, _BLOCK // len(s.offers))
            for start in range(0, draws, block):
                sample[start:start + block] = post.sample(rng, min(block, draws - start))
            low, high = np.quantile(sample, [lo, hi], axis=0)
        best = dict(zip(self.offers, self._probability_best(draws).tolist()))
        weight = self.weights(draws)
        rows = []
        for i, offer in enumerate(s.offers):
            n = int(s.n[i])
            revenue = s.settings.reward == "revenue"
            rows.append(OfferSummary(
                offer=offer, active=bool(s.active[i]), n=n, mean=float(s.sum[i]) / n if n else None,
                low=None if np.isnan(low[i]) else float(low[i]), high=None if np.isnan(high[i]) else float(high[i]),
                prob_best=best.get(offer), weight=weight.get(offer, 0.0),
                conversion=int(s.nonzero[i]) / n if revenue and n else None,
                value=float(s.sum[i]) / int(s.nonzero[i]) if revenue and s.nonzero[i] else None))
        return rows


def _rewards(rewards: Any, source: str) -> np.ndarray:
    """Rewards as finite float64, or a BanditError naming the first row that is not a number."""
    raw = rewards.to_numpy() if hasattr(rewards, "to_numpy") else np.asarray(rewards)
    if raw.ndim != 1:
        raise BanditError(f"The rewards in {source} must be a flat list of numbers.")
    try:
        values = raw.astype(np.float64)
    except (TypeError, ValueError):
        import pandas as pd

        values = pd.to_numeric(pd.Series(raw, dtype=object), errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.argmax(bad))
        shown = raw[i].item() if hasattr(raw[i], "item") else raw[i]
        raise BanditError(f"Row {i + 1} of {source} has reward {shown!r}; each reward must be a finite number.")
    return values
