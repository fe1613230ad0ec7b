"""RFM summaries from the workspace and `cxlens clv fit|predict`, against pandas, CDNOW and the models.

The summaries are checked against an independent pandas implementation on a constructed orders
table and on CDNOW (Fader, Hardie & Lee 2005) loaded from the raw transactions, where they must
equal the published per-customer summary and give the published BG/NBD fit.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from cxlens import Workspace
from cxlens.clv import BGNBD, GammaGamma, ParetoNBD
from cxlens.clv.summary import rfm_summary
from cxlens.errors import ModelError
from cxlens.workspace.schema import TABLES, all_columns

from conftest import SHARED_DATA, run_cli

CDNOW = SHARED_DATA / "cdnow"
ARROW = {"string": pa.string(), "json": pa.string(), "timestamp": pa.timestamp("us"), "date": pa.date32(),
         "float64": pa.float64(), "int64": pa.int64(), "boolean": pa.bool_()}


def write_orders(ws: Workspace, frame: pd.DataFrame) -> None:
    """Replace `orders` with the frame, every other canonical column NULL."""
    _write(ws, "orders", frame)


def _write(ws: Workspace, table: str, frame: pd.DataFrame) -> None:
    cols = all_columns(TABLES[table])
    df = pd.DataFrame({c.name: frame[c.name] if c.name in frame.columns else pd.Series([None] * len(frame), dtype=object)
                       for c in cols})
    schema = pa.schema([pa.field(c.name, ARROW[c.type]) for c in cols])
    ws.backend.replace_table(table, pa.Table.from_pandas(df, schema=schema, preserve_index=False))


def reference_summary(orders: pd.DataFrame, *, calibration_end: str | None = None, observation_end: str | None = None,
                      unit_days: float = 7.0, use_margin: bool = False) -> pd.DataFrame:
    """lifetimes' summary / calibration-and-holdout conventions, with pandas group-bys (no engine, no Ibis)."""
    o = orders[(orders.status.isna() | (orders.status == "completed")) & orders.profile_id.notna()].copy()
    o["day"] = o.ordered_at.dt.normalize()
    o["amount"] = o.revenue - o.cost.fillna(0) if use_margin else o.revenue
    obs = pd.Timestamp(observation_end) if observation_end else o.day.max()
    cal = pd.Timestamp(calibration_end) if calibration_end else obs
    daily = o[o.day <= obs].groupby(["profile_id", "day"], as_index=False).amount.sum()
    daily["first"] = daily.groupby("profile_id").day.transform("min")
    daily = daily[daily["first"] <= cal]
    cal_days, hold = daily[daily.day <= cal], daily[daily.day > cal]
    repeat = cal_days[cal_days.day > cal_days["first"]]
    per = cal_days.groupby("profile_id").agg(first=("first", "min"), last=("day", "max"))
    out = pd.DataFrame({
        "profile_id": per.index,
        "frequency": repeat.groupby("profile_id").size().reindex(per.index, fill_value=0).to_numpy(),
        "recency": ((per["last"] - per["first"]).dt.days / unit_days).to_numpy(),
        "T": ((cal - per["first"]).dt.days / unit_days).to_numpy(),
        "monetary_value": repeat.groupby("profile_id").amount.mean().reindex(per.index, fill_value=0.0).to_numpy(),
    })
    if calibration_end:
        out["frequency_holdout"] = hold.groupby("profile_id").size().reindex(per.index, fill_value=0).to_numpy()
        out["monetary_value_holdout"] = hold.groupby("profile_id").amount.mean().reindex(per.index, fill_value=0.0).to_numpy()
        out["duration_holdout"] = (obs - cal).days / unit_days
    return out.sort_values("profile_id").reset_index(drop=True)


def _order(pid: str | None, at: str, revenue: float, status: str | None = "completed", cost: float | None = None) -> dict:
    return {"profile_id": pid, "ordered_at": pd.Timestamp(at), "revenue": revenue, "status": status, "cost": cost}


