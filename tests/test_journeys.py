"""Journeys on a constructed workspace: touchpoints, paths and funnels against pandas written out
again here, friction features against hand-built cases, the HC1 regression against statsmodels,
the journey map's experience and micro-journeys, the CLI through the real console script, and the
docs example."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from conftest import run_cli

from cxlens import Workspace
from cxlens.errors import UsageError
from cxlens.journeys import (
    FrictionSettings,
    PathSettings,
    build_touchpoints,
    case_features,
    case_scores,
    funnel,
    journey_map,
    ols_hc1,
    path_counts,
    top_paths,
)
from cxlens.workspace.schema import TABLES, all_columns

ARROW = {"string": pa.string(), "json": pa.string(), "timestamp": pa.timestamp("us"), "date": pa.date32(),
         "float64": pa.float64(), "int64": pa.int64(), "boolean": pa.bool_()}
T0 = pd.Timestamp("2025-03-01")
NON_SESSION = {"message_sent", "message_opened", "message_clicked", "message_unsubscribed", "ad_impression", "ad_click",
               "store_visit", "coupon_redeemed", "loyalty_enrolled", "survey_sent"}
STAGE = {"page_view": "awareness", "product_view": "consideration", "add_to_cart": "consideration", "search": "consideration",
         "checkout_started": "purchase", "purchase": "purchase", "message_sent": "awareness", "message_opened": "awareness",
         "message_clicked": "consideration", "store_visit": "consideration"}


def write_table(ws: Workspace, table: str, frame: pd.DataFrame) -> None:
    """Replace a canonical table with the frame, every other column NULL."""
    cols = [(c.name, c.type) for c in all_columns(TABLES[table])]
    df = pd.DataFrame({n: frame[n] if n in frame.columns else pd.Series([None] * len(frame), dtype=object) for n, _ in cols})
    schema = pa.schema([pa.field(n, ARROW[t]) for n, t in cols])
    ws.backend.replace_table(table, pa.Table.from_pandas(df, schema=schema, preserve_index=False))


def constructed() -> dict[str, pd.DataFrame]:
    """Random web/app/email events and orders of 40 profiles, plus hand-made support cases and answers."""
    rng = np.random.default_rng(5)
    kinds = ["page_view", "product_view", "add_to_cart", "checkout_started", "purchase", "search", "message_sent",
             "message_opened", "message_clicked", "store_visit"]
    weights = np.array([6, 5, 3, 2, 1.5, 1, 2, 1, 0.5, 0.5])
    ev = []
    for p in range(40):
        n = int(rng.integers(5, 40))
        secs = np.sort(rng.integers(0, 20 * 86_400, n))
        # bursts: half the events follow the one before within minutes, so loose events form visits
        for j in range(n):
            kind = str(rng.choice(kinds, p=weights / weights.sum()))
            channel = "email" if kind.startswith("message") else ("Store" if kind == "store_visit" else str(rng.choice(["web", "App"])))
            sid = f"s{p}-{j // 4}" if rng.random() < 0.5 and kind not in NON_SESSION else None
            ev.append({"event_id": f"e{p}-{j}", "occurred_at": T0 + pd.Timedelta(seconds=int(secs[j])), "event_type": kind,
                       "customer_id": f"c{p}", "anonymous_id": f"a{p}" if p % 3 else None, "session_id": sid,
                       "channel": channel, "profile_id": f"p{p:02d}", "source": "web",
                       "value": 20.0 if kind == "purchase" else None, "campaign_id": "C1" if kind == "message_sent" else None,
                       "personalized": True if kind.startswith("message") else None})
    ev.append({"event_id": "e-anon", "occurred_at": T0, "event_type": "page_view", "channel": "web", "source": "web",
               "profile_id": None})  # no profile: in no journey
    orders = []
    for p in range(40):
        for j in range(int(rng.integers(0, 3))):
            orders.append({"order_id": f"o{p}-{j}", "profile_id": f"p{p:02d}", "customer_id": f"c{p}", "source": "shop",
                           "ordered_at": T0 + pd.Timedelta(seconds=int(rng.integers(0, 20 * 86_400))), "revenue": 30.0 + j,
                           "channel": str(rng.choice(["online", "store"])),
                           "status": str(rng.choice(["completed", "completed", "returned"]))})
    d = pd.Timedelta(days=1)
    h = pd.Timedelta(hours=1)
    inter = [
        # case A of h1 (billing): phone, chat a day later (long wait, a transfer), phone 9 days later (2 transfers), resolved
        ("A1", "h1", T0, "Phone", "A", "Billing", 0, None, 100.0),
        ("A2", "h1", T0 + d, "Chat", "A", "billing", 1, None, 2000.0),
        ("A3", "h1", T0 + 10 * d, "phone", "A", "billing", 2, True, 50.0),
        # case B of h1, billing again 5 days after A closed; resolution and transfers unknown
        ("B1", "h1", T0 + 15 * d, "email", "B", "billing", None, None, 7200.0),
        # case C of h2 (delivery): two chats two hours apart, never resolved
        ("C1", "h2", T0 + 2 * d, "chat", "C", "delivery", 0, False, 30.0),
        ("C2", "h2", T0 + 2 * d + 2 * h, "chat", "C", "delivery", 0, False, 40.0),
        # a contact of h2 with no case id, a month earlier: a case of its own
        ("L1", "h2", T0 - 30 * d, "phone", None, "delivery", 0, True, 10.0),
        # case D of h3: one resolved phone call on another source's case id "A" (a different case)
        ("D1", "h3", T0 + 3 * d, "phone", "A", "account", 0, True, 20.0),
    ]
    interactions = pd.DataFrame([{"interaction_id": i, "profile_id": p, "customer_id": p, "started_at": t, "channel": ch,
                                  "case_id": c, "topic": tp, "transfers": tr, "resolved": res, "wait_seconds": w,
                                  "source": "desk" if i != "D1" else "shop"} for i, p, t, ch, c, tp, tr, res, w in inter])
    surveys = pd.DataFrame([
        {"response_id": "r1", "profile_id": "h1", "responded_at": T0 + 11 * d, "survey_type": "ces", "score": 2.0, "interaction_id": "A3"},
        {"response_id": "r2", "profile_id": "h2", "responded_at": T0 + 3 * d, "survey_type": "csat", "score": 1.0, "interaction_id": "C2"},
        # relationship NPS two days after C: linked to C by time, not to L1 (a month before)
        {"response_id": "r3", "profile_id": "h2", "responded_at": T0 + 4 * d, "survey_type": "nps", "score": 3.0},
        {"response_id": "r4", "profile_id": "h3", "responded_at": T0 + 4 * d, "survey_type": "csat", "score": 5.0, "interaction_id": "D1"},
        # about an order: linked to no case
        {"response_id": "r5", "profile_id": "h2", "responded_at": T0 + 3 * d, "survey_type": "csat", "score": 4.0, "order_id": "o1-0"},
    ])
    for f in (interactions, surveys):
        f["source"] = f.get("source", "desk")
    return {"events": pd.DataFrame(ev), "orders": pd.DataFrame(orders), "interactions": interactions, "survey_responses": surveys}


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, pd.DataFrame]]]:
    frames = constructed()
    path = tmp_path_factory.mktemp("journeys") / "small.duckdb"
    with Workspace.open(path) as ws:
        for table, frame in frames.items():
            write_table(ws, table, frame)
    yield path, frames


@pytest.fixture
def ws(small: tuple[Path, dict[str, pd.DataFrame]]) -> Iterator[Workspace]:
    w = Workspace.open(small[0])
    try:
        yield w
    finally:
        w.close()


# --- touchpoints ----------------------------------------------------------------------------------

def reference_touchpoints(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Events (with the 30-minute visits where no session id is given) and valid orders, in pandas."""
    e = frames["events"]
    e = e[e.profile_id.notna()].copy()
    e["visitor"] = e.anonymous_id.where(e.anonymous_id.notna(), e.source + ":" + e.customer_id)
    loose = e[e.session_id.isna() & ~e.event_type.isin(NON_SESSION)]
    times = loose[["visitor", "occurred_at"]].drop_duplicates().sort_values(["visitor", "occurred_at"])
    gap = times.groupby("visitor").occurred_at.diff().dt.total_seconds()
    times["visit"] = (gap.isna() | (gap > 1800)).astype(int).groupby(times.visitor).cumsum()
    e = e.merge(times, on=["visitor", "occurred_at"], how="left")
    e["session"] = np.where(e.event_type.isin(NON_SESSION), None,
                            np.where(e.session_id.notna(), e.source + ":" + e.session_id.fillna(""),
                                     "~" + e.visitor + ":" + e.visit.fillna(0).astype(int).astype(str)))
    ev = pd.DataFrame({"profile_id": e.profile_id, "occurred_at": e.occurred_at, "touchpoint": e.event_type,
                       "channel": e.channel.str.lower(), "stage": e.event_type.map(STAGE), "ref_id": e.event_id,
                       "session_id": e.session})
    o = frames["orders"]
    o = o[o.status == "completed"]
    od = pd.DataFrame({"profile_id": o.profile_id, "occurred_at": o.ordered_at, "touchpoint": "order", "channel": o.channel,
                       "stage": "purchase", "ref_id": o.order_id, "session_id": None})
    return pd.concat([ev, od], ignore_index=True)


