"""RFM scores and segments, customer value classes and `cxlens rfm|hvc`.

RFM is checked against an independent pandas computation (ranks, quintiles and the R x FM grid
written out again here) on a constructed workspace and on UCI Online Retail; the evidence columns
against hand-checked values; the classes against the simulated company's truth (precision and
recall printed, >= 0.8 asserted where reached); the CLI through the real console script.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from conftest import SHARED_DATA, run_cli

from cxlens import Workspace
from cxlens.value import ValueSettings, customer_value, rfm_scores, write_customer_value
from cxlens.workspace.schema import TABLES, all_columns

ARROW = {"string": pa.string(), "json": pa.string(), "timestamp": pa.timestamp("us"), "date": pa.date32(),
         "float64": pa.float64(), "int64": pa.int64(), "boolean": pa.bool_()}

REFERENCE_GRID = {  # rows R 5..1, columns FM 1..5: the grid of docs/value.md, written out independently
    5: ["new customers", "potential loyalists", "potential loyalists", "champions", "champions"],
    4: ["promising", "potential loyalists", "potential loyalists", "loyal", "loyal"],
    3: ["about to sleep", "about to sleep", "need attention", "loyal", "loyal"],
    2: ["hibernating", "hibernating", "at risk", "at risk", "cannot lose them"],
    1: ["lost", "hibernating", "at risk", "at risk", "cannot lose them"],
}


def write_table(ws: Workspace, table: str, frame: pd.DataFrame) -> None:
    """Replace a canonical table with the frame, every other column NULL."""
    cols = [(c.name, c.type) for c in all_columns(TABLES[table])]
    df = pd.DataFrame({n: frame[n] if n in frame.columns else pd.Series([None] * len(frame), dtype=object) for n, _ in cols})
    schema = pa.schema([pa.field(n, ARROW[t]) for n, t in cols])
    ws.backend.replace_table(table, pa.Table.from_pandas(df, schema=schema, preserve_index=False))


def reference_rfm(orders: pd.DataFrame, as_of: str | None = None) -> pd.DataFrame:
    """RFM with pandas only: quintile = 1 + floor(5 * (rank among worse) / n), FM = ceil((F + M) / 2)."""
    o = orders[(orders.status.isna() | (orders.status == "completed")) & orders.profile_id.notna()].copy()
    o["day"] = o.ordered_at.dt.normalize()
    end = pd.Timestamp(as_of) if as_of else o.day.max()
    o = o[o.day <= end]
    margin = o.cost.notna().any()
    o["amount"] = (o.revenue - o.cost.fillna(0)) if margin else o.revenue
    g = o.groupby("profile_id")
    out = pd.DataFrame({"recency_days": (end - g.day.max()).dt.days, "frequency": g.size(), "monetary": g.amount.sum()})
    n = len(out)

    def score(worse_first: pd.Series) -> pd.Series:
        rank = worse_first.rank(method="min").astype(int) - 1
        return (1 + (5 * rank) // n).astype("int64")

    out["r_score"] = score(-out.recency_days)
    out["f_score"] = score(out.frequency)
    out["m_score"] = score(out.monetary)
    out["fm_score"] = np.ceil((out.f_score + out.m_score) / 2).astype("int64")
    out["rfm_segment"] = [REFERENCE_GRID[r][fm - 1] for r, fm in zip(out.r_score, out.fm_score)]
    return out.reset_index().sort_values("profile_id").reset_index(drop=True)


def _order(oid: str, pid: str | None, at: str, revenue: float, *, status: str | None = "completed", cost: float | None = None,
           coupon: str | None = None, items: int | None = None, source: str = "shop") -> dict:
    return {"order_id": oid, "profile_id": pid, "customer_id": pid, "ordered_at": pd.Timestamp(at), "revenue": revenue,
            "status": status, "cost": cost, "coupon_code": coupon, "items_count": items, "source": source}


def constructed() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Orders of 60 random customers plus hand-made ones, and order lines for the hand-made ones."""
    rows = [
        # a: three purchase days 10 days apart, one coupon, two lines at full price and one on sale
        _order("a1", "a", "2025-03-01 10:00", 100.0, cost=40.0, items=2),
        _order("a2", "a", "2025-03-11 10:00", 50.0, cost=20.0, coupon="SAVE10", items=1),
        _order("a3", "a", "2025-03-21 10:00", 80.0, cost=30.0, items=1),
        _order("a4", "a", "2025-03-25 10:00", 999.0, status="cancelled"),
        # b: one order, last of the workspace for b (ties with c on frequency)
        _order("b1", "b", "2025-02-01 09:00", 20.0, cost=5.0, items=1),
        _order("c1", "c", "2025-01-15 09:00", 20.0, items=1),
        _order("x1", None, "2025-03-30 09:00", 500.0),  # no profile: never counted
    ]
    rng = np.random.default_rng(11)
    for i in range(60):
        for j in range(int(rng.integers(1, 7))):
            at = pd.Timestamp("2025-01-01") + pd.Timedelta(minutes=int(rng.integers(0, 60 * 24 * 89)))
            rows.append(_order(f"r{i}-{j}", f"r{i:02d}", str(at), float(rng.integers(5, 200)),
                               status=rng.choice(["completed", "completed", None, "returned"]),
                               cost=float(rng.integers(0, 5)) if rng.random() < 0.5 else None))
    orders = pd.DataFrame(rows)
    items = pd.DataFrame([
        {"order_id": "a1", "source": "shop", "product_id": "P1", "quantity": 1.0, "unit_price": 60.0, "category": "Kitchen"},
        {"order_id": "a1", "source": "shop", "product_id": "P2", "quantity": 1.0, "unit_price": 40.0, "category": "Bath"},
        {"order_id": "a2", "source": "shop", "product_id": "P1", "quantity": 1.0, "unit_price": 42.0, "category": "Kitchen"},
        {"order_id": "a3", "source": "shop", "product_id": "P3", "quantity": 2.0, "unit_price": 40.0, "category": "Garden"},
        {"order_id": "b1", "source": "shop", "product_id": "P2", "quantity": 1.0, "unit_price": 20.0, "category": "Bath"},
    ])
    return orders, items


