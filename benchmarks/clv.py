"""Benchmark: BG/NBD + Gamma-Gamma on 1M simulated customers, cxlens against lifetimes on the same data.

Run: .venv/bin/python benchmarks/clv.py [--customers 1000000] [--reference-customers N] [--skip-reference]

A child process simulates the customers from the models' own generative process with known,
CDNOW-like parameters in weeks (purchases: r 0.24, alpha 4.4, a 0.79, b 2.4; spend: p 6.25,
q 3.74, v 15.44; customers acquired by the day over 39 weeks and observed until week 78, so T
runs from 39 to 78 weeks, recency recorded by the day) and writes the RFM summary as CSV. Then
one child per side, each with its own peak RSS, reads it (untimed) and times the two fits —
BG/NBD on everyone, Gamma-Gamma on the repeat buyers — and, apart, three predictions per
customer: expected purchases over the next 52 weeks, P(alive), and 12-month CLV at 1% a month.

The reference is lifetimes 0.11.3 (the package most CLV code in Python still calls; archived
since 2020), with `BetaGeoFitter().fit(frequency, recency, T)` and
`GammaGammaFitter().fit(frequency, monetary_value)`, penalizer 0, as a user would call them. It
runs in its own venv, benchmarks/.venv-lifetimes, which the benchmark creates on first use from
the exact pins in benchmarks/requirements-lifetimes.txt. Those pins use the project's own numpy,
scipy and pandas (lifetimes 0.11.3 declares no upper bounds and works with them through
autograd 1.9), so both sides run the same numerical libraries; the separate venv keeps lifetimes,
autograd and dill out of the project's environment. lifetimes rescales time so that the oldest
customer's T is 1 and reports alpha back in the data's unit, so parameters compare directly; its
log-likelihood is a mean over the rescaled data and is converted here to the total in weeks
(it differs by sum(x) log(scale)). cxlens' fit reduces identical customers to one weighted row
first; lifetimes accepts such weights but is called per customer, as its documentation shows.

--reference-customers N times lifetimes on the first N customers only, and cxlens on those same
N as well, so the ratio stays like for like (for a machine where lifetimes on all of them is too
slow); by default both sides get every customer.

Targets (issue): cxlens <= 10 s on 1M customers, >= 10x faster than the reference, parameters
within 1e-3 relative of the reference's. Not a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import machine, peak_rss_mb, run_child

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_ENV = ROOT / "benchmarks" / ".venv-lifetimes"
REQUIREMENTS = ROOT / "benchmarks" / "requirements-lifetimes.txt"
TRUTH = {"r": 0.24, "alpha": 4.4, "a": 0.79, "b": 2.4, "p": 6.25, "q": 3.74, "v": 15.44}
HORIZON_WEEKS = 52
CLV_MONTHS = 12
DISCOUNT = 0.01  # per month


def generate(path: Path, customers: int, seed: int = 7) -> dict:
    """Simulate BG/NBD purchases and Gamma-Gamma spend with TRUTH's parameters; write the RFM summary as CSV."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    n = customers
    rate = rng.gamma(TRUTH["r"], 1 / TRUTH["alpha"], n)
    dropout = np.clip(rng.beta(TRUTH["a"], TRUTH["b"], n), 1e-12, 1.0)
    days = rng.integers(39 * 7, 78 * 7 + 1, n)
    T = days / 7
    arrivals = rng.poisson(rate * T)  # purchases in (0, T] had the customer stayed
    # BG/NBD: the customer leaves right after the k-th repeat purchase, k ~ Geometric(p) on 1, 2, ...
    frequency = np.minimum(arrivals, rng.geometric(dropout))
    # Given N arrivals in (0, T], the x-th is the x-th order statistic of N uniforms: T Beta(x, N - x + 1).
    last = T * rng.beta(np.maximum(frequency, 1), arrivals - frequency + 1)
    recency = np.where(frequency > 0, np.minimum(np.ceil(last * 7), days) / 7, 0.0)
    repeat = frequency > 0
    nu = rng.gamma(TRUTH["q"], 1 / TRUTH["v"], n)
    spend = np.zeros(n)
    # The mean of x Gamma(p, nu) purchases is Gamma(p x, x nu).
    spend[repeat] = rng.gamma(TRUTH["p"] * frequency[repeat], 1 / (frequency[repeat] * nu[repeat]))
    frame = pd.DataFrame({"frequency": frequency, "recency": recency, "T": T, "monetary_value": spend})
    frame.to_csv(path, index=False)
    return {"customers": n, "repeat_buyers": int(repeat.sum()), "mean_frequency": float(frequency.mean()),
            "distinct_rows": len(frame[["frequency", "recency", "T"]].drop_duplicates())}