def test_touchpoints_match_pandas(ws: Workspace, small: tuple[Path, dict[str, pd.DataFrame]]) -> None:
    got = build_touchpoints(ws, ("events", "orders")).to_pandas()
    want = reference_touchpoints(small[1])
    cols = ["ref_id", "profile_id", "occurred_at", "touchpoint", "channel", "stage", "session_id"]
    g = got[cols].sort_values("ref_id").reset_index(drop=True)
    w = want[cols].sort_values("ref_id").reset_index(drop=True)
    for f in (g, w):
        f["session_id"] = f.session_id.astype(object).where(f.session_id.notna(), None)
    pd.testing.assert_frame_equal(g, w, check_dtype=False)
    assert got.session_id.notna().sum() > 100 and got.session_id.str.startswith("~").sum() > 20


def test_touchpoints_carry_cases_surveys_and_stages(ws: Workspace) -> None:
    t = build_touchpoints(ws).to_pandas().set_index("ref_id")
    assert t.loc["A2", "case_id"] == "desk:A" and t.loc["D1", "case_id"] == "shop:A" and t.loc["L1", "case_id"] == "desk:~L1"
    assert t.loc["A1", "touchpoint"] == "support:billing" and t.loc["A1", "channel"] == "phone" and t.loc["A1", "stage"] == "service"
    assert t.loc["r3", "stage"] == "loyalty" and t.loc["r1", "stage"] == "service" and t.loc["r1", "score"] == 2.0
    assert set(t.stage) <= {"awareness", "consideration", "purchase", "service", "loyalty"}
    assert t.profile_id.notna().all() and "e-anon" not in t.index


