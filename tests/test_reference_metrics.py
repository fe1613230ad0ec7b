"""Pin the pandas reference metrics on tiny hand-made tables whose numbers are worked out by hand.

The reference (tests/reference/metrics_pandas.py) is what the metric engine is checked against,
so it needs its own checks: each test states the expected figure and why, from
docs/metric-definitions.md.
"""

from __future__ import annotations

import datetime as dt
import math

import pandas as pd
import pytest

from tests.reference.fixture import fixture_tables
from tests.reference.metrics_pandas import (
    ENGAGEMENT_WEIGHTS,
    METRIC_IDS,
    PreparedTables,
    allowed_dims,
    channel_group,
    reference,
    traffic_source,
)

T = pd.Timestamp


def _events(rows: list[dict]) -> pd.DataFrame:
    """Events with an event_id per row (ties by event_id need one) and source 'web'."""
    df = pd.DataFrame(rows)
    if "event_id" not in df:
        df["event_id"] = [f"e{i:03d}" for i in range(len(df))]
    df["source"] = df["source"].fillna("web") if "source" in df else "web"
    return df


def _one(df: pd.DataFrame) -> dict:
    assert len(df) == 1, df
    return df.iloc[0].to_dict()


def test_bounce_rate_is_one_of_three_sessions() -> None:
    # a: one page_view (bounce); b: page_view + product_view; c: one search (not a page: no bounce).
    ev = _events([
        {"occurred_at": T("2025-01-10 10:00"), "event_type": "page_view", "anonymous_id": "a"},
        {"occurred_at": T("2025-01-10 10:00"), "event_type": "page_view", "anonymous_id": "b"},
        {"occurred_at": T("2025-01-10 10:05"), "event_type": "product_view", "anonymous_id": "b"},
        {"occurred_at": T("2025-01-10 11:00"), "event_type": "search", "anonymous_id": "c"},
        {"occurred_at": T("2025-01-10 11:01"), "event_type": "message_opened", "anonymous_id": "c"},
    ])
    out = _one(reference("bounce_rate", {"events": ev}, grain="all"))
    assert out["value"] == pytest.approx(1 / 3) and out["n"] == 3
    assert _one(reference("pages_per_session", {"events": ev}, grain="all"))["value"] == pytest.approx(3 / 3)
    assert _one(reference("visitors", {"events": ev}, grain="all"))["value"] == 3


def test_a_gap_of_exactly_1800_s_does_not_split_but_1801_s_does() -> None:
    ev = _events([
        {"occurred_at": T("2025-02-03 10:00:00"), "event_type": "page_view", "anonymous_id": "v"},
        {"occurred_at": T("2025-02-03 10:30:00"), "event_type": "page_view", "anonymous_id": "v"},  # +1,800 s
        {"occurred_at": T("2025-02-03 11:00:01"), "event_type": "page_view", "anonymous_id": "v"},  # +1,801 s
        # excluded types neither join nor split sessions
        {"occurred_at": T("2025-02-03 10:45:00"), "event_type": "ad_click", "anonymous_id": "v"},
    ])
    assert _one(reference("sessions", {"events": ev}, grain="all"))["value"] == 2
    # durations 1,800 s and 0 s
    assert _one(reference("avg_session_duration", {"events": ev}, grain="all"))["value"] == pytest.approx(900.0)
    # one visitor with two sessions, the first of them new: new-visitor share 1, returning 0
    assert _one(reference("new_visitor_share", {"events": ev}, grain="all"))["value"] == 1.0


def test_session_id_sessions_crossing_midnight_belong_to_their_first_day() -> None:
    ev = _events([
        {"occurred_at": T("2025-01-31 23:50"), "event_type": "page_view", "customer_id": "c1", "session_id": "s1"},
        {"occurred_at": T("2025-02-01 01:30"), "event_type": "purchase", "customer_id": "c1", "session_id": "s1", "value": 40.0},
        {"occurred_at": T("2025-02-01 01:31"), "event_type": "purchase", "customer_id": "c1", "session_id": "s1"},
        # same session_id, other source: another session
        {"occurred_at": T("2025-02-01 09:00"), "event_type": "page_view", "customer_id": "c1", "session_id": "s1", "source": "app"},
    ])
    out = reference("revenue_per_visit", {"events": ev}, grain="day")
    assert out["period_start"].tolist() == [dt.date(2025, 1, 31), dt.date(2025, 2, 1)]
    assert out["value"].tolist() == [40.0, 0.0]  # a purchase without value counts 0
    conv = reference("conversion_rate", {"events": ev}, grain="month")
    assert conv["value"].tolist() == [1.0, 0.0]


