"""Shapley-value attribution over channels, computed exactly.

Following Zhao, Mahboobi & Bagheri-Garakani (2018), "Shapley Value Methods for Attribution
Modeling in Online Advertising" (arXiv:1804.05327), the characteristic function of a coalition S
of channels is v(S) = the conversions (or value) of the converting paths whose channel set is a
subset of S. Channel j gets the Shapley value

    phi_j = sum over S not holding j of |S|! (n - |S| - 1)! / n! x (v(S + j) - v(S)),

the average of its marginal contribution over every order in which channels could join. v is
built by subset sums (a zeta transform over the 2^n bit masks) from the conversions of each
distinct channel set, so the cost is n 2^n whatever the number of paths, and the credits add up
to v(all channels) = the total conversions. Because this v is a sum of unanimity games, phi_j
also equals sum over distinct sets T holding j of w(T) / |T| (Zhao et al.'s simplified form);
the tests check both against a brute-force permutation average.
"""

from __future__ import annotations

import math

import numpy as np

from cxlens.attribution.paths import PathCounts
from cxlens.attribution.result import AttributionResult, make_result
from cxlens.errors import StatsError

MAX_CHANNELS = 20
"""2^20 coalitions x 20 channels is about 20 million operations; beyond that the subset sums get slow."""


def coalition_values(n: int, masks: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """v[S] = sum of weights of the sets T (bit masks) with T a subset of S, for all 2^n masks."""
    v = np.zeros(1 << n)
    np.add.at(v, masks, weights)
    for bit in range(n):
        # view the masks as (high, bit, low) and add the half without the bit to the half with it
        shaped = v.reshape(-1, 2, 1 << bit)
        shaped[:, 1, :] += shaped[:, 0, :]
    return v


def shapley_values(n: int, v: np.ndarray) -> np.ndarray:
    """phi_j = sum over S without j of |S|!(n-|S|-1)!/n! (v[S | j] - v[S])."""
    masks = np.arange(1 << n)
    sizes = _popcount(masks)
    coef = np.array([math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n) if s < n else 0.0
                     for s in range(n + 1)])
    phi = np.zeros(n)
    for j in range(n):
        without = masks[(masks >> j) & 1 == 0]
        phi[j] = float(np.sum(coef[sizes[without]] * (v[without | (1 << j)] - v[without])))
    return phi


def _popcount(masks: np.ndarray) -> np.ndarray:
    counts = np.zeros(masks.size, dtype=np.int64)
    x = masks.copy()
    while np.any(x):
        counts += x & 1
        x >>= 1
    return counts


def shapley(paths: PathCounts, *, max_channels: int = MAX_CHANNELS) -> AttributionResult:
    """Credits conversions and value by the channels' Shapley values."""
    con = paths.connect()
    try:
        sets = con.sql("SELECT list_sort(list_distinct(channels)) AS s, sum(conversions)::DOUBLE, sum(value)::DOUBLE "
                       "FROM paths WHERE conversions > 0 OR value <> 0 GROUP BY s").fetchall()
    finally:
        con.close()
    # Channels seen only on non-converting paths add nothing to any v(S): they get 0 without a bit of their own.
    channels = sorted({c for s, _, _ in sets for c in s})
    n = len(channels)
    if n > max_channels:
        raise StatsError(f"Shapley attribution over {n} channels needs 2^{n} coalitions; it supports at most "
                         f"{max_channels} channels. Group channels (e.g. by channel group) or use --model markov.")
    bit = {c: 1 << i for i, c in enumerate(channels)}
    masks = np.array([sum(bit[c] for c in s) for s, _, _ in sets], dtype=np.int64)
    conversions = np.array([c for _, c, _ in sets], dtype=float)
    value = np.array([v for _, _, v in sets], dtype=float)
    phi_c = shapley_values(n, coalition_values(n, masks, conversions)) if n else np.zeros(0)
    phi_v = shapley_values(n, coalition_values(n, masks, value)) if n else np.zeros(0)
    credits = {c: (0.0, 0.0) for c in paths.channels()}
    credits.update({c: (phi_c[i], phi_v[i]) for i, c in enumerate(channels)})
    return make_result("shapley", credits, paths.total_conversions, paths.total_value, extra={"coalitions": 1 << n})