# --- paths ------------------------------------------------------------------------------------------

def reference_paths(tp: pd.DataFrame, level: str, lookback: int, max_steps: int) -> pd.Series:
    """Paths to the first conversion: steps in the look-back window, repeats collapsed, last max_steps kept."""
    tp = tp[~tp.touchpoint.isin(["message_sent", "recommendation_shown"])]
    conv = tp[tp.touchpoint.isin(["order", "purchase"])].groupby("profile_id").occurred_at.min()
    out = []
    for pid, end in conv.items():
        rows = tp[(tp.profile_id == pid) & (tp.occurred_at < end) & (tp.occurred_at >= end - pd.Timedelta(days=lookback))]
        steps = list(rows.sort_values(["occurred_at", "ref_id"])[level])
        collapsed = [s for k, s in enumerate(steps) if k == 0 or s != steps[k - 1]]
        if not collapsed:
            continue
        path = " > ".join(collapsed[-max_steps:])
        out.append("… > " + path if len(collapsed) > max_steps else path)
    return pd.Series(out).value_counts()


@pytest.mark.parametrize(("level", "lookback", "max_steps"), [("channel", 30, 5), ("touchpoint", 3, 3), ("stage", 10, 2)])
def test_top_paths_match_pandas(ws: Workspace, small: tuple[Path, dict[str, pd.DataFrame]], level: str, lookback: int,
                                max_steps: int) -> None:
    tp = build_touchpoints(ws, ("events", "orders"))
    got = top_paths(ws, "conversion", PathSettings(level=level, lookback_days=lookback, max_steps=max_steps), limit=1000,
                    touchpoints=tp)
    want = reference_paths(reference_touchpoints(small[1]), level, lookback, max_steps)
    assert dict(zip(got.path, got.profiles)) == want.to_dict()
    assert got.share.sum() == pytest.approx(1.0) and len(want) > 5


