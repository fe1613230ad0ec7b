"""Exports of operations: store door counters and the finance team's cost ledger."""

from __future__ import annotations

import numpy as np

from cxlens.simulate.config import DAY
from cxlens.simulate.exports_sales import DMY
from cxlens.simulate.formats import format_time
from cxlens.simulate.writer import DirtSpec, Export
from cxlens.simulate.world import World

SERVICE_COST_PER_MINUTE = 0.90
PERSONALIZATION_PLATFORM_MONTHLY = 4_000.0
PERSONALIZED_CONTENT_COST = 400.0


def store_traffic(w: World, rng: np.random.Generator) -> Export:
    """Daily door-counter visitors per store: buyers are roughly a fifth of visitors."""
    o, days, n_s = w.store, w.cfg.days, w.catalog.store_id.size
    receipts = np.zeros((days, n_s))
    np.add.at(receipts, (np.floor(o.t / DAY).astype(np.int64), o.store), 1)
    visitors = np.round(receipts / 0.22 * rng.uniform(0.9, 1.1, receipts.shape) + rng.poisson(3, receipts.shape))
    day, store = np.meshgrid(np.arange(days), np.arange(n_s), indexing="ij")
    cols = {
        "StoreCode": w.catalog.store_id[store.ravel()], "Date": format_time(w.cfg, day.ravel() * DAY, "%Y-%m-%d"),
        "Footfall": visitors.ravel().astype(np.int64),
    }
    mapping = {"store_id": "StoreCode", "day": "Date", "visitors": "Footfall"}
    dirt = (
        DirtSpec("day", "Date", "bad_date", ("2025-13-45", "not a date")),
        DirtSpec("visitors", "Footfall", "bad_integer", ("12.5k", "many")),
    )
    return Export("store_traffic.csv", "store_traffic", None, cols, mapping, np.full(days * n_s, -1), dirt=dirt,
                  duplicate_rate=0.003)


def costs(w: World, rng: np.random.Generator) -> Export:
    """Cost ledger: acquisition by channel, personalization platform and content, media, service time."""
    p, c, s, cfg = w.people, w.campaigns, w.service, w.cfg
    n = p.n_customers
    new = (p.signup_t >= 0) & (p.acquisition_cost > 0)
    acq_key = np.floor(p.signup_t[new] / DAY).astype(np.int64) * 100 + np.unique(p.acquisition, return_inverse=True)[1][new]
    keys, inverse = np.unique(acq_key, return_inverse=True)
    acq_amount = np.bincount(inverse, weights=p.acquisition_cost[new])
    channels = np.unique(p.acquisition)
    rows = [(keys // 100 * DAY, acq_amount, "Acquisition", channels[keys % 100], np.full(keys.size, None, dtype=object))]
    months = np.arange(0, cfg.days, 30) * DAY
    rows.append((months, np.full(months.size, round(PERSONALIZATION_PLATFORM_MONTHLY * max(n, 2000) / 20_000, 2)),
                 "Personalization", np.full(months.size, "web", dtype=object), np.full(months.size, None, dtype=object)))
    pe = np.flatnonzero(c.personalized)
    rows.append((c.start_t[pe], np.full(pe.size, PERSONALIZED_CONTENT_COST), "Personalization",
                 c.channel[pe], c.campaign_id[pe]))
    em = np.flatnonzero(c.channel == "email")
    rows.append((c.start_t[em], c.cost[em], "Media", c.channel[em], c.campaign_id[em]))
    paid = np.flatnonzero(c.channel != "email")
    n_days = np.maximum(np.round((c.end_t[paid] - c.start_t[paid]) / DAY), 1).astype(np.int64)
    idx = np.repeat(paid, n_days)
    offset = np.arange(idx.size) - np.repeat(np.cumsum(n_days) - n_days, n_days)
    rows.append((c.start_t[idx] + offset * DAY, np.round(c.cost[idx] / np.repeat(n_days, n_days), 2), "Media",
                 c.channel[idx], c.campaign_id[idx]))
    chan_codes, chan_inv = np.unique(s.channel, return_inverse=True)
    svc_key = np.floor(s.t / DAY).astype(np.int64) * 10 + chan_inv
    skeys, sinv = np.unique(svc_key, return_inverse=True)
    svc = np.bincount(sinv, weights=s.handle_seconds / 60 * SERVICE_COST_PER_MINUTE)
    rows.append((skeys // 10 * DAY, svc, "Service", chan_codes[skeys % 10], np.full(skeys.size, None, dtype=object)))

    t = np.concatenate([r[0] for r in rows])
    amount = np.round(np.concatenate([r[1] for r in rows]), 2)
    kind = np.concatenate([np.full(r[0].size, r[2], dtype=object) for r in rows])
    channel = np.concatenate([np.asarray(r[3], dtype=object) for r in rows])
    campaign = np.concatenate([np.asarray(r[4], dtype=object) for r in rows])
    order = np.lexsort((np.arange(t.size), t))
    cols = {
        "Date": format_time(cfg, np.floor(t / DAY)[order] * DAY, DMY), "Amount": amount[order], "CostType": kind[order],
        "Channel": channel[order], "CampaignRef": campaign[order],
    }
    mapping = {"incurred_on": {"column": "Date", "format": DMY}, "amount": "Amount", "kind": "CostType",
               "channel": "Channel", "campaign_id": "CampaignRef"}
    dirt = (
        DirtSpec("incurred_on", "Date", "bad_date", ("45/13/2025",)),
        DirtSpec("amount", "Amount", "bad_number", ("1.234,5",)),
        DirtSpec("kind", "CostType", "unknown_value", ("Marketing",)),
    )
    return Export("costs.csv", "costs", None, cols, mapping, np.full(t.size, -1), dirt=dirt, duplicate_rate=0.003)