def constructed_contacts() -> pd.DataFrame:
    """Support contacts: a's case left unresolved after its last purchase, b's resolved, c's of unknown outcome."""
    def contact(iid: str, pid: str, at: str, case: str | None, resolved: bool | None) -> dict:
        return {"interaction_id": iid, "profile_id": pid, "customer_id": pid, "started_at": pd.Timestamp(at),
                "channel": "phone", "case_id": case, "resolved": resolved, "source": "support"}

    return pd.DataFrame([
        contact("i1", "a", "2025-03-05 12:00", None, True),  # no case id: a case of its own, resolved
        contact("i2", "a", "2025-03-22 12:00", "K1", False),
        contact("i3", "a", "2025-03-23 12:00", "K1", False),  # K1 unresolved, last contact after a's last purchase
        contact("i4", "b", "2025-02-05 12:00", "K2", False),
        contact("i5", "b", "2025-02-10 12:00", "K2", True),  # K2 resolved at its second contact
        contact("i6", "c", "2025-01-20 12:00", "K3", None),  # outcome unknown: no evidence either way
    ])


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workspace, pd.DataFrame]]:
    orders, items = constructed()
    ws = Workspace.open(tmp_path_factory.mktemp("value") / "small.duckdb")
    write_table(ws, "orders", orders)
    write_table(ws, "order_items", items)
    write_table(ws, "interactions", constructed_contacts())
    yield ws, orders
    ws.close()


@pytest.mark.parametrize("as_of", [None, "2025-02-15"])
def test_rfm_matches_pandas(small: tuple[Workspace, pd.DataFrame], as_of: str | None) -> None:
    ws, orders = small
    got = rfm_scores(ws, as_of=as_of)
    want = reference_rfm(orders, as_of)
    cols = ["profile_id", "recency_days", "frequency", "monetary", "r_score", "f_score", "m_score", "fm_score", "rfm_segment"]
    pd.testing.assert_frame_equal(got[cols], want[cols], check_dtype=False, atol=1e-9)
    assert (got.rfm_score == got.r_score.astype(str) + got.f_score.astype(str) + got.m_score.astype(str)).all()