def read_summary(path: Path, limit: int):  # -> pandas.DataFrame; pandas is imported in the children only
    """The first `limit` rows; both venvs have the same pandas, so both sides parse the same floats."""
    import pandas as pd

    return pd.read_csv(path, nrows=limit)


def run_cxlens(data: Path, limit: int, predictions: Path) -> dict:
    sys.path.insert(0, str(ROOT))
    import numpy as np
    import pandas as pd
    import scipy

    from cxlens.clv import BGNBD, GammaGamma

    s = read_summary(data, limit)
    x, tx, T, m = (s[c].to_numpy() for c in ("frequency", "recency", "T", "monetary_value"))
    repeat = s[s.frequency > 0]
    t0 = time.perf_counter()
    purchases = BGNBD().fit(s)
    t1 = time.perf_counter()
    spend = GammaGamma().fit(repeat)
    t2 = time.perf_counter()
    expected = purchases.expected_purchases(HORIZON_WEEKS, x, tx, T)
    alive = purchases.probability_alive(x, tx, T)
    value = spend.clv(purchases, x, tx, T, m, time=CLV_MONTHS, discount_rate=DISCOUNT, freq="W")
    t3 = time.perf_counter()
    np.save(predictions, np.stack([expected, alive, value]))
    return {
        "customers": len(s), "fit_bgnbd": t1 - t0, "fit_gamma_gamma": t2 - t1, "predict": t3 - t2, "rss_mb": peak_rss_mb(),
        "params": {**purchases.params_, **spend.params_},
        "standard_errors": {**purchases.standard_errors_, **spend.standard_errors_},
        "log_likelihood": {"bgnbd": purchases.log_likelihood_, "gamma_gamma": spend.log_likelihood_},
        "versions": {"numpy": np.__version__, "scipy": scipy.__version__, "pandas": pd.__version__},
    }


def run_lifetimes(data: Path, limit: int, predictions: Path) -> dict:
    """The same fits and predictions with lifetimes (run by the reference venv's python)."""
    from importlib.metadata import version

    import numpy as np
    import pandas as pd
    import scipy
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    s = read_summary(data, limit)
    repeat = s[s.frequency > 0]
    t0 = time.perf_counter()
    purchases = BetaGeoFitter(penalizer_coef=0.0).fit(s["frequency"], s["recency"], s["T"])
    t1 = time.perf_counter()
    spend = GammaGammaFitter(penalizer_coef=0.0).fit(repeat["frequency"], repeat["monetary_value"])
    t2 = time.perf_counter()
    expected = purchases.conditional_expected_number_of_purchases_up_to_time(HORIZON_WEEKS, s["frequency"], s["recency"], s["T"])
    alive = purchases.conditional_probability_alive(s["frequency"], s["recency"], s["T"])
    value = spend.customer_lifetime_value(purchases, s["frequency"], s["recency"], s["T"], s["monetary_value"],
                                          time=CLV_MONTHS, discount_rate=DISCOUNT, freq="W")
    t3 = time.perf_counter()
    np.save(predictions, np.stack([np.asarray(expected, float), np.asarray(alive, float), np.asarray(value, float)]))
    # Mean negative log-likelihoods; BG/NBD's is on time scaled by 1 / max(T), which shifts each
    # customer's log-likelihood by -x log(scale).
    bgnbd_ll = -purchases._negative_log_likelihood_ * len(s) + float(s["frequency"].sum()) * np.log(purchases._scale)
    return {
        "customers": len(s), "fit_bgnbd": t1 - t0, "fit_gamma_gamma": t2 - t1, "predict": t3 - t2, "rss_mb": peak_rss_mb(),
        "params": {**purchases.params_.to_dict(), **spend.params_.to_dict()},
        "log_likelihood": {"bgnbd": float(bgnbd_ll), "gamma_gamma": float(-spend._negative_log_likelihood_ * len(repeat))},
        "versions": {"lifetimes": version("lifetimes"), "autograd": version("autograd"), "numpy": np.__version__,
                     "scipy": scipy.__version__, "pandas": pd.__version__},
    }