def constructed_orders() -> pd.DataFrame:
    rows = [
        # a: two orders the same day (one purchase), a cancelled and a returned order, a NULL status, holdout orders
        _order("a", "2025-01-01 09:00", 10.0, cost=4.0), _order("a", "2025-01-01 18:30", 5.0),
        _order("a", "2025-01-08 12:00", 20.0, cost=5.0), _order("a", "2025-01-15 12:00", 99.0, "cancelled"),
        _order("a", "2025-01-20 12:00", 77.0, "returned"), _order("a", "2025-01-22 23:59", 30.0, None),
        _order("a", "2025-02-10 10:00", 12.0), _order("a", "2025-02-10 11:00", 8.0), _order("a", "2025-02-20 10:00", 6.0),
        # b: one purchase only
        _order("b", "2025-01-03 08:00", 40.0),
        # c: first purchase after the calibration end
        _order("c", "2025-02-05 08:00", 15.0), _order("c", "2025-02-12 08:00", 15.0),
        # d: same-day repeat on the calibration end day, and a cancelled first attempt
        _order("d", "2024-12-30 08:00", 50.0, "cancelled"), _order("d", "2025-01-02 08:00", 25.0),
        _order("d", "2025-01-31 08:00", 7.0), _order("d", "2025-01-31 20:00", 3.0, cost=1.0),
        # no profile: never counted
        _order(None, "2025-01-05 08:00", 1000.0),
    ]
    rng = np.random.default_rng(7)
    for i in range(40):
        for _ in range(int(rng.integers(1, 8))):
            at = pd.Timestamp("2025-01-01") + pd.Timedelta(minutes=int(rng.integers(0, 60 * 24 * 60)))
            rows.append(_order(f"r{i:02d}", str(at), float(rng.integers(1, 100)), rng.choice(["completed", "completed", None, "cancelled"]),
                               float(rng.integers(0, 10)) if rng.random() < 0.5 else None))
    frame = pd.DataFrame(rows)
    frame["order_id"] = [f"o{i}" for i in range(len(frame))]
    frame["customer_id"] = frame["profile_id"]
    return frame


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workspace, pd.DataFrame]]:
    orders = constructed_orders()
    ws = Workspace.open(tmp_path_factory.mktemp("clv") / "small.duckdb")
    write_orders(ws, orders)
    yield ws, orders
    ws.close()


