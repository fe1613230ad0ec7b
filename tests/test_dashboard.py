"""The dashboard over real HTTP: `cxlens serve` on a small demo workspace, keys from the real store.

Sign-in (wrong, write and revoked keys), the session cookie's flags, CSRF on every form, security
headers, Plotly served from the package, hostile query strings, and filtered KPI tiles checked
against pandas on the workspace's own orders table; the kept views: equal to a fresh computation,
shown only within the staleness window, saved for the next start, and a survey answer at once.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

import duckdb
import httpx
import pandas as pd
import pytest
from conftest import run_cli
from test_service_helpers import Server, bearer

from cxlens import Workspace
from cxlens.service.keys import create_key

PAGES = ("/dashboard/", "/dashboard/customers", "/dashboard/surveys", "/dashboard/experiments", "/dashboard/value",
         "/dashboard/journeys", "/dashboard/attribution")
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


_ENV: dict = {}
"""One workspace and server for this file and test_dashboard_browser.py (which imports the fixture:
pytest then holds one fixture per module, so the environment itself is built once here)."""


def _build_env(root: Path) -> dict:
    res = run_cli("demo", "--customers", "300", "--days", "120", "--out", str(root), "--format", "json")
    assert res.returncode == 0, res.stderr
    ws = root / "cxlens.duckdb"
    con = duckdb.connect(str(ws), read_only=True)
    try:
        orders = con.sql("SELECT ordered_at, revenue, status, channel FROM orders").df()
        email = con.sql("SELECT email FROM customers WHERE email LIKE '%@%' ORDER BY customer_id LIMIT 1").fetchone()[0]
    finally:
        con.close()
    keys: dict[str, str] = {}
    with Workspace.open(ws) as w:
        for label, scope, pii in (("read", "read", False), ("pii", "read", True), ("write", "write", False),
                                  ("browser", "read", False), ("doomed", "read", False), ("admin", "admin", False)):
            keys[label], _ = create_key(w, scope, f"dash-{label}", pii=pii)
    server = Server(ws, "--load-interval", "0.5").start()
    return {"ws": ws, "url": server.url, "keys": keys, "orders": orders, "email": email, "server": server}


@pytest.fixture(scope="session")
def dashboard_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A 300-customer, 120-day demo workspace, its orders read once for reference, keys, and a server."""
    if not _ENV:
        _ENV.update(_build_env(tmp_path_factory.mktemp("dashboard")))
    try:
        yield _ENV
    finally:
        _ENV["server"].stop()  # a second call (the other module's fixture) finds it stopped


@contextmanager
def sign_in(env: dict, key: str) -> Iterator[httpx.Client]:
    """A client holding a session cookie, signed in through the form like a browser."""
    with httpx.Client(base_url=env["url"], timeout=120) as client:
        token = CSRF.search(client.get("/dashboard/login").text).group(1)
        r = client.post("/dashboard/login", data={"key": key, "csrf": token})
        assert r.status_code == 303 and r.headers["location"] == "/dashboard/", r.text
        yield client


@pytest.fixture(scope="module")
def reader(dashboard_env: dict) -> Iterator[httpx.Client]:
    with sign_in(dashboard_env, dashboard_env["keys"]["read"]) as client:
        yield client


def tile_value(html: str, metric: str) -> tuple[str, float]:
    """The (period, value) a KPI tile shows, from its data attributes."""
    m = re.search(rf'data-metric="{metric}"\s+data-period="([^"]+)" data-value="([^"]+)"', html)
    assert m, f"no {metric} tile with a value"
    return m.group(1), float(m.group(2))


def valid_revenue(orders: pd.DataFrame, start: date, end: date, channel: str | None = None) -> float:
    """Revenue of valid orders (completed or no status) ordered in [start, end], as the metric defines it."""
    o = orders[orders["status"].isna() | (orders["status"] == "completed")]
    day = pd.to_datetime(o["ordered_at"]).dt.date
    o = o[(day >= start) & (day <= end)]
    if channel is not None:
        o = o[o["channel"] == channel]
    return float(o["revenue"].sum())


def month_end(start: date) -> date:
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)


