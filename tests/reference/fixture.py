"""Small deterministic canonical tables that exercise the edge cases of the metric definitions.

Why: the conformance suite loads these into a workspace and compares the engine with the pandas
reference; random data alone rarely hits the corners (a gap of exactly 1,800 s, a month without
orders, a case spanning channels), so those are placed by hand on top of a seeded random
background. The tables play an already identity-resolved workspace: every row carries the
`profile_id` of the customer it names (`p_0001` for `c0001`), or None.

Hand-placed corners (search for `EDGE` below):
- no order at all in March 2025; no survey answer in June 2025;
- sessions crossing midnight and a month boundary; a gap of exactly 1,800 s (same session) and
  of 1,801 s (new session); ties on occurred_at decided by event_id; a session whose first
  event has no profile_id; events with a session_id and no identifier; events with no
  identifier and no session_id (in no session); the same session_id in two sources;
- every channel-group rule and its precedence, upper-case utm values, a look-alike host;
- message events whose open falls in the month after the send; a push campaign never clicked;
- returned, cancelled and status-less orders; guest orders; store orders without store_id;
- cases with several contacts, channels, transfers, a case_id reused by another source;
- subscriptions ending exactly at a period start; a store with traffic and no orders; an
  acquisition channel with costs and no customers.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import numpy as np
import pandas as pd

from cxlens.workspace.schema import TABLES

START = pd.Timestamp("2024-11-01")
END = pd.Timestamp("2026-01-01")  # exclusive: 14 months, Nov 2024 .. Dec 2025
NO_ORDER_MONTH = (2025, 3)
NO_SURVEY_MONTH = (2025, 6)

N_CUSTOMERS = 200
N_BUYERS = 160  # customers 161..200 never order
COUNTRIES = ("FR", "DE", "ES", "IT", None)
REGIONS = {"FR": "IDF", "DE": "BY", "ES": "MD", "IT": "LZ", None: None}
CITIES = {"FR": "Paris", "DE": "Munich", "ES": "Madrid", "IT": "Rome", None: None}
TIERS = ("bronze", "silver", "gold", None)
ACQUISITION = ("paid_search", "social", "email", "affiliate", "organic", None)
STORES = ("S1", "S2", "S3")

# (referrer, utm_source, utm_medium, utm_campaign) of a visit's landing event, covering every
# channel-group rule, upper case, precedence, and a host that only looks like a social one.
LANDINGS: tuple[tuple[str | None, str | None, str | None, str | None], ...] = (
    (None, "google", "cpc", "brand"),
    ("https://www.google.com/search?q=shoes", "google", "CPC", "brand"),  # paid beats organic
    (None, "facebook", "paid_social", "retarget"),
    (None, "partner", "Paid-Promo", "promo"),  # starts with "paid"
    (None, "network", "display", "awareness"),
    (None, "awin", "affiliate", None),
    (None, "crm", "email", "newsletter_w12"),
    (None, "crm", "E-Mail", None),
    ("https://www.facebook.com/", "newsletter", None, None),  # email beats social
    (None, "Email", None, None),
    (None, "facebook", "social", "spring"),
    ("https://l.instagram.com/?u=x", None, None, None),
    ("https://t.co/abc", None, None, None),
    ("https://x.com/someone", None, None, None),
    ("https://www.linkedin.com/feed", None, None, None),
    ("https://notfacebook.com/page", None, None, None),  # not social: referral
    ("https://www.google.com/search?q=cx", None, None, None),
    ("https://www.bing.com/search?q=cx", None, None, None),
    ("https://duckduckgo.com/", None, None, None),
    ("https://search.yahoo.co.jp/search", None, None, None),
    (None, "google", "organic", None),
    ("https://blog.example.org/review", None, None, None),
    ("https://forum.example.net/t/1", "forum", None, None),
    (None, "partner", "referral", None),
    (None, None, None, None),
    (None, None, None, None),
    (None, None, None, None),
)
DEVICE_PROPERTIES = (
    json.dumps({"device": "mobile"}),
    json.dumps({"device": "desktop", "screen": "1920x1080"}),
    json.dumps({"device": "tablet"}),
    json.dumps({"lang": "fr"}),
    None,
)
SESSION_TYPES = (
    "page_view", "page_view", "page_view", "product_view", "product_view", "search",
    "add_to_cart", "remove_from_cart", "checkout_started", "recommendation_shown",
    "video_play", "signup", "lead",
)
CAMPAIGNS = (
    # campaign_id, channel, personalized, content_id, send day
    ("C01", "email", True, "K-welcome", "2024-11-20"),
    ("C02", "email", False, "K-blackfriday", "2024-12-31 23:00"),  # opens fall in January
    ("C03", "sms", True, "K-sms-spring", "2025-04-10"),
    ("C04", "push", False, "K-push-app", "2025-07-05"),  # never clicked
    ("C05", "email", True, "K-summer", "2025-08-14"),
    ("C06", "email", False, "K-xmas", "2025-12-01"),
)


def fixture_tables(seed: int = 7) -> dict[str, pd.DataFrame]:
    """The eleven canonical tables, each with its canonical columns plus profile_id and source."""
    rng = np.random.default_rng(seed)
    ids = _Ids()
    customers = _customers(rng)
    orders, items = _orders(rng, ids)
    events = _events(rng, ids, orders)
    tables = {
        "customers": customers,
        "orders": orders,
        "order_items": items,
        "events": events,
        "interactions": _interactions(rng, ids),
        "survey_responses": _surveys(rng, ids, orders),
        "subscriptions": _subscriptions(rng),
        "campaigns": _campaigns(),
        "assignments": _assignments(rng),
        "costs": _costs(rng),
        "store_traffic": _store_traffic(rng),
    }
    return {name: _canonical(name, rows) for name, rows in tables.items()}


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


class _Ids:
    """Sequential identifiers per prefix, so that a seed gives identical tables."""

    def __init__(self) -> None:
        self._n: dict[str, int] = {}

    def next(self, prefix: str, width: int = 5) -> str:
        self._n[prefix] = self._n.get(prefix, 0) + 1
        return f"{prefix}{self._n[prefix]:0{width}d}"


def _cid(i: int) -> str:
    return f"c{i:04d}"


def _pid(i: int) -> str:
    return f"p_{i:04d}"


def _random_time(rng: np.random.Generator, start: pd.Timestamp = START, end: pd.Timestamp = END) -> pd.Timestamp:
    seconds = int(rng.integers(0, int((end - start).total_seconds())))
    return start + pd.Timedelta(seconds=seconds)


def _in_month(ts: pd.Timestamp, ym: tuple[int, int]) -> bool:
    return (ts.year, ts.month) == ym


def _canonical(name: str, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows -> a frame with exactly the canonical columns (typed) plus profile_id and source."""
    spec = TABLES[name]
    columns = [*spec.column_names, "profile_id", "source"]
    df = pd.DataFrame.from_records(rows, columns=columns)
    for col in spec.columns:
        s = df[col.name]
        if col.type in ("timestamp", "date"):
            df[col.name] = pd.to_datetime(s).astype("datetime64[us]")
        elif col.type == "float64":
            df[col.name] = pd.to_numeric(s).astype("float64")
        elif col.type == "int64":
            df[col.name] = pd.array(s.tolist(), dtype="Int64")
        elif col.type == "boolean":
            df[col.name] = pd.array(s.tolist(), dtype="boolean")
        else:
            df[col.name] = s.astype("str")
    df["profile_id"] = df["profile_id"].astype("str")
    df["source"] = df["source"].astype("str")
    return df