def test_path_counts_paths_and_sankey_match_pandas(ws: Workspace) -> None:
    """path_counts keeps one set of steps for the paths and the Sankey; both equal pandas on the touchpoints."""
    got = path_counts(ws, "conversion")
    tp = build_touchpoints(ws).to_pandas()
    tp = tp[~tp.touchpoint.isin(["message_sent", "recommendation_shown", "survey_sent"]) & tp.channel.notna()]
    every = reference_paths(tp, "channel", 30, 5)
    want = sorted(every.items(), key=lambda kv: (-kv[1], kv[0]))[:20]  # ties by the path's text
    assert list(zip(got["paths"].path, got["paths"].profiles)) == want and len(want) > 3
    flows: dict[tuple[int, str, str], int] = {}
    for path, n in every.items():
        steps = [s for s in path.split(" > ") if s != "…"]
        for k, step in enumerate(steps):
            key = (k + 1, step, steps[k + 1] if k + 1 < len(steps) else "(conversion)")
            flows[key] = flows.get(key, 0) + int(n)
    s = got["sankey"]
    assert dict(zip(zip(s.position.astype(int), s.source, s.target), s["count"].astype(int))) == flows

def test_activity_spans_are_kept_once_per_shared_block(ws: Workspace) -> None:
    """Inside shared_touchpoints the customers' activity spans are computed once for every churn
    window and released at the end; the churn window is the same as outside a block."""
    from cxlens.journeys import shared_touchpoints, touchpoints
    from cxlens.journeys.friction import churn_window

    plain = churn_window(ws, FrictionSettings(churn_days=1))[0].to_pandas().sort_values("profile_id").reset_index(drop=True)
    with shared_touchpoints(ws):
        per = churn_window(ws, FrictionSettings(churn_days=1))[0]
        kept = touchpoints._KEPT[id(ws)]["activity_spans"]
        churn_window(ws, FrictionSettings(churn_days=30))
        assert list(touchpoints._KEPT[id(ws)]) == ["activity_spans"] and touchpoints._KEPT[id(ws)]["activity_spans"] is kept
        inside = per.to_pandas().sort_values("profile_id").reset_index(drop=True)
    assert id(ws) not in touchpoints._KEPT and len(plain) > 0
    pd.testing.assert_frame_equal(inside, plain)


def test_path_settings_are_checked() -> None:
    with pytest.raises(UsageError, match="level 'device'"):
        PathSettings(level="device")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="max_steps"):
        PathSettings(max_steps=0)


# --- funnel ------------------------------------------------------------------------------------------

def reference_funnel(tp: pd.DataFrame, steps: list[str], window_days: float | None) -> list[tuple[int, float]]:
    """(profiles reaching, median seconds from the step before) per step, profile by profile."""
    reached: list[list[float]] = [[] for _ in steps]
    counts = [0] * len(steps)
    for _, rows in tp.groupby("profile_id"):
        rows = rows.sort_values("occurred_at")
        first = rows[rows.touchpoint == steps[0]]
        if first.empty:
            continue
        start = prev = first.occurred_at.iloc[0]
        counts[0] += 1
        for k, name in enumerate(steps[1:], start=1):
            cand = rows[(rows.touchpoint == name) & (rows.occurred_at >= prev)]
            if window_days is not None:
                cand = cand[cand.occurred_at <= start + pd.Timedelta(days=window_days)]
            if cand.empty:
                break
            at = cand.occurred_at.iloc[0]
            counts[k] += 1
            reached[k].append((at - prev).total_seconds())
            prev = at
    return [(counts[k], float(np.median(reached[k])) if reached[k] else float("nan")) for k in range(len(steps))]


