"""Attribution models on path counts, and `cxlens attribution --paths`.

Markov removal effects are checked against closed forms derived by hand for orders 1, 2 and 3
(the absorbing chain written out on paper), Shapley values against a brute-force average over all
orders of the channels written independently here, and the rule-based models against hand splits.
The path-file CLI runs as the real console script.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

from cxlens.attribution import (
    MarkovChain,
    PathCounts,
    attribute,
    markov,
    read_path_file,
    rule_based,
    shapley,
)
from cxlens.errors import IngestError, StatsError, UsageError

WORKED = PathCounts.from_paths(["A", "B", "A > B", "A"], [2, 1, 1, 0], [0, 0, 0, 1], [20, 10, 5, 0])


def credits(result) -> dict[str, float]:
    return {c.channel: c.conversions for c in result.channels}


def revenues(result) -> dict[str, float]:
    return {c.channel: c.revenue for c in result.channels}


def effects(result) -> dict[str, float]:
    return {c.channel: c.removal_effect for c in result.channels}


# --- Markov -------------------------------------------------------------------------------------

def test_the_issue_worked_example() -> None:
    """start->A 4/5, start->B 1/5; A->conv 1/2, A->B 1/4, A->null 1/4; B->conv 1.
    P = 4/5 (1/2 + 1/4) + 1/5 = 0.8; without A: 0.2 (RE 0.75); without B: 0.4 (RE 0.5);
    credits 4 x 0.75/1.25 = 2.4 and 4 x 0.5/1.25 = 1.6; value 35 in the same shares."""
    chain = MarkovChain(WORKED, 1)
    assert chain.conversion_probability() == pytest.approx(0.8, abs=1e-12)
    assert chain.conversion_probability("A") == pytest.approx(0.2, abs=1e-12)
    assert chain.conversion_probability("B") == pytest.approx(0.4, abs=1e-12)
    result = markov(WORKED, 1)
    assert effects(result) == pytest.approx({"A": 0.75, "B": 0.5}, abs=1e-12)
    assert credits(result) == pytest.approx({"A": 2.4, "B": 1.6}, abs=1e-12)
    assert revenues(result) == pytest.approx({"A": 35 * 0.6, "B": 35 * 0.4}, abs=1e-12)
    assert result.total_conversions == 4 and result.extra["conversion_probability"] == pytest.approx(0.8)
    assert [c.share for c in result.channels] == pytest.approx([0.6, 0.4])


def test_order_two_remembers_where_a_path_came_from() -> None:
    """Paths A>B (converts) and C>B (does not). Order 1 merges both into state B (P(conv | B) = 1/2):
    P = 1/2, without A or C 1/4 (RE 1/2), without B 0 (RE 1); credits 1/4, 1/2, 1/4.
    Order 2 keeps (A,B) and (C,B) apart: without A P = 0 (RE 1), without C P stays 1/2 (RE 0)."""
    paths = PathCounts.from_paths(["A > B", "C > B"], [1, 0], [0, 1])
    first = markov(paths, 1)
    assert effects(first) == pytest.approx({"A": 0.5, "B": 1.0, "C": 0.5}, abs=1e-12)
    assert credits(first) == pytest.approx({"A": 0.25, "B": 0.5, "C": 0.25}, abs=1e-12)
    second = markov(paths, 2)
    assert second.extra["conversion_probability"] == pytest.approx(0.5)
    assert effects(second) == pytest.approx({"A": 1.0, "B": 1.0, "C": 0.0}, abs=1e-12)
    assert credits(second) == pytest.approx({"A": 0.5, "B": 0.5, "C": 0.0}, abs=1e-12)
    assert second.extra["states"] == 4  # (A), (C), (A,B), (C,B)


def test_order_three_against_order_two() -> None:
    """A>B>C converts, D>B>C does not. Order 2 shares state (B,C), which converts half the time:
    P = 1/2; without A only D's branch is left, P = 1/2 x 1/2 = 1/4 (RE 1/2), and the same for D;
    without B or C, P = 0 (RE 1). Credits A, D 1/6 each, B, C 1/3 each. Order 3 keeps (A,B,C) and
    (D,B,C) apart: RE A 1, B 1, C 1, D 0, credits 1/3 each to A, B, C."""
    paths = PathCounts.from_paths(["A > B > C", "D > B > C"], [1, 0], [0, 1])
    two = markov(paths, 2)
    assert effects(two) == pytest.approx({"A": 0.5, "B": 1.0, "C": 1.0, "D": 0.5}, abs=1e-12)
    assert credits(two) == pytest.approx({"A": 1 / 6, "B": 1 / 3, "C": 1 / 3, "D": 1 / 6}, abs=1e-12)
    three = markov(paths, 3)
    assert effects(three) == pytest.approx({"A": 1.0, "B": 1.0, "C": 1.0, "D": 0.0}, abs=1e-12)
    assert credits(three) == pytest.approx({"A": 1 / 3, "B": 1 / 3, "C": 1 / 3, "D": 0.0}, abs=1e-12)


def test_repeated_touches_loop_and_the_loop_is_summed_exactly() -> None:
    """A>A converts, A does not: A->A 1/3, A->conv 1/3, A->null 1/3, so P = (1/3) / (1 - 1/3) = 1/2."""
    paths = PathCounts.from_paths(["A > A", "A"], [1, 0], [0, 1])
    assert MarkovChain(paths, 1).conversion_probability() == pytest.approx(0.5, abs=1e-12)
    assert credits(markov(paths, 1)) == pytest.approx({"A": 1.0})


def test_a_channel_whose_removal_changes_nothing_gets_nothing() -> None:
    """B only appears on a path that never converts: without B, P is unchanged."""
    paths = PathCounts.from_paths(["A", "B"], [3, 0], [1, 2], [30, 0])
    result = markov(paths, 1)
    assert effects(result) == pytest.approx({"A": 1.0, "B": 0.0}, abs=1e-12)
    assert credits(result) == pytest.approx({"A": 3.0, "B": 0.0})


def random_paths(seed: int, n: int = 300, channels: str = "ABCDEF") -> PathCounts:
    rng = np.random.default_rng(seed)
    paths = [" > ".join(rng.choice(list(channels), size=rng.integers(1, 7))) for _ in range(n)]
    conv = rng.poisson(1.0, n).astype(float)
    nulls = rng.poisson(2.0, n).astype(float)
    return PathCounts.from_paths(paths, conv, nulls, conv * rng.uniform(10, 100, n))


@pytest.mark.parametrize("order", [1, 2, 3])
def test_markov_credits_sum_to_the_total_and_repeat_exactly(order: int) -> None:
    paths = random_paths(order)
    a, b = markov(paths, order), markov(random_paths(order), order)
    assert sum(c.conversions for c in a.channels) == pytest.approx(paths.total_conversions, rel=1e-12)
    assert sum(c.revenue for c in a.channels) == pytest.approx(paths.total_value, rel=1e-12)
    assert a == b  # bit for bit: no sampling
    assert all(0 <= c.removal_effect <= 1 for c in a.channels)


def test_markov_probability_matches_a_dense_absorbing_chain_written_out() -> None:
    """An independent order-1 chain: transition counts with Python dicts, dense numpy solve."""
    rng = np.random.default_rng(3)
    rows = [(list(rng.choice(list("WXYZ"), size=rng.integers(1, 5))), int(rng.integers(0, 3)), int(rng.integers(0, 3)))
            for _ in range(40)]
    rows = [r for r in rows if r[1] + r[2] > 0]
    counts: dict[tuple[str, str], float] = {}
    for path, conv, null in rows:
        seq = ["(start)", *path]
        for s, d in itertools.pairwise(seq):
            counts[(s, d)] = counts.get((s, d), 0) + conv + null
        counts[(path[-1], "(conv)")] = counts.get((path[-1], "(conv)"), 0) + conv
        counts[(path[-1], "(null)")] = counts.get((path[-1], "(null)"), 0) + null
    states = ["(start)", "W", "X", "Y", "Z"]

    def p_conv(removed: str | None) -> float:
        keep = [s for s in states if s != removed]
        q = np.zeros((len(keep), len(keep)))
        r = np.zeros(len(keep))
        for i, s in enumerate(keep):
            out = sum(v for (a, _), v in counts.items() if a == s)
            for j, d in enumerate(keep):
                q[i, j] = counts.get((s, d), 0) / out if out else 0
            r[i] = counts.get((s, "(conv)"), 0) / out if out else 0
        return float(np.linalg.solve(np.eye(len(keep)) - q, r)[0])

    paths = PathCounts.from_paths([" > ".join(p) for p, _, _ in rows], [c for _, c, _ in rows], [n for _, _, n in rows])
    result = markov(paths, 1)
    base = p_conv(None)
    assert result.extra["conversion_probability"] == pytest.approx(base, rel=1e-10)
    assert effects(result) == pytest.approx({c: 1 - p_conv(c) / base for c in "WXYZ"}, rel=1e-9)


def test_markov_order_outside_1_to_3_is_refused() -> None:
    for bad in (0, 4):
        with pytest.raises(UsageError, match="1, 2 or 3"):
            markov(WORKED, bad)


def test_nothing_converts_gives_zero_credits() -> None:
    result = markov(PathCounts.from_paths(["A", "B"], [0, 0], [1, 1]), 1)
    assert credits(result) == {"A": 0.0, "B": 0.0} and result.total_conversions == 0


# --- Shapley ------------------------------------------------------------------------------------

def brute_force_shapley(paths: list[tuple[set[str], float]], channels: list[str]) -> dict[str, float]:
    """Average over all n! orders of each channel's marginal contribution to v(S) = conversions of
    paths whose channel set is a subset of S."""
    def v(coalition: set[str]) -> float:
        return sum(w for s, w in paths if s <= coalition)

    total = {c: 0.0 for c in channels}
    orders = list(itertools.permutations(channels))
    for order in orders:
        before: set[str] = set()
        for c in order:
            total[c] += v(before | {c}) - v(before)
            before.add(c)
    return {c: t / len(orders) for c, t in total.items()}


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.lists(st.sampled_from("ABCDE"), min_size=1, max_size=6),
                          st.integers(0, 5), st.integers(0, 3)), min_size=1, max_size=15))
def test_shapley_equals_a_brute_force_permutation_average(rows: list[tuple[list[str], int, int]]) -> None:
    paths = PathCounts.from_paths([" > ".join(p) for p, _, _ in rows], [c for _, c, _ in rows], [n for _, _, n in rows],
                                  [10.0 * c for _, c, _ in rows])
    channels = sorted({c for p, _, _ in rows for c in p})
    expected = brute_force_shapley([(set(p), float(c)) for p, c, _ in rows], channels)
    result = shapley(paths)
    assert credits(result) == pytest.approx(expected, abs=1e-9)
    assert revenues(result) == pytest.approx({c: 10 * x for c, x in expected.items()}, abs=1e-8)
    assert sum(credits(result).values()) == pytest.approx(paths.total_conversions, abs=1e-9)


def test_shapley_equals_zhao_et_al_simplified_form() -> None:
    """phi_j = sum over distinct channel sets T holding j of conversions(T) / |T|."""
    paths = random_paths(11, channels="ABCDEFGH")
    sets: dict[frozenset[str], float] = {}
    for row in paths.table.to_pylist():
        key = frozenset(row["channels"])
        sets[key] = sets.get(key, 0.0) + row["conversions"]
    expected = {c: sum(w / len(s) for s, w in sets.items() if c in s) for c in "ABCDEFGH"}
    assert credits(shapley(paths)) == pytest.approx(expected, rel=1e-10)


def test_shapley_refuses_more_channels_than_its_limit() -> None:
    paths = PathCounts.from_paths([f"C{i}" for i in range(5)], [1] * 5)
    with pytest.raises(StatsError, match="at most 4 channels"):
        shapley(paths, max_channels=4)


# --- Rule-based ---------------------------------------------------------------------------------

RULE_PATHS = PathCounts.from_paths(["A", "B", "A > B", "A", "direct > A > C > Direct", "C > direct"],
                                   [2, 1, 1, 0, 1, 1], [0, 0, 0, 1, 0, 0], [20, 10, 5, 0, 7, 3])
# Hand splits of the six rows (the non-converting "A" gets nothing):
HAND = {
    "first": {"A": (3, 25), "B": (1, 10), "direct": (1, 7), "C": (1, 3), "Direct": (0, 0)},
    "last": {"A": (2, 20), "B": (2, 15), "Direct": (1, 7), "direct": (1, 3), "C": (0, 0)},
    # d>A>C>D: the last non-direct touch is C; C>d: C
    "last-non-direct": {"A": (2, 20), "B": (2, 15), "C": (2, 10), "direct": (0, 0), "Direct": (0, 0)},
    # A>B halves; d>A>C>D quarters (7/4 each); C>d halves
    "linear": {"A": (2 + 0.5 + 0.25, 20 + 2.5 + 1.75), "B": (1.5, 12.5), "C": (0.25 + 0.5, 1.75 + 1.5),
               "direct": (0.25 + 0.5, 1.75 + 1.5), "Direct": (0.25, 1.75)},
    # d>A>C>D: 0.4, 0.1, 0.1, 0.4
    "position": {"A": (2 + 0.5 + 0.1, 20 + 2.5 + 0.7), "B": (1.5, 12.5), "C": (0.1 + 0.5, 0.7 + 1.5),
                 "direct": (0.4 + 0.5, 2.8 + 1.5), "Direct": (0.4, 2.8)},
}


@pytest.mark.parametrize("rule", list(HAND))
def test_rule_based_models_match_hand_splits(rule: str) -> None:
    result = rule_based(RULE_PATHS, rule)  # type: ignore[arg-type]
    got = {c.channel: (c.conversions, c.revenue) for c in result.channels}
    assert set(got) == set(HAND[rule])
    for channel, (conv, value) in HAND[rule].items():
        assert got[channel] == pytest.approx((conv, value), abs=1e-12), channel
    assert sum(c for c, _ in got.values()) == pytest.approx(6)
    assert result is not None and attribute(RULE_PATHS, rule) == result


def test_last_non_direct_keeps_direct_when_a_path_is_only_direct() -> None:
    result = rule_based(PathCounts.from_paths(["direct > direct", "A > direct"], [1, 1]), "last-non-direct")
    assert credits(result) == {"direct": 1.0, "A": 1.0}


def test_position_based_with_three_middles() -> None:
    result = rule_based(PathCounts.from_paths(["A > B > C > D > E"], [1]), "position")
    assert credits(result) == pytest.approx({"A": 0.4, "B": 0.2 / 3, "C": 0.2 / 3, "D": 0.2 / 3, "E": 0.4})


def test_time_decay_needs_touch_times() -> None:
    with pytest.raises(UsageError, match="time of every touch"):
        attribute(WORKED, "time-decay")
    with pytest.raises(UsageError, match="valid models are"):
        attribute(WORKED, "data-driven")


# --- Path files and the CLI ---------------------------------------------------------------------

def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_identical_paths_merge_and_names_are_trimmed(tmp_path: Path) -> None:
    f = write(tmp_path / "p.csv", "path,total_conversions,total_null,total_conversion_value\n"
                                  "A > B,1,0,10\n A >B ,2,1,5\nB,0,3,\n")
    counts = read_path_file(f)
    rows = {tuple(r["channels"]): (r["conversions"], r["nulls"], r["value"]) for r in counts.table.to_pylist()}
    assert rows == {("A", "B"): (3.0, 1.0, 15.0), ("B",): (0.0, 3.0, 0.0)}


def test_cli_worked_example_from_a_path_file(tmp_path: Path) -> None:
    f = write(tmp_path / "paths.csv", "path,total_conversions,total_null,total_conversion_value\n"
                                      "A,2,1,20\nB,1,0,10\nA > B,1,0,5\n")
    out = run_cli("attribution", "--paths", str(f), "--model", "markov", "--format", "json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["model"] == "markov" and doc["total_conversions"] == 4
    rows = {r["channel"]: r for r in doc["channels"]}
    assert rows["A"]["conversions"] == pytest.approx(2.4) and rows["B"]["conversions"] == pytest.approx(1.6)
    assert rows["A"]["removal_effect"] == pytest.approx(0.75) and rows["B"]["removal_effect"] == pytest.approx(0.5)
    assert rows["A"]["revenue"] == pytest.approx(21.0) and rows["A"]["share"] == pytest.approx(0.6)
    assert set(rows["A"]) == {"channel", "conversions", "revenue", "share", "removal_effect"}
    table = run_cli("attribution", "--paths", str(f), "--model", "markov")
    assert table.returncode == 0 and "P(conversion) 0.8000" in table.stdout


def test_cli_other_columns_separator_and_order(tmp_path: Path) -> None:
    f = write(tmp_path / "paths.csv", "journey;conv;lost;worth\nA|B;1;0;4\nC|B;0;1;0\n")
    args = ("attribution", "--paths", str(f), "--path-column", "journey", "--conversions-column", "conv",
            "--null-column", "lost", "--value-column", "worth", "--separator", "|", "--format", "json")
    # a semicolon-separated file: DuckDB's sniffer finds the delimiter
    out = run_cli(*args, "--model", "markov", "--order", "2")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert {r["channel"]: r["conversions"] for r in doc["channels"]} == pytest.approx({"A": 0.5, "B": 0.5, "C": 0.0})
    assert doc["order"] == 2
    lin = json.loads(run_cli(*args, "--model", "linear").stdout)
    assert {r["channel"]: r["revenue"] for r in lin["channels"]} == pytest.approx({"A": 2.0, "B": 2.0, "C": 0.0})
    assert "removal_effect" not in lin["channels"][0]


def test_every_model_credits_every_conversion_of_a_path_file(tmp_path: Path) -> None:
    f = write(tmp_path / "paths.csv", "path,total_conversions\nA > B,3\nB,1\nA > C > B,2\n")
    for model in ("first", "last", "last-non-direct", "linear", "position", "markov", "shapley"):
        doc = attribute(read_path_file(f), model).to_dict()
        assert doc["model"] == model
        assert sum(r["conversions"] for r in doc["channels"]) == pytest.approx(6)
        assert math.isclose(sum(r["share"] for r in doc["channels"]), 1.0)
    out = run_cli("attribution", "--paths", str(f), "--model", "shapley", "--format", "json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == json.loads(json.dumps({**shapley(read_path_file(f)).to_dict(), "paths": 3}))


BAD_FILES = [
    ("path,total_conversions\nA > B,1\n", {"path_column": "journey"}, "has no column 'journey' (the path column)"),
    ("path,total_conversions\nA > B,1\n", {"conversions_column": "conv"}, "has no column 'conv'"),
    ("path,total_conversions\nA > B,1\n", {"null_column": "lost"}, "has no column 'lost'"),
    ("path,total_conversions\nA > B,1\nB,2\n", {"separator": ">>"}, "no path contains the separator '>>'"),
    ("path,total_conversions\nA > B,1\n", {"separator": ""}, "separator is empty"),
    ("path,total_conversions\n", {}, "has no rows"),
    ("path,total_conversions\nA > B,many\n", {}, "line 2: column 'total_conversions' holds 'many'"),
    ("path,total_conversions\nA > B,-1\n", {}, "numbers >= 0"),
    ("path,total_conversions\nA >  > B,1\n", {}, "empty channel name"),
]


@pytest.mark.parametrize(("content", "options", "message"), BAD_FILES)
def test_bad_path_files_are_one_clear_sentence(tmp_path: Path, content: str, options: dict[str, str], message: str) -> None:
    f = write(tmp_path / "paths.csv", content)
    with pytest.raises((IngestError, UsageError)) as caught:
        read_path_file(f, **options)
    assert message in str(caught.value)


@pytest.mark.parametrize(("content", "args", "message"), [
    ("path,total_conversions\nA > B,1\n", ("--path-column", "journey"), "has no column 'journey' (the path column)"),
    ("path,total_conversions\nA > B,1\n", ("--separator", ""), "separator is empty"),
    ("path,total_conversions\nA > B,1\n", ("--order", "4"), "order (how many past channels a state remembers) is 1, 2 or 3"),
    ("path,total_conversions\nA > B,1\n", ("--model", "linear", "--order", "2"), "--order applies to the markov model only"),
    ("path,total_conversions\nA > B,1\n", ("--model", "time-decay"), "time-decay model needs the time of every touch"),
    ("path,total_conversions\nA > B,1\n", ("--by", "campaign"), "--by and --lookback-days apply to the workspace"),
])
def test_cli_bad_input_is_one_clear_sentence(tmp_path: Path, content: str, args: tuple[str, ...], message: str) -> None:
    f = write(tmp_path / "paths.csv", content)
    out = run_cli("attribution", "--paths", str(f), *args)
    assert out.returncode != 0
    assert message in " ".join(out.stderr.split()), out.stderr
    assert "Traceback" not in out.stderr


def test_cli_unknown_model_and_missing_file(tmp_path: Path) -> None:
    out = run_cli("attribution", "--model", "data-driven", "--paths", str(tmp_path / "x.csv"))
    assert out.returncode == 2 and "data-driven" in out.stderr
    missing = run_cli("attribution", "--paths", str(tmp_path / "x.csv"))
    assert missing.returncode == 1 and "does not exist" in missing.stderr


def test_a_parquet_path_file(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    f = tmp_path / "paths.parquet"
    pq.write_table(pa.table({"path": ["A", "B", "A > B", "A"], "total_conversions": [2, 1, 1, 0],
                             "total_null": [0, 0, 0, 1], "total_conversion_value": [20.0, 10.0, 5.0, 0.0]}), f)
    assert credits(markov(read_path_file(f), 1)) == pytest.approx({"A": 2.4, "B": 1.6})
    with pytest.raises(IngestError, match="has no column"):
        read_path_file(f, path_column="journey")
