"""Conversion paths built from a workspace, checked against pandas, and `cxlens attribution` on it.

A small workspace is constructed (sessions with known channels, message clicks that land or do
not, valid and invalid orders, campaigns, costs) and every path, credit, time-decay weight, ROI
and personalized/generic split is recomputed here with pandas from the same rows, written out
without cxlens' code. The CLI runs as the real console script on the real DuckDB file.
"""

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
from cxlens.attribution.workspace import NO_CAMPAIGN, Journeys, attribute_workspace, roi
from cxlens.errors import NotFoundError, UsageError
from cxlens.workspace.schema import TABLES, all_columns

ARROW = {"string": pa.string(), "json": pa.string(), "timestamp": pa.timestamp("us"), "date": pa.date32(),
         "float64": pa.float64(), "int64": pa.int64(), "boolean": pa.bool_()}
START = pd.Timestamp("2025-01-01")
DAY = pd.Timedelta(days=1)
# channel: (utm_medium, utm_source, referrer, [(utm_campaign, campaign_id)])
CHANNELS = {
    "paid": ("cpc", "google", None, [("search-1", "CMP-S1")]),
    "email": ("email", "newsletter", None, [("news-1", "CMP-E1"), ("news-2", "CMP-E2")]),
    "organic": (None, None, "https://www.google.com/", []),
    "referral": (None, None, "https://blog.example.org/post", []),
    "direct": (None, None, None, []),
}
PERSONALIZED = {"CMP-E1": True, "CMP-E2": False, "CMP-S1": False}


def write_table(ws: Workspace, table: str, frame: pd.DataFrame) -> None:
    """Replace a canonical table with the frame, every other column NULL."""
    cols = [(c.name, c.type) for c in all_columns(TABLES[table])]
    df = pd.DataFrame({n: frame[n] if n in frame.columns else pd.Series([None] * len(frame), dtype=object) for n, _ in cols})
    schema = pa.schema([pa.field(n, ARROW[t]) for n, t in cols])
    ws.backend.replace_table(table, pa.Table.from_pandas(df, schema=schema, preserve_index=False))


def constructed(seed: int = 5) -> dict[str, pd.DataFrame]:
    """Events, orders, campaigns and costs of 40 profiles over 120 days; also the sessions as built."""
    rng = np.random.default_rng(seed)
    events, sessions, clicks, orders = [], [], [], []
    for p in range(40):
        pid = f"p{p:02d}"
        for s in range(int(rng.integers(0, 9))):
            channel = str(rng.choice(list(CHANNELS)))
            medium, source, referrer, camps = CHANNELS[channel]
            utm, cid = camps[int(rng.integers(0, len(camps)))] if camps else (None, None)
            ts = START + pd.Timedelta(seconds=int(rng.integers(0, 120 * 86_400)))
            sid = f"{pid}-s{s}"
            sessions.append({"profile_id": pid, "ts": ts, "channel": channel, "campaign": cid})
            for k in range(int(rng.integers(1, 4))):
                first = k == 0
                events.append({"event_id": f"{sid}-{k}", "occurred_at": ts + pd.Timedelta(seconds=60 * k),
                               "event_type": "page_view", "session_id": sid, "customer_id": pid, "profile_id": pid,
                               "source": "web", "utm_medium": medium if first else None,
                               "utm_source": source if first else None, "referrer": referrer if first else None,
                               "utm_campaign": utm if first else None, "campaign_id": cid if first else None})
        for c in range(int(rng.integers(0, 3))):
            cid = str(rng.choice(["CMP-E1", "CMP-E2"]))
            ts = START + pd.Timedelta(seconds=int(rng.integers(0, 120 * 86_400)))
            if rng.random() < 0.5 and sessions and sessions[-1]["profile_id"] == pid:
                # a click that lands: the profile's last session starts 10 minutes after it
                ts = sessions[-1]["ts"] - pd.Timedelta(minutes=10)
            clicks.append({"profile_id": pid, "ts": ts, "campaign": cid, "personalized": PERSONALIZED[cid]})
            events.append({"event_id": f"{pid}-c{c}", "occurred_at": ts, "event_type": "message_clicked",
                           "channel": "email", "campaign_id": cid, "personalized": PERSONALIZED[cid],
                           "customer_id": pid, "profile_id": pid, "source": "email"})
        for o in range(int(rng.integers(0, 4))):
            status = rng.choice(["completed", None, "cancelled", "returned"], p=[0.5, 0.3, 0.1, 0.1])
            orders.append({"order_id": f"{pid}-o{o}", "profile_id": pid, "customer_id": pid, "source": "shop",
                           "ordered_at": START + pd.Timedelta(seconds=int(rng.integers(5 * 86_400, 125 * 86_400))),
                           "revenue": float(rng.integers(10, 200)), "status": status})
    orders.append({"order_id": "anon-1", "profile_id": None, "customer_id": None, "source": "shop",
                   "ordered_at": START + 10 * DAY, "revenue": 999.0, "status": "completed"})
    campaigns = pd.DataFrame({"campaign_id": list(PERSONALIZED), "personalized": list(PERSONALIZED.values()),
                              "channel": ["email", "email", "paid_search"]})
    costs = pd.DataFrame({
        "incurred_on": [START.date()] * 6, "amount": [100.0, 50.0, 20.0, 999.0, 30.0, 40.0],
        "kind": ["media", "media", "personalization", "acquisition", "media", "media"],
        "channel": ["paid_search", "email", "email", "paid_search", "display", "tv"],
        "campaign_id": ["CMP-S1", "CMP-E1", "CMP-E1", "CMP-S1", None, None]})
    return {"events": pd.DataFrame(events), "orders": pd.DataFrame(orders), "campaigns": campaigns, "costs": costs,
            "sessions": pd.DataFrame(sessions), "clicks": pd.DataFrame(clicks)}