@pytest.mark.parametrize("window_days", [None, 2.0])
def test_funnel_matches_pandas(ws: Workspace, small: tuple[Path, dict[str, pd.DataFrame]], window_days: float | None) -> None:
    steps = ["product_view", "add_to_cart", "checkout_started", "purchase"]
    got = funnel(ws, steps, window_days=window_days).frame
    want = reference_funnel(reference_touchpoints(small[1]), steps, window_days)
    assert list(got.profiles) == [n for n, _ in want]
    np.testing.assert_allclose(got.median_seconds_from_previous.to_numpy()[1:], [m for _, m in want][1:])
    n = got.profiles.to_numpy()
    np.testing.assert_allclose(got.conversion_from_previous.to_numpy()[1:], n[1:] / n[:-1])
    assert list(got.drop_off) == [0, *list(n[:-1] - n[1:])] and got.conversion_from_start.iloc[-1] == n[-1] / n[0]


def test_funnel_by_channel_splits_entrants(ws: Workspace, small: tuple[Path, dict[str, pd.DataFrame]]) -> None:
    steps = ["product_view", "order"]
    tp = reference_touchpoints(small[1])
    got = funnel(ws, steps, by="channel").frame
    firsts = tp[tp.touchpoint == "product_view"].sort_values(["occurred_at", "ref_id"]).groupby("profile_id").first()
    for channel, profiles in firsts.groupby("channel").groups.items():
        want = reference_funnel(tp[tp.profile_id.isin(profiles)], steps, None)
        rows = got[got.group == channel]
        assert list(rows.profiles) == [n for n, _ in want], channel


def test_funnel_errors_name_the_problem(ws: Workspace) -> None:
    with pytest.raises(UsageError, match="at least two steps"):
        funnel(ws, ["purchase"])
    with pytest.raises(UsageError, match="breakdown 'planet'"):
        funnel(ws, ["product_view", "purchase"], by="planet")
    with pytest.raises(UsageError, match="window is -1"):
        funnel(ws, ["product_view", "purchase"], window_days=-1)


# --- friction ----------------------------------------------------------------------------------------

def test_friction_features_of_hand_built_cases(ws: Workspace) -> None:
    c = case_features(ws, FrictionSettings(repeat_days=7, topic_days=14, long_wait_seconds=900)).to_pandas().set_index("case_id")
    assert sorted(c.index) == ["desk:A", "desk:B", "desk:C", "desk:~L1", "shop:A"]
    a = c.loc["desk:A"]
    assert (a.contacts, a.channel_switches, a.repeat_contacts, a.transfers, a.unresolved, a.long_waits) == (3, 2, 1, 3, 0, 1)
    assert a.topic == "billing" and a.channel == "phone" and a.repeat_topic == 0 and a.friction == 1
    b = c.loc["desk:B"]  # billing again 5 days after A closed: repeated information; unknown resolution is no friction
    assert (b.repeat_topic, b.unresolved, b.transfers, b.long_waits, b.contacts) == (1, 0, 0, 1, 1)
    cc = c.loc["desk:C"]
    assert (cc.unresolved, cc.repeat_contacts, cc.channel_switches, cc.repeat_topic, cc.long_waits) == (1, 1, 0, 0, 0)
    assert c.loc["desk:~L1"].friction == 0 and c.loc["shop:A"].friction == 0 and c.loc["shop:A"].profile_id == "h3"
    # a shorter repeat window and a lower wait threshold move the counts as defined
    c2 = case_features(ws, FrictionSettings(repeat_days=1, topic_days=4, long_wait_seconds=60)).to_pandas().set_index("case_id")
    assert c2.loc["desk:A", "repeat_contacts"] == 1 and c2.loc["desk:A", "long_waits"] == 2
    assert c2.loc["desk:B", "repeat_topic"] == 0


def test_answers_link_to_cases_by_contact_or_time(ws: Workspace) -> None:
    settings = FrictionSettings(survey_days=7)
    cases = case_features(ws, settings)
    s = case_scores(ws, cases, settings).to_pandas().set_index("case_id")
    assert s.loc["desk:A", "ces"] == 2.0 and pd.isna(s.loc["desk:A", "csat"])
    assert s.loc["desk:C", "csat"] == 1.0 and s.loc["desk:C", "nps"] == 3.0  # the order's CSAT (4) is not the case's
    assert s.loc["shop:A", "csat"] == 5.0 and "desk:~L1" not in s.index and "desk:B" not in s.index