def test_nps_two_promoters_one_detractor_of_four_is_25() -> None:
    answers = pd.DataFrame({
        "response_id": ["r1", "r2", "r3", "r4", "r5"],
        "responded_at": [T("2025-03-01")] * 5,
        "survey_type": ["nps", "nps", "nps", "nps", "csat"],
        "score": [10.0, 9.0, 7.0, 6.0, 5.0],
    })
    tables = {"survey_responses": answers}
    out = _one(reference("nps", tables))
    assert out["value"] == pytest.approx(25.0) and out["n"] == 4
    assert out["period_start"] == dt.date(2025, 3, 1)
    assert _one(reference("promoters", tables))["value"] == pytest.approx(0.5)
    assert _one(reference("passives", tables))["value"] == pytest.approx(0.25)
    assert _one(reference("detractors", tables))["value"] == pytest.approx(0.25)
    assert _one(reference("csat", tables))["value"] == 1.0


def _orders(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["order_id", "profile_id", "ordered_at", "revenue", "status", "channel"])


def test_retention_across_months_and_not_after_the_last_order() -> None:
    # Jan: p1, p2. Feb: p1, p3 (p2's Feb order is cancelled). Apr: p2. Nothing in March.
    orders = _orders([
        ("o1", "p1", T("2025-01-05"), 10.0, "completed", "online"),
        ("o2", "p2", T("2025-01-06"), 10.0, None, "store"),
        ("o3", "p1", T("2025-02-07"), 10.0, "completed", "online"),
        ("o4", "p3", T("2025-02-08"), 10.0, "completed", "online"),
        ("o5", "p2", T("2025-02-09"), 10.0, "cancelled", "online"),
        ("o6", "p2", T("2025-04-01"), 10.0, "completed", "online"),
    ])
    out = reference("retention_rate", {"orders": orders})
    # Feb: units p1, p2 -> p1 kept: 1/2. Mar: units p1, p3 -> none kept: 0. Apr: no unit (no March order).
    assert out["period_start"].tolist() == [dt.date(2025, 2, 1), dt.date(2025, 3, 1)]
    assert out["value"].tolist() == [0.5, 0.0] and out["n"].tolist() == [2, 2]
    assert reference("churn_rate", {"orders": orders})["value"].tolist() == [0.5, 1.0]
    # by channel: the unit takes its channel from the previous period's orders
    by = reference("retention_rate", {"orders": orders}, by=["channel"])
    feb = by[by["period_start"] == dt.date(2025, 2, 1)]
    assert dict(zip(feb["channel"], feb["value"])) == {"online": 1.0, "store": 0.0}
    with pytest.raises(ValueError):
        reference("retention_rate", {"orders": orders}, grain="all")


def test_valid_orders_and_return_rate() -> None:
    orders = _orders([
        ("o1", "p1", T("2025-01-05"), 100.0, "completed", "online"),
        ("o2", None, T("2025-01-06"), 50.0, None, "online"),  # no profile: in totals only
        ("o3", "p1", T("2025-01-07"), 30.0, "returned", "online"),
        ("o4", "p2", T("2025-01-08"), 20.0, "cancelled", "online"),
    ])
    tables = {"orders": orders}
    assert _one(reference("revenue", tables))["value"] == 150.0
    assert _one(reference("aov", tables))["value"] == 75.0
    assert _one(reference("active_customers", tables))["value"] == 1.0
    rr = _one(reference("return_rate", tables))
    assert rr["value"] == pytest.approx(1 / 3) and rr["n"] == 3