# --------------------------------------------------------------------------------------------
# customers
# --------------------------------------------------------------------------------------------


def _customers(rng: np.random.Generator) -> list[dict[str, Any]]:
    rows = []
    for i in range(1, N_CUSTOMERS + 1):
        country = COUNTRIES[int(rng.integers(len(COUNTRIES)))]
        member = [True, False, None][int(rng.integers(3))]
        rows.append({
            "customer_id": _cid(i), "email": f"user{i}@example.com", "phone": f"+3360000{i:04d}",
            "loyalty_id": f"L{i:05d}" if member else None, "first_name": f"First{i}",
            "last_name": f"Last{i}", "city": CITIES[country], "region": REGIONS[country],
            "country": country, "postal_code": f"{10000 + i}", "gender": ["f", "m", "x", None][int(rng.integers(4))],
            "birth_date": dt.date(1960 + int(rng.integers(45)), 1 + int(rng.integers(12)), 1 + int(rng.integers(28))),
            "signup_at": _random_time(rng, START - pd.Timedelta(days=400), END),
            "loyalty_member": member, "loyalty_tier": TIERS[int(rng.integers(len(TIERS)))] if member else None,
            "acquisition_channel": ACQUISITION[int(rng.integers(len(ACQUISITION)))],
            "acquisition_cost": round(float(rng.uniform(5, 60)), 2),
            "profile_id": _pid(i), "source": "crm",
        })
    # EDGE: a second record (from the POS) for a few profiles, with different attribute values,
    # so that "the greatest non-null value per profile" matters.
    for i, country, tier, member, acq in ((3, "ZZ", "platinum", True, "zzz_partner"), (4, None, None, None, None),
                                           (5, "AA", "bronze", False, "affiliate"), (6, "IT", "gold", True, "social")):
        rows.append({
            "customer_id": f"POS-{i}", "email": None, "phone": None, "loyalty_id": f"PL{i}",
            "first_name": f"First{i}", "last_name": f"Last{i}", "city": CITIES.get(country), "region": REGIONS.get(country),
            "country": country, "gender": None, "loyalty_member": member, "loyalty_tier": tier,
            "acquisition_channel": acq, "profile_id": _pid(i), "source": "pos",
        })
    return rows


