"""A simulated omni-channel retailer with known truth, for demos, tests and benchmarks.

`simulate()` draws a population, lets it browse, buy, open emails, call support, answer surveys
and churn with known causal effects, then writes each source system's export in its own layout
(CSV, gzip CSV, NDJSON) with a mapping YAML beside it, and `truth.json` with the identity of every
key, every deliberately dirty or duplicated row and the effects analyses should recover.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb

from cxlens.errors import SimulationError
from cxlens.simulate import exports_engagement as eng
from cxlens.simulate import exports_operations as ops
from cxlens.simulate import exports_sales as sales
from cxlens.simulate.config import SimulationConfig
from cxlens.simulate.dirt import apply_dirt
from cxlens.simulate.truth import effects, identity_truth, persons
from cxlens.simulate.world import World, build_world
from cxlens.simulate.writer import Export, write_export

__all__ = ["SimulationConfig", "SimulationResult", "ExportSummary", "simulate", "EXPORT_BUILDERS"]

EXPORT_BUILDERS: tuple[Callable[[World, object], Export], ...] = (
    sales.crm_customers, sales.webshop_accounts, sales.webshop_orders, sales.webshop_order_items, sales.pos_lines,
    eng.web_events, eng.email_activity, eng.campaigns, eng.support_interactions, eng.survey_responses,
    sales.loyalty_events, ops.store_traffic, ops.costs, sales.subscriptions, eng.assignments,
)
"""Every export, in the order they are written and listed in truth.json."""

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class ExportSummary:
    """One written export: data file, mapping file, target table and row counts."""

    file: str
    mapping: str
    table: str
    source: str | None
    rows: int
    dirty: int
    duplicates: int


@dataclass(frozen=True)
class SimulationResult:
    """What `simulate` wrote and how long it took."""

    out_dir: Path
    config: SimulationConfig
    exports: tuple[ExportSummary, ...]
    truth_path: Path
    seconds: float

    @property
    def total_rows(self) -> int:
        return sum(e.rows for e in self.exports)


def simulate(out_dir: str | Path, customers: int = 2_000, days: int = 365, seed: int = 42,
             start: date = date(2025, 1, 1), progress: Progress | None = None) -> SimulationResult:
    """Simulate the retailer and write its exports, mappings and truth.json into `out_dir`."""
    began = time.perf_counter()
    cfg = SimulationConfig(customers=customers, days=days, seed=seed, start=start)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise SimulationError(f"--out {out} is a file; give a folder to write the exports into.")
    out.mkdir(parents=True, exist_ok=True)
    steps = len(EXPORT_BUILDERS) + 2
    report = progress or (lambda label, done, total: None)
    report("simulating behaviour", 0, steps)
    world = build_world(cfg)
    dirty: list[dict] = []
    duplicates: list[dict] = []
    exports: list[Export] = []
    summaries: list[ExportSummary] = []
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    try:
        for k, build in enumerate(EXPORT_BUILDERS, start=1):
            ex = build(world, world.rngs["exports"])
            report(f"writing {ex.file}", k, steps)
            d, u = apply_dirt(world.rngs["dirt"], ex)
            write_export(ex, out, con)
            dirty += d
            duplicates += u
            exports.append(ex)
            summaries.append(ExportSummary(ex.file, ex.mapping_file, ex.table, ex.source, ex.rows, len(d), len(u)))
    finally:
        con.close()
    report("computing identity truth", steps - 1, steps)
    truth = {
        "seed": cfg.seed, "customers": cfg.customers, "days": cfg.days, "start": cfg.start.isoformat(),
        "files": [{"file": s.file, "mapping": s.mapping, "table": s.table, "source": s.source, "rows": s.rows,
                   "dirty": s.dirty, "duplicates": s.duplicates} for s in summaries],
        "dirty": dirty,
        "duplicates": duplicates,
        "identity": identity_truth(exports),
        "effects": effects(world),
        "persons": persons(world),
    }
    truth_path = out / "truth.json"
    truth_path.write_text(json.dumps(truth, ensure_ascii=False, separators=(",", ":")))
    report("done", steps, steps)
    return SimulationResult(out, cfg, tuple(summaries), truth_path, time.perf_counter() - began)