def test_historical_clv_uses_margin_within_the_lifespan_window() -> None:
    orders = pd.DataFrame({
        "order_id": ["o1", "o2", "o3"], "profile_id": ["p1"] * 3,
        "ordered_at": [T("2025-01-01"), T("2025-07-20"), T("2026-02-05")],  # day 0, 200, 400
        "revenue": [100.0, 50.0, 70.0], "cost": [40.0, 10.0, None],
    })
    clv = _one(reference("historical_clv", {"orders": orders}, grain="all"))
    assert clv["value"] == pytest.approx(60.0 + 40.0)  # the day-400 order is outside [first, first+365d)
    assert _one(reference("customer_lifespan", {"orders": orders}, grain="all"))["value"] == pytest.approx(400.0)
    assert _one(reference("historical_clv", {"orders": orders}, grain="all", lifespan_days=500))["value"] == pytest.approx(170.0)


def test_ratio_groups_with_only_one_side() -> None:
    ev = _events([
        {"occurred_at": T("2025-01-31 23:00"), "event_type": "message_sent", "customer_id": "c1", "channel": "email"},
        {"occurred_at": T("2025-02-01 08:00"), "event_type": "message_opened", "customer_id": "c1", "channel": "email"},
    ])
    out = reference("open_rate", {"events": ev})
    assert out["value"].iloc[0] == 0.0 and out["n"].iloc[0] == 1 and out["denominator"].iloc[0] == 1
    assert math.isnan(out["value"].iloc[1]) and out["n"].iloc[1] == 0 and out["numerator"].iloc[1] == 1
    assert _one(reference("open_rate", {"events": ev}, grain="all"))["value"] == 1.0


def test_cases_resolution_repeat_and_channel_switch() -> None:
    it = pd.DataFrame({
        "interaction_id": ["i1", "i2", "i3", "i4"],
        "started_at": [T("2025-01-02 09:00"), T("2025-01-03 09:00"), T("2025-01-04 09:00"), T("2025-01-05 09:00")],
        "channel": ["phone", "email", "chat", "chat"],
        "case_id": ["k1", "k1", None, None],
        "resolved": [True, False, True, None],
        "transfers": [1, None, 0, 2],
        "wait_seconds": [10.0, None, 30.0, 50.0],
        "source": ["desk"] * 4,
    })
    tables = {"interactions": it}
    # cases: k1 (2 contacts, 2 channels, last unresolved), i3 (resolved), i4 (NULL resolved)
    assert _one(reference("first_contact_resolution_rate", tables))["value"] == pytest.approx(1 / 3)
    assert _one(reference("repeat_contact_rate", tables))["value"] == pytest.approx(1 / 3)
    assert _one(reference("channel_switch_rate", tables))["value"] == pytest.approx(1 / 3)
    assert _one(reference("transfer_rate", tables))["value"] == pytest.approx(2 / 4)
    assert _one(reference("avg_wait_seconds", tables)) == {"period_start": dt.date(2025, 1, 1), "value": 30.0, "n": 3}


@pytest.mark.parametrize(("medium", "source", "referrer", "group"), [
    ("CPC", "google", "https://www.google.com/", "paid"),
    ("paid-social", None, None, "paid"),
    (None, "Newsletter", "https://www.facebook.com/", "email"),
    ("e-mail", None, None, "email"),
    (None, None, "https://m.facebook.com/story", "social"),
    (None, None, "https://notfacebook.com/", "referral"),
    ("sm", None, None, "social"),
    (None, None, "https://www.google.co.uk/search", "organic"),
    ("organic", None, None, "organic"),
    (None, None, "https://blog.example.org/", "referral"),
    ("referral", None, None, "referral"),
    (None, None, None, "direct"),
])
def test_channel_group_rules(medium: str | None, source: str | None, referrer: str | None, group: str) -> None:
    assert channel_group(medium, source, referrer) == group


def test_traffic_source_and_week_grain() -> None:
    assert traffic_source(None, "https://www.bing.com/x") == "bing.com"
    assert traffic_source("Google", "https://www.bing.com/x") == "Google"
    assert traffic_source(None, None) == "(direct)"
    ev = _events([
        {"occurred_at": T("2025-01-05 12:00"), "event_type": "page_view", "anonymous_id": "a"},  # Sunday
        {"occurred_at": T("2025-01-06 12:00"), "event_type": "page_view", "anonymous_id": "a", "utm_medium": "cpc"},
    ])
    out = reference("traffic_sources", {"events": ev}, grain="week")
    assert out["period_start"].tolist() == [dt.date(2024, 12, 30), dt.date(2025, 1, 6)]
    assert out["channel_group"].tolist() == ["direct", "paid"] and out["value"].tolist() == [1.0, 1.0]


