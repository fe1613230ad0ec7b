"""Everything one simulation run draws, in the order causes come before their effects."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cxlens.simulate.catalog import Catalog, build_catalog
from cxlens.simulate.commerce import Orders, simulate_online, simulate_store
from cxlens.simulate.config import DAY, HVC, SimulationConfig
from cxlens.simulate.events import WebEvents, expand_events
from cxlens.simulate.formats import padded
from cxlens.simulate.messaging import Campaigns, EmailLog, build_campaigns, simulate_email
from cxlens.simulate.people import People, build_people
from cxlens.simulate.service import Service, simulate_service
from cxlens.simulate.surveys import Surveys, simulate_surveys
from cxlens.simulate.web import Experiment, Sessions, simulate_sessions

STREAMS = ("catalog", "people", "service", "campaigns", "email", "web", "online", "store", "events",
           "surveys", "subscriptions", "exports", "dirt")


@dataclass(frozen=True)
class Subscriptions:
    """Paid membership plan ('Plus'): who, when, and at what monthly fee."""

    person: np.ndarray
    start_t: np.ndarray
    end_t: np.ndarray
    plan: np.ndarray
    mrr: np.ndarray


@dataclass(frozen=True)
class World:
    """The simulated company: people, their behaviour, and the records it leaves behind."""

    cfg: SimulationConfig
    catalog: Catalog
    people: People
    service: Service
    campaigns: Campaigns
    email: EmailLog
    sessions: Sessions
    experiment: Experiment
    online: Orders
    online_ids: np.ndarray
    store: Orders
    store_ids: np.ndarray
    events: WebEvents
    surveys: Surveys
    subscriptions: Subscriptions
    rngs: dict[str, np.random.Generator]


def _subscriptions(rng: np.random.Generator, people: People, service: Service, cfg: SimulationConfig) -> Subscriptions:
    """High-value customers subscribe more; churners cancel within two weeks of churning."""
    n = people.n_customers
    subscribe = rng.random(n) < np.where(people.segment == HVC, 0.30, 0.06)
    start = np.floor(np.maximum(people.signup_t, -400 * DAY) + rng.exponential(90, n) * DAY)
    p = np.flatnonzero(subscribe & (start < cfg.horizon - DAY))
    start = start[p]
    end = np.where(service.churned[p], service.churn_t[p] + rng.uniform(0, 14, p.size) * DAY, np.inf)
    cancel = (~service.churned[p]) & (rng.random(p.size) < 0.08)
    end = np.where(cancel, np.maximum(start, 0) + rng.random(p.size) * (cfg.horizon - np.maximum(start, 0)), end)
    end = np.where((end >= cfg.horizon) | (end <= start), np.nan, np.floor(end))
    family = rng.random(p.size) < 0.25
    return Subscriptions(p, start, end, np.where(family, "Plus Family", "Plus").astype(object),
                         np.where(family, 14.99, 9.99))


def build_world(cfg: SimulationConfig) -> World:
    """Run every behaviour model once, causes first."""
    rngs = cfg.rngs(*STREAMS)
    catalog = build_catalog(rngs["catalog"])
    people = build_people(rngs["people"], cfg)
    service = simulate_service(rngs["service"], people, cfg)
    campaigns = build_campaigns(rngs["campaigns"], cfg)
    email = simulate_email(rngs["email"], people, service, campaigns, cfg)
    sessions, experiment = simulate_sessions(rngs["web"], people, service, campaigns, email, cfg)
    online = simulate_online(rngs["online"], people, catalog, sessions, cfg)
    online_ids = padded("WO-", 1_000_001 + np.arange(online.t.size), 7)
    store = simulate_store(rngs["store"], people, catalog, service, cfg)
    store_ids = padded("R", 1 + np.arange(store.t.size), 8)
    events = expand_events(rngs["events"], people, catalog, campaigns, sessions, online, online_ids)
    surveys = simulate_surveys(rngs["surveys"], people, service, online, cfg)
    subs = _subscriptions(rngs["subscriptions"], people, service, cfg)
    return World(cfg, catalog, people, service, campaigns, email, sessions, experiment, online, online_ids, store,
                 store_ids, events, surveys, subs, rngs)
