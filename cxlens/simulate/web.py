"""Web and app sessions, the personalization experiment, and which sessions end in a purchase.

Customers with a web-shop account browse on 1-3 devices (cookie or app install id). A session
logs in (events after the login carry the web-shop customer id) when it buys, on app devices, on
each device at least once, and otherwise half the time. The experiment `perso-2025` assigns every
account that exists at mid-period to `personalized` or `holdout`; personalization multiplies the
purchase probability of a session by 1 + PERSONALIZATION_LIFT only for units with at least
PERSONALIZATION_MIN_PRIOR_ORDERS web-shop orders before their assignment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cxlens.simulate.config import (
    BARGAIN, DAY, EMERGING, HVC, PERSONALIZATION_LIFT, PERSONALIZATION_MIN_PRIOR_ORDERS,
    PERSONALIZED_SHARE, SimulationConfig,
)
from cxlens.simulate.messaging import Campaigns, EmailLog
from cxlens.simulate.people import People
from cxlens.simulate.service import Service

SOURCES = ("direct", "organic", "paid_search", "social", "referral", "email")
DIRECT, ORGANIC, PAID, SOCIAL, REFERRAL, EMAIL = range(6)
REGULAR_KIND, EMAIL_KIND, SIGNUP_KIND, KIOSK_KIND, VISITOR_KIND = range(5)
KIOSK_ANONYMOUS_ID = "kiosk-S01-01"
"""The in-store kiosk's browser: many customers log in on it (a shared identifier)."""
_HOUR_P = np.array([1, 1, 1, 1, 1, 2, 3, 5, 6, 7, 7, 7, 8, 8, 7, 7, 7, 8, 9, 10, 10, 9, 6, 3], dtype=float)
_SESSION_RATE = {0: 0.09, BARGAIN: 0.10, HVC: 0.16, EMERGING: 0.09}
_CONVERSION = {0: 0.08, BARGAIN: 0.07, HVC: 0.13, EMERGING: 0.08}


@dataclass(frozen=True)
class Experiment:
    """Units of `perso-2025` (customers with an account at mid-period) and their arm."""

    person: np.ndarray
    personalized: np.ndarray
    assigned_t: np.ndarray
    prior_orders: np.ndarray
    in_segment: np.ndarray
    start_t: float


@dataclass(frozen=True)
class Sessions:
    """One row per session, in time order."""

    person: np.ndarray
    device: np.ndarray
    """Index into People.device_* arrays; -1 for the shared kiosk."""
    kind: np.ndarray
    t: np.ndarray
    duration: np.ndarray
    source: np.ndarray
    campaign: np.ndarray
    converting: np.ndarray
    login_frac: np.ndarray
    """Fraction of the session after which events carry the customer id (NaN: never logs in)."""
    arm: np.ndarray
    """Experiment arm in effect during the session ('' outside the experiment)."""