def test_engagement_score_by_hand() -> None:
    ev = _events([
        {"occurred_at": T("2025-01-10 08:00"), "event_type": "message_sent", "customer_id": "c1", "profile_id": "p1"},
        {"occurred_at": T("2025-01-10 09:00"), "event_type": "message_opened", "customer_id": "c1", "profile_id": "p1"},
        {"occurred_at": T("2025-01-10 09:01"), "event_type": "message_clicked", "customer_id": "c1", "profile_id": "p1"},
        {"occurred_at": T("2025-01-10 10:00"), "event_type": "page_view", "anonymous_id": "a", "profile_id": "p1"},
        {"occurred_at": T("2025-01-10 10:01"), "event_type": "product_view", "anonymous_id": "a", "profile_id": "p1"},
    ])
    # r = 0 (its session is the last activity), f = 1, d = 2 pages, m = min(2/1, 1)
    w = ENGAGEMENT_WEIGHTS
    expected = 100 * (w["recency"] * 1 + w["frequency"] * 1 / 8 + w["depth"] * 2 / 10 + w["message"] * 1) / sum(w.values())
    assert expected == pytest.approx(57.75)
    assert _one(reference("engagement_score", {"events": ev}, grain="all"))["value"] == pytest.approx(expected)


def test_window_and_refused_combinations() -> None:
    orders = _orders([
        ("o1", "p1", T("2025-01-31 23:59:59"), 10.0, "completed", "online"),
        ("o2", "p1", T("2025-02-01 00:00:00"), 20.0, "completed", "online"),
        ("o3", "p1", T("2025-02-02 00:00:00"), 40.0, "completed", "online"),
    ])
    tables = {"orders": orders}
    assert _one(reference("revenue", tables, grain="all", since=dt.date(2025, 2, 1), until=dt.date(2025, 2, 1)))["value"] == 20.0
    for metric, kwargs in [
        ("return_rate", {"by": ["status"]}),
        ("revenue", {"by": ["segment"]}),
        ("first_contact_resolution_rate", {"by": ["channel"]}),
        ("store_traffic", {"by": ["country"]}),
        ("subscription_churn_rate", {"grain": "all"}),
        ("revenue", {"grain": "fortnight"}),
        ("no_such_metric", {}),
    ]:
        with pytest.raises(ValueError):
            reference(metric, tables, **kwargs)


def test_ties_by_event_id_and_events_without_identifiers() -> None:
    ev = _events([
        # same instant: event_id e1 is first, so the session's referrer is facebook (social)
        {"event_id": "e2", "occurred_at": T("2025-05-05 10:00"), "event_type": "page_view", "anonymous_id": "a",
         "referrer": "https://www.google.com/"},
        {"event_id": "e1", "occurred_at": T("2025-05-05 10:00"), "event_type": "page_view", "anonymous_id": "a",
         "referrer": "https://www.facebook.com/"},
        # no identifier, no session_id: in no session; with a session_id: a session without a visitor
        {"event_id": "e3", "occurred_at": T("2025-05-06 10:00"), "event_type": "page_view"},
        {"event_id": "e4", "occurred_at": T("2025-05-06 10:00"), "event_type": "page_view", "session_id": "s9"},
    ])
    out = reference("sessions", {"events": ev}, grain="all", by=["channel_group"])
    assert dict(zip(out["channel_group"], out["value"])) == {"direct": 1.0, "social": 1.0}
    assert _one(reference("visitors", {"events": ev}, grain="all"))["value"] == 1.0


