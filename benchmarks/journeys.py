"""Benchmark: journeys on large data — friction detection on 10M support contacts, cxlens on
DuckDB vs a straightforward pandas implementation of the same features.

Run: .venv/bin/python benchmarks/journeys.py [--interactions 10000000] [--customers 2000000] [--skip-pandas]
     [--only friction]

A child process generates the support contacts (cases of 1-6 contacts a few hours to days apart,
topics, channels, transfers, resolution, waits; already identity-resolved) and writes them as
Parquet. Then one child per side, each with its own peak RSS, loads them (untimed) and times
friction detection: every case's friction counts (channel switches, repeat contacts within 7 days,
transfers, unresolved, the same topic again within 14 days, long waits over 900 s), the per
touchpoint (first channel x topic) summary and the per-customer totals that the churn model
reads. cxlens builds them with cxlens.journeys.friction.case_features in the engine and
materializes the cases there (a temporary table); the pandas side sorts, shifts and groups the same way. Totals of
every measure are compared to show both computed the same thing. Target (issue 6): <= 60 s on
10M contacts. Not a test: timings depend on the machine.

The second section is order-1 Markov attribution on 1M journeys (target <= 15 s): it runs
benchmarks/attribution.py (its own generated ChannelAttribution-layout path file, cxlens against
a pandas + numpy.linalg implementation) as a child and prints its report; `--only friction` or
`--only markov` runs one section.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from harness import peak_rss_mb, run_child

ROOT = Path(__file__).resolve().parents[1]
START = np.datetime64("2024-01-01T00:00:00", "s")
SPAN = 730 * 86_400
CHANNELS = np.asarray(["phone", "chat", "email", "store"], dtype=object)
TOPICS = np.asarray(["delivery", "return", "billing", "product question", "damaged item", "account"], dtype=object)
MEASURES = ("unresolved", "repeat_contacts", "transfers", "channel_switches", "repeat_topic", "long_waits")
REPEAT_DAYS, TOPIC_DAYS, LONG_WAIT = 7, 14, 900.0


def generate(folder: Path, interactions: int, customers: int, seed: int = 0) -> dict[str, int]:
    """Write interactions.parquet: cases of 1-6 contacts, ~1.5 contacts per case on average."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    n_cases = int(interactions / 1.2) + 1
    hard = rng.random(n_cases) < 0.25
    contacts = np.minimum(np.where(hard, 1 + rng.poisson(1.4, n_cases), 1 + (rng.random(n_cases) < 0.12)), 6)
    ends = np.cumsum(contacts)
    n_cases = int(np.searchsorted(ends, interactions, side="right"))
    contacts = contacts[:n_cases]
    hard = hard[:n_cases]
    n = int(contacts.sum())
    case_person = rng.integers(0, customers, n_cases)
    case_t = rng.integers(0, SPAN, n_cases)
    resolved_case = np.where(hard, rng.random(n_cases) < 0.55, rng.random(n_cases) < 0.97)
    topic = rng.integers(0, len(TOPICS), n_cases)
    case = np.repeat(np.arange(n_cases), contacts)
    starts = np.repeat(np.cumsum(contacts) - contacts, contacts)
    k = np.arange(n) - starts
    gap = np.where(k == 0, 0, rng.exponential(1.5 * 86_400, n).astype(np.int64) + 600)
    within = np.cumsum(gap) - np.repeat(np.cumsum(gap)[np.cumsum(contacts) - contacts], contacts)
    t = case_t[case] + within
    last = k == contacts[case] - 1
    chan = rng.choice(4, n, p=[0.4, 0.3, 0.25, 0.05])
    wait = np.round(rng.exponential(1.0, n) * np.asarray([240.0, 70.0, 4 * 3600.0, 150.0])[chan])
    table = pa.table({
        "interaction_id": pa.array(np.char.add("T", np.arange(n).astype(str)).astype(object)),
        "profile_id": pa.array(np.char.add("p", case_person[case].astype(str)).astype(object)),
        "started_at": pa.array(START + t.astype("timedelta64[s]"), pa.timestamp("us")),
        "channel": pa.array(CHANNELS[chan]),
        "case_id": pa.array(np.char.add("K", case.astype(str)).astype(object)),
        "topic": pa.array(TOPICS[topic[case]]),
        "transfers": pa.array(np.where(hard[case], rng.poisson(0.8, n), rng.poisson(0.08, n)).astype(np.int64)),
        "resolved": pa.array(resolved_case[case] & last),
        "wait_seconds": pa.array(wait),
        "source": pa.array(np.full(n, "desk", dtype=object)),
    })
    pq.write_table(table, folder / "interactions.parquet", row_group_size=1_000_000)
    return {"interactions": n, "cases": n_cases, "customers": customers}