def test_rfm_ties_share_a_score_and_margin_is_the_monetary_value(small: tuple[Workspace, pd.DataFrame]) -> None:
    ws, _ = small
    s = rfm_scores(ws).set_index("profile_id")
    assert s.loc["b", "frequency"] == s.loc["c", "frequency"] == 1 and s.loc["b", "f_score"] == s.loc["c", "f_score"]
    for f, group in s.groupby("frequency"):
        assert group.f_score.nunique() == 1, f
    assert s.loc["a", "monetary"] == pytest.approx(60 + 30 + 50) and s.loc["a", "recency_days"] == 9  # as of 2025-03-30
    assert "x" not in s.index and s.index.notna().all()


def test_evidence_columns_hand_checked(small: tuple[Workspace, pd.DataFrame]) -> None:
    ws, _ = small
    res = customer_value(ws, settings=ValueSettings(predict=False, recent_days=30))
    a = res.frame.set_index("profile_id").loc["a"]
    assert res.value_basis == "margin" and str(res.as_of) == "2025-03-30"
    assert a.frequency == 3 and a.coupon_share == pytest.approx(1 / 3) and a.items_per_order == pytest.approx(4 / 3)
    assert a.full_price_share == pytest.approx(4 / 5)  # P1 sold at 42 of its top price 60: one item of five on sale
    assert a.categories == 3 and a.usual_gap_days == 10 and a.days_silent == 9
    assert a.days_inactive == 5  # the cancelled order of 03-25 is no purchase, but it is activity
    # active days 03-01, 03-05 (contact), 03-11, 03-21, 03-22, 03-23 (contacts), 03-25: 24 days / 6 gaps
    assert a.active_days == 7 and a.activity_gap_days == pytest.approx(4.0)
    assert a.days_since_unresolved_case == 7  # K1's last contact 03-23; as of 03-30
    f = res.frame.set_index("profile_id")
    assert f.loc["b"].days_inactive == 48 and f.loc["b"].activity_gap_days == pytest.approx(9 / 2)  # 02-01, 02-05, 02-10
    assert pd.isna(f.loc["b"].days_since_unresolved_case) and pd.isna(f.loc["c"].days_since_unresolved_case)
    assert f.loc["c"].active_days == 2 and f.loc["c"].activity_gap_days == pytest.approx(5.0)
    assert (a.orders_earlier, a.orders_recent, a.categories_earlier, a.categories_recent) == (0, 3, 0, 3)
    assert np.isnan(res.frame.set_index("profile_id").loc["b"].usual_gap_days)
    assert set(res.frame.rfm_segment) <= {name for row in REFERENCE_GRID.values() for name in row}


# --- UCI Online Retail --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def retail(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    from cxlens.ingest import ingest_file, load_mapping, refresh_identity

    ws = Workspace.open(tmp_path_factory.mktemp("retail") / "retail.duckdb")
    ingest_file(ws, "order_lines", SHARED_DATA / "online_retail" / "online_retail.csv.gz",
                mapping=load_mapping(Path(__file__).resolve().parents[1] / "examples" / "online_retail.yml"))
    refresh_identity(ws)
    yield ws
    ws.close()


def test_online_retail_rfm_matches_pandas(retail: Workspace) -> None:
    orders = retail.table("orders").select("profile_id", "ordered_at", "revenue", "status", "cost").to_pandas()
    got = rfm_scores(retail)
    want = reference_rfm(orders)
    assert len(got) == len(want) > 4000
    pd.testing.assert_frame_equal(got[list(want.columns)], want, check_dtype=False, rtol=1e-9)


