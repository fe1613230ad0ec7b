"""Benchmark: bandit weights and batch updates, cxlens.bandit vs the obvious per-offer / pandas code.

Run: .venv/bin/python benchmarks/bandit.py [--offers 1000] [--draws 10000] [--rows 1000000] [--repeat 3]

Weights: P(best) of 1,000 binary offers (about 1,000 trials each, true rates 3-7%, so the
posteriors overlap and every offer has a chance) from 10,000 Monte-Carlo draws: `Bandit.weights`
against a Python loop over offers calling `Generator.beta` 10,000 times per offer, then the
argmax of each row. Revenue weights are timed too (no alternative). Updates: 1,000,000 result
rows (offer id, reward) folded into per-offer sums: `Bandit.update` against a pandas groupby
and a plain Python loop over rows. Each timing is the best of --repeat runs; both sides are
checked to agree. Not a test: timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from cxlens.bandit import Bandit


def best_of(repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def loop_probability_best(alpha: np.ndarray, beta: np.ndarray, draws: int, seed: int) -> np.ndarray:
    """The obvious code: one Generator.beta call per offer, then the argmax of each row."""
    rng = np.random.default_rng(seed)
    sample = np.empty((draws, len(alpha)))
    for i in range(len(alpha)):
        sample[:, i] = rng.beta(alpha[i], beta[i], size=draws)
    return np.bincount(sample.argmax(axis=1), minlength=len(alpha)) / draws


def pandas_update(stats: dict[str, list[float]], ids: np.ndarray, rewards: np.ndarray) -> dict[str, list[float]]:
    """The obvious pandas code: groupby offer, then add each group's sums into a dict of stats."""
    g = pd.DataFrame({"offer": ids, "reward": rewards}).groupby("offer")["reward"].agg(["count", "sum"])
    for offer, count, total in zip(g.index, g["count"], g["sum"], strict=True):
        stats[offer][0] += count
        stats[offer][1] += total
    return stats


def loop_update(stats: dict[str, list[float]], ids: np.ndarray, rewards: np.ndarray) -> dict[str, list[float]]:
    """A plain Python loop over result rows."""
    for offer, reward in zip(ids.tolist(), rewards.tolist(), strict=True):
        s = stats[offer]
        s[0] += 1
        s[1] += reward
    return stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--offers", type=int, default=1_000)
    ap.add_argument("--draws", type=int, default=10_000)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    k = args.offers
    print(f"{os.cpu_count()} CPUs ({cpu_model()}), load average {os.getloadavg()[0]:.2f}, numpy {np.__version__}")

    rng = np.random.default_rng(0)
    offers = [f"offer_{i:04d}" for i in range(k)]
    rates = rng.uniform(0.03, 0.07, k)
    trials = rng.integers(800, 1_200, k)
    ids = np.repeat(np.asarray(offers, dtype=object), trials)
    rewards = (rng.random(len(ids)) < np.repeat(rates, trials)).astype(float)
    bandit = Bandit(offers, min_weight=0.2 / k, seed=1).update(ids, rewards)
    post = bandit.posterior()

    def ours() -> np.ndarray:
        bandit._cache = None  # time the draws, not the cache
        return np.asarray(list(bandit.probability_best(args.draws).values()))

    t_ours, p_ours = best_of(args.repeat, ours)
    t_loop, p_loop = best_of(args.repeat, lambda: loop_probability_best(post.alpha, post.beta, args.draws, 2))
    gap = float(np.abs(p_ours - p_loop).max())
    print(f"weights, {k:,} binary offers x {args.draws:,} draws: cxlens {t_ours:.3f} s, per-offer loop "
          f"{t_loop:.3f} s, ratio {t_loop / t_ours:.2f}x (largest P(best) difference {gap:.4f}, Monte-Carlo noise)")
    b_floor = bandit.weights(args.draws)
    assert min(b_floor.values()) >= bandit.settings.min_weight and abs(sum(b_floor.values()) - 1) < 1e-9

    amounts = np.where(rewards > 0, rng.lognormal(3, 1, len(ids)), 0.0)
    revenue = Bandit(offers, "revenue", min_weight=0.2 / k, seed=1).update(ids, amounts)

    def ours_revenue() -> dict[str, float]:
        revenue._cache = None
        return revenue.weights(args.draws)

    t_rev, _ = best_of(args.repeat, ours_revenue)
    print(f"weights, {k:,} revenue offers x {args.draws:,} draws: cxlens {t_rev:.3f} s")

    rows = args.rows
    batch_ids = np.asarray(offers, dtype=object)[rng.integers(0, k, rows)]
    batch_rewards = (rng.random(rows) < 0.05).astype(float)
    fresh = Bandit(offers, min_weight=0.2 / k, seed=1)

    def ours_update() -> Bandit:
        return Bandit.from_state(fresh.state).update(batch_ids, batch_rewards)

    t_up, updated = best_of(args.repeat, ours_update)
    t_pd, by_pandas = best_of(args.repeat, lambda: pandas_update({o: [0, 0.0] for o in offers}, batch_ids, batch_rewards))
    t_py, by_loop = best_of(args.repeat, lambda: loop_update({o: [0, 0.0] for o in offers}, batch_ids, batch_rewards))
    s = updated.state
    for stats in (by_pandas, by_loop):
        assert all(stats[o][0] == s.n[i] and stats[o][1] == s.sum[i] for i, o in enumerate(offers))
    print(f"update, {rows:,} rows over {k:,} offers: cxlens {t_up:.3f} s, pandas groupby {t_pd:.3f} s "
          f"(ratio {t_pd / t_up:.2f}x), Python loop {t_py:.3f} s (ratio {t_py / t_up:.2f}x)")


if __name__ == "__main__":
    main()
