"""Survey answers that respond to what happened to the customer.

CSAT and CES follow every fifth-or-so support case and fall with the case's effort (contacts,
transfers) and when it stays unresolved; post-delivery CSAT follows some web-shop orders; a
quarterly relationship NPS rises for high-value customers (NPS_SHIFT_HVC) and drops after a bad
support experience (NPS_SHIFT_BAD_CASE).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cxlens.simulate.commerce import Orders, effective_segment
from cxlens.simulate.config import BARGAIN, DAY, HVC, NPS_SHIFT_BAD_CASE, NPS_SHIFT_HVC, SimulationConfig
from cxlens.simulate.people import People
from cxlens.simulate.service import Service

_GOOD = ("Great service, fast delivery", 'Loved the "Nordic" range', "Easy, friendly and quick",
         "Staff were helpful; would recommend")
_MID = ("OK, but delivery took a while", "Fine overall", 'Product fine, packaging "meh"')
_BAD = ('Had to call three times, still "pending"', "Transferred twice, nobody could help",
        "Item arrived damaged, refund slow", "Too much effort, won't order again")


@dataclass(frozen=True)
class Surveys:
    """One row per answer, in time order."""

    person: np.ndarray
    t: np.ndarray
    kind: np.ndarray
    score: np.ndarray
    comment: np.ndarray
    touchpoint: np.ndarray
    channel: np.ndarray
    order: np.ndarray
    """Index into web-shop orders, -1 when not about an order."""
    interaction: np.ndarray
    """Index into support interactions, -1 when not about a contact."""


def _score(latent: np.ndarray, lo: int, hi: int) -> np.ndarray:
    return np.clip(np.round(latent), lo, hi).astype(np.int64)


def _comments(rng: np.random.Generator, score01: np.ndarray) -> np.ndarray:
    """A comment for 40% of answers, its tone following the score (0 = worst, 1 = best)."""
    n = score01.size
    pools = [np.asarray(p, dtype=object) for p in (_BAD, _MID, _GOOD)]
    band = np.where(score01 >= 0.75, 2, np.where(score01 >= 0.45, 1, 0))
    out = np.full(n, None, dtype=object)
    for b, pool in enumerate(pools):
        mask = band == b
        out[mask] = pool[rng.integers(0, pool.size, int(mask.sum()))]
    out[rng.random(n) >= 0.4] = None
    return out


def simulate_surveys(rng: np.random.Generator, people: People, service: Service, online: Orders,
                     cfg: SimulationConfig) -> Surveys:
    """Support CSAT/CES, post-delivery CSAT and relationship NPS."""
    horizon = cfg.horizon
    n = people.n_customers
    ok_person = ~people.shared_email
    i = np.flatnonzero(service.last_of_case & ok_person[service.person] & (rng.random(service.t.size) < 0.35))
    t_sup = np.floor(service.t[i] + rng.uniform(3600, 2 * DAY, i.size))
    i = i[t_sup < horizon]
    t_sup = t_sup[t_sup < horizon]
    extra = service.case_contacts[i] - 1
    unresolved = ~service.case_resolved[i]
    csat = _score(4.5 - 1.9 * unresolved - 0.35 * extra - 0.3 * service.transfers[i] + rng.normal(0, 0.6, i.size), 1, 5)
    ces = _score(6.2 - 0.9 * extra - 1.6 * unresolved - 0.5 * service.transfers[i] + rng.normal(0, 0.7, i.size), 1, 7)

    o = np.flatnonzero((online.status != "cancelled") & (rng.random(online.t.size) < 0.10))
    t_del = np.floor(online.t[o] + rng.uniform(3, 8, o.size) * DAY)
    o, t_del = o[t_del < horizon], t_del[t_del < horizon]
    hvc_o = online.effective_segment[o] == HVC
    del_csat = _score(4.1 + 0.4 * hvc_o - 1.2 * (online.status[o] == "returned") + rng.normal(0, 0.7, o.size), 1, 5)

    quarters = int(np.ceil(cfg.days / 91))
    invited = (rng.random((quarters, n)) < 0.25) & ok_person[None, :]
    q, p = np.nonzero(invited)
    t_nps = np.floor((q * 91 + rng.uniform(0, 91, q.size)) * DAY)
    ok = (t_nps < horizon) & (t_nps >= np.maximum(people.signup_t[p], 0)) & (t_nps < service.churn_t[p])
    q, p, t_nps = q[ok], p[ok], t_nps[ok]
    seg = effective_segment(people, p, t_nps, cfg)
    bad_before = service.bad_case_end[p] < t_nps
    nps = _score(7.4 + NPS_SHIFT_HVC * (seg == HVC) - 0.4 * (seg == BARGAIN) + NPS_SHIFT_BAD_CASE * bad_before
                 + rng.normal(0, 1.5, p.size), 0, 10)

    kind = np.concatenate([np.full(i.size, "CSAT"), np.full(i.size, "CES"), np.full(o.size, "CSAT"),
                           np.full(p.size, "NPS")]).astype(object)
    score = np.concatenate([csat, ces, del_csat, nps])
    lo = np.where(kind == "NPS", 0, 1)
    hi = np.where(kind == "NPS", 10, np.where(kind == "CES", 7, 5))
    t = np.concatenate([t_sup, t_sup + 5, t_del, t_nps])
    person = np.concatenate([service.person[i], service.person[i], online.person[o], p])
    touch = np.concatenate([np.full(2 * i.size, "support"), np.full(o.size, "delivery"),
                            np.full(p.size, "relationship")]).astype(object)
    channel = np.concatenate([np.full(2 * i.size, "sms"), np.full(o.size + p.size, "email")]).astype(object)
    order_ref = np.concatenate([np.full(2 * i.size, -1), o, np.full(p.size, -1)])
    inter_ref = np.concatenate([i, i, np.full(o.size + p.size, -1)])
    comment = _comments(rng, (score - lo) / (hi - lo))
    order = np.lexsort((person, t))
    return Surveys(person[order], t[order], kind[order], score[order], comment[order], touch[order],
                   channel[order], order_ref[order], inter_ref[order])
