"""An independent pandas reference for every metric of `docs/metric-definitions.md`.

Why this exists: the metric engine (`cxlens/semantic/`) compiles the catalogue to Ibis; the
conformance suite needs a second computation of the same numbers that shares no code and no
reading of the definitions with it. This module is written from the words of the definitions
file alone, plainly, with pandas and numpy. It imports nothing from `cxlens.semantic`.

Where the document leaves a choice open, the reading taken here is marked `CHOICE:` in a
comment next to the code that makes it. The same list is in `CHOICES` at the end of the module.

Entry point: `reference(metric_id, tables, grain=..., by=..., since=..., until=...)`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

from cxlens.workspace.schema import TABLES

# --------------------------------------------------------------------------------------------
# Vocabulary of the definitions file
# --------------------------------------------------------------------------------------------

GRAINS: tuple[str, ...] = ("day", "week", "month", "quarter", "year", "all")

PROFILE_DIMS: tuple[str, ...] = (
    "country", "region", "city", "gender", "loyalty_member", "loyalty_tier",
    "acquisition_channel", "cohort",
)
"""Dimensions joined from the profile (NULL for rows without a profile_id)."""

NON_SESSION_TYPES: frozenset[str] = frozenset({
    "message_sent", "message_opened", "message_clicked", "message_unsubscribed",
    "ad_impression", "ad_click", "store_visit", "coupon_redeemed", "loyalty_enrolled",
    "survey_sent",
})
"""Event types that never belong to a session (Shared rules, Sessions)."""

MESSAGE_TYPES: tuple[str, ...] = (
    "message_sent", "message_opened", "message_clicked", "message_unsubscribed",
)
PAGE_TYPES: tuple[str, ...] = ("page_view", "product_view")
SESSION_GAP_SECONDS: int = 1800
"""A gap strictly longer than this starts a new session; exactly 1,800 s does not."""

ENGAGEMENT_WEIGHTS: dict[str, float] = {"recency": 0.3, "frequency": 0.3, "depth": 0.2, "message": 0.2}
"""Default weights w_r, w_f, w_d, w_m of `engagement_score`."""
ENGAGEMENT_HALF_LIFE_DAYS: float = 14.0
ENGAGEMENT_FULL_SESSIONS: float = 8.0
ENGAGEMENT_FULL_PAGES: float = 10.0

PAID_MEDIUMS: frozenset[str] = frozenset({
    "cpc", "ppc", "paid", "paidsearch", "paid_search", "paid_social", "display", "cpm", "cpv",
    "affiliate",
})
EMAIL_MEDIUMS: frozenset[str] = frozenset({"email", "e-mail"})
EMAIL_SOURCES: frozenset[str] = frozenset({"email", "newsletter"})
SOCIAL_MEDIUMS: frozenset[str] = frozenset({"social", "social-network", "social_media", "sm"})
SOCIAL_HOSTS: tuple[str, ...] = (
    "facebook.com", "instagram.com", "twitter.com", "x.com", "t.co", "linkedin.com",
    "pinterest.com", "tiktok.com", "youtube.com", "reddit.com",
)
SEARCH_HOST_PARTS: tuple[str, ...] = (
    "google.", "bing.", "duckduckgo.", "yahoo.", "baidu.", "yandex.", "ecosia.",
)

# Row dimensions per kind of unit: dimension name -> column of the unit frame.
ORDER_DIMS: dict[str, str] = {"channel": "channel", "store": "store_id", "campaign": "campaign_id"}
SESSION_DIMS: dict[str, str] = {
    d: d for d in ("channel", "channel_group", "traffic_source", "utm_campaign", "device")
}
MESSAGE_DIMS: dict[str, str] = {
    "channel": "channel", "campaign": "campaign_id", "content": "content_id",
    "personalized": "personalized", "variant": "variant",
}
# CHOICE: recommendation events are events (so `channel`, `variant`) and carry `personalized`;
# `campaign` and `content` are listed for messages only, so they are not allowed here.
RECOMMENDATION_DIMS: dict[str, str] = {
    "channel": "channel", "personalized": "personalized", "variant": "variant",
}
ANSWER_DIMS: dict[str, str] = {"channel": "channel", "touchpoint": "touchpoint"}
# CHOICE: `topic` is listed for cases; interactions carry a `topic` column too ("a dimension is
# a column of the metric's rows"), so interaction metrics allow it. `channel` is listed for
# interactions but not for cases (a case can span several channels), so case metrics refuse it.
INTERACTION_DIMS: dict[str, str] = {"channel": "channel", "topic": "topic"}
CASE_DIMS: dict[str, str] = {"topic": "topic"}
STORE_DIMS: dict[str, str] = {"store": "store_id"}
CHANNEL_DIM: dict[str, str] = {"channel": "channel"}

# --------------------------------------------------------------------------------------------
# Periods
# --------------------------------------------------------------------------------------------


def _ns(ts: pd.Series) -> np.ndarray:
    """Timestamps as numpy datetime64[ns] (NaT kept)."""
    return pd.to_datetime(ts).to_numpy(dtype="datetime64[ns]")


def period_index(ts: pd.Series, grain: str) -> np.ndarray:
    """An integer per row numbering its period, consecutive periods differing by one.

    Integers make "the period before P" a subtraction, for every grain alike.
    """
    v = _ns(ts)
    if grain == "all":
        return np.zeros(len(v), dtype=np.int64)
    days = v.astype("datetime64[D]").astype(np.int64)
    if grain == "day":
        return days
    if grain == "week":  # 1970-01-01 is a Thursday: shift so that weeks start on Monday
        return np.floor_divide(days + 3, 7)
    months = v.astype("datetime64[M]").astype(np.int64)
    if grain == "month":
        return months
    if grain == "quarter":
        return np.floor_divide(months, 3)
    if grain == "year":
        return v.astype("datetime64[Y]").astype(np.int64)
    raise ValueError(f"unknown grain {grain!r}")


def period_start(index: np.ndarray | pd.Series, grain: str) -> np.ndarray:
    """The datetime64[ns] start of each numbered period (inverse of `period_index`)."""
    i = np.asarray(index, dtype=np.int64)
    if grain == "day":
        out = i.astype("datetime64[D]")
    elif grain == "week":
        out = (i * 7 - 3).astype("datetime64[D]")
    elif grain == "month":
        out = i.astype("datetime64[M]")
    elif grain == "quarter":
        out = (i * 3).astype("datetime64[M]")
    elif grain == "year":
        out = i.astype("datetime64[Y]")
    else:
        raise ValueError(f"grain {grain!r} has no period start")
    return out.astype("datetime64[ns]")


# --------------------------------------------------------------------------------------------
# Channel group and traffic source (from a session's first event)
# --------------------------------------------------------------------------------------------


def _present(value: Any) -> bool:
    """Whether a text value is there. CHOICE: NULL and blank strings both count as missing."""
    if value is None or value is pd.NA:
        return False
    if isinstance(value, float) and np.isnan(value):
        return False
    return bool(str(value).strip())


def referrer_host(referrer: Any) -> str | None:
    """The referrer's host name, lower case, without a leading `www.` (None when there is none).

    CHOICE: a referrer without a scheme (`google.com/search`) is read as a host followed by a path.
    """
    if not _present(referrer):
        return None
    text = str(referrer).strip()
    if "//" not in text:
        text = "//" + text
    try:
        host = urlsplit(text).hostname
    except ValueError:
        return None
    if not host:
        return None
    host = host.lower()
    return host[4:] if host.startswith("www.") else host


def channel_group(utm_medium: Any, utm_source: Any, referrer: Any) -> str:
    """The first matching rule of the definitions file, case-insensitive."""
    medium = str(utm_medium).strip().lower() if _present(utm_medium) else ""
    source = str(utm_source).strip().lower() if _present(utm_source) else ""
    host = referrer_host(referrer) or ""
    if medium in PAID_MEDIUMS or medium.startswith("paid"):
        return "paid"
    if medium in EMAIL_MEDIUMS or source in EMAIL_SOURCES:
        return "email"
    if medium in SOCIAL_MEDIUMS or (host and any(host == d or host.endswith("." + d) for d in SOCIAL_HOSTS)):
        return "social"
    if medium == "organic" or (host and any(part in host for part in SEARCH_HOST_PARTS)):
        return "organic"
    if _present(referrer) or medium == "referral":
        return "referral"
    return "direct"


def traffic_source(utm_source: Any, referrer: Any) -> str:
    """`utm_source` if present (as written), else the referrer host, else `(direct)`."""
    if _present(utm_source):
        return str(utm_source)
    return referrer_host(referrer) or "(direct)"


def _device(properties: Any) -> Any:
    """`properties.device` from a JSON string (or an already parsed mapping); None otherwise."""
    if isinstance(properties, Mapping):
        return properties.get("device")
    if not _present(properties):
        return None
    try:
        parsed = json.loads(str(properties))
    except ValueError:
        return None
    return parsed.get("device") if isinstance(parsed, dict) else None


# --------------------------------------------------------------------------------------------
# Derived units: sessions and cases
# --------------------------------------------------------------------------------------------


def _map_unique(s: pd.Series, fn: Callable[[Any], Any]) -> pd.Series:
    """`fn` applied to each distinct value once (JSON parsing per row is slow on big tables)."""
    codes, uniques = pd.factorize(s, use_na_sentinel=False)
    mapped = np.array([fn(u) for u in uniques], dtype=object)
    return pd.Series(mapped[codes], index=s.index, dtype=object)


def _text(s: pd.Series) -> pd.Series:
    """A column as pandas text with missing values kept missing (so `+` propagates NULL)."""
    return s.astype("str")


def _source(df: pd.DataFrame) -> pd.Series:
    """The `source` namespace of each row. A workspace always sets it; hand-made test frames may
    not, and a missing one is read as the empty namespace rather than voiding the key."""
    return _text(df["source"]).fillna("")


def event_visitor(events: pd.DataFrame) -> pd.Series:
    """anonymous_id, else source || ':' || customer_id, else profile_id (NULL if none)."""
    by_customer = _source(events) + ":" + _text(events["customer_id"])
    return _text(events["anonymous_id"]).fillna(by_customer).fillna(_text(events["profile_id"]))


SESSION_COLUMNS: tuple[str, ...] = (
    "session_key", "visitor", "ts", "duration", "events", "pages", "bounced", "converted",
    "revenue", "carted", "lead", "profile_id", "channel", "referrer", "utm_source", "utm_medium",
    "utm_campaign", "device", "channel_group", "traffic_source", "new",
)


def _codes(s: pd.Series, sort: bool = False) -> tuple[np.ndarray, pd.Index]:
    """Integer codes of a column (-1 for missing) and the distinct values they number."""
    codes, uniques = pd.factorize(s, sort=sort)
    return np.asarray(codes, dtype=np.int64), pd.Index(uniques)


def _decode(codes: np.ndarray, names: pd.Index) -> np.ndarray:
    """Codes back to values (None for -1)."""
    out = np.full(len(codes), None, dtype=object)
    ok = codes >= 0
    out[ok] = np.asarray(names, dtype=object)[codes[ok]]
    return out


def _tie_rank(s: pd.Series) -> np.ndarray:
    """A sortable integer per row following the values' order, missing values last (event_id ties)."""
    codes, uniques = _codes(s, sort=True)
    return np.where(codes < 0, len(uniques), codes)