def test_cac_divides_acquisition_costs_by_new_customers_of_their_acquisition_channel() -> None:
    costs = pd.DataFrame({
        "incurred_on": [T("2025-01-10"), T("2025-01-11"), T("2025-01-12")],
        "amount": [100.0, 50.0, 999.0], "kind": ["acquisition", "acquisition", "media"],
        "channel": ["social", "tv", None],
    })
    customers = pd.DataFrame({
        "customer_id": ["c1", "c2", "c2b", "c3"], "profile_id": ["p1", "p2", "p2", "p3"],
        "acquisition_channel": ["social", None, "social", "email"],
    })
    orders = _orders([
        ("o1", "p1", T("2025-01-05"), 10.0, "completed", "online"),
        ("o2", "p2", T("2025-01-06"), 10.0, "completed", "online"),
        ("o3", "p2", T("2025-02-06"), 10.0, "completed", "online"),
        ("o4", "p3", T("2025-02-07"), 10.0, "completed", "online"),
    ])
    tables = {"costs": costs, "customers": customers, "orders": orders}
    out = reference("cac", tables)
    assert out["value"].tolist() == [75.0, 0.0] and out["n"].tolist() == [2, 1]  # Feb: no cost, one new customer
    by = reference("cac", tables, by=["channel"])
    rows = {(r.period_start.month, r.channel): (r.value, r.n) for r in by.itertuples()}
    assert rows[(1, "social")] == (50.0, 2) and rows[(2, "email")] == (0.0, 1)
    assert math.isnan(rows[(1, "tv")][0]) and rows[(1, "tv")][1] == 0
    with pytest.raises(ValueError):
        reference("cac", tables, by=["country"])


def test_subscription_churn_uses_subscriptions_active_at_the_period_start() -> None:
    subs = pd.DataFrame({
        "subscription_id": ["A", "B", "C"], "customer_id": ["c1", "c2", "c3"],
        "started_at": [T("2025-01-01"), T("2024-12-15"), T("2025-01-10")],
        "ended_at": [T("2025-03-01"), None, T("2025-02-20")],
    })
    out = reference("subscription_churn_rate", {"subscriptions": subs})
    # Jan: only B was active at Jan 1 (A starts exactly then). Feb: A, B, C; C ends. Mar: A, B; A ends at s.
    assert out["period_start"].tolist() == [dt.date(2025, 1, 1), dt.date(2025, 2, 1), dt.date(2025, 3, 1)]
    assert out["value"].tolist() == pytest.approx([0.0, 1 / 3, 1 / 2]) and out["n"].tolist() == [1, 3, 2]


def test_loyalty_enrollment_counts_distinct_enrolled_profiles_over_active_customers() -> None:
    ev = _events([
        {"occurred_at": T("2025-01-02"), "event_type": "loyalty_enrolled", "profile_id": "p1"},
        {"occurred_at": T("2025-01-03"), "event_type": "loyalty_enrolled", "profile_id": "p1"},
        {"occurred_at": T("2025-01-04"), "event_type": "loyalty_enrolled"},
    ])
    orders = _orders([
        ("o1", "p1", T("2025-01-05"), 10.0, "completed", "online"),
        ("o2", "p2", T("2025-01-06"), 10.0, "completed", "online"),
    ])
    out = _one(reference("loyalty_enrollment_rate", {"events": ev, "orders": orders}))
    assert (out["value"], out["n"], out["numerator"], out["denominator"]) == (0.5, 2, 1.0, 2.0)


def test_catalogue_runs_on_the_fixture_for_every_metric() -> None:
    tables = PreparedTables(fixture_tables())
    assert len(METRIC_IDS) == len(set(METRIC_IDS)) >= 50
    for metric in METRIC_IDS:
        out = reference(metric, tables, grain="quarter")
        assert len(out) > 0 and out["n"].ge(0).all(), metric
    for metric in ("revenue", "open_rate", "survey_response_rate", "transfer_rate"):
        assert "channel" in allowed_dims(metric)
        assert reference(metric, tables, grain="quarter", by=["channel", "country"])["channel"].nunique() > 1
    # the fixture's corners: no order in March 2025, no survey answer in June 2025
    months = set(reference("orders", tables)["period_start"])
    assert dt.date(2025, 3, 1) not in months and dt.date(2025, 2, 1) in months
    assert dt.date(2025, 6, 1) not in set(reference("nps", tables)["period_start"])
