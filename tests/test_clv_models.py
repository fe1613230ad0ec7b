"""CLV models against the published CDNOW fits, independent formulas, integration and simulation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats
from scipy.special import hyp2f1, roots_legendre

from cxlens.clv import BGNBD, GammaGamma, ParetoNBD
from cxlens.clv.paretonbd import log_tail
from cxlens.errors import ModelError

CDNOW = "/work/shared/data/cdnow"


@pytest.fixture(scope="module")
def summary() -> pd.DataFrame:
    return pd.read_csv(f"{CDNOW}/cdnow_customers_summary.csv", index_col="ID")


@pytest.fixture(scope="module")
def spend() -> pd.DataFrame:
    raw = pd.read_csv(f"{CDNOW}/cdnow_customers_summary_with_transactions.csv", index_col="ID")
    return raw.rename(columns={"x": "frequency", "t_x": "recency", "zbar": "monetary_value"})


@pytest.fixture(scope="module")
def bgnbd(summary: pd.DataFrame) -> BGNBD:
    return BGNBD().fit(summary)


@pytest.fixture(scope="module")
def paretonbd(summary: pd.DataFrame) -> ParetoNBD:
    return ParetoNBD().fit(summary)


@pytest.fixture(scope="module")
def gammagamma(spend: pd.DataFrame) -> GammaGamma:
    return GammaGamma().fit(spend)


def _close_to_published(fitted: dict[str, float], published: dict[str, float], slack: dict[str, float] | None = None) -> None:
    for name, value in published.items():
        decimals = len(str(value).split(".")[1])
        tolerance = 0.5 * 10**-decimals + (slack or {}).get(name, 0.0)
        assert abs(fitted[name] - value) <= tolerance, (name, fitted[name], value)


def test_bgnbd_reproduces_fader_hardie_lee_2005(bgnbd: BGNBD) -> None:
    _close_to_published(bgnbd.params_, {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426})
    assert bgnbd.log_likelihood_ == pytest.approx(-9582.4, abs=0.05)
    assert bgnbd.n_customers_ == 2357


def test_paretonbd_reproduces_fader_hardie(paretonbd: ParetoNBD) -> None:
    # beta's likelihood is flat (SE about 6): the MLE is 11.6679, the published Excel figure 11.669.
    _close_to_published(paretonbd.params_, {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}, {"beta": 0.001})
    assert paretonbd.log_likelihood_ == pytest.approx(-9595.0, abs=0.05)


def test_gammagamma_reproduces_iso_value_paper(gammagamma: GammaGamma) -> None:
    # gamma's MLE is 15.4477 (lifetimes prints 15.45); the paper reports 15.44.
    _close_to_published(gammagamma.params_, {"p": 6.25, "q": 3.74, "v": 15.44}, {"v": 0.005})
    assert gammagamma.n_customers_ == 946


@pytest.mark.parametrize("model", ["bgnbd", "paretonbd", "gammagamma"])
def test_standard_errors_positive_and_finite(model: str, request: pytest.FixtureRequest) -> None:
    fitted = request.getfixturevalue(model)
    se = np.array(list(fitted.standard_errors_.values()))
    assert np.all(np.isfinite(se)) and np.all(se > 0)
    frame = fitted.summary_frame()
    assert list(frame.index) == list(fitted.param_names) and frame["se"].tolist() == pytest.approx(se.tolist())


@pytest.mark.parametrize("model_class", [BGNBD, ParetoNBD, GammaGamma])
def test_analytic_gradient_matches_finite_differences(model_class: type, spend: pd.DataFrame) -> None:
    rng = np.random.default_rng(7)
    data = {c: spend[c].to_numpy(float)[:400] for c in model_class.columns}
    data = model_class()._prepare(data)
    for _ in range(3):
        params = np.exp(rng.uniform(-1.0, 2.0, len(model_class.param_names)))
        _, grad = model_class()._log_likelihood(params, data)
        numeric = np.empty_like(params)
        for i in range(params.size):
            h = 1e-6 * params[i]
            up, down = params.copy(), params.copy()
            up[i] += h
            down[i] -= h
            numeric[i] = (model_class()._log_likelihood(up, data)[0] - model_class()._log_likelihood(down, data)[0]) / (2 * h)
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-4)


def test_bgnbd_probability_alive_closed_form(bgnbd: BGNBD, summary: pd.DataFrame) -> None:
    p = bgnbd.params_
    x, tx, T = (summary[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    odds = p["a"] / (p["b"] + np.maximum(x, 1) - 1) * ((p["alpha"] + T) / (p["alpha"] + tx)) ** (p["r"] + x)
    expected = np.where(x > 0, 1 / (1 + odds), 1.0)
    np.testing.assert_allclose(bgnbd.probability_alive(x, tx, T), expected, rtol=1e-12)


def _eq10(params: dict[str, float], t: float, x: np.ndarray, tx: np.ndarray, T: np.ndarray) -> np.ndarray:
    """FHL 2005 eq. 10 with scipy's 2F1 as printed (no transformation)."""
    r, alpha, a, b = (params[k] for k in ("r", "alpha", "a", "b"))
    z = t / (alpha + T + t)
    bracket = 1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1(r + x, b + x, a + b + x - 1, z)
    denominator = 1 + (x > 0) * a / (b + np.maximum(x, 1) - 1) * ((alpha + T) / (alpha + tx)) ** (r + x)
    return (a + b + x - 1) / (a - 1) * bracket / denominator


