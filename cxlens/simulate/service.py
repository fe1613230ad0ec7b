"""Support desk cases and the churn they cause.

A case is one customer problem handled over one or more contacts (phone, chat, email, store).
Hard cases take more contacts and transfers and are less often resolved; a *bad experience*
(unresolved, three or more contacts, or two or more transfers) makes the customer churn with
CHURN_AFTER_BAD_CASE probability soon after, against a lower baseline churn for everyone else.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cxlens.simulate.config import (
    BASELINE_CHURN, CHURN_AFTER_BAD_CASE, DAY, SimulationConfig,
)
from cxlens.simulate.people import People

CHANNELS = ("phone", "chat", "email", "store")
TOPICS = ("delivery", "return", "billing", "product question", "damaged item", "account")
CASES_PER_YEAR = 0.45


@dataclass(frozen=True)
class Service:
    """Interactions (one row per contact) plus per-customer churn decided by their experience."""

    person: np.ndarray
    case: np.ndarray
    t: np.ndarray
    channel: np.ndarray
    topic: np.ndarray
    agent: np.ndarray
    transfers: np.ndarray
    resolved: np.ndarray
    wait_seconds: np.ndarray
    handle_seconds: np.ndarray
    last_of_case: np.ndarray
    case_bad: np.ndarray
    """Per interaction: whether its case was a bad experience."""
    case_contacts: np.ndarray
    case_resolved: np.ndarray
    bad_experience: np.ndarray
    """Per customer: had at least one bad case."""
    bad_case_end: np.ndarray
    churned: np.ndarray
    churn_t: np.ndarray
    """Per customer: when they stop buying (inf when they do not churn)."""


def _position_in_group(sizes: np.ndarray) -> np.ndarray:
    """0, 1, 2, … inside each run of a repeat(arange, sizes)."""
    starts = np.repeat(np.cumsum(sizes) - sizes, sizes)
    return np.arange(int(sizes.sum())) - starts


def simulate_service(rng: np.random.Generator, people: People, cfg: SimulationConfig) -> Service:
    """Cases at random times in each customer's active window, then churn from their outcome."""
    n = people.n_customers
    horizon = cfg.horizon
    a0 = people.active_from()
    span = np.maximum(horizon - a0, 0.0)
    n_cases = rng.poisson(CASES_PER_YEAR * span / (365 * DAY))
    c_person = np.repeat(np.arange(n), n_cases)
    n_c = c_person.size
    c_t = a0[c_person] + rng.random(n_c) * span[c_person]
    hard = rng.random(n_c) < 0.25
    contacts = np.minimum(np.where(hard, 1 + rng.poisson(1.4, n_c), 1 + (rng.random(n_c) < 0.12)), 6)
    c_resolved = np.where(hard, rng.random(n_c) < 0.55, rng.random(n_c) < 0.97)
    c_topic = rng.integers(0, len(TOPICS), n_c)

    i_case = np.repeat(np.arange(n_c), contacts)
    k = _position_in_group(contacts)
    n_i = i_case.size
    gap = np.where(k == 0, 0.0, rng.exponential(1.5 * DAY, n_i) + 600)
    within = np.cumsum(gap) - np.repeat(np.cumsum(gap)[np.cumsum(contacts) - contacts], contacts)
    i_t = np.floor(c_t[i_case] + within)
    i_person = c_person[i_case]
    i_hard = hard[i_case]
    has_store = people.home_store[i_person] >= 0
    chan = rng.choice(4, size=n_i, p=[0.40, 0.30, 0.25, 0.05])
    chan = np.where((chan == 3) & ~has_store, 0, chan)
    transfers = np.where(i_hard, rng.poisson(0.8, n_i), rng.poisson(0.08, n_i))
    wait_mean = np.asarray([240.0, 70.0, 4 * 3600.0, 150.0])[chan] * np.where(i_hard, 1.6, 1.0)
    wait = np.round(rng.exponential(1.0, n_i) * wait_mean)
    handle = np.round((120 + rng.exponential(360, n_i)) * (1 + 0.5 * transfers))
    last = k == contacts[i_case] - 1
    resolved = c_resolved[i_case] & last

    transfers_per_case = np.bincount(i_case, weights=transfers, minlength=n_c)
    c_bad = (~c_resolved) | (contacts >= 3) | (transfers_per_case >= 2)
    c_end = np.full(n_c, -np.inf)
    np.maximum.at(c_end, i_case, i_t)

    bad_end = np.full(n, np.inf)
    np.minimum.at(bad_end, c_person[c_bad], c_end[c_bad])
    bad_person = np.isfinite(bad_end)
    base = np.vectorize(BASELINE_CHURN.get)(people.segment).astype(float)
    churn_bad = bad_person & (rng.random(n) < CHURN_AFTER_BAD_CASE)
    churn_base = (~churn_bad) & (rng.random(n) < base)
    churn_t = np.full(n, np.inf)
    churn_t[churn_bad] = bad_end[churn_bad] + rng.uniform(3, 30, int(churn_bad.sum())) * DAY
    churn_t[churn_base] = a0[churn_base] + rng.uniform(0.15, 1.0, int(churn_base.sum())) * span[churn_base]
    churn_t[churn_t >= horizon] = np.inf
    churned = np.isfinite(churn_t)

    keep = (c_t[i_case] < churn_t[i_person]) & (i_t < horizon)
    agents = np.char.add("AG", np.char.zfill(rng.integers(1, 40, n_i).astype(str), 3)).astype(object)
    return Service(
        person=i_person[keep], case=i_case[keep], t=i_t[keep],
        channel=np.asarray(CHANNELS, dtype=object)[chan[keep]],
        topic=np.asarray(TOPICS, dtype=object)[c_topic[i_case[keep]]], agent=agents[keep],
        transfers=transfers[keep], resolved=resolved[keep], wait_seconds=wait[keep],
        handle_seconds=handle[keep], last_of_case=last[keep], case_bad=c_bad[i_case[keep]],
        case_contacts=contacts[i_case[keep]], case_resolved=c_resolved[i_case[keep]],
        bad_experience=bad_person & (bad_end < horizon), bad_case_end=bad_end,
        churned=churned, churn_t=churn_t,
    )
