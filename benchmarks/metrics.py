"""Benchmark: the whole KPI catalogue by month, cxlens on DuckDB vs a straightforward pandas implementation.

Run: .venv/bin/python benchmarks/metrics.py [--events 10000000] [--orders 1000000] [--customers 200000]

Synthetic canonical tables (already identity-resolved) are written once as Parquet; then two child
processes each load them and compute every metric of the catalogue at grain month: cxlens
(`Measurer.measure_many` on a DuckDB workspace file: one query per source, reading the sessions
the workspace keeps; the time to keep them, paid once by the ingest, is shown apart, and the
catalogue is timed a second time building sessions from the events)
and the independent pandas implementation the conformance suite checks cxlens against
(tests/reference/metrics_pandas.py). Loading is not
timed; each child reports its compute time and its own peak RSS. A few totals are compared to
show both computed the same thing. Not a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from harness import peak_rss_mb, run_child

ROOT = Path(__file__).resolve().parents[1]
START = np.datetime64("2024-01-01T00:00:00", "s")
SPAN = 730 * 86_400


def _pick(rng: np.random.Generator, values: list, n: int, p: list[float] | None = None) -> np.ndarray:
    return np.asarray(values, dtype=object)[rng.choice(len(values), n, p=p)]


def _ts(seconds: np.ndarray) -> pa.Array:
    return pa.array(START + seconds.astype("int64").astype("timedelta64[s]"), pa.timestamp("us"))


def _maybe(rng: np.random.Generator, values: np.ndarray, share: float) -> np.ndarray:
    out = values.astype(object).copy()
    out[rng.random(len(values)) >= share] = None
    return out


def generate(folder: Path, events: int, orders: int, customers: int, seed: int = 0) -> dict[str, int]:
    """Write the eleven canonical tables as Parquet into `folder`; returns rows per table."""
    rng = np.random.default_rng(seed)
    pid = np.array([f"p{i:07d}" for i in range(customers)], dtype=object)
    countries = ["US", "DE", "FR", "GB", "ES"]
    tables: dict[str, pa.Table] = {}
    tables["customers"] = pa.table({
        "customer_id": [f"c{i:07d}" for i in range(customers)], "country": _pick(rng, countries, customers),
        "region": _pick(rng, ["North", "South", "East", "West"], customers),
        "loyalty_member": rng.random(customers) < 0.4, "loyalty_tier": _pick(rng, ["Basic", "Plus", "Gold"], customers),
        "acquisition_channel": _pick(rng, ["paid_search", "social", "email", "referral", "store"], customers),
        "acquisition_cost": rng.gamma(2.0, 10.0, customers), "profile_id": pid, "source": ["crm"] * customers,
    })

    who = rng.integers(0, customers, orders)
    chan = _pick(rng, ["online", "store", "app"], orders, [0.4, 0.45, 0.15])
    revenue = np.round(rng.lognormal(4.0, 0.8, orders), 2)
    tables["orders"] = pa.table({
        "order_id": [f"o{i:08d}" for i in range(orders)], "customer_id": [f"c{i:07d}" for i in who],
        "ordered_at": _ts(rng.integers(0, SPAN, orders)), "revenue": revenue, "channel": chan,
        "store_id": np.where(chan == "store", _pick(rng, [f"S{i:02d}" for i in range(20)], orders), None),
        "cost": np.round(revenue * 0.6, 2), "coupon_code": _maybe(rng, _pick(rng, ["SAVE10", "WELCOME"], orders), 0.2),
        "status": _pick(rng, ["completed", "returned", "cancelled"], orders, [0.9, 0.06, 0.04]),
        "campaign_id": _maybe(rng, _pick(rng, [f"CMP{i:03d}" for i in range(100)], orders), 0.3),
        "profile_id": _maybe(rng, pid[who], 0.92), "source": ["pos"] * orders,
    })

    n_sessions = events // 5
    visitors = customers + customers * 3 // 2
    v = rng.integers(0, visitors, n_sessions)
    start = rng.integers(0, SPAN, n_sessions)
    length = rng.integers(1, 10, n_sessions)
    length = np.minimum(length, np.maximum(1, events // n_sessions * 2 - 1))
    sess = np.repeat(np.arange(n_sessions), length)[:events]
    n = len(sess)
    offset = np.cumsum(rng.integers(5, 400, n))
    first_of = np.r_[0, np.flatnonzero(np.diff(sess)) + 1]
    base = np.repeat(offset[first_of], np.diff(np.r_[first_of, n]))
    at = start[sess] + (offset - base)
    is_first = np.zeros(n, dtype=bool)
    is_first[first_of] = True
    types = _pick(rng, ["page_view", "product_view", "search", "add_to_cart", "checkout_started", "purchase",
                        "recommendation_shown", "recommendation_clicked", "message_sent", "message_opened",
                        "message_clicked", "lead"], n,
                  [0.42, 0.22, 0.06, 0.07, 0.03, 0.02, 0.06, 0.01, 0.06, 0.03, 0.01, 0.01])
    types[is_first] = "page_view"
    with_sid = rng.random(n_sessions) < 0.7
    visitor_of = v[sess]
    known = visitor_of < customers
    referrers = ["https://www.google.com/", "https://www.instagram.com/", "https://news.example.com/a", None, None]
    utm = _pick(rng, [None, None, None, "newsletter", "google"], n)
    tables["events"] = pa.table({
        "event_id": [f"e{i:09d}" for i in range(n)], "occurred_at": _ts(at), "event_type": types,
        "anonymous_id": [f"a{x:08d}" for x in visitor_of], "customer_id": pa.nulls(n, pa.string()),
        "session_id": np.where(with_sid[sess], np.char.add("s", sess.astype(str)).astype(object), None),
        "channel": _pick(rng, ["web", "app"], n, [0.7, 0.3]),
        "referrer": np.where(is_first, _pick(rng, referrers, n), None),
        "utm_source": np.where(is_first, utm, None),
        "utm_medium": np.where(is_first, np.where(utm == "newsletter", "email", np.where(utm == "google", "cpc", None)), None),
        "campaign_id": np.where(np.char.startswith(types.astype(str), "message_"), _pick(rng, [f"CMP{i:03d}" for i in range(100)], n), None),
        "personalized": np.where(np.char.startswith(types.astype(str), "message_"), rng.random(n) < 0.5, None),
        "value": np.where(types == "purchase", np.round(rng.lognormal(4.0, 0.8, n), 2), np.nan),
        "profile_id": np.where(known, pid[np.minimum(visitor_of, customers - 1)], None), "source": ["web"] * n,
    })

    k = max(orders // 5, 1000)
    cases = rng.integers(0, k // 2, k)
    tables["interactions"] = pa.table({
        "interaction_id": [f"i{i:08d}" for i in range(k)], "started_at": _ts(rng.integers(0, SPAN, k)),
        "channel": _pick(rng, ["phone", "chat", "email"], k), "case_id": [f"K{c:07d}" for c in cases],
        "topic": _pick(rng, ["delivery", "returns", "billing"], k), "transfers": rng.poisson(0.3, k),
        "resolved": rng.random(k) < 0.75, "wait_seconds": rng.exponential(120, k),
        "profile_id": pid[rng.integers(0, customers, k)], "source": ["desk"] * k,
    })
    m = max(orders // 10, 1000)
    kind = _pick(rng, ["nps", "csat", "ces"], m)
    score = np.where(kind == "nps", rng.integers(0, 11, m), np.where(kind == "csat", rng.integers(1, 6, m), rng.integers(1, 8, m)))
    tables["survey_responses"] = pa.table({
        "response_id": [f"r{i:08d}" for i in range(m)], "responded_at": _ts(rng.integers(0, SPAN, m)),
        "survey_type": kind, "score": score.astype(float), "channel": _pick(rng, ["email", "sms"], m),
        "profile_id": pid[rng.integers(0, customers, m)], "source": ["survey"] * m,
    })
    s = customers // 10
    began = rng.integers(0, SPAN, s)
    ended = np.where(rng.random(s) < 0.4, began + rng.integers(30 * 86_400, 400 * 86_400, s), -1)
    tables["subscriptions"] = pa.table({
        "subscription_id": [f"m{i:07d}" for i in range(s)], "customer_id": [f"c{i:07d}" for i in range(s)],
        "started_at": _ts(began), "ended_at": pa.array(START + np.maximum(ended, 0).astype("timedelta64[s]"), pa.timestamp("us"), mask=ended < 0),
        "plan": ["Plus"] * s, "mrr": [9.99] * s, "profile_id": pid[:s], "source": ["crm"] * s,
    })
    days = np.arange(730)
    tables["costs"] = pa.table({
        "incurred_on": pa.array(np.repeat(np.datetime64("2024-01-01") + days, 5).astype("datetime64[D]"), pa.date32()),
        "amount": rng.gamma(2.0, 50.0, 730 * 5), "kind": ["acquisition"] * (730 * 5),
        "channel": np.tile(["paid_search", "social", "email", "referral", "store"], 730),
    })
    tables["store_traffic"] = pa.table({
        "store_id": np.tile([f"S{i:02d}" for i in range(20)], 730),
        "day": pa.array(np.repeat(np.datetime64("2024-01-01") + days, 20).astype("datetime64[D]"), pa.date32()),
        "visitors": rng.poisson(300, 730 * 20),
    })
    for name in ("order_items", "campaigns", "assignments"):
        tables[name] = pa.table({})
    folder.mkdir(parents=True, exist_ok=True)
    for name, t in tables.items():
        pq.write_table(t, folder / f"{name}.parquet")
    return {name: t.num_rows for name, t in tables.items()}


def load(ws: Any, data: Path) -> None:
    """Copy the generated Parquet files into the workspace's canonical tables (the columns they share)."""
    from cxlens.workspace.schema import TABLES, all_columns

    for name in TABLES:
        path = data / f"{name}.parquet"
        cols = {c.name for c in all_columns(TABLES[name])}
        have = [c for c in pq.read_schema(path).names if c in cols] if path.exists() else []
        if have:
            ws.sql(f"INSERT INTO {name} ({', '.join(have)}) SELECT {', '.join(have)} FROM read_parquet('{path}')")