@pytest.fixture(scope="module")
def data() -> dict[str, pd.DataFrame]:
    return constructed()


@pytest.fixture(scope="module")
def ws_file(tmp_path_factory: pytest.TempPathFactory, data: dict[str, pd.DataFrame]) -> Path:
    path = tmp_path_factory.mktemp("attribution") / "ws.duckdb"
    with Workspace.open(path) as ws:
        for table in ("events", "orders", "campaigns", "costs"):
            write_table(ws, table, data[table])
    return path


@pytest.fixture(scope="module")
def cli_file(ws_file: Path) -> Path:
    """A copy for the CLI: the module's Journeys keeps ws_file open, and a workspace has one writer."""
    import shutil

    return Path(shutil.copy(ws_file, ws_file.with_name("cli.duckdb")))


@pytest.fixture(scope="module")
def journeys(ws_file: Path, cli_file: Path) -> Iterator[Journeys]:
    with Workspace.open(ws_file) as ws, Journeys(ws) as j:
        yield j


# --- the reference, in pandas -------------------------------------------------------------------

def reference_touches(data: dict[str, pd.DataFrame], by: str) -> pd.DataFrame:
    s, c = data["sessions"], data["clicks"]
    landed = [((s.profile_id == r.profile_id) & (s.ts >= r.ts) & (s.ts <= r.ts + pd.Timedelta(seconds=1800))).any()
              for r in c.itertuples()]
    c = c[~np.array(landed, dtype=bool)].assign(channel="email")
    t = pd.concat([s.assign(personalized=s.campaign.map(PERSONALIZED)), c], ignore_index=True)
    if by == "channel":
        t["key"] = t.channel
    elif by == "campaign":
        t["key"] = t.campaign.fillna(NO_CAMPAIGN)
    else:
        kind = [NO_CAMPAIGN if pd.isna(v) else ("personalized" if v else "generic") for v in t.personalized]
        t["key"] = kind if by == "personalized" else [f"{c} / {k}" for c, k in zip(t.channel, kind, strict=True)]
    return t[["profile_id", "ts", "key"]].sort_values(["profile_id", "ts", "key"]).reset_index(drop=True)


