"""Benchmark: analyze a 1M-unit, 3-variant experiment on 20 metrics with CUPED from the workspace.

Usage: python benchmarks/experiments.py [--units 1000000] [--orders 2000000] [--events 5000000]

Generates the canonical tables (benchmarks/metrics.py's generator) plus 1M assignments to
control/A/B, loads them into a DuckDB workspace (untimed), then times `analyze_experiment` on
20 catalogue metrics — each per unit over its exposure window with the 30 days before as the
CUPED covariate, the engine reducing units to sufficient statistics. The obvious alternative is
hand-written pandas: per-unit group-bys for the same 20 metrics, then the same statistics. Both
run in child processes (peak RSS per side) and their absolute effects are compared.

Second figure: the statistics engine alone on 10,000 cells (strata × variants × metrics) of a
CUPED ratio metric in one vectorized call, against calling it cell by cell.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
METRICS = (
    "revenue", "orders", "return_rate", "aov", "active_customers", "purchase_frequency", "revenue_per_customer",
    "repeat_purchase_rate", "nps", "csat", "csat_mean", "ces", "open_rate", "click_through_rate", "click_to_open_rate",
    "unsubscribe_rate", "recommendation_click_through_rate", "store_sales", "coupon_redemption_rate",
    "loyalty_enrollment_rate",
)
VARIANTS = ("control", "A", "B")
PRE_DAYS = 30


def _metrics_benchmark():
    spec = importlib.util.spec_from_file_location("bench_metrics", ROOT / "benchmarks" / "metrics.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def generate(folder: Path, units: int, orders: int, events: int, seed: int = 1) -> dict[str, int]:
    bench = _metrics_benchmark()
    rows = bench.generate(folder, events=events, orders=orders, customers=units, seed=seed)
    rng = np.random.default_rng(seed + 1)
    assigned = bench.START + (365 * 86_400 + rng.integers(0, 30 * 86_400, units)).astype("timedelta64[s]")
    table = pa.table({
        "experiment_id": ["bench"] * units, "unit_id": [f"c{i:07d}" for i in range(units)],
        "variant": np.asarray(VARIANTS, dtype=object)[rng.integers(0, 3, units)],
        "assigned_at": pa.array(assigned, pa.timestamp("us")), "profile_id": [f"p{i:07d}" for i in range(units)],
        "source": ["web"] * units,
    })
    pq.write_table(table, folder / "assignments.parquet")
    rows["assignments"] = units
    return rows


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_cxlens(data: Path) -> dict:
    sys.path.insert(0, str(ROOT))
    from cxlens import Workspace
    from cxlens.experiments.workspace import analyze_experiment
    from cxlens.semantic import Catalog

    with tempfile.TemporaryDirectory() as d, Workspace.open(Path(d) / "bench.duckdb") as ws:
        _metrics_benchmark().load(ws, data)
        t0 = time.perf_counter()
        analysis = analyze_experiment(ws, "bench", METRICS, control="control", pre_days=PRE_DAYS, catalog=Catalog.built_in())
        seconds = time.perf_counter() - t0
    effects = {f"{r['metric']}|{r['variant']}": r["abs_effect"] for r in analysis.results}
    return {"seconds": seconds, "rss_mb": peak_rss_mb(), "effects": effects, "results": len(analysis.results)}


def run_pandas(data: Path) -> dict:
    """The same 20 metrics per unit, written by hand in pandas, then the same statistics engine."""
    import pandas as pd

    sys.path.insert(0, str(ROOT))
    from cxlens.stats.effects import estimate_effects
    from cxlens.stats.sums import Sums

    read = lambda name, cols: pq.read_table(data / f"{name}.parquet", columns=cols).to_pandas()  # noqa: E731
    a = read("assignments", ["profile_id", "variant", "assigned_at"])
    o = read("orders", ["profile_id", "ordered_at", "revenue", "status", "channel", "coupon_code"])
    e = read("events", ["profile_id", "occurred_at", "event_type"])
    s = read("survey_responses", ["profile_id", "responded_at", "survey_type", "score"])
    t0 = time.perf_counter()
    units = a.groupby("profile_id").agg(variant=("variant", "first"), start=("assigned_at", "min"))

    def phased(frame: pd.DataFrame, ts: str) -> pd.DataFrame:
        f = frame[frame.profile_id.notna()].join(units, on="profile_id", how="inner")
        post = f[ts] >= f.start
        pre = (f[ts] < f.start) & (f[ts] >= f.start - pd.Timedelta(days=PRE_DAYS))
        f = f[post | pre]
        return f.assign(phase=np.where(post[post | pre], "post", "pre"))

    def per_unit(frame: pd.DataFrame, **columns: pd.Series) -> pd.DataFrame:
        g = frame.assign(**columns).groupby(["profile_id", "phase"])[list(columns)].sum()
        return g.unstack("phase", fill_value=0)

    oo = phased(o[o.status.isna() | o.status.isin(["completed", "returned"])], "ordered_at")
    outcomes = per_unit(oo, returned=(oo.status == "returned").astype(float), outcomes=pd.Series(1.0, index=oo.index))
    ov = oo[oo.status.isna() | (oo.status == "completed")]
    coupon = ov.coupon_code.notna() & (ov.coupon_code != "")
    orders = per_unit(ov, cnt=pd.Series(1.0, index=ov.index), rev=ov.revenue, store=ov.revenue.where(ov.channel == "store", 0.0),
                      coupon=coupon.astype(float))
    sv = phased(s, "responded_at")
    nps, csat, ces = (sv.survey_type == k for k in ("nps", "csat", "ces"))
    surveys = per_unit(sv, nps_n=nps.astype(float), nps_y=(nps * np.select([sv.score >= 9, sv.score <= 6], [1.0, -1.0], 0.0)),
                       csat_n=csat.astype(float), csat_sat=(csat & (sv.score >= 4)).astype(float), csat_score=sv.score.where(csat, 0.0),
                       ces_n=ces.astype(float), ces_score=sv.score.where(ces, 0.0))
    ev = phased(e, "occurred_at")
    kinds = ["message_sent", "message_opened", "message_clicked", "message_unsubscribed", "recommendation_shown",
             "recommendation_clicked", "loyalty_enrolled"]
    events = per_unit(ev, **{k: (ev.event_type == k).astype(float) for k in kinds})
    wide = pd.concat([outcomes, orders, surveys, events], axis=1).reindex(units.index, fill_value=0).fillna(0.0)

    def col(name: str, phase: str) -> np.ndarray:
        return wide[(name, phase)].to_numpy() if (name, phase) in wide.columns else np.zeros(len(wide))

    def parts(metric: str, p: str) -> tuple[np.ndarray, np.ndarray | None]:
        c = col
        cnt = c("cnt", p)
        return {
            "revenue": (c("rev", p), None), "orders": (cnt, None), "return_rate": (c("returned", p), c("outcomes", p)),
            "aov": (c("rev", p), cnt), "active_customers": ((cnt > 0) * 1.0, None),
            "purchase_frequency": (cnt, (cnt > 0) * 1.0), "revenue_per_customer": (c("rev", p), (cnt > 0) * 1.0),
            "repeat_purchase_rate": ((cnt >= 2) * 1.0, (cnt > 0) * 1.0), "nps": (c("nps_y", p), c("nps_n", p)),
            "csat": (c("csat_sat", p), c("csat_n", p)), "csat_mean": (c("csat_score", p), c("csat_n", p)),
            "ces": (c("ces_score", p), c("ces_n", p)), "open_rate": (c("message_opened", p), c("message_sent", p)),
            "click_through_rate": (c("message_clicked", p), c("message_sent", p)),
            "click_to_open_rate": (c("message_clicked", p), c("message_opened", p)),
            "unsubscribe_rate": (c("message_unsubscribed", p), c("message_sent", p)),
            "recommendation_click_through_rate": (c("recommendation_clicked", p), c("recommendation_shown", p)),
            "store_sales": (c("store", p), None), "coupon_redemption_rate": (c("coupon", p), cnt),
            "loyalty_enrollment_rate": ((c("loyalty_enrolled", p) > 0) * 1.0, (cnt > 0) * 1.0),
        }[metric]

    variant = units.variant.reindex(wide.index).to_numpy()
    effects: dict[str, float | None] = {}
    for metric in METRICS:
        (y, d), (x, ee) = parts(metric, "post"), parts(metric, "pre")
        columns = {"y": y, "x": x} if d is None else {"y": y, "d": d, "x": x, "e": ee}
        arms = {v: Sums.of(**{k: col_[variant == v] for k, col_ in columns.items()}) for v in VARIANTS}
        for v in VARIANTS[1:]:
            [r] = estimate_effects(arms["control"], arms[v], kind="mean" if d is None else "ratio", cuped=True).records()
            scale = 100.0 if metric == "nps" else 1.0  # NPS in points, as the catalogue reports it
            effects[f"{metric}|{v}"] = None if r["abs_effect"] is None else r["abs_effect"] * scale  # type: ignore[operator]
    return {"seconds": time.perf_counter() - t0, "rss_mb": peak_rss_mb(), "effects": effects, "results": len(effects)}


def engine_alone(cells: int = 10_000) -> tuple[float, float]:
    """Seconds for one vectorized call on `cells` CUPED ratio cells, and for a per-cell loop on 500 of them."""
    sys.path.insert(0, str(ROOT))
    from cxlens.stats.effects import estimate_effects
    from cxlens.stats.sums import Sums

    rng = np.random.default_rng(3)
    def arm() -> Sums:
        raw = rng.gamma(2.0, 1.0, size=(cells, 200, 4)) + 0.1
        return Sums(("y", "d", "x", "e"), np.full(cells, 200), raw.sum(axis=1), np.einsum("cui,cuj->cij", raw, raw))

    control, treatment = arm(), arm()
    estimate_effects(control.take([0]), treatment.take([0]), kind="ratio", cuped=True)  # warm up: scipy's import
    t0 = time.perf_counter()
    estimate_effects(control, treatment, kind="ratio", cuped=True)
    vectorized = time.perf_counter() - t0
    sample = 500
    t0 = time.perf_counter()
    for i in range(sample):
        estimate_effects(control.take([i]), treatment.take([i]), kind="ratio", cuped=True)
    loop = (time.perf_counter() - t0) / sample * cells
    return vectorized, loop


def child(kind: str, data: Path, *extra: str) -> dict:
    return _metrics_benchmark().child(kind, data, *extra, script=__file__)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--units", type=int, default=1_000_000)
    ap.add_argument("--orders", type=int, default=2_000_000)
    ap.add_argument("--events", type=int, default=5_000_000)
    ap.add_argument("--skip-pandas", action="store_true")
    ap.add_argument("--run", choices=["cxlens", "pandas", "generate"], help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.run == "generate":
        print(json.dumps(generate(args.data, args.units, args.orders, args.events)))
        return
    if args.run:
        print(json.dumps(run_cxlens(args.data) if args.run == "cxlens" else run_pandas(args.data)))
        return
    vectorized, loop = engine_alone()
    print(f"engine alone, 10,000 CUPED ratio cells: {vectorized:.3f} s in one call; cell by cell ~{loop:.1f} s "
          f"(ratio {loop / vectorized:.0f}x)")
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        # In a child too: Linux keeps a process's peak RSS across exec, so a parent that held the
        # generated data would hand its peak to every child it starts.
        rows = child("generate", Path(d), "--units", str(args.units), "--orders", str(args.orders), "--events", str(args.events))
        print(f"data: {rows['assignments']:,} units, {rows['orders']:,} orders, {rows['events']:,} events, "
              f"{rows['survey_responses']:,} survey answers (generated in {time.perf_counter() - t0:.0f} s)")
        cx = child("cxlens", Path(d))
        print(f"cxlens (DuckDB): {len(METRICS)} metrics x {len(VARIANTS) - 1} variants with CUPED in {cx['seconds']:.2f} s, "
              f"peak RSS {cx['rss_mb'] / 1024:.2f} GiB")
        if args.skip_pandas:
            return
        pd_ = child("pandas", Path(d))
        print(f"hand-written pandas: {pd_['seconds']:.2f} s, peak RSS {pd_['rss_mb'] / 1024:.2f} GiB")
        print(f"ratio pandas / cxlens: {pd_['seconds'] / cx['seconds']:.1f}x")
        def agree(v: float | None, w: float | None) -> bool:
            return (v is None and w is None) or (v is not None and w is not None and abs(v - w) <= 1e-6 * abs(v) + 1e-12)

        same = [k for k, v in cx["effects"].items() if agree(v, pd_["effects"].get(k))]
        print(f"effects equal in both: {len(same)} of {len(cx['effects'])}")
        differ = sorted(set(cx["effects"]) - set(same))
        if differ:
            print("  differ: " + ", ".join(differ))


if __name__ == "__main__":
    main()