def run_cxlens(data: Path) -> dict:
    """Load the Parquet files into a DuckDB workspace (untimed), keep its sessions as an ingest does
    (timed apart), time the catalogue by month; then time it again building sessions from the events."""
    sys.path.insert(0, str(ROOT))
    from cxlens import Workspace
    from cxlens.semantic import Catalog, Measurer
    from cxlens.semantic.kept import META_KEY, refresh_sessions

    with tempfile.TemporaryDirectory() as d, Workspace.open(Path(d) / "bench.duckdb") as ws:
        load(ws, data)
        kept = refresh_sessions(ws)
        per: dict[str, float] = {"(keeping sessions, as an ingest does)": round(kept.seconds, 3)}
        t0 = time.perf_counter()
        with Measurer(ws, Catalog.built_in()) as m:
            results = m.measure_many(list(m.catalog.metrics), grain="month")
            assert "sessions" in m.context.kept_sources
        seconds = time.perf_counter() - t0
        totals = {k: float(r.frame.value.fillna(0).sum()) for k, r in results.items()}
        # The same catalogue on a workspace without kept sessions (e.g. rows written by hand, or
        # Spark): sessions are built from the events first, on their own to show what that costs.
        ws.sql("DELETE FROM cxlens_meta WHERE key = ?", [META_KEY])
        t = time.perf_counter()
        with Measurer(ws, Catalog.built_in()) as m:
            m.measure_many(["sessions"], grain="month")
            per["(building sessions from events)"] = round(time.perf_counter() - t, 3)
            again = m.measure_many(list(m.catalog.metrics), grain="month")
            assert "sessions" not in m.context.kept_sources
        per["(the catalogue without kept sessions)"] = round(time.perf_counter() - t, 3)
        built = {k: float(r.frame.value.fillna(0).sum()) for k, r in again.items()}
    return {"seconds": seconds, "rss_mb": peak_rss_mb(), "per_metric": per, "totals": totals, "built_totals": built}