def reference_paths(data: dict[str, pd.DataFrame], by: str, lookback_days: float = 30
                    ) -> tuple[dict[tuple[str, ...], list[float]], pd.DataFrame, int]:
    """{path: [conversions, nulls, value]}, the touches of each conversion, and the unattributed orders."""
    t = reference_touches(data, by)
    o = data["orders"]
    o = o[o.profile_id.notna() & (o.status.isna() | (o.status == "completed"))].sort_values(["profile_id", "ordered_at"])
    paths: dict[tuple[str, ...], list[float]] = {}
    assigned, unattributed = [], 0
    for pid, group in o.groupby("profile_id"):
        prev = None
        mine = t[t.profile_id == pid]
        for r in group.itertuples():
            window = mine[(mine.ts <= r.ordered_at) & (mine.ts >= r.ordered_at - pd.Timedelta(days=lookback_days))]
            if prev is not None:
                window = window[window.ts > prev]
            prev = r.ordered_at
            if window.empty:
                unattributed += 1
                continue
            key = tuple(window.key)
            paths.setdefault(key, [0.0, 0.0, 0.0])
            paths[key][0] += 1
            paths[key][2] += r.revenue
            assigned.append(window.assign(conv_ts=r.ordered_at, revenue=r.revenue, conv=r.order_id))
    last = o.groupby("profile_id").ordered_at.max()
    for pid, mine in t.groupby("profile_id"):
        after = mine[mine.ts > last[pid]] if pid in last.index else mine
        if after.empty:
            continue
        after = after[after.ts >= after.ts.max() - pd.Timedelta(days=lookback_days)]
        paths.setdefault(tuple(after.key), [0.0, 0.0, 0.0])[1] += 1
    return paths, pd.concat(assigned, ignore_index=True), unattributed


def reference_linear(paths: dict[tuple[str, ...], list[float]]) -> dict[str, tuple[float, float]]:
    out: dict[str, list[float]] = {}
    for path, (conv, _, value) in paths.items():
        for channel in path:
            row = out.setdefault(channel, [0.0, 0.0])
            row[0] += conv / len(path)
            row[1] += value / len(path)
    return {k: (v[0], v[1]) for k, v in out.items()}


def as_dict(counts) -> dict[tuple[str, ...], list[float]]:
    return {tuple(r["channels"]): [r["conversions"], r["nulls"], r["value"]] for r in counts.table.to_pylist()}


# --- tests --------------------------------------------------------------------------------------

@pytest.mark.parametrize("by", ["channel", "campaign", "personalized", "channel-personalized"])
def test_paths_equal_a_pandas_computation(journeys: Journeys, data: dict[str, pd.DataFrame], by: str) -> None:
    expected, _, unattributed = reference_paths(data, by)
    built = journeys.paths(by)  # type: ignore[arg-type]
    assert as_dict(built.paths) == expected
    assert built.unattributed_orders == unattributed
    valid = data["orders"][data["orders"].profile_id.notna() & data["orders"].status.isin(["completed", None])]
    assert built.orders == len(valid[valid.status.isna() | (valid.status == "completed")])
    assert sum(v[0] for v in expected.values()) > 10 and sum(v[1] for v in expected.values()) > 3
    clicks = data["clicks"]
    on_own = len(reference_touches(data, by)) - len(data["sessions"])
    assert 0 < on_own < len(clicks)  # some clicks landed on a session, some are touches of their own


def test_paths_from_the_kept_sessions_equal_the_pandas_computation(ws_file: Path, data: dict[str, pd.DataFrame]) -> None:
    """An ingested workspace keeps its sessions (semantic/kept.py): attribution reads them, same paths."""
    import shutil

    from cxlens.semantic.kept import kept_sessions, refresh_sessions

    copy = Path(shutil.copy(ws_file, ws_file.with_name("kept.duckdb")))
    with Workspace.open(copy) as ws:
        refresh_sessions(ws)
        assert kept_sessions(ws) is not None
        with Journeys(ws) as j:
            for by in ("channel", "campaign"):
                expected, _, unattributed = reference_paths(data, by)
                built = j.paths(by)  # type: ignore[arg-type]
                assert as_dict(built.paths) == expected
                assert built.unattributed_orders == unattributed


def test_the_lookback_window_changes_paths_as_in_pandas(journeys: Journeys, ws_file: Path,
                                                        data: dict[str, pd.DataFrame]) -> None:
    expected, _, _ = reference_paths(data, "channel", lookback_days=7)
    with Workspace.open(ws_file) as ws, Journeys(ws, lookback_days=7) as short:
        assert as_dict(short.paths("channel").paths) == expected


