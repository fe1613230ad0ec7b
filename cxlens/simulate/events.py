"""Expanding sessions into the analytics tool's event stream (page views to purchases).

Each session becomes a landing page view (carrying referrer and UTM tags), further page and product
views, searches, recommendation impressions and clicks, cart and checkout steps and, when it
converts, a purchase whose value and order id match the web-shop order. Events after the
session's login carry the web-shop customer id next to the device's anonymous id.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cxlens.simulate.catalog import CATEGORIES, Catalog
from cxlens.simulate.commerce import Orders
from cxlens.simulate.formats import concat
from cxlens.simulate.messaging import Campaigns
from cxlens.simulate.people import People
from cxlens.simulate.web import EMAIL, KIOSK_ANONYMOUS_ID, ORGANIC, PAID, REFERRAL, SIGNUP_KIND, SOCIAL, Sessions

EVENT_TYPES = ("page_view", "search", "product_view", "recommendation_shown", "recommendation_clicked",
               "add_to_cart", "checkout_started", "purchase", "signup")
_BANDS = ((0.0, 0.85), (0.02, 0.85), (0.05, 0.88), (0.05, 0.88), (0.3, 0.9), (0.5, 0.9), (0.9, 0.95),
          (0.97, 0.97), (0.1, 0.1))
_PAGES = ("/", "/inspiration", "/stores", "/sale", *(f"/c/{c.lower()}" for c in CATEGORIES))
_QUERIES = ("lamp", "linen duvet", "oak table", "vase", "towels", "planter", "storage box", "mug")
_REFERRERS = ("https://www.homeblog.example/best-of", "https://news.example.com/deals", "https://forum.example.org/t/42")
_FIXED_PAGE = {5: "/cart", 6: "/checkout", 7: "/checkout/thank-you", 8: "/account/signup"}


@dataclass(frozen=True)
class WebEvents:
    """One row per event, in time order; `person` is kept for the truth, never written."""

    person: np.ndarray
    session: np.ndarray
    t: np.ndarray
    event: np.ndarray
    anonymous_id: np.ndarray
    user_id: np.ndarray
    platform: np.ndarray
    page: np.ndarray
    referrer: np.ndarray
    utm_source: np.ndarray
    utm_medium: np.ndarray
    utm_campaign: np.ndarray
    campaign_id: np.ndarray
    variant: np.ndarray
    personalized: np.ndarray
    value: np.ndarray
    props: np.ndarray


def expand_events(rng: np.random.Generator, people: People, catalog: Catalog, camp: Campaigns,
                  sessions: Sessions, online: Orders, order_ids: np.ndarray) -> WebEvents:
    """All events of all sessions, vectorized by event type."""
    m = sessions.t.size
    conv = sessions.converting
    n_prod = rng.poisson(0.6, m) + conv
    shown = rng.binomial(n_prod, 0.5)
    click_p = np.where(sessions.arm == "personalized", 0.2, 0.14)
    cart = np.where(conv, 1 + rng.poisson(0.3, m), rng.random(m) < 0.08)
    counts = (
        1 + rng.poisson(0.5, m), (rng.random(m) < 0.2).astype(np.int64), n_prod, shown,
        rng.binomial(shown, click_p), cart, (conv | ((cart > 0) & (rng.random(m) < 0.3))).astype(np.int64),
        conv.astype(np.int64), (sessions.kind == SIGNUP_KIND).astype(np.int64),
    )
    sess = np.concatenate([np.repeat(np.arange(m), c) for c in counts])
    etype = np.concatenate([np.full(int(np.sum(c)), k) for k, c in enumerate(counts)])
    lo = np.asarray([b[0] for b in _BANDS])[etype]
    hi = np.asarray([b[1] for b in _BANDS])[etype]
    frac = lo + rng.random(sess.size) * (hi - lo)
    first_pv = np.zeros(sess.size, dtype=bool)
    first_pv[np.cumsum(np.r_[0, counts[0][:-1]])] = True
    frac[first_pv] = 0.0
    t = np.floor(sessions.t[sess] + frac * sessions.duration[sess])
    order = np.lexsort((etype, frac, sess, t))
    sess, etype, frac, t, first_pv = sess[order], etype[order], frac[order], t[order], first_pv[order]
    n_e = sess.size

    person = sessions.person[sess]
    device = sessions.device[sess]
    anon = np.where(device >= 0, people.device_anon[np.maximum(device, 0)], KIOSK_ANONYMOUS_ID)
    last_frac = np.zeros(m)
    np.maximum.at(last_frac, sess, frac)
    login = np.minimum(sessions.login_frac, last_frac)[sess]
    logged = ~np.isnan(login) & (frac >= np.nan_to_num(login, nan=2.0))
    user = np.where(logged, people.webshop_id[person], None)
    platform = np.where((device >= 0) & people.device_app[np.maximum(device, 0)], "app", "web").astype(object)

    product = rng.integers(0, catalog.n_products, n_e)
    page = np.asarray(_PAGES, dtype=object)[rng.integers(0, len(_PAGES), n_e)]
    is_product = (etype >= 2) & (etype <= 5)
    page = np.where(is_product, concat("/p/", catalog.sku[product]), page)
    query = np.asarray(_QUERIES, dtype=object)[rng.integers(0, len(_QUERIES), n_e)]
    page = np.where(etype == 1, concat("/search?q=", np.char.replace(query.astype(str), " ", "+")), page)
    for k, fixed in _FIXED_PAGE.items():
        page = np.where(etype == k, fixed, page)
    page = np.where(first_pv & (sessions.source[sess] == EMAIL), "/", page)

    src = np.where(first_pv, sessions.source[sess], -1)
    referrer = np.full(n_e, None, dtype=object)
    referrer[(src == ORGANIC) | (src == PAID)] = "https://www.google.com/"
    referrer[src == SOCIAL] = "https://www.instagram.com/"
    ref_mask = src == REFERRAL
    referrer[ref_mask] = np.asarray(_REFERRERS, dtype=object)[rng.integers(0, len(_REFERRERS), int(ref_mask.sum()))]
    campaign = np.where(first_pv, sessions.campaign[sess], -1)
    tagged = campaign >= 0
    utm_source = np.full(n_e, None, dtype=object)
    utm_medium = np.full(n_e, None, dtype=object)
    utm_source[tagged & (src == PAID)], utm_medium[tagged & (src == PAID)] = "google", "cpc"
    utm_source[tagged & (src == SOCIAL)], utm_medium[tagged & (src == SOCIAL)] = "instagram", "paid_social"
    utm_source[tagged & (src == EMAIL)], utm_medium[tagged & (src == EMAIL)] = "newsletter", "email"
    utm_campaign = np.where(tagged, camp.utm[np.maximum(campaign, 0)], None)
    campaign_id = np.where(tagged, camp.campaign_id[np.maximum(campaign, 0)], None)

    rec = (etype == 3) | (etype == 4)
    arm = sessions.arm[sess]
    variant = np.where(rec & (arm != ""), arm, None)
    personalized = np.where(rec, arm == "personalized", None)

    order_of_session = np.full(m, -1)
    order_of_session[online.session] = np.arange(online.session.size)
    o = order_of_session[sess]
    is_purchase = etype == 7
    value = np.full(n_e, np.nan)
    value[is_purchase] = online.revenue[o[is_purchase]]
    value[etype == 5] = catalog.price[product[etype == 5]]
    props = np.full(n_e, None, dtype=object)
    props[is_product] = concat('{"sku": "', catalog.sku[product[is_product]], '"}')
    props[etype == 1] = concat('{"query": "', query[etype == 1], '"}')
    props[is_purchase] = concat('{"order_id": "', order_ids[o[is_purchase]], '", "items": ',
                                online.items[o[is_purchase]].astype(str), "}")
    return WebEvents(person, sess, t, np.asarray(EVENT_TYPES, dtype=object)[etype], anon, user, platform, page,
                     referrer, utm_source, utm_medium, utm_campaign, campaign_id, variant, personalized, value, props)
