"""Benchmark: `cxlens simulate` at demo size (20,000 customers over 365 days); target <= 30 s on 2 cores."""

from __future__ import annotations

import sys
import tempfile
import time

from cxlens.simulate import simulate


def main(customers: int = 20_000, days: int = 365) -> None:
    with tempfile.TemporaryDirectory() as out:
        began = time.perf_counter()
        result = simulate(out, customers=customers, days=days, seed=42)
        seconds = time.perf_counter() - began
    for e in result.exports:
        print(f"{e.file:28} {e.table:17} {e.rows:>10,} rows  {e.dirty:>5} dirty  {e.duplicates:>5} duplicates")
    print(f"{result.total_rows:,} rows in {seconds:.1f} s ({customers:,} customers, {days} days)")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