def _uniform_in(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return lo + rng.random(lo.size) * np.maximum(hi - lo, 0.0)


def _time_of_day(rng: np.random.Generator, t: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Move times to a realistic hour of the same day, unless that leaves the allowed window."""
    hour = rng.choice(24, size=t.size, p=_HOUR_P / _HOUR_P.sum())
    moved = np.floor(t / DAY) * DAY + hour * 3600 + rng.random(t.size) * 3600
    return np.floor(np.where((moved >= lo) & (moved < hi), moved, t))


def simulate_sessions(rng: np.random.Generator, people: People, service: Service, camp: Campaigns,
                      email: EmailLog, cfg: SimulationConfig) -> tuple[Sessions, Experiment]:
    """Draw sessions of every kind, assign the experiment, then decide which sessions convert."""
    n, horizon = people.n_customers, cfg.horizon
    acc = people.has_account[:n]
    seg = people.segment
    w0 = np.where(acc, np.maximum(people.account_t, 0.0), horizon)
    w1 = np.where(acc, np.minimum(service.churn_t, horizon), horizon)
    span_days = np.maximum(w1 - w0, 0.0) / DAY
    rate = np.vectorize(_SESSION_RATE.get)(seg) * rng.lognormal(0, 0.4, n)
    n_reg = rng.poisson(rate * span_days)
    half = horizon / 2
    e_lo = np.maximum(w0, half)
    n_extra = np.where(seg == EMERGING, rng.poisson(0.10 * np.maximum(w1 - e_lo, 0.0) / DAY), 0)

    p_reg = np.repeat(np.arange(n), n_reg)
    t_reg = _time_of_day(rng, _uniform_in(rng, w0[p_reg], w1[p_reg]), w0[p_reg], w1[p_reg])
    p_ext = np.repeat(np.arange(n), n_extra)
    t_ext = _time_of_day(rng, _uniform_in(rng, e_lo[p_ext], w1[p_ext]), e_lo[p_ext], w1[p_ext])
    click_ok = acc[email.click_person]
    p_mail, t_mail = email.click_person[click_ok], email.click_t[click_ok]
    new_acc = acc & (people.account_t[:n] >= 0) & (people.account_t[:n] < service.churn_t)
    p_sign = np.flatnonzero(new_acc)
    t_sign = people.account_t[:n][p_sign]
    kiosk_pool = np.flatnonzero(acc & (people.home_store == 0) & (span_days > 7))
    n_kiosk = min(cfg.shared_users, kiosk_pool.size) if cfg.shared_users else 0
    kiosk_people = rng.choice(kiosk_pool, size=n_kiosk, replace=False) if n_kiosk else np.zeros(0, dtype=np.int64)
    p_kiosk = np.repeat(kiosk_people, rng.integers(1, 3, n_kiosk))
    t_kiosk = np.floor(_uniform_in(rng, w0[p_kiosk], w1[p_kiosk]) // DAY * DAY + rng.uniform(10, 19, p_kiosk.size) * 3600)
    t_kiosk = np.clip(t_kiosk, w0[p_kiosk], w1[p_kiosk] - 1)
    visitors = np.arange(n, people.n)
    p_vis = np.repeat(visitors, 1 + rng.poisson(1.5, visitors.size))
    t_vis = _time_of_day(rng, rng.random(p_vis.size) * horizon, np.zeros(p_vis.size), np.full(p_vis.size, horizon))

    person = np.concatenate([p_reg, p_ext, p_mail, p_sign, p_kiosk, p_vis])
    t = np.concatenate([t_reg, t_ext, t_mail, t_sign, t_kiosk, t_vis])
    kind = np.concatenate([np.full(p_reg.size + p_ext.size, REGULAR_KIND), np.full(p_mail.size, EMAIL_KIND),
                           np.full(p_sign.size, SIGNUP_KIND), np.full(p_kiosk.size, KIOSK_KIND),
                           np.full(p_vis.size, VISITOR_KIND)])
    campaign = np.concatenate([np.full(p_reg.size + p_ext.size, -1), email.click_campaign[click_ok],
                               np.full(p_sign.size + p_kiosk.size + p_vis.size, -1)])
    order = np.lexsort((person, t))
    person, t, kind, campaign = person[order], t[order], kind[order], campaign[order]
    m = person.size

    dev_pick = people.device_start[person] + np.floor(rng.random(m) * people.device_count[person]).astype(np.int64)
    device = np.where(kind == SIGNUP_KIND, people.device_start[person], dev_pick)
    device = np.where(kind == KIOSK_KIND, -1, device)
    source = rng.choice(5, size=m, p=[0.35, 0.27, 0.15, 0.13, 0.10])
    source = np.where(kind == EMAIL_KIND, EMAIL, np.where(kind == KIOSK_KIND, DIRECT, source))
    paid = camp.active("paid_search", t)
    social = camp.active("social", t)
    campaign = np.where(source == PAID, paid, np.where(source == SOCIAL, social, campaign))
    source = np.where((source == PAID) & (paid < 0), ORGANIC, source)
    source = np.where((source == SOCIAL) & (social < 0), REFERRAL, source)

    exp = _assign(rng, people, person, t, kind, seg, cfg)
    unit_of = np.full(people.n, -1)
    unit_of[exp.person] = np.arange(exp.person.size)
    u = unit_of[person]
    is_cust = person < n
    base = np.zeros(m)
    seg_s = seg[np.minimum(person, n - 1)]
    base[is_cust] = np.vectorize(_CONVERSION.get)(seg_s[is_cust])
    base = np.where(is_cust & (seg_s == EMERGING) & (t >= half), _CONVERSION[HVC], base)
    base = np.where((kind == KIOSK_KIND) | (kind == VISITOR_KIND), 0.0, base)
    draw = rng.random(m)
    assigned = np.where(u >= 0, exp.assigned_t[np.maximum(u, 0)], np.inf)
    pre = t < assigned
    prior = np.bincount(u[pre & (u >= 0) & (draw < base)], minlength=exp.person.size)
    in_segment = prior >= PERSONALIZATION_MIN_PRIOR_ORDERS
    treated = (~pre) & (u >= 0) & exp.personalized[np.maximum(u, 0)] & in_segment[np.maximum(u, 0)]
    converting = draw < base * np.where(treated, 1 + PERSONALIZATION_LIFT, 1.0)
    exp = Experiment(exp.person, exp.personalized, exp.assigned_t, prior, in_segment, exp.start_t)
    arm = np.where((~pre) & (u >= 0), np.where(exp.personalized[np.maximum(u, 0)], "personalized", "holdout"), "")

    login = np.where(rng.random(m) < 0.45, rng.uniform(0.05, 0.8, m), np.nan)
    login = np.where(converting, rng.uniform(0.05, 0.6, m), login)
    login = np.where(kind == KIOSK_KIND, rng.uniform(0.0, 0.3, m), login)
    login = np.where(kind == SIGNUP_KIND, 0.1, login)
    login = np.where((device >= 0) & people.device_app[np.maximum(device, 0)], 0.0, login)
    login = np.where(kind == VISITOR_KIND, np.nan, login)
    first_of_device = np.zeros(m, dtype=bool)
    by_dev = np.lexsort((t, device))
    dev_sorted = device[by_dev]
    first_of_device[by_dev[np.r_[True, dev_sorted[1:] != dev_sorted[:-1]]]] = True
    force = first_of_device & is_cust & (device >= 0) & np.isnan(login)
    login = np.where(force, rng.uniform(0.05, 0.8, m), login)
    duration = np.floor(rng.exponential(420, m) + 20 + np.where(converting, 300, 0))
    return Sessions(person, device, kind, t, duration, source, campaign, converting, login, arm), exp


def _assign(rng: np.random.Generator, people: People, person: np.ndarray, t: np.ndarray, kind: np.ndarray,
            seg: np.ndarray, cfg: SimulationConfig) -> Experiment:
    """Every account existing at mid-period becomes a unit, assigned during its first day."""
    n = people.n_customers
    start = np.floor(cfg.days / 2) * DAY
    units = np.flatnonzero(people.has_account[:n] & (people.account_t[:n] < start))
    personalized = rng.random(units.size) < PERSONALIZED_SHARE
    assigned = np.floor(start + rng.uniform(0, DAY, units.size))
    empty = np.zeros(units.size, dtype=np.int64)
    return Experiment(units, personalized, assigned, empty, empty.astype(bool), start)