def test_friction_settings_are_checked() -> None:
    with pytest.raises(UsageError, match="long_wait_seconds is 0"):
        FrictionSettings(long_wait_seconds=0)


# --- the regression -----------------------------------------------------------------------------------

def test_hc1_regression_equals_statsmodels() -> None:
    import statsmodels.api as sm

    rng = np.random.default_rng(2)
    n = 400
    x1 = rng.poisson(1.0, n).astype(float)
    x2 = rng.random(n) < 0.3
    x3 = rng.normal(size=n)
    y = 5 - 0.8 * x1 - 1.5 * x2 + 0.2 * x3 + rng.normal(size=n) * (0.5 + x1)  # heteroskedastic
    X = np.column_stack([np.ones(n), x1, x2, x3])
    fit = ols_hc1(X, y, ["intercept", "x1", "x2", "x3"])
    ref = sm.OLS(y, X).fit(cov_type="HC1")
    np.testing.assert_allclose([c.estimate for c in fit.coefficients], ref.params, rtol=1e-10)
    np.testing.assert_allclose([c.std_error for c in fit.coefficients], ref.bse, rtol=1e-10)
    np.testing.assert_allclose([[c.ci_low, c.ci_high] for c in fit.coefficients], ref.conf_int(), rtol=1e-10)
    np.testing.assert_allclose([c.p_value for c in fit.coefficients], ref.pvalues, rtol=1e-8, atol=1e-300)
    assert fit.r_squared == pytest.approx(ref.rsquared)
    # a constant column and a copy of x1 are dropped and named, the rest unchanged
    X2 = np.column_stack([X, np.full(n, 2.0), 2 * x1])
    fit2 = ols_hc1(X2, y, ["intercept", "x1", "x2", "x3", "const", "x1_twice"])
    assert fit2.dropped == ("const", "x1_twice")
    np.testing.assert_allclose([c.estimate for c in fit2.coefficients], ref.params, rtol=1e-9)


# --- the journey map ----------------------------------------------------------------------------------

def test_journey_map_experience_and_micro_journeys(ws: Workspace, small: tuple[Path, dict[str, pd.DataFrame]]) -> None:
    m = journey_map(ws, FrictionSettings(churn_days=5), min_customers=1)
    t = m.touchpoints.set_index("touchpoint")
    # CES 2 on 1..7 -> 1/6 for billing; CSAT 1 on 1..5 -> 0 for delivery (the NPS has no contact)
    assert t.loc["support:billing", "experience"] == pytest.approx(1 / 6) and t.loc["support:billing", "answers"] == 1
    assert t.loc["support:delivery", "experience"] == pytest.approx(0.0)
    assert t.loc["support:account", "experience"] == pytest.approx(1.0)
    assert t.loc["order", "experience"] == pytest.approx(0.75) and t.loc["order", "answers"] == 1
    assert t.loc["support:billing", "friction_share"] == pytest.approx(1.0)
    assert m.worst(1).touchpoint.iloc[0] == "support:delivery" and m.best(1).touchpoint.iloc[0] == "support:account"
    # churn (no own activity in the last 5 days) and the case patterns, recomputed here
    f = small[1]
    ev = f["events"][f["events"].profile_id.notna() & ~f["events"].event_type.isin(["message_sent", "message_opened"])]
    o = f["orders"][f["orders"].status == "completed"]
    acts = pd.concat([ev[["profile_id", "occurred_at"]], o.rename(columns={"ordered_at": "occurred_at"})[["profile_id", "occurred_at"]],
                      f["interactions"].rename(columns={"started_at": "occurred_at"})[["profile_id", "occurred_at"]]])
    per = acts.groupby("profile_id").occurred_at.agg(["min", "max"])
    cutoff = acts.occurred_at.max() - pd.Timedelta(days=5)
    per = per[per["min"] < cutoff]
    churned = per["max"] < cutoff
    assert m.customers == len(per) and m.churn_rate == pytest.approx(churned.mean())
    mj = m.micro_journeys.set_index("micro_journey")
    patterns = {"support: phone > chat > phone (resolved)": {"h1"}, "support: email (resolved)": {"h1"},
                "support: chat (unresolved)": {"h2"}, "support: phone (resolved)": {"h2", "h3"}}
    for pattern, who in patterns.items():
        who = who & set(per.index)
        if not who:
            assert pattern not in mj.index
            continue
        rest = per.index.difference(list(who))
        assert mj.loc[pattern, "customers"] == len(who), pattern
        assert mj.loc[pattern, "effect"] == pytest.approx(churned[list(who)].mean() - churned[rest].mean()), pattern


