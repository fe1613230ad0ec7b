"""Conformance: every metric of the catalogue, on DuckDB and on Spark, equals the pandas reference.

The reference (tests/reference/metrics_pandas.py) was written from docs/metric-definitions.md
alone, without the engine's code; the fixture (tests/reference/fixture.py) holds the edge cases
(empty periods, a period without surveys, sessions crossing midnight, returns and cancellations,
rows without profiles). The fixture plays an identity-resolved workspace: its tables, with their
profile_id, are written straight into the canonical tables.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import date
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from cxlens.semantic import Catalog, Measurer
from cxlens.semantic.sources import Request
from cxlens.workspace import Workspace
from cxlens.workspace.schema import TABLES, all_columns

from reference.fixture import fixture_tables
from reference.metrics_pandas import PreparedTables, reference

CATALOG = Catalog.built_in()
METRICS = list(CATALOG.metrics)
EXTRA_SHARES = {"promoters": "nps", "passives": "nps", "detractors": "nps"}
"""The reference has NPS's shares as metrics of their own; the engine reports them beside nps."""

CASES: list[tuple[str, str, tuple[str, ...], dict[str, Any]]] = []
for _m in METRICS:
    _grain = "month"
    CASES.append((_m, _grain, (), {}))
    if not CATALOG.metrics[_m].needs_grain:
        CASES.append((_m, "all", (), {}))
    CASES.append((_m, "quarter", (), {"since": date(2025, 2, 10), "until": date(2025, 8, 20)}))
CUTS = {
    "revenue": ("channel",), "orders": ("country",), "aov": ("store",), "active_customers": ("loyalty_tier",),
    "new_customers": ("channel",), "purchase_frequency": ("region",), "repeat_purchase_rate": ("cohort",),
    "retention_rate": ("channel",), "churn_rate": ("country",), "customer_lifespan": ("channel",),
    "historical_clv": ("acquisition_channel",), "cac": ("channel",), "clv_to_cac": ("channel",),
    "nps": ("touchpoint",), "csat": ("survey_channel",), "ces": ("country",), "sessions": ("channel_group",),
    "visitors": ("device",), "new_visitor_share": ("traffic_source",), "bounce_rate": ("channel",),
    "conversion_rate": ("utm_campaign",), "revenue_per_visit": ("channel_group",),
    "traffic_sources": ("traffic_source",), "open_rate": ("campaign",), "click_through_rate": ("personalized",),
    "click_to_open_rate": ("content",), "recommendation_click_through_rate": ("variant",),
    "engagement_score": ("region",), "store_conversion_rate": ("store",), "coupon_redemption_rate": ("channel",),
    "loyalty_enrollment_rate": ("country",), "contacts_per_customer": ("topic",),
    "first_contact_resolution_rate": ("topic",), "transfer_rate": ("channel",), "avg_wait_seconds": ("topic",),
    "subscription_churn_rate": ("country",), "survey_response_rate": ("channel",),
}
CASES += [(m, "month", by, {}) for m, by in CUTS.items()]
CASES += [("revenue", "week", ("channel", "country"), {}), ("sessions", "day", (), {}), ("nps", "year", (), {}),
          ("retention_rate", "year", (), {}), ("retention_rate", "quarter", ("store",), {})]
REFERENCE_DIM = {"survey_channel": "channel"}


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return fixture_tables()


@pytest.fixture(scope="module")
def prepared(tables: dict[str, pd.DataFrame]) -> PreparedTables:
    return PreparedTables(tables)


def arrow_table(name: str, frame: pd.DataFrame) -> pa.Table:
    """The fixture frame as the canonical table's full column set (meta columns NULL when absent)."""
    cols = all_columns(TABLES[name])
    df = pd.DataFrame({c.name: frame[c.name] if c.name in frame.columns else pd.Series([None] * len(frame), dtype=object)
                       for c in cols})
    fields = []
    for c in cols:
        kind = {"string": pa.string(), "json": pa.string(), "timestamp": pa.timestamp("us"), "date": pa.date32(),
                "float64": pa.float64(), "int64": pa.int64(), "boolean": pa.bool_()}[c.type]
        fields.append(pa.field(c.name, kind))
    return pa.Table.from_pandas(df, schema=pa.schema(fields), preserve_index=False)


def fill(ws: Workspace, tables: dict[str, pd.DataFrame]) -> None:
    for name in TABLES:
        ws.backend.replace_table(name, arrow_table(name, tables[name]))


