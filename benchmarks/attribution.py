"""Benchmark: exact Markov attribution on 1M journeys from a path file, cxlens against a plain pandas implementation.

Run: .venv/bin/python benchmarks/attribution.py [--journeys 1000000] [--reference-journeys N] [--skip-reference]

A child process generates the journeys and writes them as a CSV file in the ChannelAttribution
layout (path, total_conversions, total_null, total_conversion_value), one row per journey, so the
file holds many repeated and many distinct paths: 10 channels with a skewed mix (from "direct"
at 22% down to "affiliate" at 2%), path lengths 1-10 (1 + a geometric number of further touches,
capped), a 35% chance that a touch repeats the previous channel, and a conversion probability that
grows with the number of touches and with the channels on the path (logistic; email, paid search
and retargeting help most). Converting journeys are worth a log-normal order value.

Then one child per side, each with its own peak RSS, times the whole job end to end: read the
file, build the chain, compute P(conversion) and the removal effect of every channel, credit the
conversions and the value. cxlens runs `read_path_file` + `markov` (DuckDB reads and aggregates the
file, sparse solves in scipy) at order 1, then orders 2 and 3 on the already-read counts for the
record. The reference is the straightforward implementation an analyst would write in pandas:
`read_csv`, split the paths, explode them into transitions, `groupby` the counts into a dense
matrix, and for each removed channel redirect its transitions to null, rebuild the matrix and
solve it with numpy.linalg; it is order 1 only. Both sides' removal effects are compared (they
must agree to rounding: both are exact).

Target (issue): Markov order-1 attribution on 1M paths <= 15 s. Not a test: timings depend on the
machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from harness import machine, peak_rss_mb, run_child

ROOT = Path(__file__).resolve().parents[1]
CHANNELS = ("direct", "organic", "paid_search", "email", "social", "referral", "display", "retargeting", "push",
            "affiliate")
MIX = (0.22, 0.18, 0.14, 0.11, 0.09, 0.07, 0.06, 0.05, 0.06, 0.02)
EFFECT = (0.05, 0.15, 0.35, 0.45, 0.1, 0.2, 0.05, 0.4, 0.15, 0.1)
"""Log-odds a channel on the path adds to conversion."""


def generate(path: Path, journeys: int, seed: int = 11) -> dict:
    """Simulate journeys and write one ChannelAttribution row per journey."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    lengths = np.minimum(1 + rng.geometric(0.38, journeys) - 1, 10)
    total = int(lengths.sum())
    owner = np.repeat(np.arange(journeys), lengths)
    starts = np.r_[0, np.cumsum(lengths)[:-1]]
    first = np.zeros(total, dtype=bool)
    first[starts] = True
    drawn = rng.choice(len(CHANNELS), size=total, p=np.asarray(MIX) / sum(MIX))
    repeat = (rng.random(total) < 0.35) & ~first
    source = np.where(repeat, 0, np.arange(total))
    source = np.maximum.accumulate(source)  # a repeated touch copies the last drawn one
    channel = drawn[source]
    present = np.zeros((journeys, len(CHANNELS)), dtype=bool)
    present[owner, channel] = True
    logit = -2.6 + 0.18 * lengths + present @ np.asarray(EFFECT)
    converted = rng.random(journeys) < 1 / (1 + np.exp(-logit))
    value = np.where(converted, np.round(rng.lognormal(4.0, 0.6, journeys), 2), 0.0)
    names = np.asarray(CHANNELS, dtype=object)[channel]
    paths = pd.Series(names).groupby(owner).agg(" > ".join)
    frame = pd.DataFrame({"path": paths.to_numpy(), "total_conversions": converted.astype(int),
                          "total_null": (~converted).astype(int), "total_conversion_value": value})
    frame.to_csv(path, index=False)
    return {"journeys": journeys, "conversions": int(converted.sum()), "distinct_paths": int(frame.path.nunique()),
            "mean_length": float(lengths.mean()), "bytes": path.stat().st_size}


def run_cxlens(data: Path, limit: int) -> dict:
    sys.path.insert(0, str(ROOT))
    import duckdb
    import scipy

    from cxlens.attribution import markov, read_path_file

    file = data if limit <= 0 else _head(data, limit)
    t0 = time.perf_counter()
    counts = read_path_file(file)
    t1 = time.perf_counter()
    first = markov(counts, 1)
    t2 = time.perf_counter()
    higher = {}
    for order in (2, 3):
        s = time.perf_counter()
        result = markov(counts, order)
        higher[order] = {"seconds": time.perf_counter() - s, "states": result.extra["states"],
                         "removal_effects": {c.channel: c.removal_effect for c in result.channels}}
    return {"read": t1 - t0, "order1": t2 - t1, "total": t2 - t0, "distinct_paths": len(counts),
            "conversions": counts.total_conversions, "p_conversion": first.extra["conversion_probability"],
            "removal_effects": {c.channel: c.removal_effect for c in first.channels},
            "credits": {c.channel: c.conversions for c in first.channels}, "higher": higher, "rss_mb": peak_rss_mb(),
            "versions": {"duckdb": duckdb.__version__, "scipy": scipy.__version__}}


