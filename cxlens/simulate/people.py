"""Who the retailer's customers and anonymous visitors are, and their latent traits.

Persons 0..N-1 are customers (one CRM record each); persons N.. are anonymous web visitors who
never log in. Traits drawn here (segment, loyalty, web-shop account, devices, home store) drive
every later behaviour, so the exports agree with one another.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cxlens.simulate import catalog as cat
from cxlens.simulate.config import BARGAIN, DAY, EMERGING, HVC, SHARED_EMAIL, SimulationConfig
from cxlens.simulate.formats import concat, hex_ids, padded

ACQUISITION = ("organic_search", "paid_search", "social", "referral", "store", "email")
_ACQ_P = (0.30, 0.20, 0.15, 0.10, 0.20, 0.05)
_ACQ_COST = (0.0, 38.0, 24.0, 12.0, 6.0, 3.0)


@dataclass(frozen=True)
class People:
    """Arrays indexed by person (customers first, then visitors) and by device."""

    n_customers: int
    n_visitors: int
    segment: np.ndarray
    crm_id: np.ndarray
    first_name: np.ndarray
    last_name: np.ndarray
    gender: np.ndarray
    birth_date: np.ndarray
    city: np.ndarray
    email: np.ndarray
    """Normalized address ('' for visitors); the shared placeholder for `shared_email` persons."""
    shared_email: np.ndarray
    phone: np.ndarray
    """Ten national digits, '' when the customer gave none."""
    loyalty_id: np.ndarray
    member: np.ndarray
    enrolled_t: np.ndarray
    webshop_id: np.ndarray
    has_account: np.ndarray
    account_t: np.ndarray
    signup_t: np.ndarray
    acquisition: np.ndarray
    acquisition_cost: np.ndarray
    home_store: np.ndarray
    email_optin: np.ndarray
    favourites: np.ndarray
    """Category preference order per person (N x categories)."""
    device_person: np.ndarray
    device_anon: np.ndarray
    device_app: np.ndarray
    device_start: np.ndarray
    device_count: np.ndarray

    @property
    def n(self) -> int:
        return self.n_customers + self.n_visitors

    def active_from(self) -> np.ndarray:
        """When each customer starts buying: sign-up, or the period start for existing customers."""
        return np.maximum(self.signup_t[: self.n_customers], 0.0)


def build_people(rng: np.random.Generator, cfg: SimulationConfig) -> People:
    """Draw the population; everything is vectorized over persons."""
    n = cfg.customers
    v = int(round(n * 0.6))
    total = n + v
    segment = rng.choice(4, size=n, p=[0.61, 0.25, 0.10, 0.04])
    female = rng.random(n) < 0.52
    first = np.where(
        female,
        np.asarray(cat.FIRST_NAMES_F, dtype=object)[rng.integers(0, len(cat.FIRST_NAMES_F), n)],
        np.asarray(cat.FIRST_NAMES_M, dtype=object)[rng.integers(0, len(cat.FIRST_NAMES_M), n)],
    )
    last = np.asarray(cat.LAST_NAMES, dtype=object)[rng.integers(0, len(cat.LAST_NAMES), n)]
    gender = np.where(rng.random(n) < 0.03, "U", np.where(female, "F", "M")).astype(object)
    age_days = rng.integers(18 * 365, 80 * 365, n)
    birth = cfg.epoch.astype("datetime64[D]") - age_days.astype("timedelta64[D]")
    city = rng.integers(0, len(cat.CITIES), n)

    existing = rng.random(n) < 0.7
    signup_t = np.where(existing, -rng.uniform(30, 3 * 365, n) * DAY, rng.uniform(0, 0.9, n) * cfg.horizon)
    signup_t = np.floor(signup_t)

    shared = np.zeros(n, dtype=bool)
    n_shared = cfg.shared_users
    member = rng.random(n) < np.where(segment == HVC, 0.8, 0.42)
    has_account = rng.random(n) < np.where((segment == HVC) | (segment == EMERGING), 0.8, 0.62)
    local = np.asarray(cat.STORE_CITIES)
    home_store = np.full(n, -1)
    near = np.isin(city, local)
    home_store[near] = np.searchsorted(local, city[near])
    far_shopper = (~near) & (rng.random(n) < 0.3)
    home_store[far_shopper] = rng.integers(0, len(local), int(far_shopper.sum()))
    pool = np.flatnonzero(~has_account & (home_store >= 0))
    if n_shared and pool.size >= n_shared:
        shared[rng.choice(pool, size=n_shared, replace=False)] = True

    domains = np.asarray(cat.EMAIL_DOMAINS, dtype=object)[rng.integers(0, len(cat.EMAIL_DOMAINS), n)]
    local_part = concat(first, ".", last, np.arange(1, n + 1).astype(str))
    email = np.char.lower(np.char.replace(concat(local_part, "@", domains).astype(str), "'", "")).astype(object)
    email[shared] = SHARED_EMAIL
    phone_pool = rng.choice(7_000_000_000, size=n, replace=False) + 2_010_000_000
    phone = phone_pool.astype(str).astype(object)
    phone[(rng.random(n) < 0.2) & ~shared] = ""

    member_ids = rng.choice(900_000_000, size=n, replace=False) + 100_000_000
    loyalty = np.where(member, concat("L", member_ids.astype(str)), "").astype(object)
    enrolled_t = np.where(member, signup_t + rng.exponential(60, n) * DAY, np.nan)
    shop_numbers = rng.permutation(n) + 1
    webshop_id = np.where(has_account, padded("W", shop_numbers, 6), "").astype(object)
    account_t = np.where(has_account, signup_t + np.where(rng.random(n) < 0.7, 0.0, rng.exponential(40, n) * DAY), np.nan)
    account_t = np.floor(np.minimum(account_t, cfg.horizon - DAY))

    acq = rng.choice(len(ACQUISITION), size=n, p=_ACQ_P)
    acq_cost = np.round(np.asarray(_ACQ_COST)[acq] * rng.uniform(0.6, 1.4, n), 2)
    optin = (~shared) & (rng.random(n) < np.where(segment == HVC, 0.8, 0.65))
    favourites = np.argsort(rng.random((n, len(cat.CATEGORIES))), axis=1)

    n_dev = np.where(has_account, rng.choice([1, 2, 3], size=n, p=[0.5, 0.35, 0.15]), 0)
    n_dev = np.concatenate([n_dev, np.ones(v, dtype=np.int64)])
    device_person = np.repeat(np.arange(total), n_dev)
    n_devices = device_person.size
    device_app = rng.random(n_devices) < 0.3
    device_app[device_person >= n] = False
    device_anon = np.where(device_app, hex_ids(rng, n_devices, "app-"), hex_ids(rng, n_devices, "ck-")).astype(object)
    device_start = np.concatenate([[0], np.cumsum(n_dev)[:-1]])

    def extend(a: np.ndarray, fill: object) -> np.ndarray:
        return np.concatenate([a, np.full(v, fill, dtype=a.dtype)])

    return People(
        n_customers=n, n_visitors=v, segment=segment, crm_id=padded("C", np.arange(1, n + 1), 6),
        first_name=first, last_name=last, gender=gender, birth_date=birth, city=city,
        email=extend(email, ""), shared_email=shared, phone=phone, loyalty_id=loyalty, member=member,
        enrolled_t=enrolled_t, webshop_id=extend(webshop_id, ""), has_account=extend(has_account, False),
        account_t=account_t, signup_t=signup_t, acquisition=np.asarray(ACQUISITION, dtype=object)[acq],
        acquisition_cost=acq_cost, home_store=home_store, email_optin=optin, favourites=favourites,
        device_person=device_person, device_anon=device_anon, device_app=device_app,
        device_start=device_start, device_count=n_dev,
    )