@pytest.fixture(scope="module")
def duck(tmp_path_factory: pytest.TempPathFactory, tables: dict[str, pd.DataFrame]) -> Iterator[Measurer]:
    ws = Workspace.open(tmp_path_factory.mktemp("conf") / "fixture.duckdb")
    fill(ws, tables)
    m = Measurer(ws, CATALOG)
    yield m
    m.close()
    ws.close()


def engine_frame(m: Measurer, metric: str, grain: str, by: tuple[str, ...], window: dict[str, Any]) -> pd.DataFrame:
    res = m.measure(metric, grain=grain, by=by, since=window.get("since"), until=window.get("until"))
    return res.frame


def expected(prepared: PreparedTables, metric: str, grain: str, by: tuple[str, ...], window: dict[str, Any]) -> pd.DataFrame:
    ref_by = [REFERENCE_DIM.get(d, d) for d in by]
    out = reference(metric, prepared, grain=grain, by=ref_by, since=window.get("since"), until=window.get("until"))
    return out.rename(columns={REFERENCE_DIM.get(d, d): d for d in by})


def _key(v: Any) -> Any:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return None
    if hasattr(v, "item"):
        v = v.item()
    return v


def assert_same(got: pd.DataFrame, want: pd.DataFrame, keys: list[str], label: str, *, extras: tuple[str, ...] = (),
                rel: float = 1e-9) -> None:
    """Same groups, values, n and ratio parts; `rel` is the relative tolerance (Spark's decimal
    arithmetic on epoch seconds differs from DuckDB's doubles around the 8th digit)."""
    g = {tuple(_key(r[k]) for k in keys): r for _, r in got.iterrows()}
    w = {tuple(_key(r[k]) for k in keys): r for _, r in want.iterrows()}
    assert set(g) == set(w), f"{label}: groups differ; only engine: {sorted(set(g) - set(w), key=str)[:5]}, only reference: {sorted(set(w) - set(g), key=str)[:5]}"
    for k in w:
        a, b = g[k], w[k]
        for col in ("value", *extras):
            x, y = _key(a[col]), _key(b[col])
            if y is None:
                assert x is None, f"{label} {k}: {col} engine {x} reference None"
            else:
                assert x is not None and math.isclose(x, y, rel_tol=rel, abs_tol=1e-9), f"{label} {k}: {col} engine {x} reference {y}"
        assert int(a["n"]) == int(b["n"]), f"{label} {k}: n engine {a['n']} reference {b['n']}"
        for col in ("numerator", "denominator"):
            if col in want.columns and col in got.columns and _key(b[col]) is not None:
                assert math.isclose(float(a[col]), float(b[col]), rel_tol=rel, abs_tol=1e-9), f"{label} {k}: {col}"


def keys_of(grain: str, by: tuple[str, ...]) -> list[str]:
    return (["period_start"] if grain != "all" else []) + list(by)


@pytest.mark.parametrize("metric,grain,by,window", CASES, ids=lambda v: str(v) if not isinstance(v, dict) else ("window" if v else "-"))
def test_duckdb_matches_reference(duck: Measurer, prepared: PreparedTables, metric: str, grain: str, by: tuple[str, ...], window: dict[str, Any]) -> None:
    got = engine_frame(duck, metric, grain, by, window)
    want = expected(prepared, metric, grain, by, window)
    keys = keys_of(grain, by)
    assert len(want) > 0, "the fixture must give every case some data"
    assert_same(got, want, keys, f"{metric}/{grain}/{by}")
    if metric == "nps":
        for share in ("promoters", "passives", "detractors"):
            ref = expected(prepared, share, grain, by, window)
            assert_same(got.drop(columns="value").rename(columns={share: "value"}), ref, keys, f"nps {share}")


MANY = [("month", (), {}), ("all", (), {}), ("quarter", (), {"since": date(2025, 2, 10), "until": date(2025, 8, 20)}),
        ("month", ("country",), {})]


@pytest.mark.parametrize("grain,by,window", MANY, ids=lambda v: str(v) if not isinstance(v, dict) else ("window" if v else "-"))
def test_measure_many_matches_reference(duck: Measurer, prepared: PreparedTables, grain: str, by: tuple[str, ...],
                                        window: dict[str, Any]) -> None:
    """The whole catalogue in one call (measures of a source share one query) equals the reference
    metric by metric, and each frame equals the one `measure` gives for that metric alone."""
    ids = [m for m in METRICS if not (grain == "all" and CATALOG.metrics[m].needs_grain)
           and all(d in CATALOG.dimensions_for(CATALOG.metrics[m]) for d in by)]
    assert len(ids) >= (20 if by else 45)
    got = duck.measure_many(ids, grain=grain, by=by, since=window.get("since"), until=window.get("until"))
    assert list(got) == ids
    for m in ids:
        res = got[m]
        by_m = res.query.by
        assert_same(res.frame, expected(prepared, m, grain, by_m, window), keys_of(grain, by_m), f"many {m}/{grain}/{by_m}")
        alone = duck.measure(m, grain=grain, by=by, since=window.get("since"), until=window.get("until")).frame
        pd.testing.assert_frame_equal(res.frame, alone, check_exact=False, rtol=1e-12)