def _check(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert list(got.columns) == list(want.columns)
    pd.testing.assert_frame_equal(got, want, check_dtype=False, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("unit,days", [("W", 7.0), ("D", 1.0), ("M", 30.0)])
@pytest.mark.parametrize("use_margin", [False, True])
def test_summary_matches_pandas(small: tuple[Workspace, pd.DataFrame], unit: str, days: float, use_margin: bool) -> None:
    ws, orders = small
    _check(rfm_summary(ws, unit=unit, use_margin=use_margin), reference_summary(orders, unit_days=days, use_margin=use_margin))  # type: ignore[arg-type]
    _check(rfm_summary(ws, calibration_end="2025-01-31", unit=unit, use_margin=use_margin),  # type: ignore[arg-type]
           reference_summary(orders, calibration_end="2025-01-31", unit_days=days, use_margin=use_margin))
    _check(rfm_summary(ws, calibration_end="2025-01-31", observation_end=datetime(2025, 2, 15), unit=unit),  # type: ignore[arg-type]
           reference_summary(orders, calibration_end="2025-01-31", observation_end="2025-02-15", unit_days=days))


def test_summary_hand_checked_rows(small: tuple[Workspace, pd.DataFrame]) -> None:
    ws, _ = small
    s = rfm_summary(ws, calibration_end="2025-01-31", unit="D").set_index("profile_id")
    assert "c" not in s.index and s.index.notna().all()
    a = s.loc["a"]
    assert (a.frequency, a.recency, a["T"], a.monetary_value) == (2, 21.0, 30.0, 25.0)
    assert (a.frequency_holdout, a.monetary_value_holdout) == (2, 13.0)
    b = s.loc["b"]
    assert (b.frequency, b.recency, b.monetary_value, b.frequency_holdout) == (0, 0.0, 0.0, 0)
    d = s.loc["d"]
    assert (d.frequency, d.recency, d["T"], d.monetary_value) == (1, 29.0, 29.0, 10.0)
    margin = rfm_summary(ws, calibration_end="2025-01-31", unit="D", use_margin=True).set_index("profile_id")
    assert margin.loc["a"].monetary_value == (15.0 + 30.0) / 2 and margin.loc["d"].monetary_value == 9.0


def test_summary_errors(small: tuple[Workspace, pd.DataFrame], tmp_path: Path) -> None:
    ws, _ = small
    for bad in ("2024-06-01", "2030-01-01"):
        with pytest.raises(ModelError, match="outside the orders"):
            rfm_summary(ws, calibration_end=bad)
    with pytest.raises(ModelError, match="not a date"):
        rfm_summary(ws, calibration_end="last tuesday")
    with Workspace.open(tmp_path / "empty.duckdb") as empty, pytest.raises(ModelError, match="no valid orders"):
        rfm_summary(empty)


def cdnow_orders() -> pd.DataFrame:
    raw = pd.read_csv(CDNOW / "CDNOW_sample.txt", sep=r"\s+", header=None, names=["customer", "index", "date", "cds", "dollars"],
                      dtype={"customer": str, "index": str, "date": str})
    ids = raw["index"].astype(int).astype(str)  # the summary files' ID is the sample index
    return pd.DataFrame({"order_id": [f"t{i}" for i in range(len(raw))], "customer_id": ids, "profile_id": ids,
                         "ordered_at": pd.to_datetime(raw["date"], format="%Y%m%d"), "revenue": raw["dollars"].astype(float),
                         "items_count": raw["cds"].astype("int64"), "status": "completed"})


@pytest.fixture(scope="module")
def cdnow(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """A closed workspace file holding CDNOW's raw transactions as orders (the CLI opens it itself)."""
    path = tmp_path_factory.mktemp("cdnow") / "cdnow.duckdb"
    with Workspace.open(path) as ws:
        write_orders(ws, cdnow_orders())
        summary = rfm_summary(ws, calibration_end="1997-09-30")
    return path, summary


def test_cdnow_summary_matches_the_published_one(cdnow: tuple[Path, pd.DataFrame]) -> None:
    _, s = cdnow
    s = s.assign(ID=s.profile_id.astype(int)).set_index("ID").sort_index()
    ref = pd.read_csv(CDNOW / "cdnow_customers_summary.csv").set_index("ID").sort_index()
    spend = pd.read_csv(CDNOW / "cdnow_customers_summary_with_transactions.csv").set_index("ID").sort_index()
    assert list(s.index) == list(ref.index) and len(s) == 2357
    assert (s.frequency == ref.frequency).all()
    for col in ("recency", "T"):
        assert np.abs(s[col].round(2) - ref[col]).max() < 1e-9, col
    assert np.abs(s.monetary_value - spend.zbar).max() <= 0.005 + 1e-9  # the file rounds to cents
    assert (s.duration_holdout == 39.0).all()
    assert (reference_summary(cdnow_orders(), calibration_end="1997-09-30")
            .assign(ID=lambda f: f.profile_id.astype(int)).set_index("ID").sort_index()
            .frequency_holdout == s.frequency_holdout).all()


def test_cdnow_published_fits_from_raw_transactions(cdnow: tuple[Path, pd.DataFrame]) -> None:
    model = BGNBD().fit(cdnow[1])
    published = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
    for name, value in published.items():
        assert model.params_[name] == pytest.approx(value, abs=6e-4), name
    assert model.log_likelihood_ == pytest.approx(-9582.4, abs=0.05)
    pareto = ParetoNBD().fit(cdnow[1])
    for name, value in {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}.items():
        assert pareto.params_[name] == pytest.approx(value, abs=6e-4), name
    assert pareto.log_likelihood_ == pytest.approx(-9595.0, abs=0.05)


def test_cli_fit_json_with_holdout(cdnow: tuple[Path, pd.DataFrame]) -> None:
    path, summary = cdnow
    res = run_cli("clv", "fit", "--calibration-end", "1997-09-30", "--format", "json", workspace=path)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["model"] == "bgnbd" and out["customers"] == 2357
    assert out["params"]["r"] == pytest.approx(0.243, abs=6e-4) and out["log_likelihood"] == pytest.approx(-9582.4, abs=0.05)
    assert set(out["standard_errors"]) == {"r", "alpha", "a", "b"} and all(v > 0 for v in out["standard_errors"].values())
    assert out["spend"]["customers"] == 946
    assert out["spend"]["params"]["p"] == pytest.approx(6.25, abs=5e-3) and out["spend"]["params"]["q"] == pytest.approx(3.74, abs=5e-3)
    model = BGNBD().fit(summary)
    predicted = model.expected_purchases(39.0, summary.frequency, summary.recency, summary["T"])
    hold = out["holdout"]
    assert hold["actual"] == summary.frequency_holdout.sum()
    assert hold["predicted"] == pytest.approx(predicted.sum(), rel=1e-6)
    buckets = {b["frequency"]: b for b in hold["by_frequency"]}
    assert list(buckets) == ["0", "1", "2", "3", "4", "5", "6", "7+"]
    seven = summary.frequency >= 7
    assert buckets["7+"]["customers"] == seven.sum() and buckets["7+"]["actual"] == summary.frequency_holdout[seven].sum()
    assert buckets["0"]["predicted"] == pytest.approx(predicted[summary.frequency == 0].sum(), rel=1e-6)
    assert sum(b["customers"] for b in buckets.values()) == 2357


def test_cli_predict_writes_and_replaces(cdnow: tuple[Path, pd.DataFrame]) -> None:
    path, _ = cdnow
    res = run_cli("clv", "predict", "--horizon", "12m", "--format", "json", workspace=path)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    with Workspace.open(path) as ws:
        rows = ws.table("clv_predictions").execute().sort_values("profile_id").reset_index(drop=True)
        summary = rfm_summary(ws)
    assert len(rows) == len(summary) == out["summary"]["customers"] == 2357
    assert (rows.profile_id == summary.profile_id).all() and (rows.model == "bgnbd").all() and (rows.horizon == "12m").all()
    bg = BGNBD().fit(summary)
    gg = GammaGamma().fit(summary)
    args = (summary.frequency, summary.recency, summary["T"])
    np.testing.assert_allclose(rows.expected_purchases, bg.expected_purchases(12 * 4.345, *args), rtol=1e-6)
    np.testing.assert_allclose(rows.p_alive, bg.probability_alive(*args), rtol=1e-6)
    np.testing.assert_allclose(rows.expected_spend, gg.conditional_expected_spend(summary.frequency, summary.monetary_value), rtol=1e-6)
    np.testing.assert_allclose(rows.clv, gg.clv(bg, *args, summary.monetary_value, time=12, discount_rate=0.01, freq="W"), rtol=1e-6)
    assert out["top"][0]["clv"] == pytest.approx(rows.clv.max(), rel=1e-9) and len(out["top"]) == 10

    again = run_cli("clv", "predict", "--model", "pareto-nbd", workspace=path)
    assert again.returncode == 0, again.stderr
    assert "Top 10 customers by CLV" in again.stdout and "clv_predictions" in again.stdout
    with Workspace.open(path) as ws:
        rows = ws.table("clv_predictions").execute()
    assert len(rows) == 2357 and set(rows.model) == {"pareto-nbd"} and set(rows.horizon) == {"52w"}
    assert rows.predicted_at.nunique() == 1


def test_cli_errors_are_one_sentence(cdnow: tuple[Path, pd.DataFrame], tmp_path: Path) -> None:
    res = run_cli("clv", "fit", "--calibration-end", "2001-01-01", workspace=cdnow[0])
    assert res.returncode == 1 and "outside the orders" in res.stderr and "Traceback" not in res.stderr
    res = run_cli("clv", "predict", workspace=tmp_path / "empty.duckdb")
    assert res.returncode == 1 and "no valid orders" in res.stderr and "Traceback" not in res.stderr


def test_horizons_in_model_units() -> None:
    from cxlens.cli.clv import parse_horizon
    from cxlens.errors import UsageError

    assert parse_horizon("52w", "W") == 52 and parse_horizon("90d", "W") == pytest.approx(90 / 7)
    assert parse_horizon("12m", "W") == pytest.approx(12 * 4.345) and parse_horizon("2m", "D") == 60
    assert parse_horizon("52w", "M") == pytest.approx(364 / 30)
    for bad in ("52", "0w", "-3d", "a year"):
        with pytest.raises(UsageError, match="not a duration"):
            parse_horizon(bad, "W")



def test_predictions_on_margin_use_the_margin_summary(cdnow: tuple[Path, pd.DataFrame], tmp_path: Path) -> None:
    """--use-margin: Gamma-Gamma on margins; spend per purchase is the independent margin fit's."""
    from cxlens.clv.workspace import predict_workspace

    orders = cdnow_orders()
    orders["cost"] = (orders["revenue"] * 0.4).round(2)
    with Workspace.open(tmp_path / "m.duckdb") as ws:
        write_orders(ws, orders)
        by_revenue = predict_workspace(ws).frame.set_index("profile_id")
        by_margin = predict_workspace(ws, use_margin=True).frame.set_index("profile_id")
    want = reference_summary(orders.assign(ordered_at=orders["ordered_at"]), use_margin=True).set_index("profile_id")
    want = want[want["T"] > 0]
    usable = (want.frequency > 0) & (want.monetary_value > 0)
    gg = GammaGamma().fit({"frequency": want.frequency.where(usable, 0).to_numpy(float),
                           "monetary_value": want.monetary_value.where(usable, 0).to_numpy(float)})
    spend = gg.conditional_expected_spend(want.frequency.where(usable, 0).to_numpy(float),
                                          want.monetary_value.where(usable, 0).to_numpy(float))
    np.testing.assert_allclose(by_margin.loc[want.index, "expected_spend"].to_numpy(), spend, rtol=1e-9)
    assert (by_margin["basis"] == "margin").all() and (by_revenue["basis"] == "revenue").all()
    # same purchase model either way; a 60% margin leaves 60% of the spend (Gamma-Gamma is scale-equivariant)
    np.testing.assert_allclose(by_margin["expected_purchases"], by_revenue["expected_purchases"], rtol=1e-9)
    np.testing.assert_allclose(by_margin["clv"].sum() / by_revenue["clv"].sum(), 0.6, rtol=2e-3)


def test_cli_use_margin_flag(cdnow: tuple[Path, pd.DataFrame]) -> None:
    out = json.loads(run_cli("clv", "fit", "--use-margin", "--format", "json", workspace=cdnow[0]).stdout)
    assert out["basis"] == "margin" and out["spend"]["params"]["p"] > 0


def test_clv_to_cac_by_channel_matches_pandas(tmp_path: Path) -> None:
    from cxlens.clv.workspace import clv_to_cac_by_channel

    frame = pd.DataFrame({"profile_id": ["a", "b", "c", "d", "e"], "clv": [100.0, 50.0, 30.0, 10.0, 5.0]})
    customers = pd.DataFrame({
        "customer_id": ["a", "b", "c", "c", "d"], "profile_id": ["a", "b", "c", "c", "d"],
        "acquisition_channel": ["paid_search", "paid_search", "social", "email", "store"],
        "acquisition_cost": [None, None, None, None, 12.0],
        "loaded_at": pd.to_datetime(["2025-01-01"] * 3 + ["2025-02-01", "2025-01-01"]), "record_key": list("abcde"),
        "source": "crm",
    })
    costs = pd.DataFrame({"incurred_on": pd.to_datetime(["2025-01-05", "2025-01-06", "2025-01-07"]).date,
                          "amount": [30.0, 10.0, 25.0], "kind": ["acquisition", "acquisition", "acquisition"],
                          "channel": ["paid_search", "paid_search", "email"]})
    with Workspace.open(tmp_path / "cac.duckdb") as ws:
        _write(ws, "customers", customers)
        _write(ws, "costs", costs)
        got = clv_to_cac_by_channel(ws, frame).set_index("acquisition_channel")
    # c's latest CRM row says email; e has no CRM row
    assert got.loc["paid_search", "customers"] == 2 and got.loc["paid_search", "cac"] == 20.0
    assert got.loc["paid_search", "clv_to_cac"] == pytest.approx(75.0 / 20.0)
    assert got.loc["email", "mean_clv"] == 30.0 and got.loc["email", "cac"] == 25.0 and "social" not in got.index
    assert got.loc["store", "cac"] == 12.0 and got.loc["store", "cac_basis"] == "crm"
    assert got.loc["(unknown)", "customers"] == 1 and np.isnan(got.loc["(unknown)", "cac"])


@pytest.fixture(scope="module")
def online_retail(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("or") / "or.duckdb"
    res = run_cli("ingest", "order_lines", str(SHARED_DATA / "online_retail" / "online_retail.csv.gz"), "--mapping",
                  str(Path(__file__).resolve().parents[1] / "examples" / "online_retail.yml"), workspace=path)
    assert res.returncode == 0, res.stderr
    return path


@pytest.mark.parametrize("model", ["bgnbd", "pareto-nbd"])
def test_online_retail_default_fit_converges_and_its_holdout_counts_match_pandas(online_retail: Path, model: str) -> None:
    """Nine months of calibration show no dropout: the fit is the NBD limit, said in a warning, not an error."""
    out = json.loads(run_cli("clv", "fit", "--model", model, "--calibration-end", "2011-09-08", "--format", "json",
                             workspace=online_retail).stdout)
    assert np.isfinite(out["log_likelihood"]) and out["customers"] > 3000
    assert np.isfinite(out["standard_errors"]["r"]) and np.isfinite(out["standard_errors"]["alpha"])
    assert any("no dropout is detectable" in w for w in out["warnings"])
    import duckdb

    con = duckdb.connect(str(online_retail), read_only=True)
    o = con.execute("SELECT profile_id, CAST(ordered_at AS DATE) AS day, status FROM orders WHERE profile_id IS NOT NULL").df()
    con.close()
    o = o[o.status.isna() | (o.status == "completed")]
    end = pd.Timestamp("2011-09-08")
    firsts = o.groupby("profile_id").day.min()
    calibrated = firsts[pd.to_datetime(firsts) < end].index
    later = o[o.profile_id.isin(calibrated) & (pd.to_datetime(o.day) > end)]
    assert out["holdout"]["actual"] == later.groupby("profile_id").day.nunique().sum()
    assert out["customers"] == len(calibrated)