# --------------------------------------------------------------------------------------------
# orders and order items
# --------------------------------------------------------------------------------------------


def _order_row(rng: np.random.Generator, ids: _Ids, i: int | None, at: pd.Timestamp, **over: Any) -> dict[str, Any]:
    channel = over.pop("channel", None) or str(rng.choice(["online", "online", "store", "app", "phone"], p=[0.25, 0.25, 0.25, 0.2, 0.05]))
    status_draw = float(rng.random())
    status = "completed" if status_draw < 0.8 else None if status_draw < 0.88 else "returned" if status_draw < 0.95 else "cancelled"
    revenue = round(float(rng.lognormal(3.9, 0.6)), 2)
    coupon = str(rng.choice(["WELCOME10", "SPRING", "VIP"])) if rng.random() < 0.2 else None
    campaign = str(rng.choice(["C01", "C02", "C03", "C05", "C06"])) if rng.random() < 0.15 else None
    store = str(rng.choice(STORES)) if channel == "store" else None
    row = {
        "order_id": ids.next("o"), "customer_id": _cid(i) if i else None, "ordered_at": at, "revenue": revenue,
        "channel": channel, "store_id": store, "currency": "EUR", "discount": 5.0 if coupon else 0.0,
        "cost": round(revenue * 0.55, 2), "coupon_code": coupon, "items_count": int(rng.integers(1, 4)),
        "status": status, "campaign_id": campaign, "email": f"user{i}@example.com" if i else None,
        "loyalty_id": None, "profile_id": _pid(i) if i else None,
        "source": "pos" if channel == "store" else "web",
    }
    row.update(over)
    return row