@pytest.fixture(scope="module")
def kept(tmp_path_factory: pytest.TempPathFactory, tables: dict[str, pd.DataFrame]) -> Iterator[Measurer]:
    """A workspace whose sessions are kept (built once, as after an ingest) rather than built per query."""
    from cxlens.semantic.kept import refresh_sessions

    ws = Workspace.open(tmp_path_factory.mktemp("kept") / "fixture.duckdb")
    fill(ws, tables)
    assert refresh_sessions(ws).mode == "full"
    m = Measurer(ws, CATALOG)
    yield m
    m.close()
    ws.close()


@pytest.mark.parametrize("grain,by,window", MANY, ids=lambda v: str(v) if not isinstance(v, dict) else ("window" if v else "-"))
def test_kept_sessions_match_reference(kept: Measurer, prepared: PreparedTables, grain: str, by: tuple[str, ...],
                                       window: dict[str, Any]) -> None:
    """With the workspace's kept sessions table, the catalogue still equals the reference."""
    ids = [m for m in METRICS if not (grain == "all" and CATALOG.metrics[m].needs_grain)
           and all(d in CATALOG.dimensions_for(CATALOG.metrics[m]) for d in by)]
    got = kept.measure_many(ids, grain=grain, by=by, since=window.get("since"), until=window.get("until"))
    assert "sessions" in kept.context.kept_sources
    for m in ids:
        res = got[m]
        by_m = res.query.by
        assert_same(res.frame, expected(prepared, m, grain, by_m, window), keys_of(grain, by_m), f"kept {m}/{grain}/{by_m}")


def test_fixture_has_the_edge_cases(duck: Measurer, tables: dict[str, pd.DataFrame]) -> None:
    """The cases the issue names exist in the fixture, so the suite above really covers them."""
    orders = tables["orders"]
    months = set(pd.to_datetime(orders.ordered_at).dt.to_period("M"))
    span = pd.period_range(min(months), max(months), freq="M")
    assert set(span) - months, "an empty month"
    answers = set(pd.to_datetime(tables["survey_responses"].responded_at).dt.to_period("M"))
    assert set(span) - answers, "a month without surveys"
    assert {"returned", "cancelled"} <= set(orders.status.dropna())
    assert orders.profile_id.isna().any() and tables["events"].profile_id.isna().any()
    sessions = duck.measure("sessions", grain="day").frame
    assert len(sessions) > 0
    s = duck.context.source("sessions", Request("all"))
    crossing = s.filter(s.ts.date() != (s.ts + s.duration.cast("int64").as_interval("s")).date()).count().execute()
    assert crossing > 0, "a session crossing midnight"


SPARK_CASES = [(m, "month", (), {}) for m in METRICS] + [
    ("revenue", "all", ("channel",), {}), ("retention_rate", "quarter", ("channel",), {}),
    ("conversion_rate", "month", ("channel_group",), {}), ("nps", "quarter", ("touchpoint",), {"since": date(2025, 2, 10)}),
    ("engagement_score", "all", ("region",), {}), ("historical_clv", "quarter", ("acquisition_channel",), {}),
]


@pytest.fixture(scope="module")
def spark_measurer(spark: Any, tables: dict[str, pd.DataFrame]) -> Iterator[Measurer]:
    from cxlens.workspace import SparkBackend

    ws = Workspace.on(SparkBackend(spark, "cxlens_conformance"))
    fill(ws, tables)
    m = Measurer(ws, CATALOG)
    yield m
    m.close()


@pytest.mark.spark
@pytest.mark.parametrize("metric,grain,by,window", SPARK_CASES, ids=lambda v: str(v) if not isinstance(v, dict) else ("window" if v else "-"))
def test_spark_matches_reference(spark_measurer: Measurer, prepared: PreparedTables, metric: str, grain: str, by: tuple[str, ...], window: dict[str, Any]) -> None:
    got = engine_frame(spark_measurer, metric, grain, by, window)
    want = expected(prepared, metric, grain, by, window)
    assert_same(got, want, keys_of(grain, by), f"spark {metric}/{grain}/{by}", rel=1e-6)