# --- cxlens ---------------------------------------------------------------------------------------

def run_friction_cxlens(data: Path) -> dict[str, Any]:
    """Load the contacts into a DuckDB workspace (untimed); time case features, the per-touchpoint
    summary and the per-customer totals."""
    sys.path.insert(0, str(ROOT))
    from cxlens import Workspace
    from cxlens.journeys.friction import FrictionSettings, by_touchpoint, case_features

    path = data / "interactions.parquet"
    with tempfile.TemporaryDirectory() as d, Workspace.open(Path(d) / "bench.duckdb") as ws:
        cols = "interaction_id, profile_id, started_at, channel, case_id, topic, transfers, resolved, wait_seconds, source"
        ws.sql(f"INSERT INTO interactions ({cols}) SELECT {cols} FROM read_parquet('{path}')")
        t0 = time.perf_counter()
        settings = FrictionSettings(repeat_days=REPEAT_DAYS, topic_days=TOPIC_DAYS, long_wait_seconds=LONG_WAIT)
        # Materialized as a temporary table, as friction_costs does (.cache()): written to the
        # workspace file it would cost twice as much and nothing reads it after the run.
        with case_features(ws, settings).cache() as cases:
            touch = by_touchpoint(cases)
            per = cases.group_by("profile_id").aggregate(cases=cases.count(), **{m: cases[m].sum() for m in MEASURES})
            customers = per.to_pandas()
        seconds = time.perf_counter() - t0
        totals = {m: int(customers[m].sum()) for m in MEASURES}
        totals["cases"] = int(customers["cases"].sum())
    return {"seconds": seconds, "rss_mb": peak_rss_mb(), "totals": totals, "customers": len(customers),
            "touchpoints": len(touch)}


# --- pandas ---------------------------------------------------------------------------------------

def run_friction_pandas(data: Path) -> dict[str, Any]:
    """The same features with pandas: sort by case and time, shift, group; then by customer and topic."""
    import pandas as pd
    import pyarrow.parquet as pq

    df = pq.read_table(data / "interactions.parquet").to_pandas()
    t0 = time.perf_counter()
    df["channel"] = df["channel"].str.lower()
    df["topic"] = df["topic"].str.lower().fillna("other")
    df = df.sort_values(["case_id", "started_at", "interaction_id"], kind="stable")
    same = df["case_id"].eq(df["case_id"].shift())
    prev_ch = df["channel"].shift()
    gap = (df["started_at"] - df["started_at"].shift()).dt.total_seconds()
    df["switch"] = (same & (df["channel"] != prev_ch)).astype("int64")
    df["repeat"] = (same & (gap <= REPEAT_DAYS * 86_400)).astype("int64")
    df["long"] = (df["wait_seconds"] > LONG_WAIT).astype("int64")
    df["res"] = df["resolved"].astype("float64")
    g = df.groupby("case_id", sort=False)
    cases = pd.DataFrame({
        "profile_id": g["profile_id"].first(), "topic": g["topic"].first(), "channel": g["channel"].first(),
        "opened_at": g["started_at"].min(), "closed_at": g["started_at"].max(), "contacts": g.size(),
        "channel_switches": g["switch"].sum(), "repeat_contacts": g["repeat"].sum(),
        "transfers": g["transfers"].sum(), "long_waits": g["long"].sum(), "resolved": g["res"].max(),
    }).reset_index()
    cases["unresolved"] = (1 - cases["resolved"].fillna(1)).astype("int64")
    cases = cases.sort_values(["profile_id", "topic", "opened_at", "case_id"], kind="stable")
    same = cases["profile_id"].eq(cases["profile_id"].shift()) & cases["topic"].eq(cases["topic"].shift())
    since = (cases["opened_at"] - cases["closed_at"].shift()).dt.total_seconds()
    cases["repeat_topic"] = (same & (since <= TOPIC_DAYS * 86_400)).astype("int64")
    cases["friction"] = (cases[list(MEASURES)].max(axis=1) > 0).astype("int64")
    touch = cases.groupby(["channel", "topic"]).agg(cases=("case_id", "size"), friction_share=("friction", "mean"),
                                                     **{m: (m, "mean") for m in MEASURES})
    customers = cases.groupby("profile_id").agg(cases=("case_id", "size"), **{m: (m, "sum") for m in MEASURES})
    seconds = time.perf_counter() - t0
    totals = {m: int(customers[m].sum()) for m in MEASURES}
    totals["cases"] = int(customers["cases"].sum())
    return {"seconds": seconds, "rss_mb": peak_rss_mb(), "totals": totals, "customers": len(customers),
            "touchpoints": len(touch)}


