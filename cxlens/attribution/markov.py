"""Data-driven attribution by a Markov chain of order 1 to 3, solved exactly.

The chain (Anderl, Becker, von Wangenheim & Schumann 2016, "Mapping the customer journey: Lessons
learned from graph-based online attribution modeling", IJRM 33(3)) has a start state, one
transient state per observed tuple of the last k channels (k = order; the first steps of a path
have shorter tuples), and two absorbing states, conversion and null. Transition probabilities are
the transition counts of all paths divided by each state's outgoing count.

P(conversion) is the absorption probability from start: with Q the transient-to-transient
probabilities and r the transient-to-conversion ones, x = (I - Q)^-1 r and P = x[start]. Removing
channel c sends every transition into a state containing c to null; the removal effect is
RE_c = 1 - P_without_c / P, and channel c is credited conversions x RE_c / sum(RE) (and the same
share of value). ChannelAttribution estimates these by simulating paths, so its numbers move from
run to run; here they come from sparse linear solves and are identical on every run.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from cxlens.attribution.paths import PathCounts
from cxlens.attribution.result import AttributionResult, make_result
from cxlens.errors import UsageError

MAX_ORDER = 3
STATE_SEPARATOR = "\x1f"
"""Joins the channels of a higher-order state; channel names never contain it (a control character)."""

_TRANSITIONS_SQL = """
WITH p AS (SELECT channels AS ch, conversions AS c, nulls AS n, len(channels) AS l FROM paths WHERE conversions + nulls > 0),
steps AS (SELECT ch, c, n, unnest(range(1, l + 1)) AS i FROM p),
moves AS (
    SELECT CASE WHEN i = 1 THEN '' ELSE array_to_string(list_slice(ch, greatest(1, i - $k), i - 1), chr(31)) END AS src,
           array_to_string(list_slice(ch, greatest(1, i - $k + 1), i), chr(31)) AS dst, 0 AS kind, c + n AS w
    FROM steps
    UNION ALL
    SELECT array_to_string(list_slice(ch, greatest(1, l - $k + 1), l), chr(31)), '', 1, c FROM p WHERE c > 0
    UNION ALL
    SELECT array_to_string(list_slice(ch, greatest(1, l - $k + 1), l), chr(31)), '', 2, n FROM p WHERE n > 0
)
SELECT src, dst, kind, sum(w)::DOUBLE AS w FROM moves GROUP BY src, dst, kind
"""
"""(src, dst, kind, weight): kind 0 = to a transient state, 1 = to conversion, 2 = to null; src '' is start."""


def check_order(order: int) -> int:
    """The order itself, or a UsageError naming the valid ones."""
    if isinstance(order, bool) or not isinstance(order, int) or not 1 <= order <= MAX_ORDER:
        raise UsageError(f"Markov order {order!r} is not supported; the order (how many past channels a state "
                         f"remembers) is 1, 2 or 3.")
    return order


class MarkovChain:
    """The absorbing chain of a set of path counts, built from transition counts the engine aggregates."""

    def __init__(self, paths: PathCounts, order: int = 1):
        self.order = check_order(order)
        con = paths.connect()
        try:
            moves = con.execute(_TRANSITIONS_SQL.replace("$k", str(self.order))).fetchnumpy()
        finally:
            con.close()
        src, dst, kind, w = (np.asarray(moves[c]) for c in ("src", "dst", "kind", "w"))
        src = src.astype(object)
        dst = dst.astype(object)
        kind = kind.astype(np.int64)
        w = w.astype(np.float64)
        # '' (start) sorts first, so start is state 0; sorting makes the matrices the same on every run.
        self.states: list[str] = sorted(set(src.tolist()) | set(dst[kind == 0].tolist()) | {""})
        index = {s: i for i, s in enumerate(self.states)}
        m = len(self.states)
        si = np.fromiter((index[s] for s in src), dtype=np.int64, count=src.size)
        out = np.bincount(si, weights=w, minlength=m)
        prob = np.divide(w, out[si], out=np.zeros_like(w), where=out[si] > 0)
        step = kind == 0
        di = np.fromiter((index[s] for s in dst[step]), dtype=np.int64, count=int(step.sum()))
        self.q = sp.csr_matrix((prob[step], (si[step], di)), shape=(m, m))
        self.r = np.bincount(si[kind == 1], weights=prob[kind == 1], minlength=m)
        members = [set(s.split(STATE_SEPARATOR)) if s else set() for s in self.states]
        channels = sorted(set().union(*members))
        self.channel_states: dict[str, np.ndarray] = {
            c: np.fromiter((c in s for s in members), dtype=bool, count=m) for c in channels}

    def conversion_probability(self, removed: str | None = None) -> float:
        """P(start is absorbed in conversion), with the states holding `removed` sent to null."""
        m = len(self.states)
        keep = np.ones(m, dtype=bool) if removed is None else ~self.channel_states[removed]
        idx = np.flatnonzero(keep)
        a = (sp.identity(idx.size, format="csr") - self.q[idx][:, idx]).tocsc()
        x = spla.spsolve(a, self.r[idx])
        return float(np.atleast_1d(x)[0])  # start is state 0 and holds no channel, so it is always kept

    def removal_effects(self) -> dict[str, float]:
        """RE_c = 1 - P(conversion without c) / P(conversion); all 0 when nothing converts."""
        base = self.conversion_probability()
        if base <= 0:
            return {c: 0.0 for c in self.channel_states}
        return {c: max(0.0, 1.0 - self.conversion_probability(c) / base) for c in self.channel_states}


def markov(paths: PathCounts, order: int = 1) -> AttributionResult:
    """Credits conversions and value in proportion to the channels' removal effects."""
    chain = MarkovChain(paths, order)
    effects = chain.removal_effects()
    total, value = paths.total_conversions, paths.total_value
    norm = sum(effects.values())
    credits = {c: ((total * e / norm, value * e / norm) if norm > 0 else (0.0, 0.0)) for c, e in effects.items()}
    return make_result("markov", credits, total, value, removal_effects=effects,
                       extra={"order": chain.order, "conversion_probability": chain.conversion_probability(),
                              "states": len(chain.states) - 1})
