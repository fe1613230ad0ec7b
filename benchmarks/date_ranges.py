"""Benchmark: the whole catalogue by month for many date ranges, with compiled queries kept or not.

What a dashboard reader does when they try date ranges one after the other: every range asks the
same ~18 engine queries with other dates. Without kept queries each range builds the Ibis
expressions and compiles them to SQL again (the obvious way, `Measurer.measure_many`); with a
`Templates` (cxlens.semantic.templates) the first range compiles and the others only run the
engine. Each range runs on a new connection, as the dashboard opens the workspace per batch of
views. Kept queries check the data values they were built with (the latest activity, whether the
kept sessions are current: ~0.2 s on the demo) on every connection, or once per data version when
told it (`Templates.epoch`, as the dashboard does with the workspace's file stamp): both are timed.
Every way must give the same frames (checked, every metric, every range).

    .venv/bin/python benchmarks/date_ranges.py --workspace demo/cxlens.duckdb
    .venv/bin/python benchmarks/date_ranges.py            # builds the demo workspace first (2-3 min)
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from harness import machine, workspace_copy  # noqa: E402

from cxlens.semantic import Measurer  # noqa: E402
from cxlens.semantic.registry import Catalog, definitions_path  # noqa: E402
from cxlens.semantic.templates import Templates  # noqa: E402
from cxlens.workspace import Workspace  # noqa: E402
from cxlens.workspace.workspace import file_stamp  # noqa: E402



def ranges(first: date, last: date, n: int) -> list[tuple[date, date]]:
    """n ranges of 3 to 6 months inside the data, each starting on another day."""
    out = []
    span = (last - first).days
    for i in range(n):
        start = first + timedelta(days=(i * 37) % max(span - 190, 1))
        out.append((start, start + timedelta(days=90 + (i * 29) % 90)))
    return out


def measure(path: Path, catalog: Catalog, ids: list[str], since: date, until: date,
            templates: Templates | None, epoch: bool = False) -> tuple[float, dict[str, pd.DataFrame]]:
    started = time.perf_counter()
    if templates is not None and epoch:
        templates.epoch(file_stamp(path))
    with Workspace.open(path) as ws, Measurer(ws, catalog, templates=templates) as m:
        results = m.measure_many(ids, grain="month", since=since, until=until)
    return time.perf_counter() - started, {k: r.frame for k, r in results.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workspace", type=Path, help="A workspace (copied; default: build the demo's).")
    ap.add_argument("--ranges", type=int, default=8, help="Date ranges measured in turn.")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cxlens-ranges-bench-"))
    try:
        path = workspace_copy(args.workspace, tmp)
        catalog = Catalog.load(definitions_path(path))
        ids = list(catalog.metrics)
        with Workspace.open(path) as ws:
            lo, hi = ws.sql("SELECT min(ordered_at)::DATE, max(ordered_at)::DATE FROM orders").fetchone()
        print(machine(), flush=True)
        print(f"{len(ids)} metrics by month, {args.ranges} date ranges between {lo} and {hi}, each on a new connection")
        measure(path, catalog, ids, lo, hi, None)  # imports and the engine's first touch, for both ways
        templates, trusted = Templates(), Templates()
        plain_s, kept_s, trusted_s = [], [], []
        for since, until in ranges(lo, hi, args.ranges):
            p, plain = measure(path, catalog, ids, since, until, None)
            k, kept = measure(path, catalog, ids, since, until, templates)
            t, once = measure(path, catalog, ids, since, until, trusted, epoch=True)
            for mid in ids:
                pd.testing.assert_frame_equal(kept[mid], plain[mid], check_exact=False, rtol=1e-9, atol=1e-9)
                pd.testing.assert_frame_equal(once[mid], plain[mid], check_exact=False, rtol=1e-9, atol=1e-9)
            plain_s.append(p)
            kept_s.append(k)
            trusted_s.append(t)
            print(f"  {since} .. {until}: compiled each time {p:5.2f} s   kept queries {k:5.2f} s   "
                  f"kept, values checked once per data version {t:5.2f} s", flush=True)
        base = statistics.median(plain_s)
        rest, once_rest = statistics.median(kept_s[1:]), statistics.median(trusted_s[1:])
        print(f"\ncompiled each time: median {base:.2f} s per range")
        print(f"kept queries: first range {kept_s[0]:.2f} s (compiles {templates.compiled}), then median {rest:.2f} s "
              f"({templates.hits} queries reused); values checked once per data version: {once_rest:.2f} s")
        print(f"ratio (compiled each time / kept, after the first range): {base / rest:.1f}x, "
              f"{base / once_rest:.1f}x checked once; every frame equal")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
