"""Benchmark: N web events from one CSV, ingested and identity-resolved end to end.

Compares `cxlens ingest` (stage, validate, quarantine, dedupe, load, resolve identities, rebuild
profiles) with the obvious alternative: a bare DuckDB `CREATE TABLE AS SELECT * FROM read_csv` of
the same file into a fresh database. Each side runs in its own process so peak RSS is its own.

    .venv/bin/python benchmarks/ingest.py                # 10M rows (the README figures)
    .venv/bin/python benchmarks/ingest.py --rows 1000000

Targets on the 2-core reference machine: >= 300k rows/s end to end, peak RSS <= 4 GiB, ratio <= 3.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import duckdb


def make_csv(path: Path, rows: int, *, offset: int = 0, visitors: int | None = None) -> None:
    """Realistic analytics export: ids, timestamps, types, sources; 1 in 5 events logged in.

    `offset` continues an earlier export (later ids and times); its visitors come back when
    `visitors` is the earlier export's number of visitors."""
    pool = visitors or max(rows // 60, 1)
    duckdb.sql(f"""
        COPY (
          SELECT 'ev-' || i AS event_id,
                 strftime(TIMESTAMP '2025-01-01' + INTERVAL (i // 30) SECOND, '%Y-%m-%d %H:%M:%S') AS occurred_at,
                 (['page_view','page_view','page_view','product_view','add_to_cart','search','purchase'])[1 + (i % 7)] AS event_type,
                 'anon-' || (hash(i // 40) % {pool}) AS anonymous_id,
                 CASE WHEN i % 5 = 0 THEN 'C' || (hash(i // 40) % {pool}) END AS customer_id,
                 's-' || (i // 12) AS session_id,
                 'web' AS channel,
                 '/p/' || (i % 5000) AS page_url,
                 (['google','newsletter','facebook',NULL])[1 + (i % 4)] AS utm_source,
                 (['cpc','email','social',NULL])[1 + (i % 4)] AS utm_medium,
                 CASE WHEN i % 7 = 6 THEN round((i % 9000) / 100.0, 2) END AS value
          FROM range({offset}, {offset + rows}) t(i)
        ) TO '{path}' (HEADER, DELIMITER ',')
    """)


def _child(kind: str, csv: str, db: str) -> None:
    start = time.perf_counter()
    if kind == "duckdb":
        con = duckdb.connect(db)
        con.execute("SET enable_progress_bar = false")
        con.execute(f"CREATE TABLE events AS SELECT * FROM read_csv('{csv}')")
        n = con.execute("SELECT count(*) FROM events").fetchone()[0]
        con.close()
    else:
        import cxlens.semantic.kept as kept
        from cxlens import Workspace
        from cxlens.ingest import ingest

        refresh, spent = kept.refresh_sessions, []

        def timed(ws: object, **kw: object) -> kept.Refresh:  # how much of the ingest keeping sessions took
            r = refresh(ws, **kw)
            spent.append(r)
            return r

        kept.refresh_sessions = timed
        with Workspace.open(db) as ws:
            (r,) = ingest(ws, "events", [csv], source="web")
            n = r.rows_loaded
            seconds = time.perf_counter() - start
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            # The next day's events (1% more, new and returning visitors): the kept sessions
            # are refreshed for the session keys they touch only.
            day = Path(csv).with_name("next_day.csv")
            make_csv(day, max(n // 100, 1), offset=n, visitors=max(n // 60, 1))
            t = time.perf_counter()
            ingest(ws, "events", [day], source="web")
            next_day = time.perf_counter() - t
        print(json.dumps({"rows": n, "seconds": seconds, "peak_rss": peak, "sessions": asdict(spent[0]),
                          "next_day_rows": max(n // 100, 1), "next_day_seconds": next_day,
                          "next_day_sessions": asdict(spent[-1])}))
        return
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"rows": n, "seconds": seconds, "peak_rss": peak}))


def run(kind: str, csv: Path, db: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", kind, str(csv), str(db)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--dir", type=Path, default=None, help="Scratch folder (default: a temp dir).")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        d = Path(tmp)
        csv = d / "events.csv"
        t = time.perf_counter()
        make_csv(csv, args.rows)
        print(f"wrote {args.rows:,} rows ({csv.stat().st_size / 2**20:,.0f} MiB) in {time.perf_counter() - t:.1f} s")
        bare = run("duckdb", csv, d / "bare.duckdb")
        ours = run("cxlens", csv, d / "cx.duckdb")
    assert ours["rows"] == args.rows == bare["rows"], (ours, bare)
    ratio = ours["seconds"] / bare["seconds"]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, Python {platform.python_version()}, "
          f"duckdb {duckdb.__version__}")
    print(f"bare DuckDB read_csv -> table : {bare['seconds']:6.1f} s  {args.rows / bare['seconds']:>12,.0f} rows/s  "
          f"peak RSS {bare['peak_rss'] / 2**30:.2f} GiB")
    print(f"cxlens ingest + identities    : {ours['seconds']:6.1f} s  {args.rows / ours['seconds']:>12,.0f} rows/s  "
          f"peak RSS {ours['peak_rss'] / 2**30:.2f} GiB")
    print(f"ratio cxlens / bare           : {ratio:6.2f}  (target <= 3; >= 300k rows/s; <= 4 GiB)")
    s = ours["sessions"]
    print(f"  of which keeping sessions   : {s['seconds']:6.1f} s  ({s['mode']} build of {s['sessions']:,} sessions)")
    d = ours["next_day_sessions"]
    print(f"next day's {ours['next_day_rows']:,} events ingested: {ours['next_day_seconds']:.1f} s, of which keeping sessions "
          f"{d['seconds']:.2f} s ({d['mode']}: {d['keys']:,} session keys rebuilt, {d['sessions']:,} sessions kept)")


if __name__ == "__main__":
    main()