def reference_python() -> Path:
    """The lifetimes venv's python; (re)created with `python -m venv` and the pinned install when missing or the pins changed."""
    python = REFERENCE_ENV / "bin" / "python"
    stamp = REFERENCE_ENV / "installed-requirements.txt"
    pins = REQUIREMENTS.read_text()
    if not python.exists() or not stamp.exists() or stamp.read_text() != pins:
        print(f"creating {REFERENCE_ENV.relative_to(ROOT)} from {REQUIREMENTS.relative_to(ROOT)} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(REFERENCE_ENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-r", str(REQUIREMENTS)], check=True)
        stamp.write_text(pins)
    return python


def child(python: Path | str, kind: str, data: Path, *extra: str) -> dict:
    """Run this script as `--run KIND` under `python` in a fresh process (its own peak RSS); read its last JSON line."""
    return run_child([str(python), __file__, "--run", kind, "--data", str(data), *extra], kind)


def describe(name: str, run: dict) -> str:
    fit = run["fit_bgnbd"] + run["fit_gamma_gamma"]
    return (f"{name}: fits {fit:.2f} s (BG/NBD {run['fit_bgnbd']:.2f} s, Gamma-Gamma {run['fit_gamma_gamma']:.2f} s), "
            f"predictions {run['predict']:.2f} s, peak RSS {run['rss_mb'] / 1024:.2f} GiB")