def test_bgnbd_conditional_expectation_equals_eq10(bgnbd: BGNBD, summary: pd.DataFrame) -> None:
    r, alpha = bgnbd.params_["r"], bgnbd.params_["alpha"]
    x, tx, T = (summary[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    t = 39.0
    np.testing.assert_allclose(bgnbd.expected_purchases(t, x, tx, T), _eq10(bgnbd.params_, t, x, tx, T), rtol=1e-8)
    heavy = bgnbd.expected_purchases(t, 500, 39.0, 39.0)[0]
    assert 100 < heavy < (r + 500) / (alpha + 39.0) * t  # at most the rate times t, had nobody dropped out


def test_bgnbd_unconditional_expectation_by_simulation(bgnbd: BGNBD) -> None:
    rng = np.random.default_rng(11)
    r, alpha, a, b = (bgnbd.params_[k] for k in ("r", "alpha", "a", "b"))
    n, t = 400_000, 39.0
    lam = rng.gamma(r, 1 / alpha, n)
    p = rng.beta(a, b, n)
    purchases = np.minimum(rng.poisson(lam * t), rng.geometric(p))
    direct = (a + b - 1) / (a - 1) * (1 - (alpha / (alpha + t)) ** r * hyp2f1(r, b, a + b - 1, t / (alpha + t)))
    model = bgnbd.expected_purchases_new([t])[0]
    assert model == pytest.approx(direct, rel=1e-10)
    assert model == pytest.approx(purchases.mean(), abs=4 * purchases.std() / np.sqrt(n))


def _simulate_bgnbd(n: int, r: float, alpha: float, a: float, b: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    T = rng.uniform(27.0, 39.0, n)
    events = rng.poisson(rng.gamma(r, 1 / alpha, n) * T)
    x = np.minimum(events, rng.geometric(rng.beta(a, b, n)))
    recency = np.where(x > 0, T * rng.beta(np.maximum(x, 1), np.maximum(events - x, 0) + 1), 0.0)
    return pd.DataFrame({"frequency": x, "recency": recency, "T": T})


def test_bgnbd_recovers_simulated_parameters() -> None:
    truth = {"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.5}
    fitted = BGNBD().fit(_simulate_bgnbd(10_000, **truth, seed=3))
    for name, value in truth.items():
        assert abs(fitted.params_[name] - value) < 4 * fitted.standard_errors_[name], (name, fitted.params_[name])


def _pareto_individual(lam: np.ndarray, mu: np.ndarray, x: int, tx: float, T: float) -> np.ndarray:
    return lam**x * mu / (lam + mu) * np.exp(-(lam + mu) * tx) + lam ** (x + 1) / (lam + mu) * np.exp(-(lam + mu) * T)


def _gauss_legendre_sqrt(upper: float, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights on (0, upper) for a variable v = u**2, smoothing v**(shape-1) at 0."""
    u, w = roots_legendre(n)
    u = (u + 1) / 2 * np.sqrt(upper)
    return u**2, w / 2 * np.sqrt(upper) * 2 * u


@pytest.mark.parametrize("x, tx, T", [(0, 0.0, 30.0), (1, 5.0, 30.0), (3, 28.0, 30.0), (2, 10.0, 10.0)])
@pytest.mark.parametrize("params", [(1.5, 8.0, 1.3, 12.0), (2.0, 12.0, 1.7, 4.0)])
def test_paretonbd_likelihood_equals_integral_over_mixing(params: tuple[float, ...], x: int, tx: float, T: float) -> None:
    r, alpha, s, beta = params
    lam, w_lam = _gauss_legendre_sqrt(10.0)
    mu, w_mu = _gauss_legendre_sqrt(20.0)
    lam, mu = lam[:, None], mu[None, :]
    mixed = _pareto_individual(lam, mu, x, tx, T) * stats.gamma.pdf(lam, r, scale=1 / alpha) * stats.gamma.pdf(mu, s, scale=1 / beta)
    value = w_lam @ mixed @ w_mu
    data = {"frequency": np.array([float(x)]), "recency": np.array([tx]), "T": np.array([T])}
    ll, _ = ParetoNBD()._log_likelihood(np.array(params), data)
    assert ll == pytest.approx(np.log(value), abs=1e-7)


@pytest.mark.parametrize("k, j, alpha, beta, tau", [(0.6, 1.6, 10.0, 11.0, 0.0), (30.5, 1.6, 10.0, 0.5, 38.0), (3.4, 2.6, 0.5, 40.0, 1.0), (1.0, 1.0, 3.0, 3.0, 2.0)])
def test_paretonbd_tail_integral(k: float, j: float, alpha: float, beta: float, tau: float) -> None:
    scale = k * np.log(alpha + tau) + j * np.log(beta + tau)
    value, _ = integrate.quad(lambda u: np.exp(scale - k * np.log(alpha + u) - j * np.log(beta + u)), tau, np.inf, epsrel=1e-11)
    assert log_tail(k, j, alpha, beta, tau) == pytest.approx(np.log(value) - scale, abs=1e-8)


def test_paretonbd_predictions(paretonbd: ParetoNBD, summary: pd.DataFrame) -> None:
    x, tx, T = (summary[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    alive = paretonbd.probability_alive(x, tx, T)
    assert np.all((alive > 0) & (alive <= 1))
    r, alpha, s, beta = (paretonbd.params_[k] for k in ("r", "alpha", "s", "beta"))
    t = 39.0
    expected = (r + x) * (beta + T) / ((alpha + T) * (s - 1)) * (1 - ((beta + T) / (beta + T + t)) ** (s - 1)) * alive
    np.testing.assert_allclose(paretonbd.expected_purchases(t, x, tx, T), expected, rtol=1e-10)


def test_gammagamma_conditional_spend_is_the_weighted_mean(gammagamma: GammaGamma, spend: pd.DataFrame) -> None:
    p, q, v = (gammagamma.params_[k] for k in ("p", "q", "v"))
    x, m = spend["frequency"].to_numpy(float), spend["monetary_value"].to_numpy(float)
    weight = p * x / (p * x + q - 1)
    expected = (1 - weight) * p * v / (q - 1) + weight * m
    np.testing.assert_allclose(gammagamma.conditional_expected_spend(x, m), expected, rtol=1e-12)


def test_clv_undiscounted_is_spend_times_purchases(gammagamma: GammaGamma, bgnbd: BGNBD, spend: pd.DataFrame) -> None:
    args = [spend[c].to_numpy(float)[:50] for c in ("frequency", "recency", "T", "monetary_value")]
    flat = gammagamma.clv(bgnbd, *args, time=12, discount_rate=0.0)
    expected = gammagamma.conditional_expected_spend(args[0], args[3]) * bgnbd.expected_purchases(12 * 4.345, *args[:3])
    np.testing.assert_allclose(flat, expected, rtol=1e-10)
    discounted = gammagamma.clv(bgnbd, *args, discount_rate=0.01)
    assert np.all(discounted < flat) and np.all(discounted > flat / 1.01**12)
    np.testing.assert_allclose(gammagamma.clv(bgnbd, *args, margin=0.3), 0.3 * discounted, rtol=1e-12)


def test_discounted_clv_is_the_monthly_sum_of_eq10(gammagamma: GammaGamma, bgnbd: BGNBD, spend: pd.DataFrame) -> None:
    """The per-(x, T) shortcut of BGNBD.discounted_purchases against a plain loop over months, on
    customers repeated in the data (so shared pairs are gathered back to every row)."""
    rows = pd.concat([spend.head(200), spend.head(200).iloc[::-1]], ignore_index=True)
    x, tx, T, m = (rows[c].to_numpy(float) for c in ("frequency", "recency", "T", "monetary_value"))
    expected = np.zeros(len(rows))
    previous = np.zeros(len(rows))
    for month in range(1, 13):
        cumulative = _eq10(bgnbd.params_, month * 4.345, x, tx, T)
        expected += (cumulative - previous) / 1.01**month
        previous = cumulative
    expected *= gammagamma.conditional_expected_spend(x, m)
    np.testing.assert_allclose(gammagamma.clv(bgnbd, x, tx, T, m, time=12, discount_rate=0.01), expected, rtol=1e-8)


def _assert_sentence(error: pytest.ExceptionInfo[ModelError]) -> None:
    message = str(error.value)
    assert message.endswith(".") and "\n" not in message


@pytest.mark.parametrize(
    "rows, fragment",
    [
        ({"frequency": [1, -2], "recency": [1.0, 2.0], "T": [5.0, 5.0]}, "Row 1: frequency"),
        ({"frequency": [1, 2], "recency": [1.0, 6.0], "T": [5.0, 5.0]}, "Row 1: recency"),
        ({"frequency": [1.5], "recency": [1.0], "T": [5.0]}, "whole number"),
        ({"frequency": [1], "recency": [np.nan], "T": [5.0]}, "finite"),
        ({"frequency": [0], "recency": [0.0], "T": [0.0]}, "T = 0.0"),
        ({"frequency": [1], "recency": [1.0]}, "no column 'T'"),
        ({"frequency": [], "recency": [], "T": []}, "no rows"),
    ],
)
@pytest.mark.parametrize("model_class", [BGNBD, ParetoNBD])
def test_invalid_rows_name_the_row_and_column(model_class: type, rows: dict[str, list[float]], fragment: str) -> None:
    with pytest.raises(ModelError, match=fragment) as error:
        model_class().fit(pd.DataFrame(rows) if rows["frequency"] else rows)
    _assert_sentence(error)


@pytest.mark.parametrize("model_class", [BGNBD, ParetoNBD])
def test_unidentifiable_data_raises_or_fits(model_class: type) -> None:
    with pytest.raises(ModelError, match="cannot identify") as error:
        model_class().fit({"frequency": np.zeros(100), "recency": np.zeros(100), "T": np.full(100, 30.0)})
    _assert_sentence(error)
    for data in ({"frequency": [3], "recency": [20.0], "T": [30.0]}, _simulate_bgnbd(300, 0.25, 4.0, 0.8, 2.5, 5).assign(T=lambda d: d["T"] * 1e6, recency=lambda d: d["recency"] * 1e6)):
        try:
            fitted = model_class().fit(data)
        except ModelError as caught:
            assert str(caught).endswith(".")
        else:
            assert np.isfinite(fitted.log_likelihood_) and all(np.isfinite(list(fitted.standard_errors_.values())))


def test_gammagamma_without_repeat_buyers_raises() -> None:
    with pytest.raises(ModelError, match="repeat") as error:
        GammaGamma().fit({"frequency": [0, 0], "monetary_value": [0.0, 0.0]})
    _assert_sentence(error)
    with pytest.raises(ModelError, match="monetary_value"):
        GammaGamma().fit({"frequency": [2, 1], "monetary_value": [10.0, 0.0]})


def test_predictions_need_a_fit() -> None:
    with pytest.raises(ModelError, match="not fitted"):
        BGNBD().probability_alive([1], [1.0], [2.0])


def test_identical_customers_are_fitted_once_with_a_weight(summary: pd.DataFrame) -> None:
    """Doubling every customer leaves the parameters and doubles the log-likelihood (base.compress)."""
    once = BGNBD().fit(summary)
    twice = BGNBD().fit(pd.concat([summary, summary], ignore_index=True))
    for name, value in once.params_.items():
        assert twice.params_[name] == pytest.approx(value, rel=1e-5)
        assert twice.standard_errors_[name] == pytest.approx(once.standard_errors_[name] / np.sqrt(2), rel=1e-3)
    assert twice.log_likelihood_ == pytest.approx(2 * once.log_likelihood_, rel=1e-9)
    assert twice.n_customers_ == 2 * once.n_customers_


def test_the_snippet_in_docs_clv_runs_and_prints_what_it_says(capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import REPO, doc_snippet

    block, expected = doc_snippet("clv.md")
    monkeypatch.chdir(REPO)
    exec(compile(block, "docs/clv.md", "exec"), {})
    assert capsys.readouterr().out.splitlines() == expected


def test_bgnbd_predictions_stay_finite_when_dropout_has_no_spread() -> None:
    """a and b in the millions (seen on a simulated company): scipy's 2F1 overflows; the result
    must equal the fixed-dropout limit (a+b-1)/(a-1) [1 - (alpha / (alpha + (a-1)/(a+b-1) t))^r]."""
    model = BGNBD()
    model.params_ = {"r": 1.94, "alpha": 13.56, "a": 31294.0, "b": 2219707.0}
    r, alpha, a, b = 1.94, 13.56, 31294.0, 2219707.0
    t = np.array([1.0, 10.0, 52.0, 200.0])
    limit = (a + b - 1) / (a - 1) * (1 - (alpha / (alpha + (a - 1) / (a + b - 1) * t)) ** r)
    np.testing.assert_allclose(model.expected_purchases_new(t), limit, rtol=1e-4)
    x, tx, T = np.array([0, 1, 5, 40]), np.array([0.0, 2.0, 21.1, 30.0]), np.array([29.0, 29.0, 32.9, 31.0])
    got = model.expected_purchases(52.0, x, tx, T)
    bx = b + x
    cond = (a + bx - 1) / (a - 1) * (1 - ((alpha + T) / (alpha + T + (a - 1) / (a + bx - 1) * 52.0)) ** (r + x))
    np.testing.assert_allclose(got, cond * model.probability_alive(x, tx, T), rtol=1e-4)


def test_bgnbd_predictions_when_a_plus_b_is_below_one() -> None:
    """a 0.005, b 0.256 (a small simulated company): the transformed 2F1 turns negative for some
    customers; predictions equal FHL eq. 10 evaluated directly with scipy's 2F1, and are finite."""
    from scipy.special import hyp2f1

    r, alpha, a, b = 2.113, 13.06, 0.005, 0.256
    model = BGNBD()
    model.params_ = {"r": r, "alpha": alpha, "a": a, "b": b}
    x = np.repeat(np.arange(0, 8), 6).astype(float)
    T = np.tile([2.0, 5.0, 8.0, 12.0, 15.0, 17.0], 8)
    tx = np.where(x > 0, T * 0.6, 0.0)
    got = model.expected_purchases(52.0, x, tx, T)
    z = 52.0 / (alpha + T + 52.0)
    direct = (a + b + x - 1) / (a - 1) * (1 - ((alpha + T) / (alpha + T + 52.0)) ** (r + x)
                                          * hyp2f1(r + x, b + x, a + b + x - 1, z))
    direct = direct * model.probability_alive(x, tx, T)
    assert np.isfinite(got).all()
    ok = np.isfinite(direct)
    assert ok.sum() >= 40
    np.testing.assert_allclose(got[ok], direct[ok], rtol=1e-8)


@pytest.mark.parametrize("model", [BGNBD, ParetoNBD, GammaGamma])
def test_a_fit_stops_at_its_next_likelihood_evaluation_once_asked(model: type, summary: pd.DataFrame,
                                                                   spend: pd.DataFrame) -> None:
    """A fit is long Python work (the dashboard's value view spends up to 0.5 s in one): inside
    `stoppable` it checks before every likelihood evaluation and raises Stopped once asked (a
    BaseException, so code catching the models' errors does not swallow it); outside, or when never
    asked, it fits as ever."""
    from cxlens.stopping import Stopped, checkpoint, stoppable

    data = spend if model is GammaGamma else summary
    asked, evaluations = [], []
    real = model._log_likelihood

    def counted(self: object, params: np.ndarray, d: dict) -> tuple[float, np.ndarray]:
        evaluations.append(1)
        return real(self, params, d)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(model, "_log_likelihood", counted)
        whole = model().fit(data).params_
        n_whole = len(evaluations)
        evaluations.clear()
        with stoppable(lambda: (asked.append(1), len(asked) > 5)[1]), pytest.raises(Stopped):
            try:
                model().fit(data)
            except Exception:  # noqa: BLE001 - what a caller reporting failed models would do
                pytest.fail("Stopped was caught as an ordinary error")
        assert len(evaluations) == 5 < n_whole  # the sixth evaluation was not made
        evaluations.clear()
        with stoppable(lambda: False):
            again = model().fit(data).params_
        assert len(evaluations) == n_whole and again == whole
    checkpoint()  # outside stoppable: nothing to stop
    with stoppable(lambda: True):
        with stoppable(lambda: False):
            checkpoint()  # the innermost block decides
        with pytest.raises(Stopped):
            checkpoint()
