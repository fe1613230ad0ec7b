"""Benchmark: connected components of an identity graph on DuckDB vs scipy (the reference).

Run: .venv/bin/python benchmarks/identity.py [--edges 5000000] [--nodes 5000000]
Prints edges/s, rounds, peak RSS and the ratio to scipy.sparse.csgraph.connected_components on the
same edges, and checks both give the same partition. Not a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pyarrow as pa
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components as scipy_components

from cxlens import Workspace
from cxlens.identity.components import connected_components
from cxlens.identity.engine import Scratch


def peak_rss_mb() -> float:
    p = psutil.Process()
    info = p.memory_full_info() if hasattr(p, "memory_full_info") else p.memory_info()
    import resource

    return max(info.rss, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--edges", type=int, default=5_000_000)
    ap.add_argument("--nodes", type=int, default=5_000_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    a = rng.integers(0, args.nodes, args.edges)
    b = rng.integers(0, args.nodes, args.edges)

    with tempfile.TemporaryDirectory() as d, Workspace.open(Path(d) / "bench.duckdb") as ws:
        names = pa.array([f"email:u{i:09d}@example.com" for i in range(args.nodes)])
        edges = pa.table({"key_a": names.take(pa.array(a)), "key_b": names.take(pa.array(b))})
        ws.con.create_table("bench_edges", edges)
        del edges
        e = ws.table("bench_edges")
        nodes = e.select(key=e.key_a).union(e.select(key=e.key_b))
        t0 = time.perf_counter()
        with Scratch(ws) as s:
            comps = connected_components(s, nodes, e)
            seconds = time.perf_counter() - t0
            got = comps.labels.to_pyarrow()
        rss = peak_rss_mb()

    t0 = time.perf_counter()
    m = coo_matrix((np.ones(args.edges, dtype=np.int8), (a, b)), shape=(args.nodes, args.nodes))
    _, ref = scipy_components(m, directed=False)
    ref_seconds = time.perf_counter() - t0

    ids = pd.Series(got.column("key").to_pylist()).str.slice(7, 16).astype("int64").to_numpy()
    frame = pd.DataFrame({"label": got.column("label").to_pylist(), "ref": ref[ids]})
    same = frame.groupby("label").ref.nunique().max() == 1 and frame.groupby("ref").label.nunique().max() == 1

    print(f"edges            {args.edges:,}")
    print(f"keys in edges    {len(frame):,}")
    print(f"components       {frame.label.nunique():,}")
    print(f"rounds           {comps.iterations}")
    print(f"duckdb seconds   {seconds:.2f}  ({args.edges / seconds:,.0f} edges/s, {seconds / max(comps.iterations, 1):.2f} s/round)")
    print(f"scipy seconds    {ref_seconds:.2f}  (ratio duckdb/scipy {seconds / ref_seconds:.1f}x)")
    print(f"peak RSS         {rss:,.0f} MB")
    print(f"same partition   {same}")


if __name__ == "__main__":
    main()