RANGES = [(date(2025, 2, 10), date(2025, 8, 20)), (date(2025, 3, 1), date(2025, 5, 31)), (date(2025, 4, 15), None),
          (None, date(2025, 6, 30)), (None, None)]
"""Date ranges a dashboard reader might pick in turn: the first dated one compiles, the others reuse."""


@pytest.fixture(scope="module")
def kept_file(tmp_path_factory: pytest.TempPathFactory, tables: dict[str, pd.DataFrame]) -> Any:
    from cxlens.semantic.kept import refresh_sessions

    path = tmp_path_factory.mktemp("templates") / "fixture.duckdb"
    with Workspace.open(path) as ws:
        fill(ws, tables)
        refresh_sessions(ws)
    return path


def _catalogue(grain: str, by: tuple[str, ...]) -> list[str]:
    return [m for m in METRICS if all(d in CATALOG.dimensions_for(CATALOG.metrics[m]) for d in by)]


@pytest.mark.parametrize("grain,by", [("month", ()), ("quarter", ("country",))], ids=str)
def test_compiled_queries_reused_for_other_dates_match_reference(kept_file: Any, prepared: PreparedTables, grain: str,
                                                                 by: tuple[str, ...]) -> None:
    """Queries compiled once (cxlens.semantic.templates) and reused for other date ranges, on new
    connections as the dashboard opens them, give the reference's numbers for each range; after the
    first dated range, other dated ranges (open at either end too) compile nothing."""
    from cxlens.semantic.templates import Templates

    templates = Templates()
    ids = _catalogue(grain, by)
    compiled_first = None
    for since, until in RANGES:
        with Workspace.open(kept_file) as ws, Measurer(ws, CATALOG, templates=templates) as m:
            got = m.measure_many(ids, grain=grain, by=by, since=since, until=until)
        window = {"since": since, "until": until}
        for mid in ids:
            res = got[mid]
            assert_same(res.frame, expected(prepared, mid, grain, res.query.by, window), keys_of(grain, res.query.by),
                        f"templates {mid}/{grain}/{res.query.by} {since}..{until}")
        if compiled_first is None:
            compiled_first = templates.compiled
            assert compiled_first >= 12  # every source's batch became a template (none fell back)
        elif since is not None or until is not None:
            assert templates.compiled == compiled_first, f"{since}..{until} compiled again"
    assert templates.hits >= 3 * compiled_first


def test_compiled_queries_follow_new_data(tmp_path: Any, tables: dict[str, pd.DataFrame]) -> None:
    """Templates outlive loads: the values read from the data while compiling (the latest activity,
    the subscription periods) are checked, and a query built on values that no longer hold is
    compiled again; the numbers equal the reference on the new data."""
    from cxlens.semantic.kept import refresh_sessions
    from cxlens.semantic.templates import Templates

    path = tmp_path / "moving.duckdb"
    with Workspace.open(path) as ws:
        fill(ws, tables)
        refresh_sessions(ws)
    templates = Templates()
    ids = _catalogue("month", ())
    window = {"since": date(2025, 1, 1), "until": date(2026, 3, 31)}
    with Workspace.open(path) as ws, Measurer(ws, CATALOG, templates=templates) as m:
        m.measure_many(ids, grain="month", **window)
    first = templates.compiled
    later = {name: frame.copy() for name, frame in tables.items()}
    orders, subs = later["orders"], later["subscriptions"]
    last_order = orders[orders["profile_id"].notna()].iloc[-1].to_dict()
    last_order.update(order_id="late-1", ordered_at=pd.Timestamp("2026-02-14 10:00"), status="completed")
    later["orders"] = pd.concat([orders, pd.DataFrame([last_order])], ignore_index=True)
    last_sub = subs.iloc[-1].to_dict()
    last_sub.update(subscription_id="late-sub", started_at=pd.Timestamp("2025-12-20"), ended_at=pd.Timestamp("2026-03-02"))
    later["subscriptions"] = pd.concat([subs, pd.DataFrame([last_sub])], ignore_index=True)
    with Workspace.open(path) as ws:
        fill(ws, later)
        refresh_sessions(ws)
    with Workspace.open(path) as ws, Measurer(ws, CATALOG, templates=templates) as m:
        got = m.measure_many(ids, grain="month", **window)
    again = templates.compiled - first
    assert 0 < again < first  # the queries on the latest activity or the periods, not the others
    now = PreparedTables(later)
    for mid in ids:
        res = got[mid]
        assert_same(res.frame, expected(now, mid, "month", res.query.by, window), keys_of("month", res.query.by),
                    f"after new data {mid}")