def test_pages_need_a_session(dashboard_env: dict) -> None:
    for path in PAGES:
        r = httpx.get(dashboard_env["url"] + path, timeout=30)
        assert r.status_code == 303 and r.headers["location"] == "/dashboard/login", path
    forged = {"cxlens_session": "eyJ4IjoxfQ.bm90LWEtbWFj"}
    assert httpx.get(dashboard_env["url"] + "/dashboard/", cookies=forged, timeout=30).status_code == 303


def test_sign_in_refuses_wrong_and_write_keys(dashboard_env: dict) -> None:
    with httpx.Client(base_url=dashboard_env["url"], timeout=30) as client:
        token = CSRF.search(client.get("/dashboard/login").text).group(1)
        wrong = client.post("/dashboard/login", data={"key": "cxk_not-a-key", "csrf": token})
        assert wrong.status_code == 401 and "unknown or revoked" in wrong.text
        write = client.post("/dashboard/login", data={"key": dashboard_env["keys"]["write"], "csrf": token})
        assert write.status_code == 403 and "needs a read key" in write.text
        assert "cxlens_session" not in client.cookies


def test_session_cookie_flags_and_no_raw_key(dashboard_env: dict) -> None:
    key = dashboard_env["keys"]["read"]
    with httpx.Client(base_url=dashboard_env["url"], timeout=30) as client:
        token = CSRF.search(client.get("/dashboard/login").text).group(1)
        r = client.post("/dashboard/login", data={"key": key, "csrf": token})
        cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("cxlens_session="))
        flags = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "path=/dashboard", "samesite=strict"} <= flags
        assert "secure" not in flags  # plain http on loopback; https requests get Secure
        assert key not in cookie and key[4:] not in cookie


def test_every_form_needs_its_csrf_token(dashboard_env: dict, reader: httpx.Client) -> None:
    key = dashboard_env["keys"]["read"]
    with httpx.Client(base_url=dashboard_env["url"], timeout=30) as client:
        client.get("/dashboard/login")
        assert client.post("/dashboard/login", data={"key": key}).status_code == 403
        assert client.post("/dashboard/login", data={"key": key, "csrf": "forged"}).status_code == 403
    # a token from another browser's login form does not fit this browser's nonce
    with httpx.Client(base_url=dashboard_env["url"], timeout=30) as other:
        foreign = CSRF.search(other.get("/dashboard/login").text).group(1)
    with httpx.Client(base_url=dashboard_env["url"], timeout=30) as client:
        client.get("/dashboard/login")
        assert client.post("/dashboard/login", data={"key": key, "csrf": foreign}).status_code == 403
    assert reader.post("/dashboard/logout", data={}).status_code == 403
    assert reader.post("/dashboard/logout", data={"csrf": "x" * 43}).status_code == 403
    assert reader.get("/dashboard/customers").status_code == 200  # still signed in


def test_sign_out_ends_the_session(dashboard_env: dict) -> None:
    with sign_in(dashboard_env, dashboard_env["keys"]["read"]) as client:
        token = CSRF.search(client.get("/dashboard/customers").text).group(1)
        r = client.post("/dashboard/logout", data={"csrf": token})
        assert r.status_code == 303 and r.headers["location"] == "/dashboard/login"
        assert client.get("/dashboard/customers").status_code == 303


def test_revoking_the_key_ends_its_sessions(dashboard_env: dict) -> None:
    with sign_in(dashboard_env, dashboard_env["keys"]["doomed"]) as client:
        assert client.get("/dashboard/customers").status_code == 200
        assert run_cli("keys", "revoke", "dash-doomed", workspace=dashboard_env["ws"]).returncode == 0
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and client.get("/dashboard/customers").status_code == 200:
            time.sleep(0.5)  # the key cache lives key_ttl (2 s)
        assert client.get("/dashboard/customers").status_code == 303


def test_security_headers_and_no_inline_script(reader: httpx.Client) -> None:
    r = reader.get("/dashboard/surveys")
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"
    scripts = re.findall(r"<script([^>]*)>", r.text)
    assert scripts and all('src="/dashboard/static/' in s or 'type="application/json"' in s for s in scripts), scripts
    assert "cdn." not in r.text and "https://" not in r.text


