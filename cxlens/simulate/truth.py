"""The known truth of a simulation run: identity keys per person, dirty rows, effects.

Identity keys are computed with cxlens's own key functions (cxlens.identity.keys) over the clean
rows of every export, so they are exactly the strings the identity graph will hold. Keys used by
more than one person are the deliberate shared identifiers; each person's keys are checked to be
connected through co-occurrence in clean rows (keys that are not are listed as `unlinked`).
"""

from __future__ import annotations

from typing import Any

import ibis
import numpy as np
import pandas as pd
import pyarrow as pa
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from cxlens.identity.keys import row_keys
from cxlens.simulate import config as C
from cxlens.simulate.web import KIOSK_ANONYMOUS_ID
from cxlens.simulate.world import World
from cxlens.simulate.writer import Export


def key_rows(exports: list[Export]) -> pd.DataFrame:
    """(row, person, key) for every identity key of clean rows, computed by cxlens.identity.keys.

    Rows with the same identity values and person add nothing to the graph, so each distinct
    combination is keyed once (`row` numbers those combinations).
    """
    frames = []
    for ex in exports:
        ident = ex.identity_columns()
        if not ident:
            continue
        keep = ex.clean if ex.clean is not None else np.ones(ex.rows, dtype=bool)
        data = {"person": ex.person[keep]}
        for key_type, column in ident.items():
            values = ex.columns[column][keep]
            data[key_type] = values if values.dtype == object else values.astype(str).astype(object)
        frame = pd.DataFrame(data).drop_duplicates()
        frame.insert(0, "source", ex.source or "")
        frames.append(frame)
    combos = pd.concat(frames, ignore_index=True)
    combos.insert(0, "row", np.arange(len(combos)))
    table = pa.Table.from_pandas(combos, preserve_index=False)
    t = ibis.memtable(table)
    keys = row_keys(t)
    long = ibis.union(*[t.select(row=t.row, person=t.person, key=expr) for expr in keys.values()])
    con = ibis.duckdb.connect()
    con.raw_sql("SET enable_progress_bar = false")
    out = con.to_pyarrow(long.filter(long.key.notnull())).to_pandas()
    return out.sort_values(["row", "key"], kind="stable").reset_index(drop=True)


def identity_truth(exports: list[Export]) -> dict[str, Any]:
    """Which person each key belongs to, which keys are shared, and keys not linked to their person."""
    rows = key_rows(exports)
    rows = rows[rows.person >= 0]
    per_key = rows.groupby("key").person.nunique()
    shared = sorted(per_key.index[per_key > 1])
    own = rows[~rows.key.isin(shared)]
    codes, uniques = pd.factorize(own.key, sort=True)
    own = own.assign(node=codes)
    first = own.groupby("row").node.transform("first").to_numpy()
    n_nodes = len(uniques)
    graph = coo_matrix((np.ones(len(own)), (first, own.node.to_numpy())), shape=(n_nodes, n_nodes))
    _, comp = connected_components(graph, directed=False)
    node_person = own.drop_duplicates("node").set_index("node").person.sort_index().to_numpy()
    node_comp = comp
    pairs = pd.DataFrame({"person": node_person, "comp": node_comp})
    sizes = pairs.groupby(["person", "comp"]).size().reset_index(name="n")
    sizes = sizes.sort_values(["person", "n", "comp"], ascending=[True, False, True], kind="stable")
    main = sizes.drop_duplicates("person").set_index("person").comp
    linked = node_comp == main.reindex(node_person).to_numpy()
    keys = {str(k): int(p) + 1 for k, p, ok in zip(uniques, node_person, linked) if ok}
    unlinked = [{"key": str(k), "person": int(p) + 1} for k, p, ok in zip(uniques, node_person, linked) if not ok]
    return {
        "persons": int(len(set(keys.values()))),
        "key_count": len(keys),
        "keys": keys,
        "shared_keys": [str(k) for k in shared],
        "unlinked_keys": unlinked,
        "notes": (
            "Keys are computed with cxlens.identity.keys over clean rows only; customer_id keys are namespaced "
            f"by the mapping's source. Shared keys ('email:{C.SHARED_EMAIL}', 'anonymous_id:{KIOSK_ANONYMOUS_ID}') "
            "belong to many persons and must not merge them."
        ),
    }