def _order_with_ties(rows: np.ndarray, group: np.ndarray, t: np.ndarray, tie: pd.Series) -> np.ndarray:
    """`rows` ordered by group, then time, then the `tie` value (missing last).

    Only rows sharing a group and a time are ranked by `tie`: sorting ten million event_id
    strings is the slowest step otherwise, and exact ties are rare.
    """
    order = rows[np.lexsort((t[rows], group[rows]))]
    g, tt = group[order], t[order]
    same = (g[1:] == g[:-1]) & (tt[1:] == tt[:-1])
    tied = np.r_[False, same] | np.r_[same, False]
    if tied.any():
        sub = order[tied]
        rank = _tie_rank(tie.iloc[sub])
        order[tied] = sub[np.lexsort((rank, t[sub], group[sub]))]
    return order


def _of_type(types: np.ndarray, names: pd.Index, wanted: Sequence[str] | frozenset[str]) -> np.ndarray:
    """Rows whose event_type (as codes into `names`) is one of `wanted`."""
    hit = np.flatnonzero(np.isin(np.asarray(names, dtype=object), list(wanted)))
    return np.isin(types, hit)


def build_sessions(events: pd.DataFrame) -> pd.DataFrame:
    """One row per session with every session attribute of the definitions file.

    Events with a session_id form `source:session_id`; the others are cut per visitor at gaps of
    more than 1,800 s between consecutive session events without a session_id. The work is done
    on integer codes and numpy segment reductions (`reduceat` over the events of each session,
    sorted by session, time, event_id) so that it also runs on ten million events.
    """
    all_types, type_names = _codes(events["event_type"])
    pos = np.flatnonzero(~_of_type(all_types, type_names, NON_SESSION_TYPES))
    ev = events[["event_id", "occurred_at", "anonymous_id", "customer_id", "source", "session_id",
                 "profile_id", "value"]].iloc[pos].reset_index(drop=True)
    types = all_types[pos]
    if len(ev) == 0:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in SESSION_COLUMNS})
    t = _ns(ev["occurred_at"]).astype(np.int64)
    visitor = event_visitor(ev)
    vcode, _ = _codes(visitor)
    has_sid = ev["session_id"].notna().to_numpy()

    # Sessionize events without a session_id: per visitor, in time order (ties by event_id), a
    # new session starts at the visitor's first event or after a gap of more than 1,800 s.
    gid = np.full(len(ev), -1, dtype=np.int64)
    cand = np.flatnonzero(~has_sid & (vcode >= 0))
    cand = cand[np.lexsort((t[cand], vcode[cand]))]  # ties on time share a session either way
    starts = np.ones(len(cand), dtype=bool)
    starts[1:] = (vcode[cand][1:] != vcode[cand][:-1]) | (np.diff(t[cand]) > SESSION_GAP_SECONDS * 1_000_000_000)
    gid[cand] = np.cumsum(starts) - 1
    n_cut = int(starts.sum())
    # Events with a session_id: one session per source:session_id.
    with_sid = np.flatnonzero(has_sid)
    sid_key = _source(ev.iloc[with_sid]) + ":" + _text(ev["session_id"].iloc[with_sid])
    gid[with_sid] = n_cut + _codes(sid_key)[0]

    # Events of all sessions, sorted by session then time then event_id; `bounds` = first of each.
    order = _order_with_ties(np.flatnonzero(gid >= 0), gid, t, ev["event_id"])
    g = gid[order]
    bounds = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    first = order[bounds]
    last = order[np.r_[bounds[1:] - 1, len(order) - 1]]
    size = np.diff(np.r_[bounds, len(order)])

    def count(mask: np.ndarray) -> np.ndarray:
        return np.add.reduceat(mask[order].astype(np.int64), bounds)

    is_page = _of_type(types, type_names, PAGE_TYPES)
    is_purchase = _of_type(types, type_names, ("purchase",))
    value = pd.to_numeric(ev["value"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    purchase_value = np.where(is_purchase & ~np.isnan(value), value, 0.0)

    # profile_id: the first event's, else the first non-null one in time order.
    pcode, pnames = _codes(ev["profile_id"])
    rank = np.where(pcode[order] >= 0, np.arange(len(order)), len(order))
    first_known = np.minimum.reduceat(rank, bounds)
    known = first_known < len(order)
    profile_code = np.where(known, pcode[order][np.minimum(first_known, len(order) - 1)], -1)

    head = events[["event_type", "source", "session_id", "channel", "referrer", "utm_source",
                   "utm_medium", "utm_campaign", "properties"]].iloc[pos[first]].reset_index(drop=True)
    s = pd.DataFrame({
        "_gid": g[bounds],
        "visitor": visitor.iloc[first].reset_index(drop=True),
        "ts": ev["occurred_at"].iloc[first].reset_index(drop=True),
        "duration": (t[last] - t[first]) / 1e9,
        "events": size,
        "pages": count(is_page),
        "converted": count(is_purchase) > 0,
        "revenue": np.add.reduceat(purchase_value[order], bounds),
        "carted": count(_of_type(types, type_names, ("add_to_cart",))) > 0,
        "lead": count(_of_type(types, type_names, ("lead", "signup"))) > 0,
        "profile_id": _decode(profile_code, pnames),
    })
    s["bounced"] = (s["events"] == 1) & head["event_type"].isin(PAGE_TYPES).to_numpy()
    for col in ("channel", "referrer", "utm_source", "utm_medium", "utm_campaign"):
        s[col] = head[col]
    s["device"] = _map_unique(head["properties"], _device)

    # Keys: source:session_id; CHOICE: the document names no key for sessions cut by
    # inactivity, the reference uses visitor + '#' + their ordinal (6 digits) for that visitor.
    cut = (s["_gid"] < n_cut).to_numpy()
    s["session_key"] = _source(head) + ":" + _text(head["session_id"])
    ordinal = s.loc[cut].groupby("visitor", sort=False).cumcount() + 1
    s.loc[cut, "session_key"] = _text(s.loc[cut, "visitor"]) + "#" + ordinal.astype("str").str.zfill(6)

    triples = s[["utm_medium", "utm_source", "referrer"]].drop_duplicates()
    rows = list(triples.itertuples(index=False, name=None))
    triples["channel_group"] = [channel_group(medium, src, ref) for medium, src, ref in rows]
    triples["traffic_source"] = [traffic_source(src, ref) for _, src, ref in rows]
    s = s.merge(triples, on=["utm_medium", "utm_source", "referrer"], how="left")

    # `new`: the visitor's first session in the whole workspace (by ts, ties by session key).
    sv, _ = _codes(s["visitor"])
    o = _order_with_ties(np.arange(len(s)), sv, _ns(s["ts"]).astype(np.int64), s["session_key"])
    new = np.zeros(len(s), dtype=bool)
    new[o] = np.r_[True, sv[o][1:] != sv[o][:-1]]
    s["new"] = new & (sv >= 0)
    return s[list(SESSION_COLUMNS)]


def build_cases(interactions: pd.DataFrame) -> pd.DataFrame:
    """One row per support case (`source:case_id`, or `source:interaction_id` without a case).

    CHOICE: a case's `topic` is its first contact's topic (the document gives cases a topic
    dimension without saying which contact it comes from).
    """
    it = interactions.sort_values(["started_at", "interaction_id"], kind="stable").copy()
    it["_case"] = _source(it) + ":" + _text(it["case_id"]).fillna(_text(it["interaction_id"]))
    it["_transfers"] = pd.to_numeric(it["transfers"], errors="coerce").fillna(0)
    g = it.groupby("_case", sort=True)
    first = it.drop_duplicates("_case", keep="first").set_index("_case").sort_index()
    last = it.drop_duplicates("_case", keep="last").set_index("_case").sort_index()
    c = pd.DataFrame(index=first.index)
    c["ts"] = first["started_at"]
    c["topic"] = first["topic"]
    c["contacts"] = g.size()
    c["channels"] = g["channel"].nunique()
    # CHOICE: a last contact whose `resolved` is NULL counts as not resolved.
    c["resolved"] = last["resolved"].astype("boolean").fillna(False).astype(bool)
    c["transfers"] = g["_transfers"].sum()
    c["profile_id"] = g["profile_id"].first()
    return c.rename_axis("case_key").reset_index()


# --------------------------------------------------------------------------------------------
# The query: tables, grain, dims, window; derived frames computed once
# --------------------------------------------------------------------------------------------

_TIME_TYPES = ("timestamp", "date")


class PreparedTables(dict[str, pd.DataFrame]):
    """The tables plus a cache of what every query derives from them the same way.

    Sessions, cases, first orders and profile attributes do not depend on the grain, the
    dimensions or the window, so a caller that computes many metrics over the same tables (the
    conformance suite, the benchmark) wraps them once: `reference(m, PreparedTables(tables))`.
    The tables must not be modified afterwards. A plain dict works too, without the cache.
    """

    def __init__(self, tables: Mapping[str, pd.DataFrame]) -> None:
        super().__init__(tables)
        self.cache: dict[str, Any] = {}


@dataclass
class _Query:
    tables: Mapping[str, pd.DataFrame]
    grain: str
    by: list[str]
    since: dt.date | None
    until: dt.date | None
    lifespan_days: int
    _cache: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.tables, PreparedTables):
            self._cache = self.tables.cache

    @property
    def keys(self) -> list[str]:
        return ["_period", *self.by]

    def _cached(self, name: str, make: Callable[[], Any]) -> Any:
        if name not in self._cache:
            self._cache[name] = make()
        return self._cache[name]

    def table(self, name: str) -> pd.DataFrame:
        """A canonical table with every canonical column present and time columns as datetimes.

        A table the caller did not pass is empty; a missing column is all NULL, so that tiny
        hand-made frames in tests need only the columns they are about.
        """
        def make() -> pd.DataFrame:
            spec = TABLES[name]
            given = self.tables.get(name)
            df = pd.DataFrame() if given is None else given.reset_index(drop=True)
            n = len(df)
            for col in spec.columns:
                if col.name not in df.columns:
                    df[col.name] = pd.Series([None] * n, index=df.index, dtype=object)
                if col.type in _TIME_TYPES:
                    df[col.name] = pd.to_datetime(df[col.name])
                elif col.type in ("float64", "int64"):
                    df[col.name] = pd.to_numeric(df[col.name])
            for meta in ("profile_id", "source"):
                if meta not in df.columns:
                    df[meta] = pd.Series([None] * n, index=df.index, dtype=object)
            return df
        return self._cached("table:" + name, make)

    def window(self, ts: pd.Series) -> pd.Series:
        """`ts >= since 00:00` and `ts < (until + 1 day) 00:00` (both inclusive dates)."""
        keep = pd.Series(True, index=ts.index)
        ts = pd.to_datetime(ts)
        if self.since is not None:
            keep &= ts >= pd.Timestamp(self.since)
        if self.until is not None:
            keep &= ts < pd.Timestamp(self.until) + pd.Timedelta(days=1)
        return keep

    def frame(self, df: pd.DataFrame, ts_col: str, dims: Mapping[str, str]) -> pd.DataFrame:
        """Window the unit rows by their time, add `_period` and one column per `by` dimension."""
        if self.since is not None or self.until is not None:
            df = df.loc[self.window(df[ts_col])]
        extra: dict[str, Any] = {"_period": period_index(df[ts_col], self.grain)}
        for d in self.by:
            if d in PROFILE_DIMS:
                extra[d] = df["profile_id"].map(self.profile_dim(d))
            else:
                extra[d] = df[dims[d]]
        return df.assign(**extra)

    # -- orders --------------------------------------------------------------------------

    @property
    def orders(self) -> pd.DataFrame:
        return self.table("orders")

    @property
    def valid_orders(self) -> pd.DataFrame:
        """Orders whose status is `completed` or missing."""
        def make() -> pd.DataFrame:
            o = self.orders
            return o.loc[o["status"].isna() | o["status"].eq("completed")]
        return self._cached("valid_orders", make)

    @property
    def first_orders(self) -> pd.DataFrame:
        """Per profile, its first valid order (ties by order_id, then source), with lifetime facts.

        CHOICE: ties between a profile's first orders at the same instant go to the smallest
        order_id (then source); the document only says "that first order".
        """
        def make() -> pd.DataFrame:
            o = self.valid_orders
            o = o.loc[o["profile_id"].notna()].sort_values(
                ["ordered_at", "order_id", "source"], kind="stable", na_position="last")
            first = o.drop_duplicates("profile_id", keep="first").set_index("profile_id")
            last_at = o.groupby("profile_id")["ordered_at"].max()
            first["last_at"] = last_at
            first["lifespan_days"] = (first["last_at"] - first["ordered_at"]).dt.total_seconds() / 86_400
            first["clv"] = self._clv(o, first["ordered_at"])
            return first.reset_index()
        return self._cached(f"first_orders:{self.lifespan_days}", make)

    def _clv(self, profile_orders: pd.DataFrame, first_at: pd.Series) -> pd.Series:
        """Cumulative margin (or revenue) of valid orders in [first, first + lifespan_days).

        Margin applies when at least one valid order in the workspace has a cost.
        CHOICE: in margin mode an order without a cost contributes its revenue (cost taken as 0).
        CHOICE: the lifespan window looks at all of the profile's valid orders, whatever the
        `--since/--until` window (that filters the units, i.e. the first orders).
        """
        use_margin = bool(self.valid_orders["cost"].notna().any())
        o = profile_orders
        amount = o["revenue"] - o["cost"].fillna(0.0) if use_margin else o["revenue"]
        start = pd.Series(first_at.reindex(o["profile_id"]).to_numpy(), index=o.index)
        inside = (o["ordered_at"] >= start) & (o["ordered_at"] < start + pd.Timedelta(days=self.lifespan_days))
        return amount.where(inside, 0.0).groupby(o["profile_id"]).sum()

    # -- profiles ------------------------------------------------------------------------

    def profile_dim(self, name: str) -> pd.Series:
        """profile_id -> the profile's value of a profile dimension.

        CHOICE: "the greatest non-null value per profile" is applied to every customers
        attribute (country, region, ..., acquisition_channel), not only to acquisition_channel.
        """
        def make() -> pd.Series:
            if name == "cohort":
                f = self.first_orders
                return pd.Series(f["ordered_at"].dt.strftime("%Y-%m").to_numpy(), index=f["profile_id"].to_numpy())
            c = self.table("customers")
            c = c.loc[c["profile_id"].notna()]
            col = c[name]
            if name == "loyalty_member":
                col = col.astype("boolean")
            return col.groupby(c["profile_id"]).max()
        return self._cached("profile:" + name, make)

    # -- events, sessions, cases ---------------------------------------------------------

    @property
    def sessions(self) -> pd.DataFrame:
        return self._cached("sessions", lambda: build_sessions(self.table("events")))

    @property
    def cases(self) -> pd.DataFrame:
        return self._cached("cases", lambda: build_cases(self.table("interactions")))

    def events_of(self, *types: str) -> pd.DataFrame:
        ev = self.table("events")
        return ev.loc[ev["event_type"].isin(types)]


# --------------------------------------------------------------------------------------------
# Aggregation helpers: every metric ends in one of these
# --------------------------------------------------------------------------------------------


def _group(df: pd.DataFrame, keys: list[str], col: str, how: str) -> pd.DataFrame:
    """value = `how` of `col` per group, n = rows in the group."""
    if how == "size":
        out = df.groupby(keys, dropna=False, sort=False).size().rename("n").reset_index()
        out["value"] = out["n"].astype(float)
        return out
    values = df.assign(_x=df[col].astype(float))
    return values.groupby(keys, dropna=False, sort=False).agg(value=("_x", how), n=("_x", "size")).reset_index()


def _ratio(num: pd.DataFrame, den: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """numerator / denominator per group (both given as column `x`).

    A group with only a denominator is 0; a group whose denominator is 0 or absent has no value
    and n = 0, and is kept only when it has numerator rows.
    """
    num = _merge_ready(num[keys + ["x"]].rename(columns={"x": "numerator"}).assign(_has_num=True), keys)
    den = _merge_ready(den[keys + ["x"]].rename(columns={"x": "denominator"}), keys)
    m = num.merge(den, on=keys, how="outer")
    m["_has_num"] = m["_has_num"].astype("boolean").fillna(False).astype(bool)
    m["numerator"] = m["numerator"].astype(float).fillna(0.0)
    m["denominator"] = m["denominator"].astype(float).fillna(0.0)
    ok = m["denominator"].ne(0)
    m = m.loc[ok | m["_has_num"]].copy()
    ok = m["denominator"].ne(0)
    m["value"] = (m["numerator"] / m["denominator"]).where(ok, np.nan)
    m["n"] = m["denominator"].where(ok, 0.0).round().astype(np.int64)
    return m.drop(columns="_has_num")


def _merge_ready(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Group keys with one dtype on both sides of a merge: int periods, object dims (None = NULL).

    The two sides of a ratio come from different tables, so the same dimension can arrive as
    `str` on one side and as all-NaN float on an empty other side.
    """
    out = df.assign(_period=df["_period"].astype(np.int64))
    for k in keys[1:]:
        out[k] = _normalize(out[k])
    return out


def _count(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Rows per group as column `x` (a ratio side)."""
    return df.groupby(keys, dropna=False, sort=False).size().rename("x").reset_index()


def _sum(df: pd.DataFrame, keys: list[str], col: str) -> pd.DataFrame:
    """Sum of `col` per group as column `x` (a ratio side)."""
    return df.groupby(keys, dropna=False, sort=False)[col].sum().rename("x").reset_index()


def _normalize(s: pd.Series) -> pd.Series:
    """A dimension column as objects, missing values as None (NaN, NA, NaT alike)."""
    out = s.astype(object)
    return out.where(s.notna().to_numpy(), None)


def _finish(q: _Query, out: pd.DataFrame, ratio: bool) -> pd.DataFrame:
    """The output contract: period_start (date), dims in `by` order, value, n, [num, den]."""
    out = out.sort_values(q.keys, kind="stable", na_position="last").reset_index(drop=True)
    res = pd.DataFrame(index=out.index)
    if q.grain != "all":
        starts = pd.to_datetime(period_start(out["_period"].to_numpy(), q.grain))
        res["period_start"] = pd.Series([t.date() for t in starts], index=out.index, dtype=object)
    for d in q.by:
        res[d] = _normalize(out[d])
    res["value"] = out["value"].astype(float)
    res["n"] = out["n"].astype(np.int64)
    if ratio:
        res["numerator"] = out["numerator"].astype(float)
        res["denominator"] = out["denominator"].astype(float)
    return res


# --------------------------------------------------------------------------------------------
# Value and loyalty
# --------------------------------------------------------------------------------------------


def _orders_frame(q: _Query) -> pd.DataFrame:
    return q.frame(q.valid_orders, "ordered_at", ORDER_DIMS)


def m_revenue(q: _Query) -> pd.DataFrame:
    return _group(_orders_frame(q), q.keys, "revenue", "sum")


def m_orders(q: _Query) -> pd.DataFrame:
    return _group(_orders_frame(q), q.keys, "revenue", "size")


def m_aov(q: _Query) -> pd.DataFrame:
    return _group(_orders_frame(q), q.keys, "revenue", "mean")


def m_return_rate(q: _Query) -> pd.DataFrame:
    o = q.orders
    o = o.loc[o["status"].isna() | o["status"].isin(("completed", "returned"))]
    o = q.frame(o, "ordered_at", ORDER_DIMS)
    return _group(o.assign(_returned=o["status"].eq("returned")), q.keys, "_returned", "mean")


def _per_customer(q: _Query) -> pd.DataFrame:
    """One row per active customer (profile x group): order count and revenue."""
    o = _orders_frame(q)
    o = o.loc[o["profile_id"].notna()]
    return (o.groupby(q.keys + ["profile_id"], dropna=False, sort=False)
            .agg(orders=("revenue", "size"), revenue=("revenue", "sum")).reset_index())


def m_active_customers(q: _Query) -> pd.DataFrame:
    return _group(_per_customer(q), q.keys, "orders", "size")


def m_purchase_frequency(q: _Query) -> pd.DataFrame:
    return _group(_per_customer(q), q.keys, "orders", "mean")


def m_revenue_per_customer(q: _Query) -> pd.DataFrame:
    return _group(_per_customer(q), q.keys, "revenue", "mean")


def m_repeat_purchase_rate(q: _Query) -> pd.DataFrame:
    per = _per_customer(q)
    return _group(per.assign(_repeat=per["orders"].ge(2)), q.keys, "_repeat", "mean")


def _acquired(q: _Query, dims: Mapping[str, str] = ORDER_DIMS) -> pd.DataFrame:
    """Units 'profiles by acquisition': the first valid order's time and dimension values.

    CHOICE: for `customer_lifespan` and `historical_clv` the dimension values also come from the
    first order, as the document says for `new_customers`.
    """
    return q.frame(q.first_orders, "ordered_at", dims)


def m_new_customers(q: _Query) -> pd.DataFrame:
    return _group(_acquired(q), q.keys, "revenue", "size")


def m_customer_lifespan(q: _Query) -> pd.DataFrame:
    # CHOICE: days are fractional (seconds / 86,400), as the document spells out for recency.
    return _group(_acquired(q), q.keys, "lifespan_days", "mean")


def m_historical_clv(q: _Query) -> pd.DataFrame:
    return _group(_acquired(q), q.keys, "clv", "mean")


def _retention_units(q: _Query) -> pd.DataFrame:
    """Units (profile, P) with a valid order in P - 1, flagged with `_retained` (an order in P).

    With `by`, the unit takes its row dimension values from its orders in P - 1 (one unit per
    distinct value). CHOICE: `_retained` is any valid order in P, whatever its dimension values.
    CHOICE: a unit's time for --since/--until is the start of P.
    """
    o = q.valid_orders
    o = o.loc[o["profile_id"].notna()]
    idx = period_index(o["ordered_at"], q.grain)
    if len(q.valid_orders) == 0:
        return pd.DataFrame(columns=[*q.keys, "_retained"])
    last = period_index(pd.Series([q.valid_orders["ordered_at"].max()]), q.grain)[0]
    units = pd.DataFrame({"profile_id": o["profile_id"].to_numpy(), "_period": idx + 1})
    for d in q.by:
        units[d] = (o["profile_id"].map(q.profile_dim(d)) if d in PROFILE_DIMS else o[ORDER_DIMS[d]]).to_numpy()
    units = units.drop_duplicates()
    units = units.loc[units["_period"] <= last]
    start = pd.Series(period_start(units["_period"].to_numpy(), q.grain), index=units.index)
    units = units.loc[q.window(start)]
    active = pd.DataFrame({"profile_id": o["profile_id"].to_numpy(), "_period": idx}).drop_duplicates()
    active["_retained"] = True
    units = units.merge(active, on=["profile_id", "_period"], how="left")
    units["_retained"] = units["_retained"].astype("boolean").fillna(False).astype(bool)
    return units


def m_retention_rate(q: _Query) -> pd.DataFrame:
    return _group(_retention_units(q), q.keys, "_retained", "mean")


def m_churn_rate(q: _Query) -> pd.DataFrame:
    u = _retention_units(q)
    return _group(u.assign(_churned=~u["_retained"].astype(bool)), q.keys, "_churned", "mean")


def m_subscription_churn_rate(q: _Query) -> pd.DataFrame:
    """Units: subscriptions active at the start s of P; value: share ending within P.

    CHOICE: the periods examined run from the period of the first `started_at` to the period of
    the latest `started_at`/`ended_at` in the table; a unit's time for --since/--until is s.
    """
    subs = q.table("subscriptions")
    if len(subs) == 0:
        return pd.DataFrame(columns=[*q.keys, "value", "n"])
    first = period_index(pd.Series([subs["started_at"].min()]), q.grain)[0]
    latest = max(subs["started_at"].max(), subs["ended_at"].max() if subs["ended_at"].notna().any() else subs["started_at"].max())
    last = period_index(pd.Series([latest]), q.grain)[0]
    parts = []
    for p in range(int(first), int(last) + 1):
        s, e = (pd.Timestamp(x) for x in period_start(np.array([p, p + 1]), q.grain))
        active = (subs["started_at"] < s) & (subs["ended_at"].isna() | (subs["ended_at"] >= s))
        unit = subs.loc[active, ["profile_id", "ended_at"]].copy()
        unit["_s"] = s
        unit["_period"] = p
        unit["_churned"] = (unit["ended_at"] >= s) & (unit["ended_at"] < e)
        parts.append(unit)
    units = pd.concat(parts, ignore_index=True)
    units = units.loc[q.window(units["_s"])]
    for d in q.by:
        units[d] = units["profile_id"].map(q.profile_dim(d))
    return _group(units, q.keys, "_churned", "mean")


def _cac_sides(q: _Query) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Acquisition costs, and new customers with `channel` = their acquisition_channel."""
    costs = q.table("costs")
    costs = q.frame(costs.loc[costs["kind"].eq("acquisition")], "incurred_on", CHANNEL_DIM)
    acquired = q.first_orders.assign(_acq=lambda f: f["profile_id"].map(q.profile_dim("acquisition_channel")))
    acquired = q.frame(acquired, "ordered_at", {"channel": "_acq"})
    return _sum(costs, q.keys, "amount"), _count(acquired, q.keys), acquired


def m_cac(q: _Query) -> pd.DataFrame:
    cost, new, _ = _cac_sides(q)
    return _ratio(cost, new, q.keys)


def m_clv_to_cac(q: _Query) -> pd.DataFrame:
    """historical_clv / cac of the same group; n = new customers.

    CHOICE: with `--by channel` the historical_clv side groups the new customers by their
    acquisition_channel, exactly as cac's denominator does, so both sides rest on the same
    customers (grouping clv by the first order's channel would never meet cac's channels).
    """
    cost, new, acquired = _cac_sides(q)
    cac = _ratio(cost, new, q.keys)[q.keys + ["value"]].rename(columns={"value": "_cac"})
    clv = acquired.groupby(q.keys, dropna=False, sort=False).agg(
        numerator=("clv", "mean"), _new=("clv", "size")).reset_index()
    m = _merge_ready(clv, q.keys).merge(_merge_ready(cac, q.keys), on=q.keys, how="left")
    m["denominator"] = m["_cac"].astype(float)
    ok = m["denominator"].notna() & m["denominator"].ne(0)
    m["value"] = (m["numerator"] / m["denominator"]).where(ok, np.nan)
    m["n"] = m["_new"].where(ok, 0)
    return m


# --------------------------------------------------------------------------------------------
# Feedback
# --------------------------------------------------------------------------------------------


def _answers(q: _Query, survey_type: str) -> pd.DataFrame:
    a = q.table("survey_responses")
    a = q.frame(a.loc[a["survey_type"].eq(survey_type)], "responded_at", ANSWER_DIMS)
    return a.assign(_score=pd.to_numeric(a["score"]).astype(float))


def _nps_parts(q: _Query) -> pd.DataFrame:
    a = _answers(q, "nps")
    s = a["_score"]
    return a.assign(
        _promoter=s.between(9, 10), _passive=s.between(7, 8), _detractor=s.between(0, 6))


def m_nps(q: _Query) -> pd.DataFrame:
    a = _nps_parts(q)
    a = a.assign(_nps=100.0 * (a["_promoter"].astype(float) - a["_detractor"].astype(float)))
    return _group(a, q.keys, "_nps", "mean")


def m_promoters(q: _Query) -> pd.DataFrame:
    return _group(_nps_parts(q), q.keys, "_promoter", "mean")


def m_passives(q: _Query) -> pd.DataFrame:
    return _group(_nps_parts(q), q.keys, "_passive", "mean")


def m_detractors(q: _Query) -> pd.DataFrame:
    return _group(_nps_parts(q), q.keys, "_detractor", "mean")


def m_csat(q: _Query) -> pd.DataFrame:
    # CHOICE: a fraction (0..1), as "share" and "Proportions are means of 0/1" say; DESIGN.md
    # speaks of CSAT "in %".
    a = _answers(q, "csat")
    return _group(a.assign(_sat=a["_score"].between(4, 5)), q.keys, "_sat", "mean")


def m_csat_mean(q: _Query) -> pd.DataFrame:
    return _group(_answers(q, "csat"), q.keys, "_score", "mean")


def m_ces(q: _Query) -> pd.DataFrame:
    return _group(_answers(q, "ces"), q.keys, "_score", "mean")


def m_survey_response_rate(q: _Query) -> pd.DataFrame:
    a = q.frame(q.table("survey_responses"), "responded_at", CHANNEL_DIM)
    sent = q.frame(q.events_of("survey_sent"), "occurred_at", CHANNEL_DIM)
    return _ratio(_count(a, q.keys), _count(sent, q.keys), q.keys)


# --------------------------------------------------------------------------------------------
# Web and funnel
# --------------------------------------------------------------------------------------------


def _sessions_frame(q: _Query) -> pd.DataFrame:
    return q.frame(q.sessions, "ts", SESSION_DIMS)


def _session_mean(col: str) -> Callable[[_Query], pd.DataFrame]:
    def metric(q: _Query) -> pd.DataFrame:
        return _group(_sessions_frame(q), q.keys, col, "mean")
    return metric


def m_sessions(q: _Query) -> pd.DataFrame:
    return _group(_sessions_frame(q), q.keys, "events", "size")


def _per_visitor(q: _Query) -> pd.DataFrame:
    """One row per visitor and group: whether any of its sessions there is new / a lead.

    CHOICE: sessions without a visitor (a session_id but no identifier) have no visitor unit.
    """
    s = _sessions_frame(q)
    s = s.loc[s["visitor"].notna()]
    return (s.groupby(q.keys + ["visitor"], dropna=False, sort=False)
            .agg(_new=("new", "any"), _lead=("lead", "any")).reset_index())


def m_visitors(q: _Query) -> pd.DataFrame:
    return _group(_per_visitor(q), q.keys, "_new", "size")


def m_new_visitor_share(q: _Query) -> pd.DataFrame:
    return _group(_per_visitor(q), q.keys, "_new", "mean")


def m_returning_visitor_share(q: _Query) -> pd.DataFrame:
    v = _per_visitor(q)
    return _group(v.assign(_returning=~v["_new"].astype(bool)), q.keys, "_returning", "mean")


def m_traffic_to_lead_ratio(q: _Query) -> pd.DataFrame:
    return _group(_per_visitor(q), q.keys, "_lead", "mean")


def m_cart_abandonment_rate(q: _Query) -> pd.DataFrame:
    s = _sessions_frame(q)
    s = s.loc[s["carted"].astype(bool)]
    return _group(s.assign(_abandoned=~s["converted"].astype(bool)), q.keys, "_abandoned", "mean")


def m_traffic_sources(q: _Query) -> pd.DataFrame:
    """Sessions in the group / sessions of the same period and other dims over all sources.

    n = sessions of the period (the share's denominator, as the doc says). CHOICE: with both channel_group and
    traffic_source in `by`, the share is taken over all values of both.
    """
    s = _sessions_frame(q)
    counts = _count(s, q.keys)
    rest = [k for k in q.keys if k not in ("channel_group", "traffic_source")]
    total = counts.groupby(rest, dropna=False, sort=False)["x"].sum().rename("_total").reset_index()
    m = counts.merge(total, on=rest, how="left")
    m["value"] = m["x"] / m["_total"]
    m["n"] = m["_total"]
    return m


# --------------------------------------------------------------------------------------------
# Messaging and recommendations
# --------------------------------------------------------------------------------------------


def _event_ratio(numerator_type: str, denominator_type: str, dims: Mapping[str, str]) -> Callable[[_Query], pd.DataFrame]:
    """A ratio of two event counts, each event counted in its own period."""
    def metric(q: _Query) -> pd.DataFrame:
        num = q.frame(q.events_of(numerator_type), "occurred_at", dims)
        den = q.frame(q.events_of(denominator_type), "occurred_at", dims)
        return _ratio(_count(num, q.keys), _count(den, q.keys), q.keys)
    return metric


# --------------------------------------------------------------------------------------------
# Engagement
# --------------------------------------------------------------------------------------------


def engagement_score_value(recency_days: Any, sessions: Any, depth: Any, message: Any,
                           weights: Mapping[str, float] = ENGAGEMENT_WEIGHTS,
                           half_life_days: float = ENGAGEMENT_HALF_LIFE_DAYS,
                           full_sessions: float = ENGAGEMENT_FULL_SESSIONS,
                           full_pages: float = ENGAGEMENT_FULL_PAGES) -> Any:
    """The score formula of the definitions file (scalars or arrays)."""
    w_r, w_f, w_d, w_m = (weights[k] for k in ("recency", "frequency", "depth", "message"))
    total = (w_r * np.power(2.0, -np.asarray(recency_days, dtype=float) / half_life_days)
             + w_f * np.minimum(np.asarray(sessions, dtype=float) / full_sessions, 1.0)
             + w_d * np.minimum(np.asarray(depth, dtype=float) / full_pages, 1.0)
             + w_m * np.asarray(message, dtype=float))
    return 100.0 * total / (w_r + w_f + w_d + w_m)


def m_engagement_score(q: _Query) -> pd.DataFrame:
    """Mean score over profiles with a session, a message event or a valid order in the group.

    CHOICE: a session's activity time is its `ts` (first event). CHOICE: "the last activity time
    in the whole workspace" is over all sessions, message events and valid orders, with or
    without a profile, ignoring --since/--until.
    """
    s = q.sessions
    msg = q.events_of(*MESSAGE_TYPES)
    o = q.valid_orders
    acts = pd.concat([
        pd.DataFrame({"profile_id": s["profile_id"].to_numpy(dtype=object), "ts": s["ts"].to_numpy(),
                      "_session": 1, "_pages": s["pages"].to_numpy(dtype=float), "_type": "session"}),
        pd.DataFrame({"profile_id": msg["profile_id"].to_numpy(dtype=object), "ts": msg["occurred_at"].to_numpy(),
                      "_session": 0, "_pages": 0.0, "_type": msg["event_type"].to_numpy(dtype=object)}),
        pd.DataFrame({"profile_id": o["profile_id"].to_numpy(dtype=object), "ts": o["ordered_at"].to_numpy(),
                      "_session": 0, "_pages": 0.0, "_type": "order"}),
    ], ignore_index=True)
    if len(acts) == 0:
        return pd.DataFrame(columns=[*q.keys, "value", "n"])
    acts["ts"] = pd.to_datetime(acts["ts"])
    workspace_last = acts["ts"].max()
    acts = acts.loc[acts["profile_id"].notna()]
    acts = q.frame(acts, "ts", {})
    for kind in ("message_sent", "message_opened", "message_clicked"):
        acts[kind] = acts["_type"].eq(kind).astype(np.int64)
    per = (acts.groupby(q.keys + ["profile_id"], dropna=False, sort=False)
           .agg(last=("ts", "max"), f=("_session", "sum"), pages=("_pages", "sum"),
                sent=("message_sent", "sum"), opened=("message_opened", "sum"),
                clicked=("message_clicked", "sum"))
           .reset_index())
    # CHOICE: "the end of the group's period" is the (exclusive) start of the next period.
    if q.grain == "all":
        ref = pd.Series(workspace_last, index=per.index)
    else:
        end = pd.Series(period_start(per["_period"].to_numpy() + 1, q.grain), index=per.index)
        ref = end.where(end < workspace_last, workspace_last)
    r = (ref - per["last"]).dt.total_seconds() / 86_400
    f = per["f"].astype(float)
    d = (per["pages"] / f).where(f > 0, 0.0)
    m = ((per["opened"] + per["clicked"]) / per["sent"]).where(per["sent"] > 0, 0.0).clip(upper=1.0)
    per["_score"] = engagement_score_value(r, f, d, m)
    return _group(per, q.keys, "_score", "mean")


# --------------------------------------------------------------------------------------------
# Offline
# --------------------------------------------------------------------------------------------


def _store_orders(q: _Query, dims: Mapping[str, str]) -> pd.DataFrame:
    o = q.valid_orders
    return q.frame(o.loc[o["channel"].eq("store")], "ordered_at", dims)


def m_store_sales(q: _Query) -> pd.DataFrame:
    return _group(_store_orders(q, ORDER_DIMS), q.keys, "revenue", "sum")


def _traffic(q: _Query) -> pd.DataFrame:
    return q.frame(q.table("store_traffic"), "day", STORE_DIMS)


def m_store_traffic(q: _Query) -> pd.DataFrame:
    return _group(_traffic(q), q.keys, "visitors", "sum")


def m_store_conversion_rate(q: _Query) -> pd.DataFrame:
    return _ratio(_count(_store_orders(q, STORE_DIMS), q.keys), _sum(_traffic(q), q.keys, "visitors"), q.keys)


def m_coupon_redemption_rate(q: _Query) -> pd.DataFrame:
    o = _orders_frame(q)
    return _group(o.assign(_coupon=_map_unique(o["coupon_code"], _present).astype(bool)), q.keys, "_coupon", "mean")


def m_loyalty_enrollment_rate(q: _Query) -> pd.DataFrame:
    """Distinct enrolled profiles / active customers of the same group.

    CHOICE: `loyalty_enrolled` events without a profile_id are not counted at all (they are not
    profiles), so a group made only of such events does not appear.
    """
    ev = q.events_of("loyalty_enrolled")
    ev = q.frame(ev.loc[ev["profile_id"].notna()], "occurred_at", CHANNEL_DIM)
    enrolled = ev.groupby(q.keys, dropna=False, sort=False)["profile_id"].nunique().rename("x").reset_index()
    o = q.frame(q.valid_orders, "ordered_at", CHANNEL_DIM)
    o = o.loc[o["profile_id"].notna()]
    active = o.groupby(q.keys, dropna=False, sort=False)["profile_id"].nunique().rename("x").reset_index()
    return _ratio(enrolled, active, q.keys)


# --------------------------------------------------------------------------------------------
# Service and effort
# --------------------------------------------------------------------------------------------


def _interactions(q: _Query) -> pd.DataFrame:
    return q.frame(q.table("interactions"), "started_at", INTERACTION_DIMS)


def m_contacts_per_customer(q: _Query) -> pd.DataFrame:
    it = _interactions(q)
    it = it.loc[it["profile_id"].notna()]
    per = it.groupby(q.keys + ["profile_id"], dropna=False, sort=False).size().rename("_contacts").reset_index()
    return _group(per, q.keys, "_contacts", "mean")


def m_transfer_rate(q: _Query) -> pd.DataFrame:
    it = _interactions(q)
    return _group(it.assign(_t=it["transfers"].fillna(0).gt(0)), q.keys, "_t", "mean")


def m_avg_wait_seconds(q: _Query) -> pd.DataFrame:
    it = _interactions(q)
    return _group(it.loc[it["wait_seconds"].notna()], q.keys, "wait_seconds", "mean")


def _cases_frame(q: _Query) -> pd.DataFrame:
    return q.frame(q.cases, "ts", CASE_DIMS)


def m_first_contact_resolution_rate(q: _Query) -> pd.DataFrame:
    c = _cases_frame(q)
    return _group(c.assign(_fcr=c["contacts"].eq(1) & c["resolved"]), q.keys, "_fcr", "mean")


def m_repeat_contact_rate(q: _Query) -> pd.DataFrame:
    c = _cases_frame(q)
    return _group(c.assign(_repeat=c["contacts"].ge(2)), q.keys, "_repeat", "mean")


def m_channel_switch_rate(q: _Query) -> pd.DataFrame:
    c = _cases_frame(q)
    return _group(c.assign(_switch=c["channels"].ge(2)), q.keys, "_switch", "mean")


# --------------------------------------------------------------------------------------------
# The catalogue
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricSpec:
    """What the reference needs to know about a metric besides its computation."""

    compute: Callable[[_Query], pd.DataFrame]
    row_dims: frozenset[str]
    profile_dims: bool = True
    """Units carry a profile_id (False for store traffic and costs, which name nobody)."""
    needs_period: bool = False
    """Grain `all` is refused (retention, churn, subscription churn)."""
    ratio: bool = False
    """Two sources: the output carries `numerator` and `denominator`."""


def _spec(compute: Callable[[_Query], pd.DataFrame], dims: Mapping[str, str], **kw: Any) -> MetricSpec:
    return MetricSpec(compute=compute, row_dims=frozenset(dims), **kw)


_SESSION_MEANS = {
    "bounce_rate": "bounced",
    "avg_session_duration": "duration",
    "pages_per_session": "pages",
    "conversion_rate": "converted",
    "revenue_per_visit": "revenue",
}

# CHOICE: `status` is in no list below. The Dimensions section names it for `return_rate`, the
# `return_rate` entry says "Dims: + `status` is not allowed"; the entry wins (it is more
# specific, and by status the rate is trivially 0 or 1).
# CHOICE: `promoters`, `passives`, `detractors` ("also reported") are metric ids of their own.
# CHOICE: profile dimensions need a profile on every side: refused for costs (cac, clv_to_cac)
# and store traffic (store_traffic, store_conversion_rate).
CATALOGUE: dict[str, MetricSpec] = {
    # Value and loyalty
    "revenue": _spec(m_revenue, ORDER_DIMS),
    "orders": _spec(m_orders, ORDER_DIMS),
    "return_rate": _spec(m_return_rate, ORDER_DIMS),
    "aov": _spec(m_aov, ORDER_DIMS),
    "active_customers": _spec(m_active_customers, ORDER_DIMS),
    "new_customers": _spec(m_new_customers, ORDER_DIMS),
    "purchase_frequency": _spec(m_purchase_frequency, ORDER_DIMS),
    "revenue_per_customer": _spec(m_revenue_per_customer, ORDER_DIMS),
    "repeat_purchase_rate": _spec(m_repeat_purchase_rate, ORDER_DIMS),
    "retention_rate": _spec(m_retention_rate, ORDER_DIMS, needs_period=True),
    "churn_rate": _spec(m_churn_rate, ORDER_DIMS, needs_period=True),
    "subscription_churn_rate": _spec(m_subscription_churn_rate, {}, needs_period=True),
    "customer_lifespan": _spec(m_customer_lifespan, ORDER_DIMS),
    "historical_clv": _spec(m_historical_clv, ORDER_DIMS),
    "cac": _spec(m_cac, CHANNEL_DIM, profile_dims=False, ratio=True),
    "clv_to_cac": _spec(m_clv_to_cac, CHANNEL_DIM, profile_dims=False, ratio=True),
    # Feedback
    "nps": _spec(m_nps, ANSWER_DIMS),
    "promoters": _spec(m_promoters, ANSWER_DIMS),
    "passives": _spec(m_passives, ANSWER_DIMS),
    "detractors": _spec(m_detractors, ANSWER_DIMS),
    "csat": _spec(m_csat, ANSWER_DIMS),
    "csat_mean": _spec(m_csat_mean, ANSWER_DIMS),
    "ces": _spec(m_ces, ANSWER_DIMS),
    "survey_response_rate": _spec(m_survey_response_rate, CHANNEL_DIM, ratio=True),
    # Web and funnel
    "sessions": _spec(m_sessions, SESSION_DIMS),
    "visitors": _spec(m_visitors, SESSION_DIMS),
    "new_visitor_share": _spec(m_new_visitor_share, SESSION_DIMS),
    "returning_visitor_share": _spec(m_returning_visitor_share, SESSION_DIMS),
    **{mid: _spec(_session_mean(col), SESSION_DIMS) for mid, col in _SESSION_MEANS.items()},
    "cart_abandonment_rate": _spec(m_cart_abandonment_rate, SESSION_DIMS),
    "traffic_to_lead_ratio": _spec(m_traffic_to_lead_ratio, SESSION_DIMS),
    "traffic_sources": _spec(m_traffic_sources, SESSION_DIMS),
    # Messaging
    "open_rate": _spec(_event_ratio("message_opened", "message_sent", MESSAGE_DIMS), MESSAGE_DIMS, ratio=True),
    "click_through_rate": _spec(_event_ratio("message_clicked", "message_sent", MESSAGE_DIMS), MESSAGE_DIMS, ratio=True),
    "click_to_open_rate": _spec(_event_ratio("message_clicked", "message_opened", MESSAGE_DIMS), MESSAGE_DIMS, ratio=True),
    "unsubscribe_rate": _spec(_event_ratio("message_unsubscribed", "message_sent", MESSAGE_DIMS), MESSAGE_DIMS, ratio=True),
    "recommendation_click_through_rate": _spec(
        _event_ratio("recommendation_clicked", "recommendation_shown", RECOMMENDATION_DIMS),
        RECOMMENDATION_DIMS, ratio=True),
    # Engagement: units are profiles, so only profile dimensions apply.
    "engagement_score": _spec(m_engagement_score, {}),
    # Offline
    "store_sales": _spec(m_store_sales, ORDER_DIMS),
    "store_traffic": _spec(m_store_traffic, STORE_DIMS, profile_dims=False),
    "store_conversion_rate": _spec(m_store_conversion_rate, STORE_DIMS, profile_dims=False, ratio=True),
    "coupon_redemption_rate": _spec(m_coupon_redemption_rate, ORDER_DIMS),
    "loyalty_enrollment_rate": _spec(m_loyalty_enrollment_rate, CHANNEL_DIM, ratio=True),
    # Service and effort
    "contacts_per_customer": _spec(m_contacts_per_customer, INTERACTION_DIMS),
    "first_contact_resolution_rate": _spec(m_first_contact_resolution_rate, CASE_DIMS),
    "repeat_contact_rate": _spec(m_repeat_contact_rate, CASE_DIMS),
    "transfer_rate": _spec(m_transfer_rate, INTERACTION_DIMS),
    "channel_switch_rate": _spec(m_channel_switch_rate, CASE_DIMS),
    "avg_wait_seconds": _spec(m_avg_wait_seconds, INTERACTION_DIMS),
}

METRIC_IDS: tuple[str, ...] = tuple(CATALOGUE)
RATIO_METRICS: tuple[str, ...] = tuple(m for m, s in CATALOGUE.items() if s.ratio)


def allowed_dims(metric_id: str) -> tuple[str, ...]:
    """The `by` dimensions the reference accepts for a metric (segment is never supported)."""
    spec = CATALOGUE[metric_id]
    return (*sorted(spec.row_dims), *(PROFILE_DIMS if spec.profile_dims else ()))


def _validate(metric_id: str, grain: str, by: list[str], lifespan_days: int) -> MetricSpec:
    if metric_id not in CATALOGUE:
        raise ValueError(f"unknown metric {metric_id!r}")
    spec = CATALOGUE[metric_id]
    if grain not in GRAINS:
        raise ValueError(f"unknown grain {grain!r}; expected one of {', '.join(GRAINS)}")
    if grain == "all" and spec.needs_period:
        raise ValueError(f"{metric_id} needs a grain other than 'all'")
    if len(set(by)) != len(by):
        raise ValueError(f"a dimension is repeated in {by}")
    allowed = allowed_dims(metric_id)
    for d in by:
        if d not in allowed:
            raise ValueError(f"{metric_id} cannot be broken down by {d!r}; allowed: {', '.join(allowed)}")
    if lifespan_days <= 0:
        raise ValueError("lifespan_days must be positive")
    return spec


def reference(metric_id: str, tables: Mapping[str, pd.DataFrame], *, grain: str = "month",
              by: Sequence[str] = (), since: dt.date | None = None, until: dt.date | None = None,
              lifespan_days: int = 365) -> pd.DataFrame:
    """Compute one metric of the catalogue from canonical tables, as the definitions file says.

    Returns `period_start` (a date; absent for grain `all`), the `by` columns in order, `value`
    (float, NaN when there is none), `n` (int) and, for ratio metrics, `numerator` and
    `denominator`; sorted by period then dimensions; groups without any rows are left out.
    """
    by = list(by)
    if metric_id == "traffic_sources" and not {"channel_group", "traffic_source"} & set(by):
        # CHOICE: the default `channel_group` is appended after the dimensions asked for.
        by = [*by, "channel_group"]
    spec = _validate(metric_id, grain, by, lifespan_days)
    q = _Query(tables=tables, grain=grain, by=by, since=since, until=until, lifespan_days=lifespan_days)
    out = spec.compute(q)
    if len(out) == 0:
        out = pd.DataFrame({c: pd.Series(dtype=object) for c in q.keys}
                           | {"value": pd.Series(dtype=float), "n": pd.Series(dtype=np.int64)}
                           | ({"numerator": pd.Series(dtype=float), "denominator": pd.Series(dtype=float)} if spec.ratio else {}))
        out["_period"] = out["_period"].astype(np.int64)
    return _finish(q, out, spec.ratio)


CHOICES: tuple[str, ...] = (
    "Blank strings count as missing for referrer, utm_source, utm_medium, coupon_code.",
    "A referrer without a scheme is parsed as host/path.",
    "Sessions cut by inactivity are keyed visitor#NNNNNN (ordinal); only ties in `new` see it.",
    "A case's topic is its first contact's topic; a NULL `resolved` on the last contact is False.",
    "Case metrics allow `topic` only; interaction metrics allow `channel` and `topic`.",
    "Greatest non-null value per profile applies to every customers attribute.",
    "First-order ties go to the smallest order_id, then source.",
    "customer_lifespan and historical_clv take dimension values from the first valid order.",
    "customer_lifespan counts fractional days (seconds / 86,400).",
    "historical_clv in margin mode: an order without cost contributes its revenue; the "
    "lifespan window sees all the profile's orders regardless of --since/--until.",
    "retention/churn: retained = any valid order in P; a unit's time is the start of P.",
    "subscription_churn_rate: periods from the first started_at to the latest started_at or "
    "ended_at; a unit's time is the period start s.",
    "cac and clv_to_cac allow `channel` only (costs carry no profile); clv_to_cac groups its clv "
    "side by acquisition_channel like cac's denominator; n = new customers, 0 without a cac.",
    "csat is a fraction, not a percentage.",
    "promoters, passives, detractors are separate metric ids (shares of nps answers).",
    "traffic_sources: default dimension appended last.",
    "survey_response_rate and loyalty_enrollment_rate allow `channel` and profile dims.",
    "recommendation_click_through_rate allows channel, personalized, variant and profile dims.",
    "engagement_score allows profile dims only; a session's activity time is its ts; the "
    "workspace's last activity ignores the window and includes rows without a profile.",
    "loyalty_enrolled events without a profile_id are not counted.",
    "`status` is not accepted as a dimension anywhere (the return_rate entry says so).",
    "Sessions with a session_id but no visitor count as sessions, not as visitors.",
    "store_traffic and store_conversion_rate allow `store` only (no profile, no channel).",
    "engagement_score: the end of a period is the start of the next one (exclusive end).",
    "A row without `source` (hand-made frames only) is read as source ''.",
    "Sort order: period, then dims in `by` order, NULL dimension values last.",
)
