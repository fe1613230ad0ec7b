"""Orders in the web shop and the stores, with their baskets, coupons, returns and margins.

Online orders are exactly the converting web sessions (web.py), so web-shop orders, purchase
events and the experiment agree. Store receipts come from each customer's store visits plus
anonymous walk-ins. Price sensitivity differs by segment: high-value customers buy more and
pricier items, rarely at sale prices and rarely with coupons (config.COUPON_PROBABILITY,
SALE_ITEM_PROBABILITY, EXTRA_ITEMS_MEAN); emerging high-value customers switch to that behaviour,
with wider category breadth, in the second half of the period.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cxlens.simulate.catalog import PRODUCTS_PER_CATEGORY, Catalog
from cxlens.simulate.config import (
    BARGAIN, COUPON_PROBABILITY, DAY, EMERGING, EXTRA_ITEMS_MEAN, HVC, REGULAR,
    SALE_ITEM_PROBABILITY, SimulationConfig,
)
from cxlens.simulate.people import People
from cxlens.simulate.service import Service
from cxlens.simulate.web import Sessions

ONLINE_COUPONS = (("SAVE10", 0.10), ("WELCOME15", 0.15), ("SPRING20", 0.20))
LOYALTY_COUPON = ("LOYALTY10", 0.10)
STATUSES = ("completed", "returned", "cancelled")
_BREADTH = {REGULAR: 2, BARGAIN: 2, HVC: 5, EMERGING: 1}
_PRICE_SKEW = {REGULAR: 1.0, BARGAIN: 1.6, HVC: 0.55, EMERGING: 1.0}


@dataclass(frozen=True)
class Orders:
    """Order-level arrays (index = order) and line-level arrays (index = line)."""

    person: np.ndarray
    """-1 for anonymous store walk-ins."""
    t: np.ndarray
    store: np.ndarray
    """Store index, -1 for web-shop orders."""
    session: np.ndarray
    loyalty_presented: np.ndarray
    coupon: np.ndarray
    discount: np.ndarray
    gross: np.ndarray
    revenue: np.ndarray
    cost: np.ndarray
    items: np.ndarray
    status: np.ndarray
    effective_segment: np.ndarray
    line_order: np.ndarray
    line_product: np.ndarray
    line_qty: np.ndarray
    line_price: np.ndarray
    line_list_price: np.ndarray


def _lookup(table: dict[int, float], codes: np.ndarray) -> np.ndarray:
    return np.asarray([table[k] for k in range(4)])[codes]


def effective_segment(people: People, person: np.ndarray, t: np.ndarray, cfg: SimulationConfig) -> np.ndarray:
    """Segment whose buying behaviour applies at time t (emerging customers act high-value late)."""
    seg = np.where(person >= 0, people.segment[np.maximum(person, 0)], REGULAR)
    return np.where((seg == EMERGING) & (t >= cfg.horizon / 2), HVC, seg)


def _orders(rng: np.random.Generator, people: People, catalog: Catalog, cfg: SimulationConfig,
            person: np.ndarray, t: np.ndarray, store: np.ndarray, session: np.ndarray,
            presented: np.ndarray) -> Orders:
    """Baskets, coupons and statuses for given order headers (already in time order)."""
    n_o = person.size
    seg = effective_segment(people, person, t, cfg)
    n_lines = 1 + rng.poisson(_lookup(EXTRA_ITEMS_MEAN, seg))
    l_order = np.repeat(np.arange(n_o), n_lines)
    n_l = l_order.size
    l_seg = seg[l_order]
    l_person = person[l_order]
    breadth = _lookup(_BREADTH, l_seg).astype(np.int64)
    slot = np.floor(rng.random(n_l) * breadth).astype(np.int64)
    fav = people.favourites[np.maximum(l_person, 0), np.minimum(slot, people.favourites.shape[1] - 1)]
    category = np.where(l_person >= 0, fav, rng.integers(0, people.favourites.shape[1], n_l))
    rank = np.floor(rng.random(n_l) ** _lookup(_PRICE_SKEW, l_seg) * PRODUCTS_PER_CATEGORY).astype(np.int64)
    product = category * PRODUCTS_PER_CATEGORY + np.minimum(rank, PRODUCTS_PER_CATEGORY - 1)
    qty = rng.choice([1, 2, 3], size=n_l, p=[0.85, 0.12, 0.03])
    list_price = catalog.price[product]
    on_sale = rng.random(n_l) < _lookup(SALE_ITEM_PROBABILITY, l_seg)
    price = np.where(on_sale, np.round(list_price * 0.7, 2), list_price)
    gross = np.round(np.bincount(l_order, weights=qty * price, minlength=n_o), 2)
    cost = np.round(np.bincount(l_order, weights=qty * catalog.unit_cost[product], minlength=n_o), 2)
    items = np.bincount(l_order, weights=qty, minlength=n_o).astype(np.int64)

    uses = rng.random(n_o) < _lookup(COUPON_PROBABILITY, seg)
    which = rng.integers(0, len(ONLINE_COUPONS), n_o)
    pct = np.asarray([p for _, p in ONLINE_COUPONS])[which]
    code = np.asarray([c for c, _ in ONLINE_COUPONS], dtype=object)[which]
    loyal = (store >= 0) & presented
    code = np.where(loyal, LOYALTY_COUPON[0], code)
    pct = np.where(loyal, LOYALTY_COUPON[1], pct)
    coupon = np.where(uses, code, None)
    discount = np.where(uses, np.round(gross * pct, 2), 0.0)
    revenue = np.round(gross - discount, 2)
    r = rng.random(n_o)
    returned_p = np.where(seg == BARGAIN, 0.10, 0.06)
    status = np.where(r < returned_p, 1, np.where((store < 0) & (r > 0.97), 2, 0))
    return Orders(person, t, store, session, presented, coupon, discount, gross, revenue, cost, items,
                  np.asarray(STATUSES, dtype=object)[status], seg, l_order, product, qty, price, list_price)


def simulate_online(rng: np.random.Generator, people: People, catalog: Catalog, sessions: Sessions,
                    cfg: SimulationConfig) -> Orders:
    """One web-shop order per converting session, placed near the session's end."""
    s = np.flatnonzero(sessions.converting)
    t = np.floor(sessions.t[s] + sessions.duration[s] * 0.97)
    order = np.argsort(t, kind="stable")
    s, t = s[order], t[order]
    return _orders(rng, people, catalog, cfg, sessions.person[s], t, np.full(s.size, -1), s,
                   np.zeros(s.size, dtype=bool))