def test_time_decay_equals_pandas_weights(journeys: Journeys, data: dict[str, pd.DataFrame]) -> None:
    _, touches, _ = reference_paths(data, "channel")
    age = (touches.conv_ts - touches.ts).dt.total_seconds() / 86_400
    touches = touches.assign(w=0.5 ** (age / 3.0))
    touches["f"] = touches.w / touches.groupby("conv").w.transform("sum")
    touches["v"] = touches.f * touches.revenue
    expected = touches.groupby("key")[["f", "v"]].sum()
    result = journeys.time_decay(half_life_days=3.0)
    for c in result.channels:
        assert (c.conversions, c.revenue) == pytest.approx(tuple(expected.loc[c.channel]), rel=1e-9)
    assert result.total_conversions == pytest.approx(touches.conv.nunique())


def test_cli_on_the_workspace_linear_roi_and_personalized(cli_file: Path, data: dict[str, pd.DataFrame]) -> None:
    out = run_cli("attribution", "--model", "linear", "--format", "json", workspace=cli_file)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    paths, _, unattributed = reference_paths(data, "channel")
    expected = reference_linear(paths)
    assert doc["model"] == "linear" and doc["total_conversions"] == sum(v[0] for v in paths.values())
    assert doc["unattributed_conversions"] == unattributed
    got = {r["channel"]: (r["conversions"], r["revenue"]) for r in doc["channels"]}
    assert set(got) == set(expected)
    for channel, values in expected.items():
        assert got[channel] == pytest.approx(values)
    # Costs: CMP-S1 media 100 (its touches are paid) + a display medium 30 -> paid; CMP-E1 media 50 +
    # personalization 20 -> email; acquisition is no media cost; "tv" matches no channel.
    rois = {r["channel"]: r for r in doc["roi"]}
    assert {k: r["cost"] for k, r in rois.items()} == {"email": 70.0, "paid": 130.0}
    for channel, row in rois.items():
        assert row["roi"] == pytest.approx((expected[channel][1] - row["cost"]) / row["cost"])
    assert doc["unmatched_costs"] == {"tv": 40.0}
    kinds = reference_linear(reference_paths(data, "personalized")[0])
    personal = {r["kind"]: r for r in doc["personalized"]}
    assert set(personal) == set(kinds)
    touches = reference_touches(data, "personalized")
    for kind, (conv, value) in kinds.items():
        assert (personal[kind]["conversions"], personal[kind]["revenue"]) == pytest.approx((conv, value))
    # touches are counted over the paths (touches outside every window are not on a path)
    on_paths = {k: 0.0 for k in kinds}
    for path, (conv, nulls, _) in reference_paths(data, "personalized")[0].items():
        for kind in path:
            on_paths[kind] += conv + nulls
    assert {k: r["touches"] for k, r in personal.items()} == pytest.approx(on_paths)
    assert len(touches) >= sum(on_paths.values())
    within = reference_linear(reference_paths(data, "channel-personalized")[0])
    got_within = {f"{r['channel']} / {r['kind']}": (r["conversions"], r["revenue"]) for r in doc["personalized_by_channel"]}
    assert set(got_within) == set(within) and {"email / personalized", "email / generic"} <= set(within)
    for key, values in within.items():
        assert got_within[key] == pytest.approx(values)


def test_cli_markov_by_campaign_matches_the_library(cli_file: Path) -> None:
    out = run_cli("attribution", "--model", "markov", "--order", "2", "--by", "campaign", "--format", "json",
                  workspace=cli_file)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    with Workspace.open(cli_file) as ws:
        again = attribute_workspace(ws, "markov", order=2, by="campaign")
    assert doc["channels"] == json.loads(json.dumps([c.to_dict() for c in again.channels]))
    assert sum(r["conversions"] for r in doc["channels"]) == pytest.approx(doc["total_conversions"])
    assert {r["channel"] for r in doc["roi"]} <= {"CMP-S1", "CMP-E1"} and doc["personalized"] == []
    table = run_cli("attribution", "--model", "time-decay", "--half-life", "3", workspace=cli_file)
    assert table.returncode == 0, table.stderr
    assert "time-decay" in table.stdout and "Personalized vs generic touches" in table.stdout