def test_online_retail_classes_skip_signals_the_data_lacks(retail: Workspace) -> None:
    res = customer_value(retail, settings=ValueSettings(predict=False))
    f = res.frame
    assert res.value_basis == "revenue" and f.coupon_share.isna().all() and f.categories.isna().all()
    assert 0.05 < f.hvc.mean() < 0.5 and f.hvc_score.between(0, 1).all()
    assert not f.evidence[f.hvc].str.contains("coupon|categor").any()


# --- the simulated company ----------------------------------------------------------------------------

def truth_frame(data: Path, ws_path: Path) -> pd.DataFrame:
    """Per simulated customer: the profile holding most of their identity keys, and their latent traits."""
    import duckdb

    truth = json.loads((data / "truth.json").read_text())
    keys = pd.DataFrame({"key": list(truth["identity"]["keys"]), "person": list(truth["identity"]["keys"].values())})
    con = duckdb.connect(str(ws_path), read_only=True)
    try:
        ik = con.execute("SELECT key, profile_id FROM identity_keys WHERE profile_id IS NOT NULL").df()
        orders = con.execute("SELECT profile_id, ordered_at FROM orders WHERE profile_id IS NOT NULL "
                             "AND (status IS NULL OR status = 'completed')").df()
    finally:
        con.close()
    m = ik.merge(keys, on="key").groupby(["person", "profile_id"]).size().reset_index(name="n")
    m = m.sort_values(["person", "n", "profile_id"], ascending=[True, False, True]).drop_duplicates("person")
    people = pd.DataFrame([p for p in truth["persons"] if p["kind"] == "customer"]).merge(m, on="person")
    for c in ("hvc", "emerging_hvc", "churned"):
        people[c] = people[c].astype(bool)
    people["churned_at"] = pd.to_datetime(people.churned_at)
    days = orders.assign(day=orders.ordered_at.dt.normalize()).groupby("profile_id").day.agg(["min", "max", "nunique"])
    people = people.merge(days, left_on="profile_id", right_index=True, how="left")
    people["mean_gap"] = (people["max"] - people["min"]).dt.days / (people["nunique"] - 1).where(people["nunique"] > 1)
    people.attrs["emerging_from"] = pd.Timestamp(truth["effects"]["emerging_hvc_from"])
    return people


def precision_recall(predicted: pd.Series, actual: pd.Series) -> tuple[float, float, int, int]:
    tp = int((predicted & actual).sum())
    return tp / max(int(predicted.sum()), 1), tp / max(int(actual.sum()), 1), int(predicted.sum()), int(actual.sum())


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, Path]:
    """4,000 simulated customers over a year, demo-ingested; customer_value against the truth."""
    from cxlens.demo import run_demo

    out = tmp_path_factory.mktemp("company")
    summary = run_demo(out, customers=4000, days=365, seed=3)
    ws_path = Path(summary.workspace)
    with Workspace.open(ws_path) as ws:
        result = customer_value(ws)
        write_customer_value(ws, result)
    people = truth_frame(out / "data", ws_path)
    joined = people.merge(result.frame, on="profile_id", suffixes=("_truth", ""))
    joined.attrs.update(people.attrs, as_of=pd.Timestamp(result.as_of))
    return joined, ws_path


def _scores(company: tuple[pd.DataFrame, Path]) -> dict[str, tuple[float, float, int, int]]:
    df, _ = company
    # a lapsing HVC: an HVC who churned at least two of their own usual gaps before the as-of day (an
    # HVC churned more recently cannot be told from a pause yet and counts neither way)
    churned_ago = (df.attrs["as_of"] - df.churned_at).dt.days
    long_gone = df.hvc_truth & df.churned & (churned_ago >= 2 * df.mean_gap.fillna(np.inf))
    unsure = df.hvc_truth & df.churned & ~long_gone
    # an emerging HVC can only be seen emerging from an earlier purchase pattern: one whose first
    # order came after the simulated shift behaves as an HVC from that order on, exactly like an
    # HVC, and counts neither way (the share is printed)
    before_shift = df["min"] < df.attrs["emerging_from"]
    emerged = df.emerging_hvc_truth & before_shift
    hidden = df.emerging_hvc_truth & ~before_shift
    print(f"emerging HVCs whose first order came after the shift (not scored): {int(hidden.sum())} "
          f"of {int(df.emerging_hvc_truth.sum())}")
    scores = {
        "hvc": precision_recall(df.hvc, df.hvc_truth),
        "lapsing_hvc": precision_recall(df.lapsing_hvc[~unsure], long_gone[~unsure]),
        "emerging_hvc": precision_recall(df.emerging_hvc[~hidden], emerged[~hidden]),
    }
    for name, (p, r, n_pred, n_true) in scores.items():
        print(f"{name}: precision {p:.3f} recall {r:.3f} ({n_pred} labelled, {n_true} in the truth)")
    return scores