def compare(cx: dict, ref: dict, cx_predictions: Path, ref_predictions: Path) -> None:
    import numpy as np

    fit_cx = cx["fit_bgnbd"] + cx["fit_gamma_gamma"]
    fit_ref = ref["fit_bgnbd"] + ref["fit_gamma_gamma"]
    print(f"ratio lifetimes / cxlens on {cx['customers']:,} customers: fits {fit_ref / fit_cx:.1f}x "
          f"(BG/NBD {ref['fit_bgnbd'] / cx['fit_bgnbd']:.1f}x, Gamma-Gamma {ref['fit_gamma_gamma'] / cx['fit_gamma_gamma']:.1f}x), "
          f"predictions {ref['predict'] / cx['predict']:.1f}x")
    all_cx, all_ref = fit_cx + cx["predict"], fit_ref + ref["predict"]
    print(f"  target >= 10x: fits {'met' if fit_ref >= 10 * fit_cx else 'NOT met'}, fits + predictions "
          f"{all_ref / all_cx:.1f}x ({all_ref:.2f} s / {all_cx:.2f} s) {'met' if all_ref >= 10 * all_cx else 'NOT met'}")
    print(f"{'':6}{'truth':>10}{'cxlens':>14}{'(s.e.)':>12}{'lifetimes':>14}{'rel. diff':>11}")
    worst = 0.0
    for name, true in TRUTH.items():
        mine, theirs = cx["params"][name], ref["params"][name]
        diff = abs(mine - theirs) / abs(theirs)
        worst = max(worst, diff)
        print(f"{name:6}{true:>10.4g}{mine:>14.6g}{cx['standard_errors'][name]:>12.2g}{theirs:>14.6g}{diff:>11.1e}")
    print(f"parameters: max relative difference {worst:.1e} (target 1e-3: {'met' if worst <= 1e-3 else 'NOT met'})")
    for model, ll in cx["log_likelihood"].items():
        other = ref["log_likelihood"][model]
        print(f"log-likelihood {model}: cxlens {ll:,.3f}, lifetimes {other:,.3f}, relative difference {abs(ll - other) / abs(other):.1e}")
    mine, theirs = np.load(cx_predictions), np.load(ref_predictions)
    for row, label in enumerate((f"expected purchases in {HORIZON_WEEKS} weeks", "P(alive)", f"{CLV_MONTHS}-month CLV")):
        a, b = mine[row], theirs[row]
        both = np.isfinite(a) & np.isfinite(b)
        rel = np.abs(a[both] - b[both]) / np.maximum(np.abs(b[both]), 1e-12)
        missing = f"; not finite: cxlens {int((~np.isfinite(a)).sum())}, lifetimes {int((~np.isfinite(b)).sum())}" if not both.all() else ""
        print(f"{label}: relative difference median {np.median(rel):.1e}, max {rel.max():.1e}{missing}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--reference-customers", type=int, help="Time lifetimes (and cxlens again) on the first N customers only.")
    ap.add_argument("--skip-reference", action="store_true", help="Only time cxlens.")
    ap.add_argument("--run", choices=["generate", "cxlens", "lifetimes"], help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--limit", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--predictions", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.run:
        if args.run == "generate":
            result = generate(args.data, args.customers)
        else:
            result = (run_cxlens if args.run == "cxlens" else run_lifetimes)(args.data, args.limit, args.predictions)
        print(json.dumps(result))
        return
    print(f"machine: {machine()}")
    sub = min(args.reference_customers or args.customers, args.customers)
    with tempfile.TemporaryDirectory() as d:
        data = Path(d) / "summary.csv"
        t0 = time.perf_counter()
        # The parent holds no data: Linux keeps a process's peak RSS across exec, so a parent that
        # did would hand its peak to every child it starts.
        made = child(sys.executable, "generate", data, "--customers", str(args.customers))
        print(f"data: {made['customers']:,} customers, {made['repeat_buyers']:,} repeat buyers, mean frequency "
              f"{made['mean_frequency']:.2f}, {made['distinct_rows']:,} distinct (x, t_x, T) (generated in {time.perf_counter() - t0:.0f} s)")

        def run(python: Path | str, kind: str, n: int) -> tuple[dict, Path]:
            predictions = Path(d) / f"{kind}-{n}.npy"
            return child(python, kind, data, "--limit", str(n), "--predictions", str(predictions)), predictions

        cx, cx_predictions = run(sys.executable, "cxlens", args.customers)
        print(f"cxlens {', '.join(f'{k} {v}' for k, v in cx['versions'].items())}")
        print(describe(f"cxlens, {cx['customers']:,} customers", cx))
        fits = cx["fit_bgnbd"] + cx["fit_gamma_gamma"]
        verdict = {True: "met", False: "NOT met"}
        both = fits + cx["predict"]
        print(f"  target <= 10 s: fits {verdict[fits <= 10]}, fits + predictions ({both:.2f} s) {verdict[both <= 10]}")
        if args.skip_reference:
            return
        if sub < args.customers:
            cx, cx_predictions = run(sys.executable, "cxlens", sub)
            print(describe(f"cxlens, first {sub:,} customers", cx))
        ref, ref_predictions = run(reference_python(), "lifetimes", sub)
        print(f"reference: {', '.join(f'{k} {v}' for k, v in ref['versions'].items())}")
        print(describe(f"lifetimes, {ref['customers']:,} customers", ref))
        compare(cx, ref, cx_predictions, ref_predictions)


if __name__ == "__main__":
    main()