# --- sections ---------------------------------------------------------------------------------------

Section = tuple[str, Callable[[Path], dict[str, Any]], Callable[[Path], dict[str, Any]] | None]
SECTIONS: dict[str, Section] = {
    "friction": ("friction detection", run_friction_cxlens, run_friction_pandas),
}
MARKOV = "markov"
"""The Markov attribution section: benchmarks/attribution.py run as a child (it generates its own paths)."""
"""name -> (label, cxlens runner, reference runner): each runner takes the data folder and returns
{"seconds", "rss_mb", "totals", ...}; each runs in its own child process."""


def child(args: list[str]) -> dict[str, Any]:
    """Run this script with ARGS in a fresh process (its own peak RSS) and read its last JSON line."""
    return run_child([sys.executable, __file__, *args], " ".join(args[:2]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--interactions", type=int, default=10_000_000)
    ap.add_argument("--customers", type=int, default=2_000_000)
    ap.add_argument("--skip-pandas", action="store_true", help="Only time cxlens.")
    ap.add_argument("--only", choices=sorted([*SECTIONS, MARKOV]), action="append", help="Run only these sections.")
    ap.add_argument("--journeys", type=int, default=1_000_000, help="Paths for the Markov attribution section.")
    ap.add_argument("--run", help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.run == "generate":
        print(json.dumps(generate(args.data, args.interactions, args.customers)))
        return
    if args.run:
        name, side = args.run.split(":")
        _, cx, ref = SECTIONS[name]
        runner = cx if side == "cxlens" else ref
        assert runner is not None
        print(json.dumps(runner(args.data)))
        return
    chosen = args.only or [*SECTIONS, MARKOV]
    if any(name in SECTIONS for name in chosen):
        run_sections([n for n in chosen if n in SECTIONS], args)
    if MARKOV in chosen:
        print("markov attribution (benchmarks/attribution.py):", flush=True)
        extra = ["--skip-reference"] if args.skip_pandas else []
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "attribution.py"), "--journeys", str(args.journeys), *extra],
                       check=True)


def run_sections(names: list[str], args: argparse.Namespace) -> None:
    """Generate the support contacts once and time each chosen section on both sides."""
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        # Generated in a child: Linux keeps a process's peak RSS across exec, so a parent that held
        # the data would hand its peak to every child it starts.
        rows = child(["--run", "generate", "--data", d, "--interactions", str(args.interactions),
                      "--customers", str(args.customers)])
        print(f"data: {rows['interactions']:,} contacts in {rows['cases']:,} cases of {rows['customers']:,} customers "
              f"(generated in {time.perf_counter() - t0:.0f} s)")
        for name in names:
            label, _, ref = SECTIONS[name]
            cx = child(["--run", f"{name}:cxlens", "--data", d])
            print(f"{label}, cxlens (DuckDB): {cx['seconds']:.1f} s, peak RSS {cx['rss_mb'] / 1024:.2f} GiB")
            if args.skip_pandas or ref is None:
                continue
            pd_ = child(["--run", f"{name}:pandas", "--data", d])
            print(f"{label}, pandas: {pd_['seconds']:.1f} s, peak RSS {pd_['rss_mb'] / 1024:.2f} GiB")
            print(f"{label}, ratio pandas / cxlens: {pd_['seconds'] / cx['seconds']:.1f}x")
            same = cx["totals"] == pd_["totals"]
            print(f"{label}, same totals in both: {same} {cx['totals'] if same else (cx['totals'], pd_['totals'])}")


if __name__ == "__main__":
    main()