def run_pandas(data: Path) -> dict:
    """Read the Parquet files into pandas (untimed), then time the reference catalogue by month."""
    sys.path.insert(0, str(ROOT / "tests"))
    from reference.metrics_pandas import METRIC_IDS, PreparedTables, reference

    tables = {p.stem: pq.read_table(p).to_pandas() for p in sorted(data.glob("*.parquet"))}
    t0 = time.perf_counter()
    prepared = PreparedTables(tables)
    per: dict[str, float] = {}
    totals: dict[str, float] = {}
    for metric in METRIC_IDS:
        t = time.perf_counter()
        frame = reference(metric, prepared, grain="month", by=["channel_group"] if metric == "traffic_sources" else [])
        per[metric] = round(time.perf_counter() - t, 3)
        totals[metric] = float(frame.value.fillna(0).sum())
    return {"seconds": time.perf_counter() - t0, "rss_mb": peak_rss_mb(), "per_metric": per, "totals": totals}


def child(kind: str, data: Path, *extra: str, script: str = __file__) -> dict:
    """Run `script --run KIND` in a fresh process (its own peak RSS) and read its last JSON line."""
    return run_child([sys.executable, script, "--run", kind, "--data", str(data), *extra], kind)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--orders", type=int, default=1_000_000)
    ap.add_argument("--customers", type=int, default=200_000)
    ap.add_argument("--skip-pandas", action="store_true", help="Only time cxlens.")
    ap.add_argument("--run", choices=["cxlens", "pandas", "generate"], help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.run == "generate":
        print(json.dumps(generate(args.data, args.events, args.orders, args.customers)))
        return
    if args.run:
        print(json.dumps(run_cxlens(args.data) if args.run == "cxlens" else run_pandas(args.data)))
        return
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        # In a child too: Linux keeps a process's peak RSS across exec, so a parent that held the
        # generated data would hand its peak to every child it starts.
        rows = child("generate", Path(d), "--events", str(args.events), "--orders", str(args.orders),
                     "--customers", str(args.customers))
        print(f"data: {rows['events']:,} events, {rows['orders']:,} orders, {rows['customers']:,} customers "
              f"(generated in {time.perf_counter() - t0:.0f} s)")
        cx = child("cxlens", Path(d))
        print(f"cxlens (DuckDB): {len(cx['totals'])} metrics by month in {cx['seconds']:.1f} s, peak RSS {cx['rss_mb'] / 1024:.2f} GiB")
        print("  timed apart: " + ", ".join(f"{k} {v:.1f} s" for k, v in cx["per_metric"].items()))
        if args.skip_pandas:
            return
        pd_ = child("pandas", Path(d))
        print(f"pandas reference: {len(pd_['per_metric'])} metrics by month in {pd_['seconds']:.1f} s, peak RSS {pd_['rss_mb'] / 1024:.2f} GiB")
        print(f"ratio pandas / cxlens: {pd_['seconds'] / cx['seconds']:.1f}x (sessions kept in the workspace); "
              f"{pd_['seconds'] / cx['per_metric']['(the catalogue without kept sessions)']:.1f}x building sessions from the events")
        agree = [k for k in cx["totals"] if abs(cx["totals"][k] - cx["built_totals"][k]) <= 1e-9 * max(1.0, abs(cx["totals"][k]))]
        print(f"kept and built sessions give the same totals for {len(agree)} of {len(cx['totals'])} metrics")
        same = [k for k in cx["totals"] if k in pd_["totals"] and abs(cx["totals"][k] - pd_["totals"][k]) <= 1e-6 * max(1.0, abs(pd_["totals"][k]))]
        print(f"metrics whose monthly values sum to the same total in both: {len(same)} of {len(cx['totals'])}")
        differ = sorted(set(cx["totals"]) & set(pd_["totals"]) - set(same))
        if differ:
            print("  differ: " + ", ".join(differ))


if __name__ == "__main__":
    main()