def test_hvc_and_emerging_labels_agree_with_the_truth(company: tuple[pd.DataFrame, Path]) -> None:
    scores = _scores(company)
    for name, least in (("hvc", 100), ("emerging_hvc", 50)):
        precision, recall, _, n_true = scores[name]
        assert n_true >= least, name
        assert precision >= 0.8 and recall >= 0.8, (name, scores[name])


def test_lapsing_labels_find_the_lapsed_hvcs(company: tuple[pd.DataFrame, Path]) -> None:
    """Precision and recall >= 0.8. The truth holds 14 lapsed HVCs, so one customer moves precision
    by about 0.05; seeds 5, 7, 11 and 13 are reported in docs/value.md."""
    precision, recall, _, n_true = _scores(company)["lapsing_hvc"]
    assert n_true >= 10
    assert precision >= 0.8 and recall >= 0.8


def test_classes_are_consistent_and_explained(company: tuple[pd.DataFrame, Path]) -> None:
    df, _ = company
    assert not (df.hvc & df.emerging_hvc).any() and not (df.hvc & df.high_volume).any()
    assert (df.hvc | ~df.lapsing_hvc).all()
    labelled = df.hvc | df.emerging_hvc | df.high_volume
    assert (df.evidence.str.len()[labelled] > 20).all() and (df.evidence[~labelled] == "").all()
    hvc = df[df.hvc]
    assert hvc.coupon_share.median() < df.coupon_share.median() and hvc.aov.median() > df.aov.median()
    lapsing = df[df.lapsing_hvc]
    assert (lapsing.days_silent >= 30).all() and lapsing.evidence.str.startswith("silent ").all()
    gone = (lapsing.days_inactive > 6 * lapsing.activity_gap_days) | (lapsing.days_since_unresolved_case <= lapsing.days_silent)
    assert len(lapsing) > 0 and gone.all()


def test_cli_json_shapes(company: tuple[pd.DataFrame, Path]) -> None:
    _, ws_path = company
    res = run_cli("rfm", "--format", "json", workspace=ws_path)
    assert res.returncode == 0, res.stderr
    rfm = json.loads(res.stdout)
    assert {"as_of", "value_basis", "customers", "table", "grid", "segments"} <= rfm.keys()
    assert [s["segment"] for s in rfm["segments"]][:2] == ["champions", "loyal"] and len(rfm["segments"]) == 11
    assert sum(s["customers"] for s in rfm["segments"]) == rfm["customers"]
    assert rfm["grid"]["5"] == REFERENCE_GRID[5]

    res = run_cli("hvc", "--format", "json", "--limit", "3", "--k", "4", workspace=ws_path)
    assert res.returncode == 0, res.stderr
    hvc = json.loads(res.stdout)
    assert hvc["settings"]["k"] == 4 and hvc["table"] == "customer_value"
    assert [c["class"] for c in hvc["classes"]] == ["hvc", "lapsing_hvc", "emerging_hvc", "high_volume"]
    for c in hvc["classes"]:
        assert {"label", "definition", "customers", "share", "value_share", "evidence", "top"} <= c.keys()
        assert len(c["top"]) == min(3, c["customers"]) and all(m["evidence"] for m in c["top"])
    import duckdb

    con = duckdb.connect(str(ws_path), read_only=True)
    try:
        n = con.execute("SELECT count(*) FROM customer_value").fetchone()[0]
    finally:
        con.close()
    assert n == hvc["customers"]