def run_reference(data: Path, limit: int) -> dict:
    """Order-1 removal effects the straightforward way: pandas explode + groupby, numpy.linalg per removed channel."""
    import numpy as np
    import pandas as pd

    t0 = time.perf_counter()
    df = pd.read_csv(data, nrows=limit if limit > 0 else None)
    steps = df.assign(ch=df["path"].str.split(" > ")).explode("ch")
    steps["ch"] = steps["ch"].str.strip()
    steps["i"] = steps.groupby(level=0).cumcount()
    steps["w"] = steps["total_conversions"] + steps["total_null"]
    steps["src"] = steps.groupby(level=0)["ch"].shift(1).fillna("(start)")
    last = steps[~steps.index.duplicated(keep="last")]
    moves = pd.concat([
        steps[["src", "ch", "w"]].rename(columns={"ch": "dst"}),
        pd.DataFrame({"src": last["ch"], "dst": "(conversion)", "w": last["total_conversions"]}),
        pd.DataFrame({"src": last["ch"], "dst": "(null)", "w": last["total_null"]}),
    ], ignore_index=True)
    channels = sorted(set(steps["ch"]))

    def probability(removed: str | None) -> float:
        m = moves if removed is None else moves.assign(dst=moves["dst"].where(moves["dst"] != removed, "(null)"))
        m = m[m["src"] != removed] if removed is not None else m
        counts = m.groupby(["src", "dst"], as_index=False)["w"].sum()
        counts["p"] = counts["w"] / counts.groupby("src")["w"].transform("sum")
        states = ["(start)", *[c for c in channels if c != removed]]
        index = {s: i for i, s in enumerate(states)}
        q = np.zeros((len(states), len(states)))
        r = np.zeros(len(states))
        for row in counts.itertuples():
            if row.dst == "(conversion)":
                r[index[row.src]] += row.p
            elif row.dst in index:
                q[index[row.src], index[row.dst]] += row.p
        return float(np.linalg.solve(np.eye(len(states)) - q, r)[0])

    base = probability(None)
    effects = {c: 1 - probability(c) / base for c in channels}
    norm = sum(effects.values())
    total = float(df["total_conversions"].sum())
    credits = {c: total * e / norm for c, e in effects.items()}
    return {"total": time.perf_counter() - t0, "p_conversion": base, "removal_effects": effects, "credits": credits,
            "rss_mb": peak_rss_mb(), "versions": {"pandas": pd.__version__, "numpy": np.__version__}}


def _head(data: Path, limit: int) -> Path:
    """The header and the first `limit` rows, so both sides read the same smaller file."""
    out = data.with_name(f"head-{limit}.csv")
    if not out.exists():
        with data.open() as src, out.open("w") as dst:
            for i, line in enumerate(src):
                if i > limit:
                    break
                dst.write(line)
    return out


def child(kind: str, data: Path, *extra: str) -> dict:
    """Run this script as `--run KIND` in a fresh process (its own peak RSS); read its last JSON line."""
    return run_child([sys.executable, __file__, "--run", kind, "--data", str(data), *extra], kind)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--journeys", type=int, default=1_000_000)
    ap.add_argument("--reference-journeys", type=int, help="Time the pandas reference (and cxlens again) on the first N journeys.")
    ap.add_argument("--skip-reference", action="store_true", help="Only time cxlens.")
    ap.add_argument("--run", choices=["generate", "cxlens", "reference"], help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--limit", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.run:
        if args.run == "generate":
            result = generate(args.data, args.journeys)
        else:
            result = (run_cxlens if args.run == "cxlens" else run_reference)(args.data, args.limit)
        print(json.dumps(result))
        return
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as d:
        data = Path(d) / "paths.csv"
        t0 = time.perf_counter()
        # The parent holds no data: Linux keeps a process's peak RSS across exec, so a parent that
        # did would hand its peak to every child it starts.
        made = child("generate", data, "--journeys", str(args.journeys))
        print(f"data: {made['journeys']:,} journeys ({made['conversions']:,} converting), {made['distinct_paths']:,} distinct "
              f"paths, mean length {made['mean_length']:.2f}, {made['bytes'] / 2**20:.0f} MiB CSV "
              f"(generated in {time.perf_counter() - t0:.0f} s)")
        cx = child("cxlens", data)
        print(f"cxlens ({', '.join(f'{k} {v}' for k, v in cx['versions'].items())}): order 1 end to end {cx['total']:.2f} s "
              f"(read + merge {cx['read']:.2f} s into {cx['distinct_paths']:,} distinct paths, chain + {len(cx['removal_effects'])} "
              f"removal effects {cx['order1']:.2f} s), peak RSS {cx['rss_mb']:.0f} MiB; "
              f"target <= 15 s: {'met' if cx['total'] <= 15 else 'NOT met'}")
        for order, h in cx["higher"].items():
            print(f"  order {order}: {h['seconds']:.2f} s ({h['states']:,} states) on the counts already read")
        print(f"  P(conversion) {cx['p_conversion']:.6f}; credits: "
              + ", ".join(f"{c} {v:,.0f}" for c, v in sorted(cx['credits'].items(), key=lambda kv: -kv[1])))
        if args.skip_reference:
            return
        limit = min(args.reference_journeys or args.journeys, args.journeys)
        same = cx if limit == args.journeys else child("cxlens", data, "--limit", str(limit))
        ref = child("reference", data, "--limit", str(limit if limit < args.journeys else 0))
        print(f"reference (pandas explode + groupby + numpy.linalg per removed channel; {', '.join(f'{k} {v}' for k, v in ref['versions'].items())}) "
              f"on {limit:,} journeys: {ref['total']:.2f} s, peak RSS {ref['rss_mb']:.0f} MiB")
        print(f"ratio reference / cxlens (order 1, end to end, {limit:,} journeys): {ref['total'] / same['total']:.1f}x")
        diff = max(abs(same["removal_effects"][c] - ref["removal_effects"][c]) for c in ref["removal_effects"])
        print(f"removal effects: max absolute difference {diff:.1e}; P(conversion) cxlens {same['p_conversion']:.9f}, "
              f"reference {ref['p_conversion']:.9f}")


if __name__ == "__main__":
    main()