def effects(w: World) -> dict[str, Any]:
    """The causal effects the data were generated with, and who they apply to."""
    p, n, x = w.people, w.people.n_customers, w.experiment
    return {
        "personalization": {
            "experiment_id": C.EXPERIMENT_ID, "unit": "webshop customer id (assignments.ShopperId)",
            "arms": {"personalized": C.PERSONALIZED_SHARE, "holdout": round(1 - C.PERSONALIZED_SHARE, 6)},
            "segment": "repeat_webshop_buyers",
            "segment_definition": f"units with >= {C.PERSONALIZATION_MIN_PRIOR_ORDERS} web-shop orders (any status) placed before assigned_at",
            "metric": "purchase probability per web session after assigned_at (equivalently web-shop orders per unit)",
            "conversion_lift": C.PERSONALIZATION_LIFT, "conversion_lift_outside_segment": 0.0,
            "units": int(x.person.size), "units_in_segment": int(x.in_segment.sum()),
            "started_at": _iso(w, x.start_t),
        },
        "email": {
            "metric": "clicks per message sent (CTR); opens are unaffected",
            "personalized_ctr_lift": C.EMAIL_PERSONALIZED_CTR_LIFT, "generic_clicks_per_open": C.EMAIL_CLICK_PER_OPEN,
            "personalized_campaigns": "newsletters with IsPersonalized = yes (every second week)",
        },
        "effort": {
            "bad_case_definition": "a support case left unresolved, or with >= 3 contacts, or >= 2 transfers in total",
            "churn_probability_after_bad_case": C.CHURN_AFTER_BAD_CASE,
            "churn_delay_days_after_bad_case": [3, 30],
            "baseline_churn_probability": {C.SEGMENTS[k]: v for k, v in C.BASELINE_CHURN.items()},
            "csat_support": "round(4.5 - 1.9*unresolved - 0.35*(contacts-1) - 0.3*transfers + N(0,0.6)) clipped to 1..5",
            "ces_support": "round(6.2 - 1.6*unresolved - 0.9*(contacts-1) - 0.5*transfers + N(0,0.7)) clipped to 1..7",
            "nps_shift_after_bad_case": C.NPS_SHIFT_BAD_CASE,
        },
        "hvc": {
            "share_of_customers": 0.10,
            "coupon_probability": {C.SEGMENTS[k]: v for k, v in C.COUPON_PROBABILITY.items()},
            "sale_item_probability": {C.SEGMENTS[k]: v for k, v in C.SALE_ITEM_PROBABILITY.items()},
            "extra_items_mean": {C.SEGMENTS[k]: v for k, v in C.EXTRA_ITEMS_MEAN.items()},
            "nps_shift": C.NPS_SHIFT_HVC,
            "persons": [int(i) + 1 for i in np.flatnonzero(p.segment == C.HVC)],
        },
        "emerging_hvc": [int(i) + 1 for i in np.flatnonzero(p.segment == C.EMERGING)],
        "emerging_hvc_from": _iso(w, w.cfg.horizon / 2),
        "churn": {
            "definition": "no purchases (web or store), web sessions or support contacts after churned_at",
            "churned": int(w.service.churned.sum()),
        },
        "revenue_definition": "revenue = sum(quantity * unit_price) - order discount; cost = cost of goods",
        "n_customers": int(n),
    }


def persons(w: World) -> list[dict[str, Any]]:
    """One entry per simulated person with their latent traits."""
    p, s, x = w.people, w.service, w.experiment
    n = p.n_customers
    arm = np.full(n, None, dtype=object)
    arm[x.person] = np.where(x.personalized, "personalized", "holdout")
    seg_unit = np.zeros(n, dtype=bool)
    seg_unit[x.person] = x.in_segment
    churn_at = np.where(s.churned, s.churn_t, np.nan)
    churn_text = np.full(n, None, dtype=object)
    if s.churned.any():
        churn_text[s.churned] = np.datetime_as_string(w.cfg.epoch + churn_at[s.churned].astype("int64").astype("timedelta64[s]"), unit="s")
    seg_names = np.asarray(C.SEGMENTS, dtype=object)[p.segment]
    out: list[dict[str, Any]] = []
    for i in range(n):
        out.append({
            "person": i + 1, "kind": "customer", "crm_id": p.crm_id[i], "webshop_id": p.webshop_id[i] or None,
            "segment": seg_names[i], "hvc": bool(p.segment[i] == C.HVC), "emerging_hvc": bool(p.segment[i] == C.EMERGING),
            "churned": bool(s.churned[i]), "churned_at": churn_text[i], "bad_support_experience": bool(s.bad_experience[i]),
            "experiment_arm": arm[i], "experiment_segment": bool(seg_unit[i]),
        })
    out.extend({"person": i + 1, "kind": "visitor"} for i in range(n, p.n))
    return out


def _iso(w: World, seconds: float) -> str:
    return str(np.datetime_as_string(w.cfg.epoch + np.timedelta64(int(seconds), "s"), unit="s"))