# --- the CLI ------------------------------------------------------------------------------------------

def test_cli_commands_print_json_and_tables(small: tuple[Path, dict[str, pd.DataFrame]]) -> None:
    path = small[0]
    r = run_cli("journeys", "paths", "--format", "json", workspace=path)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["outcome"] == "conversion" and doc["level"] == "channel"
    assert sum(p["share"] for p in doc["paths"]) <= 1 + 1e-9 and {"position", "source", "target", "count"} == set(doc["sankey"][0])
    r = run_cli("journeys", "funnel", "--steps", "product_view,add_to_cart,purchase", "--window-days", "2", "--format", "json",
                workspace=path)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["steps"] == ["product_view", "add_to_cart", "purchase"] and doc["window_days"] == 2
    assert [row["step_index"] for row in doc["rows"]] == [1, 2, 3] and doc["rows"][0]["median_seconds_from_previous"] is None
    r = run_cli("journeys", "friction", "--survey-days", "7", "--format", "json", workspace=path)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["prevalence"]["cases"] == 5 and doc["settings"]["survey_days"] == 7
    assert doc["effects"] == [] and any("CES" in n for n in doc["notes"])  # five cases fit no model: said, not faked
    r = run_cli("journeys", "map", "--churn-days", "5", "--min-customers", "1", "--format", "json", workspace=path)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert {"customers", "churn_rate", "touchpoints", "micro_journeys"} == set(doc)
    for args in (("funnel",), ("map", "--churn-days", "5", "--min-customers", "1")):
        r = run_cli("journeys", *args, workspace=path)
        assert r.returncode == 0 and r.stdout.strip(), (args, r.stderr)


def test_cli_errors_are_one_sentence(small: tuple[Path, dict[str, pd.DataFrame]], tmp_path: Path) -> None:
    r = run_cli("journeys", "funnel", "--steps", "purchase", workspace=small[0])
    assert r.returncode != 0 and "at least two steps" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("journeys", "friction", "--long-wait", "0", workspace=small[0])
    assert r.returncode != 0 and "long_wait_seconds" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("journeys", "friction", workspace=tmp_path / "empty.duckdb")
    assert r.returncode != 0 and "no interactions" in r.stderr.lower() and "Traceback" not in r.stderr


def test_the_snippet_in_docs_journeys_runs_and_prints_what_it_says(capsys: pytest.CaptureFixture[str],
                                                                   monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from conftest import doc_snippet

    block, expected = doc_snippet("journeys.md")
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "docs/journeys.md", "exec"), {})  # noqa: S102 - the docs example is what is tested
    assert capsys.readouterr().out.splitlines() == expected


def test_an_empty_workspace_gets_sentences_not_empty_tables(ws_path: Path) -> None:
    """Nothing to show is said in words (exit 0); what cannot be computed is one sentence (non-zero exit)."""
    Workspace.open(ws_path).close()
    paths = run_cli("journeys", "paths", workspace=ws_path)
    assert paths.returncode == 0 and "No customer has a path to conversion" in paths.stdout
    funnel_run = run_cli("journeys", "funnel", workspace=ws_path)
    assert funnel_run.returncode == 0 and "No customer reached the first step (product_view)" in funnel_run.stdout
    friction = run_cli("journeys", "friction", workspace=ws_path)
    assert friction.returncode != 0 and "no interactions" in friction.stderr and "Traceback" not in friction.stderr