def test_plotly_is_served_from_the_package_and_cacheable(dashboard_env: dict) -> None:
    import plotly

    r = httpx.get(dashboard_env["url"] + f"/dashboard/static/plotly.min.js?v={plotly.__version__}", timeout=30)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    assert r.headers["cache-control"] == "public, max-age=86400"
    shipped = (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_bytes()
    assert r.content == shipped
    for name in ("dashboard.js", "report.css", "dashboard.css"):
        assert httpx.get(dashboard_env["url"] + f"/dashboard/static/{name}", timeout=30).status_code == 200
    for bad in ("..%2F..%2Fkeys.py", "..%2Fpages.py", "%2Fetc%2Fpasswd", "plotly.js"):
        assert httpx.get(dashboard_env["url"] + f"/dashboard/static/{bad}", timeout=30).status_code == 404


HOSTILE = ("' OR 1=1 --", "<script>alert(1)</script>", "../../../../etc/passwd", "x" * 5000,
           "2025-01-01'; DROP TABLE orders; --")


@pytest.mark.parametrize("param", ["since", "until", "grain", "segment", "channel", "q"])
def test_hostile_query_strings_are_refused_or_inert(reader: httpx.Client, param: str) -> None:
    for value in HOSTILE:
        for path in ("/dashboard/", "/dashboard/customers"):
            r = reader.get(path, params={param: value})
            assert r.status_code in (200, 400), (path, param, value[:40], r.status_code)
            assert "<script>alert(1)" not in r.text
            assert "Traceback" not in r.text
            if r.status_code == 400:
                assert 'class="error"' in r.text
    assert reader.get("/dashboard/").status_code == 200  # the workspace still answers (no table was dropped)


def test_filters_change_the_tiles_as_pandas_says(dashboard_env: dict, reader: httpx.Client) -> None:
    orders = dashboard_env["orders"]
    period, value = tile_value(reader.get("/dashboard/").text, "revenue")
    current = date.fromisoformat(period)
    assert value == pytest.approx(valid_revenue(orders, current, month_end(current)))
    previous = (current - timedelta(days=1)).replace(day=1)
    html = reader.get("/dashboard/", params={"since": (previous - timedelta(days=31)).isoformat(),
                                             "until": month_end(previous).isoformat()}).text
    f_period, f_value = tile_value(html, "revenue")
    assert f_period == previous.isoformat()
    assert f_value == pytest.approx(valid_revenue(orders, previous, month_end(previous)))
    assert f_value != pytest.approx(value)
    store = reader.get("/dashboard/", params={"channel": "store"}).text
    s_period, s_value = tile_value(store, "revenue")
    start = date.fromisoformat(s_period)
    assert s_value == pytest.approx(valid_revenue(orders, start, month_end(start), "store"))
    assert s_value < value


def test_customer_search_shows_the_profile_masked_without_pii(dashboard_env: dict, reader: httpx.Client) -> None:
    email = dashboard_env["email"]
    page = reader.get("/dashboard/customers", params={"q": email})
    assert page.status_code == 200 and 'id="profile"' in page.text and 'id="timeline"' in page.text
    profile = page.text.split('id="profile"', 1)[1]  # the search box above keeps what was typed
    assert email not in profile and f"{email[0]}***@{email.split('@')[1]}" in profile
    with sign_in(dashboard_env, dashboard_env["keys"]["pii"]) as pii:
        assert email in pii.get("/dashboard/customers", params={"q": email}).text
    missing = reader.get("/dashboard/customers", params={"q": "nobody@example.invalid"})
    assert missing.status_code == 200 and "No profile matches" in missing.text


# -- kept views: what the background refresh keeps equals a fresh computation, staleness is bounded


def tiles(html: str) -> dict[str, tuple[str, float]]:
    """Every KPI tile's (period, value) by metric (a metric shown twice, headline and section, agrees)."""
    return {m: (p, float(v)) for m, p, v in
            re.findall(r'data-metric="([^"]+)"\s+data-period="([^"]+)" data-value="([^"]+)"', html)}


def test_a_kept_view_equals_a_fresh_computation(dashboard_env: dict, reader: httpx.Client) -> None:
    """The overview a reader gets (kept by the server, computed in its loader process) against the
    same page computed here from the workspace file; the values agree to the last few digits
    (the engine's parallel sums may round differently), and the revenue tile also against pandas."""
    from cxlens.service.dashboard.filters import Filters
    from cxlens.service.dashboard.views import build_view

    for params in ({}, {"grain": "quarter"}, {"channel": "store"}):
        page = reader.get("/dashboard/", params=params)
        assert page.status_code == 200 and re.search(r'data-as-of="[0-9T:+-]+"', page.text)
        assert re.search(r"As of \d\d:\d\d:\d\d UTC", page.text)
        kept = tiles(page.text)
        fresh = tiles(build_view(str(dashboard_env["ws"]), "overview", Filters(**params)).html)
        assert len(kept) > 10 and kept.keys() == fresh.keys()
        for metric, (period, value) in kept.items():
            assert period == fresh[metric][0], metric
            assert value == pytest.approx(fresh[metric][1], rel=1e-9, abs=1e-9), metric
    period, value = tiles(reader.get("/dashboard/").text)["revenue"]
    start = date.fromisoformat(period)
    assert value == pytest.approx(valid_revenue(dashboard_env["orders"], start, month_end(start)))


def test_a_channel_first_viewed_reuses_answers_of_the_same_data(dashboard_env: dict, tmp_path: Path) -> None:
    """A channel's overview asks the same queries as another channel's (every metric cut by
    channel): on the same data its first view reuses them, and shows what a fresh computation
    shows, including the revenue tile against pandas; new data gets new answers."""
    from cxlens.service.dashboard import views
    from cxlens.service.dashboard.filters import Filters

    ws = _copy_workspace(dashboard_env, tmp_path)
    views._ANSWERS.clear()
    views.build_view(str(ws), "overview", Filters(channel="store"))
    asked = len(views._ANSWERS[ws][1])
    online = tiles(views.build_view(str(ws), "overview", Filters(channel="online")).html)
    assert len(views._ANSWERS[ws][1]) == asked > 0  # nothing new was asked of the engine
    views._ANSWERS.clear()
    fresh = tiles(views.build_view(str(ws), "overview", Filters(channel="online")).html)
    assert online.keys() == fresh.keys() and len(online) > 10
    for metric, (period, value) in online.items():  # the engine's parallel sums may round differently
        assert period == fresh[metric][0] and value == pytest.approx(fresh[metric][1], rel=1e-9, abs=1e-9), metric
    start = date.fromisoformat(online["revenue"][0])
    value = online["revenue"][1]
    assert value == pytest.approx(valid_revenue(dashboard_env["orders"], start, month_end(start), "online"))
    with Workspace.open(ws) as w:  # new data: the stamp changes, so do the answers
        w.sql("UPDATE orders SET revenue = revenue * 2 WHERE channel = 'online'")
    doubled = tiles(views.build_view(str(ws), "overview", Filters(channel="online")).html)
    assert doubled["revenue"][1] == pytest.approx(2 * value)


def test_a_date_range_first_viewed_runs_prepared_queries(dashboard_env: dict, tmp_path: Path) -> None:
    """Once the kept views' queries are prepared for date ranges, the first overview of a range
    nobody asked for compiles nothing, and shows what a computation without kept queries shows,
    the revenue tile as pandas says; a load of new data keeps the prepared queries."""
    from cxlens.service.dashboard import views
    from cxlens.service.dashboard.filters import Filters
    from cxlens.service.dashboard.state import default_keys

    ws = _copy_workspace(dashboard_env, tmp_path)
    views._TEMPLATES.clear()
    keys = default_keys([], ["store"])
    assert views.prepare_templates(str(ws), keys) == keys
    templates = views._TEMPLATES[ws]
    compiled = templates.compiled
    assert compiled > 10
    orders = dashboard_env["orders"]
    last = pd.to_datetime(orders["ordered_at"]).max().date().replace(day=1)
    previous = (last - timedelta(days=1)).replace(day=1)
    f = Filters(since=previous - timedelta(days=40), until=month_end(previous))
    ranged = tiles(views.build_view(str(ws), "overview", f).html)
    assert templates.compiled == compiled and templates.hits > 10
    views._TEMPLATES.clear()
    views._ANSWERS.clear()
    fresh = tiles(views.build_view(str(ws), "overview", f).html)
    views._TEMPLATES[ws] = templates
    assert ranged.keys() == fresh.keys() and len(ranged) > 10
    for metric, (period, value) in ranged.items():
        assert period == fresh[metric][0] and value == pytest.approx(fresh[metric][1], rel=1e-9, abs=1e-9), metric
    assert ranged["revenue"] == (previous.isoformat(), pytest.approx(valid_revenue(orders, previous, month_end(previous))))
    with Workspace.open(ws) as w:  # new data: the prepared queries stay (they read the data when run)
        w.sql("UPDATE orders SET revenue = revenue * 2")
    doubled = tiles(views.build_view(str(ws), "overview", f).html)
    assert doubled["revenue"][1] == pytest.approx(2 * ranged["revenue"][1])
    assert templates.compiled == compiled


def test_after_a_load_the_kept_queries_values_are_checked_before_a_reader_asks(dashboard_env: dict, tmp_path: Path,
                                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """check_templates (run by the loader's process after each load) reads the data values the kept
    queries were built with at the new data version, so the next first view of a date range reads
    none of them; without it that view reads them itself. The view equals one computed afresh."""
    from cxlens.semantic.sources import Context
    from cxlens.service.dashboard import views
    from cxlens.service.dashboard.filters import Filters
    from cxlens.service.dashboard.state import default_keys

    ws = _copy_workspace(dashboard_env, tmp_path)
    views._TEMPLATES.clear()
    views._ANSWERS.clear()
    keys = default_keys([], [])
    assert views.prepare_templates(str(ws), keys) == keys
    names = {n for t in views._TEMPLATES[ws]._kept.values() if t is not None for n in t.deps}
    assert names  # the kept queries carry data values (the latest activity, ...)
    read: list[str] = []
    real = Context.scalar
    monkeypatch.setattr(Context, "scalar", lambda self, name, compute: (read.append(name), real(self, name, compute))[1])

    def a_load(i: int) -> None:
        with Workspace.open(ws) as w:
            w.sql(f"UPDATE orders SET revenue = revenue + {i} WHERE order_id = (SELECT min(order_id) FROM orders)")

    a_load(1)
    assert views.check_templates(str(ws)) > 10 and set(read) & names
    read.clear()
    f = Filters(since=date(2025, 2, 1), until=date(2025, 8, 31))
    checked = tiles(views.build_view(str(ws), "overview", f).html)
    assert not set(read) & names
    a_load(2)  # no check after this one: the reader's first view reads the values itself
    read.clear()
    views.build_view(str(ws), "overview", Filters(since=date(2025, 3, 1), until=date(2025, 8, 31)))
    assert set(read) & names
    a_load(-3)  # back to the data the checked view saw
    views._TEMPLATES.clear()
    views._ANSWERS.clear()
    fresh = tiles(views.build_view(str(ws), "overview", f).html)
    assert fresh.keys() == checked.keys() and len(fresh) > 10
    for metric, (period, value) in checked.items():
        assert period == fresh[metric][0] and value == pytest.approx(fresh[metric][1], rel=1e-9, abs=1e-9), metric


def test_the_check_after_a_load_gives_way_to_a_page(dashboard_env: dict, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A page computed while the loader's process checks the kept queries' values (check_templates,
    after a load) checks what it needs itself: the check does not start then, and starts no further
    query once one starts (the one in progress is interrupted); the values it read are kept, and a
    later check reads only the rest."""
    from cxlens.semantic.sources import Context
    from cxlens.service.dashboard import views
    from cxlens.service.dashboard.state import default_keys

    ws = _copy_workspace(dashboard_env, tmp_path)
    views._TEMPLATES.clear()
    views._ANSWERS.clear()
    keys = default_keys([], [])
    assert views.prepare_templates(str(ws), keys) == keys
    with Workspace.open(ws) as w:
        w.sql("UPDATE orders SET revenue = revenue + 1 WHERE order_id = (SELECT min(order_id) FROM orders)")
    read: list[str] = []
    page = threading.Event()
    real = Context.scalar

    def spied(self: Context, name: str, compute: object) -> object:
        read.append(name)
        value = real(self, name, compute)  # type: ignore[arg-type]
        if len(read) == 2:  # a page starts while the check runs; the check's stopper sees it
            page.set()
            time.sleep(0.2)
        return value

    monkeypatch.setattr(Context, "scalar", spied)
    assert views.check_templates(str(ws), stop=lambda: True) == 0 and read == []
    assert views.check_templates(str(ws), stop=page.is_set) == 0
    assert len(read) == 2  # no query after the page started
    before = set(read)
    read.clear()
    assert views.check_templates(str(ws)) > 10
    assert read and not set(read) & before  # what was read before the stop is kept


def test_a_background_batch_stops_at_once_for_a_waiting_reader(dashboard_env: dict, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """While a reader waits, a background batch stops the engine in the view it is computing and
    keeps nothing of that view; a reader's own computation is never stopped, nor is the view in
    progress when a load waits (the batch starts no further one); afterwards the same batch
    computes views equal to a fresh computation (the stopped queries left nothing behind)."""
    from cxlens.service import loadworker
    from cxlens.service.dashboard import views
    from cxlens.service.dashboard.filters import Filters

    ws = _copy_workspace(dashboard_env, tmp_path)
    keys = [("journeys", Filters()), ("overview", Filters(grain="week")), ("overview", Filters())]
    reading = threading.Event()
    monkeypatch.setattr(loadworker, "_reading", reading)
    views._ANSWERS.clear()
    whole = views.build_views(str(ws), keys[:1], budget=60.0)[0].seconds  # computed to its end (and the process warm)
    views._ANSWERS.clear()
    reading.set()
    started = time.perf_counter()
    assert views.build_views(str(ws), keys, budget=8.0) == []
    stopped = time.perf_counter() - started
    own = views.build_views(str(ws), keys[2:])  # a reader's computation (no budget): never stopped
    assert [v.page for v in own] == ["overview"]
    reading.clear()
    waiting = threading.Event()  # a load or a key refresh waits: the view in progress is finished
    waiting.set()
    monkeypatch.setattr(loadworker, "_waiting", waiting)
    first = views.build_views(str(ws), keys, budget=60.0)
    assert [(v.page, v.filters) for v in first] == keys[:1]
    waiting.clear()
    batch = views.build_views(str(ws), keys, budget=60.0)
    assert [(v.page, v.filters) for v in batch] == keys
    assert stopped < whole  # the journeys view was cut short, not finished and dropped
    views._ANSWERS.clear()
    views._TEMPLATES.clear()
    fresh = tiles(views.build_view(str(ws), "overview", Filters()).html)
    kept = tiles(batch[2].html)
    assert kept.keys() == fresh.keys() and len(kept) > 10
    for metric, (period, value) in kept.items():
        assert period == fresh[metric][0] and value == pytest.approx(fresh[metric][1], rel=1e-9, abs=1e-9), metric


def test_a_background_batch_stops_for_a_page_computed_beside_it(dashboard_env: dict, tmp_path: Path) -> None:
    """A reader's page may run beside background work (runtime.Access): while it is computed, the
    background view's queries are interrupted and the view is dropped, so the page has the cores."""
    from cxlens.service.dashboard import views
    from cxlens.service.dashboard.filters import Filters

    ws = _copy_workspace(dashboard_env, tmp_path)
    views._ANSWERS.clear()
    entered, leave = threading.Event(), threading.Event()
    reader = _page_beside(entered, leave)
    reader.start()
    try:
        assert entered.wait(10)
        assert views.build_views(str(ws), [("journeys", Filters()), ("overview", Filters())], budget=60.0) == []
    finally:
        leave.set()
        reader.join(10)
    assert [v.page for v in views.build_views(str(ws), [("overview", Filters())], budget=60.0)] == ["overview"]


def test_a_background_value_view_stops_inside_its_model_fits(dashboard_env: dict, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The value view fits CLV models: Python work with no query to interrupt (up to 0.5 s on the
    demo, sharing the GIL with the page it was stopped for). Once a page is computed beside it, the
    fit stops at its next likelihood evaluation and the view is dropped; computed again, it is whole."""
    from cxlens.clv import BGNBD, GammaGamma, ParetoNBD
    from cxlens.service.dashboard import views
    from cxlens.service.dashboard.filters import Filters

    ws = _copy_workspace(dashboard_env, tmp_path)
    views._ANSWERS.clear()
    evaluations: list[str] = []
    entered, leave = threading.Event(), threading.Event()
    reader = _page_beside(entered, leave)
    for model in (BGNBD, ParetoNBD, GammaGamma):
        def counted(self: object, params: object, data: object, real: object = model._log_likelihood) -> object:
            evaluations.append(type(self).__name__)
            if len(evaluations) == 3 and not entered.is_set():  # a page starts beside the fit; the stopper sees it
                reader.start()
                assert entered.wait(10)
                time.sleep(0.3)
            return real(self, params, data)  # type: ignore[operator]

        monkeypatch.setattr(model, "_log_likelihood", counted)
    try:
        assert views.build_views(str(ws), [("value", Filters())], budget=60.0) == []
    finally:
        leave.set()
        if reader.is_alive():
            reader.join(10)
    assert len(evaluations) == 3  # none after the page started
    evaluations.clear()
    again = views.build_views(str(ws), [("value", Filters())], budget=60.0)
    assert [v.page for v in again] == ["value"] and len(evaluations) > 20  # the fits ran to their ends


def test_a_page_is_computed_beside_a_load_from_the_data_before_it(dashboard_env: dict, tmp_path: Path) -> None:
    """In one process (the loader's child) a page computed while a load's transaction is open
    neither waits for it nor sees part of it: its numbers are the data before the load, as pandas
    computes them; once the load commits, the next computation has the new numbers."""
    from cxlens.service.dashboard import views
    from cxlens.service.dashboard.filters import Filters

    ws = _copy_workspace(dashboard_env, tmp_path)
    views._ANSWERS.clear()
    period, before = tiles(views.build_view(str(ws), "overview", Filters()).html)["revenue"]
    start = date.fromisoformat(period)
    written, commit, done = threading.Event(), threading.Event(), threading.Event()

    def load() -> None:
        with Workspace.open(ws) as w, w.transaction():
            w.sql("""INSERT INTO orders SELECT * REPLACE ('beside' AS order_id, 'beside' AS record_key,
                     1000.0 AS revenue, 'completed' AS status) FROM orders
                     WHERE ordered_at::DATE BETWEEN ? AND ? AND status = 'completed' AND profile_id IS NOT NULL
                     LIMIT 1""", [start, month_end(start)])
            w.sql("UPDATE orders SET revenue = revenue + 0 WHERE order_id = 'beside'")
            written.set()
            commit.wait(60)
        done.set()

    loader = threading.Thread(target=load)
    loader.start()
    try:
        assert written.wait(60)
        views._ANSWERS.clear()
        during = views.build_view(str(ws), "overview", Filters())
        assert not done.is_set()  # computed while the load's transaction was still open
        with Workspace.open(ws) as w:
            orders = w.sql("SELECT ordered_at, revenue, status, channel FROM orders").fetchdf()
    finally:
        commit.set()
        loader.join(60)
    assert tiles(during.html)["revenue"] == (period, pytest.approx(before))
    assert before == pytest.approx(valid_revenue(orders, start, month_end(start)))  # the committed data
    views._ANSWERS.clear()
    after = tiles(views.build_view(str(ws), "overview", Filters()).html)["revenue"]
    assert after == (period, pytest.approx(before + 1000.0))


def _page_beside(entered: threading.Event, leave: threading.Event) -> threading.Thread:
    """A thread that, once started, is a reader's page being computed in this process (as
    loadworker.computing counts them) from `entered` until `leave`."""
    from cxlens.service import loadworker

    def page() -> None:
        with loadworker.computing():
            entered.set()
            leave.wait(60)

    return threading.Thread(target=page)


def _copy_workspace(env: dict, root: Path) -> Path:
    ws = root / "cxlens.duckdb"
    shutil.copy2(env["ws"], ws)
    defs = env["ws"].with_name(env["ws"].stem + ".metrics.yml")
    if defs.exists():
        shutil.copy2(defs, ws.with_name(ws.stem + ".metrics.yml"))
    return ws


def test_a_kept_view_is_shown_only_within_the_staleness_window(dashboard_env: dict, tmp_path: Path) -> None:
    """No refresh thread here: after the workspace changes, the kept view is shown (marked stale)
    for max_stale seconds, then the reader gets the new numbers, as pandas computes them."""
    from cxlens.service.dashboard.filters import Filters
    from cxlens.service.dashboard.state import DashboardState

    ws = _copy_workspace(dashboard_env, tmp_path)
    state = DashboardState(ws, runtime=None, max_stale=2.0)
    first = state.show("overview", Filters())
    assert not first.stale
    period, before = tiles(first.view.html)["revenue"]
    start = date.fromisoformat(period)
    con = duckdb.connect(str(ws))
    try:
        con.execute("""INSERT INTO orders SELECT * REPLACE ('dash-extra' AS order_id, 'dash-extra' AS record_key,
                       1000.0 AS revenue, 'completed' AS status) FROM orders
                       WHERE ordered_at::DATE BETWEEN ? AND ? AND status = 'completed' AND profile_id IS NOT NULL
                       LIMIT 1""", [start, month_end(start)])
        orders = con.sql("SELECT ordered_at, revenue, status, channel FROM orders").df()
    finally:
        con.close()
    changed = time.monotonic()
    kept = state.show("overview", Filters())
    assert kept.stale and kept.view is first.view
    assert tiles(kept.view.html)["revenue"] == (period, before)
    time.sleep(max(0.0, 2.0 - (time.monotonic() - changed)) + 0.2)
    fresh = state.show("overview", Filters())
    assert not fresh.stale and fresh.view.as_of > first.view.as_of
    assert tiles(fresh.view.html)["revenue"][0] == period
    assert tiles(fresh.view.html)["revenue"][1] == pytest.approx(before + 1000.0)
    assert tiles(fresh.view.html)["revenue"][1] == pytest.approx(valid_revenue(orders, start, month_end(start)))

    # saved next to the workspace, the views come back current in the next run: no computation
    state.save()
    again = DashboardState(ws, runtime=None, max_stale=2.0)
    again.load()
    shown = again.show("overview", Filters())
    assert not shown.stale and shown.view.as_of == fresh.view.as_of and shown.view.html == fresh.view.html


def test_a_survey_answer_shows_on_the_surveys_page_at_once(dashboard_env: dict, reader: httpx.Client) -> None:
    """The surveys page is kept too, but a write through the service (an answer) outdates it at once."""
    env = dashboard_env
    reader.get("/dashboard/surveys")  # kept from here on
    r = httpx.post(env["url"] + "/v1/surveys", headers=bearer(env["keys"]["admin"]), timeout=60,
                   json={"survey_type": "csat", "survey_id": "csat-dash-live", "touchpoint": "delivery"})
    assert r.status_code == 201, r.text
    cli = run_cli("surveys", "link", "csat-dash-live", "--customer", "dash-c2", "--base-url", env["url"],
                  "--format", "json", workspace=env["ws"])
    assert cli.returncode == 0, cli.stderr
    token = json.loads(cli.stdout)["token"]
    comment = f"Parcel came early {time.time_ns()}"
    answer = httpx.post(env["url"] + "/v1/surveys/csat-dash-live/responses", timeout=60,
                        json={"token": token, "score": 5, "comment": comment})
    assert answer.status_code == 201, answer.text
    page = reader.get("/dashboard/surveys")
    assert comment in page.text and 'data-stale="1"' not in page.text


def test_readers_views_are_kept_up_to_a_limit_beside_the_defaults(tmp_path: Path) -> None:
    """Many declared segments make many default views; readers' own views are forgotten oldest
    first, the defaults never (no engine work here: only the bookkeeping)."""
    from cxlens.service.dashboard.filters import Filters
    from cxlens.service.dashboard.state import WANTED_MAX, DashboardState, default_keys

    state = DashboardState(tmp_path / "cxlens.duckdb")
    defaults = default_keys([f"segment_{i}" for i in range(40)], ["store", "online"])
    state._keep(defaults)
    asked = [("overview", Filters(channel=f"c{i}")) for i in range(WANTED_MAX + 5)]
    for key in asked:
        state._want(key)
    kept = list(state._wanted)
    assert len(kept) == len(defaults) + WANTED_MAX
    assert set(defaults) <= set(kept) and asked[-WANTED_MAX:] == [k for k in kept if k not in set(defaults)]


def test_a_view_that_fails_is_not_retried_until_the_data_changes(tmp_path: Path) -> None:
    """A kept view whose computation fails (here: a segment the definitions file no longer declares)
    must not hold the refresh on it: it is skipped at this data version, the others go on."""
    from cxlens.service.dashboard.filters import Filters
    from cxlens.service.dashboard.state import DashboardState

    ws = tmp_path / "cxlens.duckdb"
    Workspace.open(ws).close()
    state = DashboardState(ws)
    state.observe()
    bad, good = ("overview", Filters(segment="no_such_segment")), ("experiments", Filters())
    state._keep([bad, good])
    assert state._due() == [good, bad]  # every page's default view first
    state._refresh(state._due())
    assert state._due() == [bad] and good in state._views
    state._refresh(state._due())  # fails: skipped from now on at this data version
    assert state._due() == [] and bad not in state._views