def test_cli_help_and_errors(tmp_path: Path) -> None:
    for command in ("rfm", "hvc"):
        res = run_cli(command, "--help")
        assert res.returncode == 0 and "Examples" in res.stdout
    empty = tmp_path / "empty.duckdb"
    res = run_cli("hvc", workspace=empty)
    assert res.returncode == 1 and "no valid orders" in res.stderr and "Traceback" not in res.stderr
    res = run_cli("rfm", "--as-of", "last tuesday", workspace=empty)
    assert res.returncode != 0 and "Traceback" not in res.stderr


def test_bad_settings_are_one_sentence(small: tuple[Workspace, pd.DataFrame]) -> None:
    from cxlens.errors import UsageError

    ws, _ = small
    with pytest.raises(UsageError, match="k 0"):
        ValueSettings(k=0)
    with pytest.raises(UsageError, match="not a date"):
        customer_value(ws, as_of="31/12/2025")
    with pytest.raises(UsageError, match="before the first order"):
        customer_value(ws, as_of="2020-01-01")


def test_docs_python_example_runs(company: tuple[pd.DataFrame, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    _, ws_path = company
    doc = (Path(__file__).resolve().parents[1] / "docs" / "value.md").read_text()
    snippet = doc.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(ws_path.parent)  # the example opens ./cxlens.duckdb
    scope: dict[str, object] = {}
    exec(compile(snippet, "docs/value.md", "exec"), scope)  # noqa: S102 - the snippet is ours, run as printed
    assert len(scope["rfm"]) == len(scope["result"].frame) > 0  # type: ignore[attr-defined,arg-type]
    assert scope["lapsing"].evidence.str.startswith("silent ").all()  # type: ignore[attr-defined]


def test_value_classes_are_segments_and_dimensions_for_metrics(company: tuple[pd.DataFrame, Path]) -> None:
    """`--where hvc` and `--by value_class` on the written customer_value: revenue per class by pandas."""
    _, ws_path = company
    con = duckdb.connect(str(ws_path), read_only=True)
    orders = con.execute("SELECT profile_id, revenue, status FROM orders WHERE profile_id IS NOT NULL").df()
    value = con.execute("SELECT profile_id, value_class, hvc FROM customer_value").df()
    con.close()
    valid = orders[orders.status.isna() | (orders.status == "completed")].merge(value, on="profile_id", how="left")
    out = json.loads(run_cli("metrics", "show", "revenue", "--grain", "year", "--where", "hvc", "--format", "json",
                             workspace=ws_path).stdout)
    got = sum(r["value"] for r in out["rows"])
    assert got == pytest.approx(valid.loc[valid.hvc.fillna(False).astype(bool), "revenue"].sum(), rel=1e-9)
    out = json.loads(run_cli("metrics", "show", "orders", "--grain", "year", "--by", "value_class", "--format", "json",
                             workspace=ws_path).stdout)
    per_class: dict[str, float] = {}
    for r in out["rows"]:
        per_class[str(r["value_class"])] = per_class.get(str(r["value_class"]), 0) + r["value"]
    want = valid.assign(value_class=valid.value_class.fillna("None")).groupby("value_class").size()
    assert {k: v for k, v in per_class.items() if k != "None"} == {k: v for k, v in want.items() if k != "None"}


def _segments_value(ws_path: Path, definitions_yaml: str) -> dict:
    """`cxlens metrics segments --value --format json` with these segment definitions next to the workspace."""
    definitions = ws_path.with_name(ws_path.stem + ".metrics.yml")
    saved = definitions.read_text() if definitions.exists() else None
    definitions.write_text(definitions_yaml)
    try:
        return json.loads(run_cli("metrics", "segments", "--value", "--format", "json", workspace=ws_path).stdout)
    finally:
        if saved is None:
            definitions.unlink()
        else:
            definitions.write_text(saved)


def test_who_contacted_service_before_stopping(company: tuple[pd.DataFrame, Path]) -> None:
    """The seed's micro segment: of the repeat buyers, those who contacted support at or after their
    last order and have bought nothing for 60 days; members and revenue recomputed with pandas."""
    _, ws_path = company
    out = _segments_value(ws_path, "segments:\n  - id: repeaters\n    where: \"orders >= 2\"\n"
                                   "  - id: contacted_then_stopped\n    within: repeaters\n"
                                   "    where: \"contacted_after_last_order AND days_since_last_order > 60\"\n")
    con = duckdb.connect(str(ws_path), read_only=True)
    try:
        orders = con.execute("SELECT profile_id, ordered_at, revenue, status FROM orders WHERE profile_id IS NOT NULL").df()
        contacts = con.execute("SELECT profile_id, max(started_at) AS last_contact FROM interactions "
                               "WHERE profile_id IS NOT NULL GROUP BY profile_id").df()
        latest = max(pd.Timestamp(con.execute(f"SELECT max({c}) FROM {t}").fetchone()[0]) for t, c in (
            ("orders", "ordered_at"), ("interactions", "started_at"), ("survey_responses", "responded_at"),
            ("events", "occurred_at")))
    finally:
        con.close()
    valid = orders[orders.status.isna() | (orders.status == "completed")]
    per = valid.groupby("profile_id").agg(orders=("revenue", "size"), revenue=("revenue", "sum"), last=("ordered_at", "max"))
    repeaters = per[per.orders >= 2].merge(contacts, left_index=True, right_on="profile_id", how="left")
    stopped = repeaters[(repeaters.last_contact >= repeaters["last"])
                        & ((latest - repeaters["last"]).dt.total_seconds() / 86_400 > 60)]
    rows = {r["segment"]: r for r in out["value"]}
    assert rows["contacted_then_stopped"]["within"] == "repeaters"
    for sid, want in (("repeaters", repeaters), ("contacted_then_stopped", stopped)):
        assert rows[sid]["customers"] == len(want) > 0, sid
        assert rows[sid]["revenue"] == pytest.approx(want.revenue.sum(), rel=1e-9)


def test_micro_segment_value_matches_pandas(company: tuple[pd.DataFrame, Path]) -> None:
    """A macro segment (HVCs) and a micro one within it (no order for 60 days): members, revenue
    and predicted value per segment recomputed with pandas from the tables."""
    _, ws_path = company
    out = _segments_value(ws_path, "segments:\n  - id: best\n    where: \"hvc\"\n"
                                   "  - id: best_gone_quiet\n    within: best\n    where: \"days_since_last_order > 60\"\n")
    con = duckdb.connect(str(ws_path), read_only=True)
    try:
        value = con.execute("SELECT profile_id, hvc, predicted_clv FROM customer_value").df()
        orders = con.execute("SELECT profile_id, ordered_at, revenue, status FROM orders WHERE profile_id IS NOT NULL").df()
        latest = max(pd.Timestamp(con.execute(f"SELECT max({c}) FROM {t}").fetchone()[0]) for t, c in (
            ("orders", "ordered_at"), ("interactions", "started_at"), ("survey_responses", "responded_at"),
            ("events", "occurred_at")))
    finally:
        con.close()
    valid = orders[orders.status.isna() | (orders.status == "completed")]
    per = valid.groupby("profile_id").agg(revenue=("revenue", "sum"), last=("ordered_at", "max"))
    best = value[value.hvc.astype(bool)].merge(per, left_on="profile_id", right_index=True, how="left")
    quiet = best[(latest - best["last"]).dt.total_seconds() / 86_400 > 60]
    rows = {r["segment"]: r for r in out["value"]}
    assert rows["best_gone_quiet"]["within"] == "best" and rows["best"]["within"] is None
    for sid, want in (("best", best), ("best_gone_quiet", quiet)):
        assert rows[sid]["customers"] == len(want) > 0
        assert rows[sid]["revenue"] == pytest.approx(want.revenue.sum(), rel=1e-9)
        assert rows[sid]["predicted_clv"] == pytest.approx(want.predicted_clv.sum(), rel=1e-9)