def _orders(rng: np.random.Generator, ids: _Ids) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    orders: list[dict[str, Any]] = []
    for i in range(1, N_BUYERS + 1):
        for _ in range(1 + int(rng.poisson(3))):
            at = _random_time(rng)
            while _in_month(at, NO_ORDER_MONTH):  # EDGE: no order at all in March 2025
                at = _random_time(rng)
            orders.append(_order_row(rng, ids, i, at))
    for _ in range(30):  # EDGE: guest orders (no customer, no profile)
        at = _random_time(rng)
        while _in_month(at, NO_ORDER_MONTH):
            at = _random_time(rng)
        orders.append(_order_row(rng, ids, None, at))
    # EDGE: hand-placed orders.
    t = pd.Timestamp
    orders += [
        _order_row(rng, ids, 1, t("2024-12-31 23:59:59"), status="completed", channel="online"),
        _order_row(rng, ids, 1, t("2025-01-01 00:00:00"), status="completed", channel="app"),
        _order_row(rng, ids, 2, t("2025-02-10 10:00"), status="returned", channel="online"),
        _order_row(rng, ids, 2, t("2025-02-11 10:00"), status="cancelled", channel="online"),
        _order_row(rng, ids, 2, t("2025-04-02 10:00"), status=None, channel="store", store_id="S2", source="pos"),
        _order_row(rng, ids, 7, t("2025-05-05 12:00"), status="completed", channel="store", store_id=None, source="pos"),
        _order_row(rng, ids, None, t("2025-05-06 12:00"), status="completed", channel="store", store_id="S1", source="pos"),
        # two orders of one profile at the same instant: first-order ties go to the order_id
        _order_row(rng, ids, 8, t("2024-11-03 09:00"), status="completed", channel="phone"),
        _order_row(rng, ids, 8, t("2024-11-03 09:00"), status="completed", channel="online"),
    ]
    items: list[dict[str, Any]] = []
    for o in orders:
        for line in range(int(o["items_count"])):
            items.append({
                "order_id": o["order_id"], "product_id": f"SKU{int(rng.integers(1, 40)):03d}",
                "quantity": float(rng.integers(1, 3)), "unit_price": round(o["revenue"] / o["items_count"], 2),
                "category": str(rng.choice(["shoes", "bags", "accessories"])), "product_name": f"Product {line}",
                "profile_id": o["profile_id"], "source": o["source"],
            })
    return orders, items


# --------------------------------------------------------------------------------------------
# events
# --------------------------------------------------------------------------------------------


def _event(ids: _Ids, at: pd.Timestamp, event_type: str, **cols: Any) -> dict[str, Any]:
    row = {"event_id": ids.next("e", 6), "occurred_at": at, "event_type": event_type, "source": "web"}
    row.update(cols)
    return row


def _visit(rng: np.random.Generator, ids: _Ids, start: pd.Timestamp, who: dict[str, Any],
           session_id: str | None = None, source: str = "web") -> list[dict[str, Any]]:
    """One intended visit: a landing event with referrer/utm, then 0..7 more session events."""
    referrer, utm_source, utm_medium, utm_campaign = LANDINGS[int(rng.integers(len(LANDINGS)))]
    props = DEVICE_PROPERTIES[int(rng.integers(len(DEVICE_PROPERTIES)))]
    channel = "app" if source == "app" else "web"
    common = {**who, "session_id": session_id, "source": source, "channel": channel}
    first_type = "page_view" if rng.random() < 0.7 else "product_view"
    rows = [_event(ids, start, first_type, referrer=referrer, utm_source=utm_source, utm_medium=utm_medium,
                   utm_campaign=utm_campaign, properties=props, page_url="https://shop.example.com/", **common)]
    at = start
    for _ in range(int(rng.integers(0, 8))):
        at = at + pd.Timedelta(seconds=int(rng.integers(5, 1500)))
        etype = SESSION_TYPES[int(rng.integers(len(SESSION_TYPES)))]
        extra: dict[str, Any] = {"page_url": "https://shop.example.com/p", "properties": props}
        if etype == "recommendation_shown":
            extra.update(personalized=bool(rng.random() < 0.6), variant=str(rng.choice(["A", "B"])),
                         content_id=f"R{int(rng.integers(1, 5))}")
        rows.append(_event(ids, at, etype, **extra, **common))
        if etype == "recommendation_shown" and rng.random() < 0.35:
            at = at + pd.Timedelta(seconds=int(rng.integers(2, 90)))
            rows.append(_event(ids, at, "recommendation_clicked", **extra, **common))
    if rng.random() < 0.12:  # a purchase; sometimes without a value
        at = at + pd.Timedelta(seconds=int(rng.integers(30, 600)))
        value = None if rng.random() < 0.2 else round(float(rng.lognormal(3.9, 0.5)), 2)
        rows.append(_event(ids, at, "add_to_cart", **common))
        rows.append(_event(ids, at + pd.Timedelta(seconds=40), "purchase", value=value, **common))
    return rows