def simulate_store(rng: np.random.Generator, people: People, catalog: Catalog, service: Service,
                   cfg: SimulationConfig) -> Orders:
    """Receipts of customers near a store (card presented by most members) and of walk-ins."""
    n, horizon = people.n_customers, cfg.horizon
    shopper = people.home_store >= 0
    a0 = people.active_from()
    end = np.minimum(service.churn_t, horizon)
    rate = np.where(people.member, 0.022, 0.010) * np.where(people.segment == HVC, 1.8, 1.0)
    n_first = np.where(shopper, rng.poisson(rate * np.maximum(np.minimum(end, horizon / 2) - a0, 0) / DAY), 0)
    late_rate = rate * np.where(people.segment == EMERGING, 2.0, 1.0)
    n_late = np.where(shopper, rng.poisson(late_rate * np.maximum(end - np.maximum(a0, horizon / 2), 0) / DAY), 0)
    p1 = np.repeat(np.arange(n), n_first)
    p2 = np.repeat(np.arange(n), n_late)
    lo = np.concatenate([a0[p1], np.maximum(a0[p2], horizon / 2)])
    hi = np.concatenate([np.minimum(end[p1], horizon / 2), end[p2]])
    person = np.concatenate([p1, p2])
    day = np.floor((lo + rng.random(person.size) * (hi - lo)) / DAY)
    t = day * DAY + rng.uniform(9, 21, person.size) * 3600
    t = np.floor(np.clip(t, lo, hi - 1))
    home = people.home_store[person]
    store = np.where(rng.random(person.size) < 0.9, home, rng.integers(0, catalog.store_id.size, person.size))
    presented = people.member[person] & (rng.random(person.size) < 0.9)

    walk_rate = max(0.5, 6.0 * cfg.customers / 20_000)
    n_walk = rng.poisson(walk_rate, (cfg.days, catalog.store_id.size))
    w_day, w_store = np.nonzero(n_walk)
    reps = n_walk[w_day, w_store]
    w_day, w_store = np.repeat(w_day, reps), np.repeat(w_store, reps)
    w_t = np.floor(w_day * DAY + rng.uniform(9, 21, w_day.size) * 3600)

    person = np.concatenate([person, np.full(w_day.size, -1)])
    t = np.concatenate([t, w_t])
    store = np.concatenate([store, w_store])
    presented = np.concatenate([presented, np.zeros(w_day.size, dtype=bool)])
    order = np.lexsort((store, t))
    return _orders(rng, people, catalog, cfg, person[order], t[order], store[order], np.full(order.size, -1),
                   presented[order])
