"""cxlens.stats.multiple against statsmodels' multipletests and the published BH example."""

from __future__ import annotations

import gc
import itertools
import math
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.multitest import multipletests

from cxlens.errors import StatsError
from cxlens.stats import adjust_p_values

STATSMODELS = {"holm": "holm", "bh": "fdr_bh"}
METHODS = tuple(STATSMODELS)


def _reference(p_values: list[float | None], method: str) -> list[float | None]:
    """statsmodels on the non-None entries, put back in place."""
    present = [i for i, p in enumerate(p_values) if p is not None]
    out: list[float | None] = [None] * len(p_values)
    if present:
        # statsmodels' "holm" branch ends with a full gc.collect(), ~60 ms in a test process;
        # stubbed for the call so that hundreds of examples run in a second.
        with mock.patch.object(gc, "collect", return_value=0):
            adjusted = multipletests([p_values[i] for i in present], method=STATSMODELS[method])[1]
        for i, value in zip(present, adjusted, strict=True):
            out[i] = float(value)
    return out


def _assert_same(got: list[float | None], want: list[float | None]) -> None:
    assert [g is None for g in got] == [w is None for w in want]
    for g, w in zip(got, want, strict=True):
        if w is not None:
            assert g == pytest.approx(w, rel=1e-12, abs=1e-15)


# Draws mix continuous p-values with a few repeated ones (ties) and None entries.
p_value = st.one_of(
    st.floats(min_value=0.0, max_value=1.0),
    st.sampled_from([0.0, 1e-6, 0.01, 0.05, 0.5, 1.0]),
    st.none(),
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(p_value, max_size=40), st.sampled_from(METHODS))
def test_matches_statsmodels(p_values: list[float | None], method: str) -> None:
    _assert_same(adjust_p_values(p_values, method), _reference(p_values, method))


@pytest.mark.parametrize("method", METHODS)
def test_matches_statsmodels_on_large_families_with_ties(method: str) -> None:
    rng = np.random.default_rng(20260)
    for size in (2, 7, 150, 1000):
        p = np.concatenate([rng.uniform(0, 1, size), rng.beta(0.3, 4, size)])
        p = np.round(p, 3).tolist()  # many ties
        p = [None if i % 11 == 0 else x for i, x in enumerate(p)]
        _assert_same(adjust_p_values(p, method), _reference(p, method))


def test_hand_computed_values() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm: sorted 0.005*4, 0.01*3, 0.03*2, 0.04*1 -> 0.02, 0.03, 0.06, max(0.06, 0.04).
    assert adjust_p_values(p, "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02], rel=1e-12)
    # BH: 0.005*4/1, 0.01*4/2, 0.03*4/3, 0.04*4/4 -> 0.02, 0.02, 0.04, 0.04 (already monotone).
    assert adjust_p_values(p, "bh") == pytest.approx([0.02, 0.04, 0.04, 0.02], rel=1e-12)


def test_benjamini_hochberg_1995_example() -> None:
    # The 15 p-values of Benjamini and Hochberg (1995), section 4: at q = 0.05 the procedure
    # rejects the four smallest (Holm's, their comparison, rejects three).
    p = [0.0201, 0.7590, 0.0001, 0.0344, 0.3240, 0.0019, 0.0459, 0.5719, 0.0004, 0.0298, 0.4262, 0.0095,
         0.6528, 0.0278, 1.0]  # fmt: skip
    bh = adjust_p_values(p, "bh")
    holm = adjust_p_values(p, "holm")
    assert sorted(x for x, a in zip(p, bh, strict=True) if a <= 0.05) == [0.0001, 0.0004, 0.0019, 0.0095]
    assert sorted(x for x, a in zip(p, holm, strict=True) if a <= 0.05) == [0.0001, 0.0004, 0.0019]


@pytest.mark.parametrize("method", METHODS)
def test_order_bounds_and_ties(method: str) -> None:
    rng = np.random.default_rng(5)
    p = np.round(rng.uniform(0, 0.2, 60), 2).tolist()
    adjusted = adjust_p_values(p, method)
    pairs = sorted(zip(p, adjusted, strict=True))
    for (p_a, a_a), (p_b, a_b) in itertools.pairwise(pairs):
        assert a_a <= a_b  # monotone in the raw p-value
        if p_a == p_b:
            assert a_a == a_b  # ties share one value
    assert all(raw <= adj <= 1.0 for raw, adj in zip(p, adjusted, strict=True))


@pytest.mark.parametrize("method", METHODS)
def test_permuting_the_input_permutes_the_output(method: str) -> None:
    rng = np.random.default_rng(9)
    p = rng.uniform(0, 1, 25).tolist()
    order = rng.permutation(25)
    assert adjust_p_values([p[i] for i in order], method) == [adjust_p_values(p, method)[i] for i in order]


@pytest.mark.parametrize("method", METHODS)
def test_none_entries_stay_and_do_not_count(method: str) -> None:
    assert adjust_p_values([0.01, None], method) == [0.01, None]
    with_none = adjust_p_values([None, 0.02, None, 0.01], method)
    without = adjust_p_values([0.02, 0.01], method)
    assert with_none == [None, without[0], None, without[1]]


@pytest.mark.parametrize("method", METHODS)
def test_small_families(method: str) -> None:
    assert adjust_p_values([], method) == []
    assert adjust_p_values([None, None], method) == [None, None]
    assert adjust_p_values([0.037], method) == [0.037]
    assert adjust_p_values([0.0, 1.0], method) == [0.0, 1.0]


@pytest.mark.parametrize("method", METHODS)
def test_numpy_input_gives_python_floats(method: str) -> None:
    out = adjust_p_values(np.array([0.2, 0.01, 0.03]), method)
    assert all(type(x) is float for x in out)
    assert out == adjust_p_values([0.2, 0.01, 0.03], method)


@pytest.mark.parametrize(
    ("p_values", "position"),
    [([0.1, -0.01], 1), ([1.5], 0), ([0.2, None, math.nan], 2), ([0.1, "0.2"], 1), ([True], 0), ([math.inf], 0)],
)
def test_invalid_p_value_names_its_position(p_values: list, position: int) -> None:
    with pytest.raises(StatsError, match=rf"position {position} \(counting from 0\)"):
        adjust_p_values(p_values, "holm")


@pytest.mark.parametrize("bad", ["bonferroni", "fdr_bh", None])
def test_unknown_method(bad: object) -> None:
    with pytest.raises(StatsError, match="valid methods are 'holm', 'bh'"):
        adjust_p_values([0.1], bad)  # type: ignore[arg-type]


def test_p_values_must_be_a_sequence() -> None:
    with pytest.raises(StatsError, match="p_values must be a list"):
        adjust_p_values("0.1", "bh")  # type: ignore[arg-type]