def _events(rng: np.random.Generator, ids: _Ids, orders: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    # Background web/app traffic: 320 anonymous visitors, the first 150 of them known customers.
    for v in range(1, 321):
        customer = v if v <= 150 else None
        for _ in range(1 + int(rng.poisson(1.6))):
            start = _random_time(rng)
            if customer and rng.random() < 0.25:  # logged-in app visit: customer_id, no anonymous_id
                who = {"customer_id": _cid(customer), "profile_id": _pid(customer)}
                rows += _visit(rng, ids, start, who, session_id=ids.next("s"), source="app")
            else:
                who = {"anonymous_id": f"a{v:04d}", "profile_id": _pid(customer) if customer else None}
                sid = ids.next("w") if rng.random() < 0.2 else None
                rows += _visit(rng, ids, start, who, session_id=sid)
    rows += _edge_sessions(ids)
    rows += _messages(rng, ids)
    rows += _other_events(rng, ids)
    return rows


def _edge_sessions(ids: _Ids) -> list[dict[str, Any]]:
    """EDGE: hand-placed sessions whose outcome the definitions pin exactly."""
    t = pd.Timestamp
    rows: list[dict[str, Any]] = []
    # Exactly 1,800 s: the same session; 1,801 s later: a new one.
    v = {"anonymous_id": "edge-gap", "profile_id": _pid(160)}
    rows += [_event(ids, t("2025-02-03 10:00:00"), "page_view", referrer="https://www.google.com/", **v),
             _event(ids, t("2025-02-03 10:30:00"), "product_view", **v),
             _event(ids, t("2025-02-03 11:00:01"), "page_view", **v)]
    # Crossing midnight and a month boundary: belongs to January 31.
    v = {"anonymous_id": "edge-midnight", "profile_id": _pid(161)}
    rows += [_event(ids, t("2025-01-31 23:50:00"), "page_view", utm_source="newsletter", **v),
             _event(ids, t("2025-02-01 00:05:00"), "add_to_cart", **v),
             _event(ids, t("2025-02-01 00:15:00"), "purchase", value=80.0, **v)]
    # Crossing midnight with a session_id (app).
    v = {"customer_id": _cid(162), "profile_id": _pid(162), "source": "app", "session_id": "edge-app-1", "channel": "app"}
    rows += [_event(ids, t("2025-07-14 23:59:30"), "product_view", **v),
             _event(ids, t("2025-07-15 00:40:00"), "product_view", **v)]  # > 30 min but same session_id
    # The same session_id in two sources: two sessions.
    rows += [_event(ids, t("2025-08-01 09:00"), "page_view", anonymous_id="edge-dup", session_id="dup-1", source="web"),
             _event(ids, t("2025-08-01 09:01"), "page_view", anonymous_id="edge-dup", session_id="dup-1", source="app", channel="app")]
    # Ties on occurred_at: event_id decides the first event (its referrer wins).
    v = {"anonymous_id": "edge-tie", "profile_id": None}
    first = _event(ids, t("2025-09-09 09:09:09"), "page_view", referrer="https://t.co/xyz", **v)
    second = _event(ids, t("2025-09-09 09:09:09"), "page_view", referrer="https://www.bing.com/", **v)
    rows += [second | {"event_id": "e999998"}, first | {"event_id": "e999997"}]
    # First event without profile_id, a later one with it (login mid-session); properties device on the first.
    v = {"anonymous_id": "edge-login"}
    rows += [_event(ids, t("2025-10-10 10:00"), "page_view", properties=json.dumps({"device": "mobile"}), **v),
             _event(ids, t("2025-10-10 10:05"), "signup", profile_id=_pid(163), properties=json.dumps({"device": "desktop"}), **v)]
    # A visitor known only by profile_id (no anonymous_id, no customer_id).
    rows += [_event(ids, t("2025-06-06 06:00"), "page_view", profile_id=_pid(164)),
             _event(ids, t("2025-06-06 06:10"), "lead", profile_id=_pid(164))]
    # No identifier and no session_id: in no session. No identifier with a session_id: a session.
    rows += [_event(ids, t("2025-04-04 04:04"), "page_view"),
             _event(ids, t("2025-04-04 04:05"), "page_view", session_id="anon-sess"),
             _event(ids, t("2025-04-04 04:06"), "search", session_id="anon-sess")]
    # Events excluded from sessions must not split or join a visitor's sessions.
    v = {"anonymous_id": "edge-excluded", "profile_id": _pid(165)}
    rows += [_event(ids, t("2025-11-11 11:00"), "page_view", **v),
             _event(ids, t("2025-11-11 11:20"), "ad_click", **v),
             _event(ids, t("2025-11-11 11:45"), "store_visit", **v),
             _event(ids, t("2025-11-11 12:10"), "page_view", **v)]  # 70 min after: a new session
    # A single product_view (bounce) and a single search (not a bounce).
    rows += [_event(ids, t("2025-03-03 03:03"), "product_view", anonymous_id="edge-bounce"),
             _event(ids, t("2025-03-05 03:03"), "search", anonymous_id="edge-nobounce")]
    return rows


def _messages(rng: np.random.Generator, ids: _Ids) -> list[dict[str, Any]]:
    """Campaign sends to customers with opens, clicks and unsubscribes after them."""
    rows: list[dict[str, Any]] = []
    for campaign, channel, personalized, content, day in CAMPAIGNS:
        sent_at = pd.Timestamp(day)
        recipients = rng.choice(np.arange(1, N_CUSTOMERS + 1), size=60, replace=False)
        for i in sorted(int(x) for x in recipients):
            variant = "A" if i % 2 else "B"
            who = {"customer_id": _cid(i), "profile_id": _pid(i), "source": "crm", "channel": channel,
                   "campaign_id": campaign, "content_id": content, "personalized": personalized, "variant": variant}
            at = sent_at + pd.Timedelta(minutes=int(rng.integers(0, 50)))
            rows.append(_event(ids, at, "message_sent", **who))
            if rng.random() < 0.45:
                opened = at + pd.Timedelta(hours=float(rng.uniform(0.2, 40)))
                rows.append(_event(ids, opened, "message_opened", **who))
                if channel != "push" and rng.random() < 0.4:
                    rows.append(_event(ids, opened + pd.Timedelta(minutes=2), "message_clicked", **who))
            if rng.random() < 0.03:
                rows.append(_event(ids, at + pd.Timedelta(days=1), "message_unsubscribed", **who))
    # EDGE: message events of an unknown recipient (no profile) and an open without any send.
    who = {"anonymous_id": "unknown-recipient", "source": "crm", "channel": "email", "campaign_id": "C05",
           "content_id": "K-summer", "personalized": True}
    rows += [_event(ids, pd.Timestamp("2025-08-14 08:00"), "message_sent", **who),
             _event(ids, pd.Timestamp("2025-08-15 08:00"), "message_opened", **who),
             _event(ids, pd.Timestamp("2025-09-20 08:00"), "message_opened", customer_id=_cid(9), profile_id=_pid(9),
                    source="crm", channel="sms", campaign_id="C99", content_id="K-orphan", personalized=False)]
    return rows


def _other_events(rng: np.random.Generator, ids: _Ids) -> list[dict[str, Any]]:
    """Survey invitations, loyalty enrolments, ads, store visits, coupon redemptions."""
    rows: list[dict[str, Any]] = []
    for _ in range(900):
        i = int(rng.integers(1, N_CUSTOMERS + 1))
        at = _random_time(rng)
        rows.append(_event(ids, at, "survey_sent", customer_id=_cid(i), profile_id=_pid(i), source="crm",
                           channel=str(rng.choice(["email", "sms"]))))
    for i in range(1, 41):  # loyalty enrolments; some without a profile
        known = i <= 34
        rows.append(_event(ids, _random_time(rng), "loyalty_enrolled", customer_id=_cid(i * 4) if known else None,
                           profile_id=_pid(i * 4) if known else None, source="pos",
                           channel=str(rng.choice(["store", "web"]))))
    for _ in range(120):
        v = int(rng.integers(1, 321))
        etype = str(rng.choice(["ad_impression", "ad_click", "store_visit", "coupon_redeemed"]))
        rows.append(_event(ids, _random_time(rng), etype, anonymous_id=f"a{v:04d}",
                           profile_id=_pid(v) if v <= 150 else None))
    return rows


# --------------------------------------------------------------------------------------------
# service, surveys, subscriptions, campaigns, assignments, costs, traffic
# --------------------------------------------------------------------------------------------


def _interactions(rng: np.random.Generator, ids: _Ids) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    channels = ("phone", "chat", "email", "store")
    topics = ("delivery", "returns", "billing", "product", None)
    for k in range(1, 111):
        i = int(rng.integers(1, N_CUSTOMERS + 1))
        known = k % 13 != 0  # EDGE: some cases without a profile
        case = f"K{k:04d}" if k % 4 else None  # EDGE: contacts without a case_id are cases of their own
        at = _random_time(rng)
        n_contacts = 1 if case is None else 1 + int(rng.poisson(0.8))
        channel = str(rng.choice(channels))
        topic = topics[int(rng.integers(len(topics)))]
        for c in range(n_contacts):
            if c and rng.random() < 0.4:
                channel = str(rng.choice(channels))  # EDGE: multi-channel case
            transfers = [0, 0, 1, 2, None][int(rng.integers(5))]
            rows.append({
                "interaction_id": ids.next("i"), "customer_id": _cid(i) if known else None, "started_at": at,
                "channel": channel, "case_id": case, "topic": topic if c == 0 else topics[int(rng.integers(len(topics)))],
                "agent_id": f"ag{int(rng.integers(1, 9))}", "transfers": transfers,
                "resolved": [True, False, None][int(rng.integers(3))] if c == n_contacts - 1 else False,
                "wait_seconds": None if rng.random() < 0.15 else float(rng.integers(0, 900)),
                "handle_seconds": float(rng.integers(60, 1800)), "profile_id": _pid(i) if known else None,
                "source": "desk",
            })
            at = at + pd.Timedelta(hours=float(rng.uniform(1, 240)))  # may cross into the next period
    # EDGE: the same case_id in another source is another case; equal started_at, ties by interaction_id.
    t = pd.Timestamp("2025-05-20 14:00")
    for src, iid, resolved in (("pos", "i99001", False), ("pos", "i99002", True), ("desk", "i99003", True)):
        rows.append({"interaction_id": iid, "customer_id": _cid(20), "started_at": t, "channel": "store",
                     "case_id": "K0001" if src == "pos" else "K-solo", "topic": "returns", "transfers": 1,
                     "resolved": resolved, "wait_seconds": 30.0, "profile_id": _pid(20), "source": src})
    return rows


def _surveys(rng: np.random.Generator, ids: _Ids, orders: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    scales = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}
    for _ in range(420):
        at = _random_time(rng)
        if _in_month(at, NO_SURVEY_MONTH):  # EDGE: no answer at all in June 2025
            continue
        kind = str(rng.choice(["nps", "nps", "csat", "ces"]))
        lo, hi = scales[kind]
        i = int(rng.integers(1, N_CUSTOMERS + 1))
        known = rng.random() > 0.08
        order = orders[int(rng.integers(len(orders)))]
        rows.append({
            "response_id": ids.next("r"), "customer_id": _cid(i) if known else None, "responded_at": at,
            "survey_type": kind, "score": float(rng.integers(lo, hi + 1)), "comment": None,
            "channel": str(rng.choice(["email", "sms", "web"])),
            "touchpoint": str(rng.choice(["post_purchase", "support", "website"])),
            "order_id": order["order_id"] if kind == "csat" else None,
            "profile_id": _pid(i) if known else None, "source": "survey",
        })
    return rows


def _subscriptions(rng: np.random.Generator) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for k in range(1, 41):
        i = int(rng.integers(1, N_CUSTOMERS + 1))
        start = _random_time(rng, START - pd.Timedelta(days=60), END - pd.Timedelta(days=30))
        end = start + pd.Timedelta(days=float(rng.uniform(20, 300))) if rng.random() < 0.45 else None
        rows.append({"subscription_id": f"sub{k:03d}", "customer_id": _cid(i), "started_at": start,
                     "ended_at": end if end is None or end < END else None, "plan": str(rng.choice(["basic", "plus"])),
                     "mrr": float(rng.choice([9.0, 19.0])), "profile_id": _pid(i), "source": "crm"})
    # EDGE: a subscription starting exactly at a month start and one ending exactly at one.
    rows.append({"subscription_id": "sub-edge-1", "customer_id": _cid(30), "started_at": pd.Timestamp("2025-02-01"),
                 "ended_at": pd.Timestamp("2025-05-01"), "plan": "plus", "mrr": 19.0, "profile_id": _pid(30), "source": "crm"})
    return rows


def _campaigns() -> list[dict[str, Any]]:
    return [{"campaign_id": c, "name": f"Campaign {c}", "channel": ch, "personalized": p, "content_id": k,
             "cost": 500.0, "started_at": pd.Timestamp(d), "ended_at": pd.Timestamp(d) + pd.Timedelta(days=14),
             "source": "crm"} for c, ch, p, k, d in CAMPAIGNS]


def _assignments(rng: np.random.Generator) -> list[dict[str, Any]]:
    return [{"experiment_id": "exp-reco", "unit_id": _pid(i), "variant": "treatment" if rng.random() < 0.5 else "control",
             "assigned_at": pd.Timestamp("2025-06-01") + pd.Timedelta(hours=i), "customer_id": _cid(i),
             "profile_id": _pid(i), "source": "crm"} for i in range(1, 121)]


def _costs(rng: np.random.Generator) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    month = START
    while month < END:
        # EDGE: "tv" has costs but no customer acquired through it; one acquisition cost has no channel.
        for channel in ("paid_search", "social", "email", "affiliate", "tv"):
            day = month + pd.Timedelta(days=int(rng.integers(0, 28)))
            rows.append({"incurred_on": day, "amount": round(float(rng.uniform(200, 1500)), 2),
                         "kind": "acquisition", "channel": channel, "source": "finance"})
        for kind in ("media", "personalization", "service"):
            rows.append({"incurred_on": month, "amount": round(float(rng.uniform(100, 900)), 2), "kind": kind,
                         "channel": None, "campaign_id": "C05" if kind == "media" else None, "source": "finance"})
        month = month + pd.DateOffset(months=1)
    rows.append({"incurred_on": pd.Timestamp("2025-03-15"), "amount": 250.0, "kind": "acquisition",
                 "channel": None, "source": "finance"})
    return rows


def _store_traffic(rng: np.random.Generator) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for day in pd.date_range(START, END - pd.Timedelta(days=1), freq="D"):
        for store in (*STORES, "S4"):  # EDGE: S4 has visitors and never an order
            if store == "S3" and day.day_of_week == 6:
                continue  # closed on Sundays
            rows.append({"store_id": store, "day": day, "visitors": int(rng.poisson(25)), "source": "pos"})
    return rows