def test_roi_leaves_costs_of_uncredited_keys_apart(journeys: Journeys) -> None:
    result = journeys.attribute("first")
    rows, unmatched = roi(result, {"paid": 10.0, "nowhere": 5.0, "email": 0.0})
    assert [r["channel"] for r in rows] == ["paid"] and unmatched == {"nowhere": 5.0}


def test_workspace_errors(tmp_path: Path, journeys: Journeys) -> None:
    with Workspace.open(tmp_path / "empty.duckdb") as ws, pytest.raises(NotFoundError, match="no orders"):
        Journeys(ws)
    with pytest.raises(UsageError, match="cannot group touches by 'device'"):
        journeys.paths("device")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="half-life must be a positive"):
        journeys.time_decay(half_life_days=0)
    out = run_cli("attribution", "--lookback-days", "0", workspace=tmp_path / "empty.duckdb")
    assert out.returncode != 0 and "lookback window must be a positive" in out.stderr


def test_the_snippet_in_docs_attribution_runs_and_prints_what_it_says(capsys: pytest.CaptureFixture[str],
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import REPO, doc_snippet

    block, expected = doc_snippet("attribution.md")
    monkeypatch.chdir(REPO)
    exec(compile(block, "docs/attribution.md", "exec"), {})  # noqa: S102 - the docs' own example
    assert capsys.readouterr().out.splitlines() == expected


def test_report_section_channels_by_models(ws_file: Path, data: dict[str, pd.DataFrame], tmp_path: Path) -> None:
    from cxlens.report.attribution import (
        REPORT_MODELS,
        attribution_chart,
        summarize_attribution,
    )

    with Workspace.open(ws_file) as ws:
        summary = summarize_attribution(ws, "$")
    paths, _, unattributed = reference_paths(data, "channel")
    linear = reference_linear(paths)
    total = sum(v[0] for v in paths.values())
    rows = {r["channel"]: r for r in summary.conversions}
    assert set(rows) == set(linear)
    for channel, (conv, _) in linear.items():
        assert rows[channel]["linear"] == f"{100 * conv / total:.1f}%"
        assert summary.shares is not None and summary.shares.loc[channel, "linear"] == pytest.approx(conv / total)
    assert summary.headline["conversions"] == f"{total:,.0f}"
    assert summary.headline["unattributed"].startswith(f"{unattributed:,} of ")
    assert {r["channel"] for r in summary.roi} == {"email", "paid"} and "tv" in (summary.note or "")
    assert {r["kind"] for r in summary.personalized} <= {"personalized", "generic", NO_CAMPAIGN}
    assert {(r["channel"], r["kind"]) for r in summary.personalized_by_channel} == {
        ("email", "personalized"), ("email", "generic"), ("paid", "generic")}
    fig = attribution_chart(summary)
    assert fig is not None and [t.name for t in fig.data][4] == "Markov (exact)" and len(fig.data) == len(REPORT_MODELS)
    with Workspace.open(tmp_path / "empty.duckdb") as ws:
        empty = summarize_attribution(ws, "$")
    assert empty.note is not None and empty.note.startswith("No orders") and attribution_chart(empty) is None


def test_the_same_order_id_in_two_sources_is_two_conversions(ws: Workspace) -> None:
    at = pd.Timestamp("2025-03-01")
    write_table(ws, "events", pd.DataFrame({
        "event_id": ["e1", "e2"], "occurred_at": [at, at + 5 * DAY], "event_type": ["page_view", "page_view"],
        "session_id": ["s1", "s2"], "profile_id": ["p", "p"], "customer_id": ["p", "p"], "source": ["web", "web"],
        "utm_medium": ["cpc", None]}))
    write_table(ws, "orders", pd.DataFrame({
        "order_id": ["1001", "1001"], "source": ["shop", "pos"], "profile_id": ["p", "p"], "customer_id": ["p", "p"],
        "ordered_at": [at + DAY, at + 6 * DAY], "revenue": [10.0, 30.0], "status": ["completed", None]}))
    with Journeys(ws) as journeys:
        built = journeys.paths("channel")
    assert as_dict(built.paths) == {("paid",): [1.0, 0.0, 10.0], ("direct",): [1.0, 0.0, 30.0]}
    assert built.unattributed_orders == 0
