"""cxlens.stats.srm against scipy's chi-square goodness-of-fit test, plus its degenerate codes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from cxlens.errors import CxlensError, StatsError
from cxlens.stats import SampleRatioCheck, srm_check


def _assert_json_clean(check: SampleRatioCheck) -> None:
    text = json.dumps(check.to_dict(), allow_nan=False)
    assert json.loads(text)["code"] == check.code


def _scipy(observed: dict[str, int], weights: dict[str, float]) -> tuple[float, float]:
    counts = np.array(list(observed.values()), dtype=float)
    shares = np.array([weights[arm] for arm in observed], dtype=float)
    expected = counts.sum() * shares / shares.sum()
    result = sps.chisquare(counts, expected)
    return float(result.statistic), float(result.pvalue)


@pytest.mark.parametrize(
    ("observed", "weights"),
    [
        ({"control": 5120, "treatment": 4880}, None),
        ({"control": 5300, "treatment": 4700}, None),
        ({"control": 9000, "t1": 500, "t2": 400}, {"control": 90, "t1": 5, "t2": 5}),
        ({"a": 1234, "b": 1301, "c": 1190, "d": 1275}, None),
        ({"control": 20_010, "treatment": 79_990}, {"control": 0.2, "treatment": 0.8}),
    ],
)
def test_matches_scipy_chisquare(observed: dict[str, int], weights: dict[str, float] | None) -> None:
    check = srm_check(observed, weights)
    chi2, p_value = _scipy(observed, weights or dict.fromkeys(observed, 1.0))
    assert check.chi2 == pytest.approx(chi2, rel=1e-12)
    assert check.p_value == pytest.approx(p_value, rel=1e-9, abs=1e-300)
    assert check.mismatch == (p_value < 0.001)
    total = sum(observed.values())
    assert sum(check.expected.values()) == pytest.approx(total, rel=1e-12)
    _assert_json_clean(check)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    st.lists(
        st.tuples(st.integers(min_value=1, max_value=10**7), st.floats(min_value=0.01, max_value=100)),
        min_size=2,
        max_size=8,
    )
)
def test_matches_scipy_chisquare_on_random_splits(arms: list[tuple[int, float]]) -> None:
    observed = {f"arm{i}": n for i, (n, _) in enumerate(arms)}
    weights = {f"arm{i}": w for i, (_, w) in enumerate(arms)}
    check = srm_check(observed, weights)
    chi2, p_value = _scipy(observed, weights)
    assert check.code == "ok"
    assert check.chi2 == pytest.approx(chi2, rel=1e-9, abs=1e-12)
    assert check.p_value == pytest.approx(p_value, rel=1e-7, abs=1e-12)
    assert 0 <= check.p_value <= 1


def test_pinned_value_and_expected_counts() -> None:
    # (5300 - 5000)**2 / 5000 * 2 = 36 on 1 df: p = erfc(6 / sqrt(2)).
    check = srm_check({"control": 5300, "treatment": 4700})
    assert check.chi2 == pytest.approx(36.0, rel=1e-15)
    assert check.p_value == pytest.approx(math.erfc(6 / math.sqrt(2)), rel=1e-12)
    assert check.expected == {"control": 5000.0, "treatment": 5000.0}
    assert check.observed == {"control": 5300, "treatment": 4700}
    assert check.mismatch and check.code == "ok"


def test_weights_are_normalized() -> None:
    observed = {"control": 9000, "t1": 500, "t2": 400}
    as_percent = srm_check(observed, {"control": 90, "t1": 5, "t2": 5})
    as_share = srm_check(observed, {"t2": 0.05, "control": 0.9, "t1": 0.05})
    assert as_percent.expected == pytest.approx(as_share.expected, rel=1e-12)
    assert list(as_share.expected) == ["control", "t1", "t2"]  # the observed order
    assert as_percent.expected["control"] == pytest.approx(8910.0)
    assert as_percent.p_value == pytest.approx(as_share.p_value, rel=1e-12)


def test_mismatch_message_names_the_split_and_the_verdict() -> None:
    check = srm_check({"control": 5120, "treatment": 4880}, threshold=0.05)
    assert check.mismatch
    assert check.message == (
        "Sample ratio mismatch: 5,120 units in control and 4,880 in treatment where 50%/50% was expected "
        "(p = 0.0164); the assignment or the data pipeline is broken, so these results cannot be trusted."
    )
    three = srm_check({"control": 9000, "t1": 500, "t2": 400}, {"control": 90, "t1": 5, "t2": 5})
    assert three.message is not None
    assert three.message.startswith("Sample ratio mismatch: 9,000 units in control, 500 in t1 and 400 in t2 ")
    assert "where 90%/5%/5% was expected (p < 0.0001)" in three.message
    thirds = srm_check({"a": 4000, "b": 3000, "c": 3000})
    assert thirds.message is not None and "33.3%/33.3%/33.3%" in thirds.message


def test_no_message_when_the_split_fits() -> None:
    check = srm_check({"control": 5120, "treatment": 4880})
    assert (check.code, check.mismatch, check.message) == ("ok", False, None)
    assert check.p_value == pytest.approx(0.0164, abs=5e-5)


def test_threshold_is_strict() -> None:
    check = srm_check({"control": 5300, "treatment": 4700})
    assert not srm_check({"control": 5300, "treatment": 4700}, threshold=check.p_value).mismatch


def test_no_units() -> None:
    check = srm_check({"control": 0, "treatment": 0})
    assert (check.code, check.chi2, check.p_value, check.mismatch) == ("no_units", None, None, False)
    assert check.expected == {"control": 0.0, "treatment": 0.0}
    assert check.message is not None and "No units" in check.message
    _assert_json_clean(check)


@pytest.mark.parametrize("observed", [{"control": 5000}, {"control": 0}, {}])
def test_single_arm(observed: dict[str, int]) -> None:
    check = srm_check(observed)
    assert (check.code, check.chi2, check.p_value, check.mismatch) == ("single_arm", None, None, False)
    assert check.message is not None and "at least two arms" in check.message
    _assert_json_clean(check)


def test_missing_arm_is_still_tested() -> None:
    observed = {"control": 10_000, "treatment": 0}
    check = srm_check(observed)
    chi2, p_value = _scipy(observed, {"control": 1, "treatment": 1})
    assert check.code == "missing_arm" and check.mismatch
    assert check.chi2 == pytest.approx(chi2) and check.p_value == pytest.approx(p_value, abs=1e-300)
    assert check.message is not None and check.message.startswith(
        "Sample ratio mismatch: 10,000 units in control and 0 in"
    )
    _assert_json_clean(check)


def test_missing_arm_is_named_when_too_small_to_test() -> None:
    check = srm_check({"control": 3, "t1": 0, "t2": 4})
    assert check.code == "missing_arm" and not check.mismatch
    assert check.p_value is not None and check.p_value > 0.001
    assert (
        check.message
        == "No units in t1 (33.3% expected); check that the arm is live and that its exposures are logged."
    )


def test_counts_from_numpy_and_databases() -> None:
    check = srm_check({"a": np.int64(100), "b": np.int32(120)}, {"a": np.float32(1), "b": 1})
    assert check.observed == {"a": 100, "b": 120} and type(check.observed["a"]) is int
    _assert_json_clean(check)


def test_to_dict_is_a_copy() -> None:
    check = srm_check({"a": 100, "b": 120})
    d = check.to_dict()
    d["observed"]["a"] = 0
    assert check.observed["a"] == 100


@pytest.mark.parametrize(
    ("observed", "weights", "threshold", "fragment"),
    [
        ({"a": 10, "b": 10}, {"a": 1}, 0.001, "'b'"),
        ({"a": 10, "b": 10}, {"a": 1, "b": 1, "c": 1}, 0.001, "'c'"),
        ({"a": 10, "b": 10}, {"a": 1, "b": 0}, 0.001, "'b'"),
        ({"a": 10, "b": 10}, {"a": -1, "b": 1}, 0.001, "'a'"),
        ({"a": 10, "b": 10}, {"a": math.nan, "b": 1}, 0.001, "'a'"),
        ({"a": 10, "b": 10}, {"a": "half", "b": 1}, 0.001, "'a'"),
        ({"a": 10, "b": 10}, {"a": True, "b": 1}, 0.001, "'a'"),
        ({"a": -1, "b": 10}, None, 0.001, "'a'"),
        ({"a": 2.5, "b": 10}, None, 0.001, "'a'"),
        ({"a": True, "b": 10}, None, 0.001, "'a'"),
        ({"a": 10, "b": 10}, None, 0.0, "threshold"),
        ({"a": 10, "b": 10}, None, 1.0, "threshold"),
        ([10, 10], None, 0.001, "observed"),
        ({"a": 10, "b": 10}, [1, 1], 0.001, "expected_weights"),
    ],
)
def test_misuse_raises_a_sentence(observed, weights, threshold, fragment) -> None:
    with pytest.raises(StatsError) as info:
        srm_check(observed, weights, threshold=threshold)
    assert isinstance(info.value, CxlensError)
    message = str(info.value)
    assert fragment in message and message.startswith("srm_check: ") and message.endswith(".")
