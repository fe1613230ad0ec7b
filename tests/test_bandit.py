"""cxlens.bandit against independent computations: posteriors written out by hand from raw rewards,
P(best) by numerical integration with scipy, the floor as a property over random inputs, seeded
simulations, the state file round trip, the real CLI, and the simulation printed in docs/bandits.md.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate
from scipy import stats as sps
from typer.testing import CliRunner

from cxlens.bandit import Bandit, BanditState, Prior, example_rates, floor_weights, simulate
from cxlens.cli import app
from cxlens.errors import BanditError

from conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]


def _p_best_by_integration(alpha: list[float], beta: list[float]) -> np.ndarray:
    """P(offer i has the highest rate) = integral of f_i(x) * prod_{j != i} F_j(x) dx over [0, 1]."""
    dists = [sps.beta(a, b) for a, b in zip(alpha, beta, strict=True)]
    out = []
    for i, d in enumerate(dists):
        others = [o for j, o in enumerate(dists) if j != i]
        value, _ = integrate.quad(lambda x, d=d, others=others: d.pdf(x) * np.prod([o.cdf(x) for o in others]),
                                  0, 1, points=[float(o.mean()) for o in dists], limit=200)
        out.append(value)
    return np.asarray(out)


# --- posteriors ---------------------------------------------------------------------------------

def test_beta_posterior_is_prior_plus_counts() -> None:
    b = Bandit(["a", "b", "c"], seed=1).update(["a"] * 10 + ["b"] * 4, [1, 1, 1] + [0] * 7 + [0] * 4)
    post = b.posterior()
    assert post.alpha.tolist() == [1 + 3, 1 + 0, 1 + 0]
    assert post.beta.tolist() == [1 + 7, 1 + 4, 1 + 0]
    assert post.mean() == pytest.approx([4 / 12, 1 / 6, 1 / 2])
    custom = Bandit(["a"], prior=Prior(alpha=2, beta=30), seed=1).update(["a"] * 5, [1, 0, 0, 1, 0])
    assert (custom.posterior().alpha[0], custom.posterior().beta[0]) == (4.0, 33.0)


def test_revenue_posterior_is_normal_gamma_on_nonzero_values() -> None:
    raw = {"a": [0, 0, 12.0, 30.0, 0], "b": [5.0, 0, 0, 0], "c": [0.0, 0.0]}
    b = Bandit(list(raw), "revenue", seed=1)
    b.update([o for o, v in raw.items() for _ in v], [x for v in raw.values() for x in v])
    post = b.posterior()
    pooled = np.array([x for v in raw.values() for x in v if x > 0])
    mu0, b0 = pooled.mean(), pooled.var(ddof=1)  # prior: pooled mean, rate = pooled variance, kappa0 = 1, a0 = 1
    for i, values in enumerate(raw.values()):
        x = np.array([v for v in values if v > 0])
        k = len(x)
        assert (post.alpha[i], post.beta[i]) == (1 + k, 1 + len(values) - k)
        kappa, a = 1 + k, 1 + k / 2
        mu = (mu0 + x.sum()) / kappa
        rate = b0 + (((x - x.mean()) ** 2).sum() / 2 + k * (x.mean() - mu0) ** 2 / (2 * kappa) if k else 0)
        assert post.value_mean[i] == pytest.approx(mu, rel=1e-12)
        assert post.value_df[i] == pytest.approx(2 * a)
        assert post.value_scale[i] == pytest.approx(np.sqrt(rate / (a * kappa)), rel=1e-12)


# --- weights ------------------------------------------------------------------------------------

@pytest.mark.parametrize("counts", [[(30, 200), (40, 210)], [(3, 40), (5, 38), (9, 60)]])
def test_probability_best_matches_numerical_integration(counts: list[tuple[int, int]]) -> None:
    offers = [f"o{i}" for i in range(len(counts))]
    ids = [o for o, (_, n) in zip(offers, counts, strict=True) for _ in range(n)]
    rewards = [r for s, n in counts for r in [1] * s + [0] * (n - s)]
    b = Bandit(offers, min_weight=0.0, seed=11).update(ids, rewards)
    draws = 100_000
    got = np.asarray(list(b.probability_best(draws).values()))
    want = _p_best_by_integration([1 + s for s, _ in counts], [1 + n - s for s, n in counts])
    assert want.sum() == pytest.approx(1, abs=1e-6)
    se = np.sqrt(want * (1 - want) / draws)
    assert np.all(np.abs(got - want) < 4 * se + 1e-9), (got, want)
    assert np.asarray(list(b.weights(draws).values())) == pytest.approx(got)  # no floor: weights = P(best)


def test_floor_is_respected_and_weights_sum_to_one() -> None:
    offers = [f"o{i}" for i in range(10)]
    b = Bandit(offers, min_weight=0.05, seed=3)
    b.update(["o0"] * 500 + ["o1"] * 500 + offers[2:] * 50, [1] * 100 + [0] * 400 + [1] * 90 + [0] * 410 + [0] * 400)
    p = b.probability_best()
    w = b.weights()
    assert all(v >= 0.05 for v in w.values()) and sum(w.values()) == pytest.approx(1, abs=1e-12)
    assert p["o0"] > p["o1"] > 0.05 and w["o0"] > w["o1"]
    assert w["o0"] / w["o1"] == pytest.approx(p["o0"] / p["o1"])  # unfloored offers keep their proportions
    assert sorted(w, key=w.get)[:8] == sorted(offers[2:], key=w.get) and w["o5"] == 0.05


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=30), st.floats(0, 1))
def test_floor_property(raw: list[float], share: float) -> None:
    p = np.asarray(raw) + 1e-300
    p /= p.sum()
    m = share / len(p)
    w = floor_weights(p, m)
    assert np.all(w >= m) and w.sum() == pytest.approx(1, abs=1e-9)
    free = w > m
    if free.sum() > 1 and m * len(p) < 1 - 1e-9:  # offers above the floor keep their proportions
        assert w[free] / w[free].sum() == pytest.approx(p[free] / p[free].sum(), rel=1e-9)
    assert np.all(np.diff(w[np.argsort(p, kind="stable")]) >= -1e-12)  # order kept


def test_degenerate_inputs() -> None:
    assert Bandit(list("abcde"), seed=1).weights() == {o: 0.2 for o in "abcde"}
    assert Bandit(list("abc"), "revenue", seed=1).weights() == {o: 1 / 3 for o in "abc"}
    same = Bandit(list("abcd"), seed=1).update(list("abcd") * 3, [1] * 4 + [0] * 8)
    assert same.weights() == {o: 0.25 for o in "abcd"}
    one = Bandit(["only"], min_weight=0.5, seed=1)
    assert one.weights() == {"only": 1.0} and one.choose(3) == ["only"] * 3
    assert Bandit(list("ab"), min_weight=0.5, seed=1).update(["a"] * 9, [1] * 9).weights() == {"a": 0.5, "b": 0.5}


# --- seeds, batches, state ----------------------------------------------------------------------

def _trial_data(seed: int = 0) -> tuple[list[str], list[float]]:
    rng = np.random.default_rng(seed)
    ids = rng.choice(["a", "b", "c", "d"], 400).tolist()
    rates = {"a": 0.1, "b": 0.2, "c": 0.15, "d": 0.05}
    return ids, [float(rng.random() < rates[i]) for i in ids]


def test_same_seed_same_choices_and_different_seed_different() -> None:
    ids, rewards = _trial_data()

    def run(seed: int) -> Bandit:
        return Bandit(list("abcd"), seed=seed).update(ids, rewards)

    first, again, other = run(5), run(5), run(6)
    assert first.weights() == again.weights()
    picks = first.choose(200)
    assert picks == again.choose(200)
    assert picks != other.choose(200)
    assert first.choose(200) != picks  # the next call continues the stream
    assert first.state.assigned == 400


def test_batch_update_equals_one_by_one() -> None:
    ids, rewards = _trial_data(1)
    batch = Bandit(list("abcd"), seed=2).update(ids, rewards)
    single = Bandit(list("abcd"), seed=2)
    for i, r in zip(ids, rewards, strict=True):
        single.update([i], [r])
    for name in ("n", "sum", "sum_sq", "nonzero"):
        assert getattr(batch.state, name).tolist() == getattr(single.state, name).tolist()
    assert batch.weights() == single.weights()
    amounts = [r * (1 + (k % 8) / 4) for k, r in enumerate(rewards)]  # exact in binary, so sums are exact
    rev_batch = Bandit(list("abcd"), "revenue", seed=2).update(ids, amounts)
    rev_single = Bandit(list("abcd"), "revenue", seed=2)
    for i, r in zip(ids, amounts, strict=True):
        rev_single.update(np.array([i], dtype=object), np.array([r]))
    assert rev_batch.weights() == rev_single.weights()


def test_save_load_round_trip_preserves_weights_exactly(tmp_path: Path) -> None:
    ids, rewards = _trial_data(2)
    b = Bandit(list("abcd"), "revenue", min_weight=0.03, prior=Prior(alpha=2, value_weight=3), seed=9)
    b.update(ids, [r * 19.99 for r in rewards]).retire_offer("d")
    b.choose(7)
    path = tmp_path / "state.json"
    b.save(path)
    loaded = Bandit.load(path)
    assert loaded.state.to_json() == b.state.to_json()
    assert loaded.weights() == b.weights() and loaded.summary() == b.summary()
    assert loaded.choose(50) == b.choose(50)
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temp file left behind
    data = json.loads(path.read_text())
    assert data["version"] == 1 and data["offers"][3] == {"id": "d", "active": False, **{
        k: data["offers"][3][k] for k in ("n", "sum", "sum_sq", "nonzero")}}
    with pytest.raises(BanditError, match="newer cxlens"):
        BanditState.from_json({**data, "version": 2})
    data["offers"][0]["nonzero"] = data["offers"][0]["n"] + 1
    with pytest.raises(BanditError, match=r"offers\[0\] \(a\) has more non-zero rewards than rewards"):
        BanditState.from_json(data, source="state.json")


def test_update_rejects_bad_rows_and_changes_nothing() -> None:
    b = Bandit(list("abc"), seed=1).update(["a", "b"], [1, 0])
    before = b.state.to_json()
    cases = [
        ((["a", "zz", "zz"], [1, 0, 1]), r"Offer 'zz' in the results \(row 2 and 1 more\) is not in this bandit"),
        ((["a", "b"], [1, float("nan")]), r"Row 2 of the results has reward nan"),
        ((["a", "b"], [1, 0.5]), r"Row 2 of the results has reward 0.5; each reward must be 0 or 1"),
        ((["a", "b"], [1, "x"]), r"Row 2 of the results has reward 'x'"),
        ((["a"], [1, 0]), "two lists of the same length"),
    ]
    for (ids, rewards), message in cases:
        with pytest.raises(BanditError, match=message):
            b.update(ids, rewards)
    with pytest.raises(BanditError, match="must be an amount >= 0"):
        Bandit(list("ab"), "revenue", seed=1).update(["a"], [-3.0])
    assert b.state.to_json() == before


def test_offers_come_and_go() -> None:
    b = Bandit(list("abc"), min_weight=0.1, seed=1).update(list("abc") * 20, [1, 0, 0] * 20)
    b.retire_offer("a")
    assert list(b.weights()) == ["b", "c"] and "a" not in b.choose(100)
    b.update(["a"], [1])  # a late result for a retired offer still counts
    assert b.state.n.tolist() == [21, 20, 20]
    b.add_offer("d")
    assert list(b.weights()) == ["b", "c", "d"]
    for bad, message in ((lambda: b.add_offer("a"), "already in this bandit \\(retired\\)"),
                         (lambda: b.retire_offer("x"), "'x' is not in this bandit"),
                         (lambda: Bandit(list("ab"), seed=1).retire_offer("a").retire_offer("b"), "last active offer"),
                         (lambda: Bandit(list("abcde"), min_weight=0.2, seed=1).add_offer("f"), "at most 0.166667"),
                         (lambda: Bandit(["a", "a"]), "listed twice")):
        with pytest.raises(BanditError, match=message):
            bad()


# --- simulation ---------------------------------------------------------------------------------

def test_simulation_thompson_beats_uniform_and_finds_the_best() -> None:
    rates = [0.02, 0.03, 0.03, 0.04, 0.04, 0.05, 0.06, 0.10]
    result = simulate(rates, rounds=60, batch=300, draws=2_000, seed=4)
    assert result.regret_thompson.shape == result.regret_uniform.shape == (60,)
    assert np.all(np.diff(result.regret_thompson) >= 0)
    assert result.ratio < 0.5, result.ratio
    assert result.best == "offer_8" and result.late_share_best() > 0.75
    again = simulate(rates, rounds=60, batch=300, draws=2_000, seed=4)
    assert np.array_equal(again.regret_thompson, result.regret_thompson)


def test_revenue_bandit_prefers_highest_mean_revenue_over_highest_conversion() -> None:
    # (conversion, mean order value): mean revenue per trial 2.0, 3.0 and 2.0; "premium" converts least.
    truth = {"discount": (0.10, 20.0), "premium": (0.04, 75.0), "bundle": (0.08, 25.0)}
    rng = np.random.default_rng(8)
    ids, amounts = [], []
    for offer, (p, value) in truth.items():
        converted = rng.random(20_000) < p
        ids += [offer] * 20_000
        amounts += list(np.where(converted, value * rng.lognormal(-0.5, 1.0, 20_000), 0.0))
    b = Bandit(list(truth), "revenue", seed=1).update(ids, amounts)
    rows = {r.offer: r for r in b.summary()}
    assert rows["premium"].conversion < rows["bundle"].conversion < rows["discount"].conversion
    w = b.weights()
    assert max(w, key=w.get) == "premium" and w["premium"] > 0.9
    assert rows["premium"].low < 3.0 < rows["premium"].high


# --- the CLI ------------------------------------------------------------------------------------

def _cli(*args: str) -> dict:
    res = CliRunner().invoke(app, [*args, "--format", "json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_cli_init_update_weights(tmp_path: Path) -> None:
    state = tmp_path / "offers.json"
    out = _cli("bandit", "init", str(state), "--offers", "spring10, freeship,bundle", "--seed", "3", "--min-weight", "0.05")
    assert out == {"state": str(state), "reward": "binary", "min_weight": 0.05, "seed": 3,
                   "offers": ["spring10", "freeship", "bundle"]}
    pd.DataFrame({"offer": ["spring10"] * 40 + ["freeship"] * 40, "reward": [1] * 12 + [0] * 28 + [1] * 2 + [0] * 38}
                 ).to_csv(tmp_path / "day1.csv", index=False)
    out = _cli("bandit", "update", str(state), "--results", str(tmp_path / "day1.csv"))
    assert out["rows"] == 80 and out["updates"] == 1
    assert out["offers"] == [{"offer": "spring10", "rows": 40, "reward_sum": 12.0},
                             {"offer": "freeship", "rows": 40, "reward_sum": 2.0}]
    pd.DataFrame({"offer": ["bundle"] * 10, "reward": [0.0] * 10}).to_parquet(tmp_path / "day2.parquet")
    assert _cli("bandit", "update", str(state), "--results", str(tmp_path / "day2.parquet"))["updates"] == 2
    out = _cli("bandit", "weights", str(state))
    assert out["reward"] == "binary" and out["draws"] == 10_000
    rows = {r["offer"]: r for r in out["offers"]}
    assert set(rows["bundle"]) == {"offer", "active", "n", "mean", "low", "high", "prob_best", "weight", "conversion", "value"}
    assert (rows["spring10"]["n"], rows["spring10"]["mean"]) == (40, 0.3)
    assert rows["spring10"]["low"] == pytest.approx(sps.beta(13, 29).ppf(0.025))
    assert sum(r["weight"] for r in rows.values()) == pytest.approx(1) and min(r["weight"] for r in rows.values()) >= 0.05
    assert {o: r["weight"] for o, r in rows.items()} == Bandit.load(state).weights()
    text = CliRunner().invoke(app, ["bandit", "weights", str(state)])
    assert text.exit_code == 0 and "spring10" in text.stdout and "P(best)" in text.stdout


def test_cli_simulate_json() -> None:
    out = _cli("bandit", "simulate", "--offers", "6", "--rounds", "30", "--batch", "200", "--draws", "1000", "--seed", "2")
    assert out["offers"] == 6 and out["rounds"] == 30 and out["seed"] == 2
    assert out["ratio"] == pytest.approx(out["regret_thompson"] / out["regret_uniform"]) and out["ratio"] < 1
    assert out["curve"][-1] == {"round": 30, "trials": 6_000, "thompson": out["regret_thompson"],
                                "uniform": out["regret_uniform"]}


def test_cli_unknown_offer_is_one_sentence_and_exit_code(tmp_path: Path) -> None:
    state = tmp_path / "s.json"
    Bandit(["a", "b"], seed=1).save(state)
    (tmp_path / "r.csv").write_text("offer,reward\na,1\nc,0\n")
    res = run_cli("bandit", "update", str(state), "--results", str(tmp_path / "r.csv"))
    assert res.returncode == 1
    assert "Traceback" not in res.stderr and res.stdout == ""
    message = " ".join(res.stderr.split())
    assert re.fullmatch(r"Error: Offer 'c' in \S*r\.csv \(row 2\) is not in this bandit, whose offers are a, b\.", message), message
    assert Bandit.load(state).state.n.tolist() == [0, 0]  # nothing written


# --- the documentation --------------------------------------------------------------------------

def test_docs_simulation_prints_what_the_docs_say() -> None:
    text = (ROOT / "docs" / "bandits.md").read_text()
    code, printed = re.search(r"```python\n(# Simulation.*?)```\n\nPrints:\n\n```text\n(.*?)```", text, re.DOTALL).groups()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "docs/bandits.md", "exec"), {})  # noqa: S102 - the snippet is ours, run as printed
    assert out.getvalue() == printed


def test_example_rates_are_seeded() -> None:
    assert np.array_equal(example_rates(5, seed=1), example_rates(5, seed=1))
    assert 0.02 < float(np.mean(example_rates(500, seed=0))) < 0.08
