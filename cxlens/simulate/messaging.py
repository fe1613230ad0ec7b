"""Marketing campaigns and the email tool's activity log.

A weekly newsletter alternates generic and personalized content; personalized content gets
EMAIL_PERSONALIZED_CTR_LIFT more clicks per message sent (opens are unaffected, so the lift sits in
clicks per open). Paid search and social campaigns run month by month and bring web sessions.
Clicks on newsletter links open a web session tagged with the campaign (see web.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cxlens.simulate.config import (
    DAY, EMAIL_CLICK_PER_OPEN, EMAIL_PERSONALIZED_CTR_LIFT, HVC, SimulationConfig,
)
from cxlens.simulate.formats import concat, padded
from cxlens.simulate.people import People
from cxlens.simulate.service import Service

_THEMES = ("Fresh picks", "Weekend edit", "Home refresh", "Cosy corners", "Table talk", "New arrivals")


@dataclass(frozen=True)
class Campaigns:
    """Every campaign: newsletters first, then paid media (index = position in these arrays)."""

    campaign_id: np.ndarray
    name: np.ndarray
    channel: np.ndarray
    personalized: np.ndarray
    content_id: np.ndarray
    cost: np.ndarray
    start_t: np.ndarray
    end_t: np.ndarray
    utm: np.ndarray
    n_email: int

    def active(self, channel: str, t: np.ndarray) -> np.ndarray:
        """Index of the campaign of `channel` running at each time (-1 when none)."""
        idx = np.flatnonzero(self.channel == channel)
        starts = self.start_t[idx]
        pos = np.searchsorted(starts, t, side="right") - 1
        ok = (pos >= 0) & (t < self.end_t[idx][np.clip(pos, 0, None)])
        return np.where(ok, idx[np.clip(pos, 0, None)], -1)


@dataclass(frozen=True)
class EmailLog:
    """One row per email-tool activity (sent, opened, clicked, unsubscribed)."""

    person: np.ndarray
    campaign: np.ndarray
    activity: np.ndarray
    t: np.ndarray
    variant: np.ndarray
    click_person: np.ndarray
    click_campaign: np.ndarray
    click_t: np.ndarray


def build_campaigns(rng: np.random.Generator, cfg: SimulationConfig) -> Campaigns:
    """Weekly newsletters (odd weeks personalized) and monthly paid search / social flights."""
    n_email = max(1, (cfg.days - 3) // 7)
    e_start = (3 + 7 * np.arange(n_email)) * DAY + 9 * 3600.0
    e_pers = np.arange(n_email) % 2 == 1
    themes = np.asarray(_THEMES, dtype=object)[np.arange(n_email) % len(_THEMES)]
    e_name = np.where(e_pers, concat(themes, ", picked for you #", np.arange(1, n_email + 1).astype(str)),
                      concat(themes, " newsletter #", np.arange(1, n_email + 1).astype(str)))
    n_month = int(np.ceil(cfg.days / 30))
    m_start = np.arange(n_month) * 30 * DAY
    m_end = np.minimum(m_start + 30 * DAY, cfg.horizon)
    ids = np.concatenate([padded("CMP-E", np.arange(1, n_email + 1), 3), padded("CMP-S", np.arange(1, n_month + 1), 3),
                          padded("CMP-P", np.arange(1, n_month + 1), 3)])
    names = np.concatenate([e_name, concat("Search always-on ", np.arange(1, n_month + 1).astype(str)),
                            concat("Social \"home\" flight ", np.arange(1, n_month + 1).astype(str))])
    channel = np.asarray(["email"] * n_email + ["paid_search"] * n_month + ["social"] * n_month, dtype=object)
    personalized = np.concatenate([e_pers, np.zeros(2 * n_month, dtype=bool)])
    content = concat(ids, np.where(personalized, "-P", "-G"))
    cost = np.round(np.concatenate([np.where(e_pers, 900.0, 500.0) * rng.uniform(0.9, 1.1, n_email),
                                    rng.uniform(9_000, 14_000, n_month), rng.uniform(5_000, 8_000, n_month)]), 2)
    scale = cfg.customers / 20_000
    cost[n_email:] = np.round(cost[n_email:] * scale, 2)
    start = np.concatenate([e_start, m_start, m_start])
    end = np.concatenate([e_start + 7 * DAY, m_end, m_end])
    utm = np.char.lower(np.char.replace(np.char.replace(names.astype(str), " ", "-"), ",", "")).astype(object)
    utm = np.char.replace(np.char.replace(utm.astype(str), '"', ""), "#", "").astype(object)
    return Campaigns(ids, names, channel, personalized, content, cost, start, end, utm, n_email)


def simulate_email(rng: np.random.Generator, people: People, service: Service, camp: Campaigns,
                   cfg: SimulationConfig) -> EmailLog:
    """Sends to opted-in customers, then opens, clicks and unsubscribes per message."""
    n = people.n_customers
    tc = camp.start_t[: camp.n_email]
    shape = (camp.n_email, n)
    eligible = people.email_optin[None, :] & (people.signup_t[None, :] <= tc[:, None])
    eligible &= rng.random(shape) < 0.45
    after_bad = tc[:, None] > service.bad_case_end[None, :]
    unsub_draw = eligible & (rng.random(shape) < np.where(after_bad, 0.02, 0.004))
    first_unsub = np.where(unsub_draw.any(axis=0), unsub_draw.argmax(axis=0), camp.n_email)
    row = np.arange(camp.n_email)[:, None]
    sent = eligible & (row <= first_unsub[None, :])
    unsub = sent & (row == first_unsub[None, :])
    churned_now = tc[:, None] > service.churn_t[None, :]
    p_open = np.where(people.segment == HVC, 0.32, 0.22)[None, :] * np.where(churned_now, 0.45, 1.0)
    opened = sent & ((rng.random(shape) < p_open) | unsub)
    p_click = EMAIL_CLICK_PER_OPEN * np.where(camp.personalized[: camp.n_email], 1 + EMAIL_PERSONALIZED_CTR_LIFT, 1.0)
    clicked = opened & ~unsub & (rng.random(shape) < p_click[:, None])

    parts = []
    for activity, mask in (("Sent", sent), ("Opened", opened), ("Clicked", clicked), ("Unsubscribed", unsub)):
        j, p = np.nonzero(mask)
        parts.append((activity, j, p))
    j_s, p_s = parts[0][1], parts[0][2]
    sent_at = np.zeros(shape)
    sent_at[j_s, p_s] = tc[j_s] + np.floor(rng.uniform(0, 2 * 3600, j_s.size))
    open_at = sent_at + np.floor(rng.exponential(6 * 3600, shape)) + 30
    click_at = open_at + np.floor(rng.exponential(300, shape)) + 5
    unsub_at = open_at + np.floor(rng.exponential(120, shape)) + 5
    times = {"Sent": sent_at, "Opened": open_at, "Clicked": click_at, "Unsubscribed": unsub_at}
    variant_grid = np.where(rng.random(shape) < 0.5, "A", "B").astype(object)

    person = np.concatenate([p for _, _, p in parts])
    campaign = np.concatenate([j for _, j, _ in parts])
    activity = np.concatenate([np.full(j.size, a, dtype=object) for a, j, _ in parts])
    t = np.concatenate([times[a][j, p] for a, j, p in parts])
    variant = variant_grid[campaign, person]
    keep = t < cfg.horizon
    order = np.lexsort((person[keep], t[keep]))
    j_c, p_c = parts[2][1], parts[2][2]
    c_t = click_at[j_c, p_c]
    ok = (c_t < cfg.horizon) & (c_t < service.churn_t[p_c])
    return EmailLog(
        person=person[keep][order], campaign=campaign[keep][order], activity=activity[keep][order],
        t=t[keep][order], variant=variant[keep][order],
        click_person=p_c[ok], click_campaign=j_c[ok], click_t=c_t[ok],
    )
