"""The dashboard in a real browser: Debian's Chromium driven by Playwright against `cxlens serve`.

Signing in through the form, every page without a console error, charts drawn with data, a
filter changing a tile to the value pandas computes, the cookie's flags as the browser stores
them, and a wrong key refused. Uses the HTTP tests' session server (same workspace, one demo run).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import run_cli
from test_dashboard import dashboard_env, month_end, valid_revenue  # noqa: F401 - the session fixture
from test_service_helpers import bearer

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (.ci/run installs it)")
playwright_api = pytest.importorskip("playwright.sync_api")

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
CHART_PAGES = ("/dashboard/", "/dashboard/surveys", "/dashboard/value", "/dashboard/journeys", "/dashboard/attribution")
OTHER_PAGES = ("/dashboard/customers", "/dashboard/experiments")
TIMEOUT_MS = 240_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            yield b
        finally:
            b.close()


class Console:
    """Console errors and uncaught page errors of one page, collected as they happen."""

    def __init__(self, page: Any):
        self.errors: list[str] = []
        page.on("console", lambda msg: self.errors.append(f"console: {msg.text}") if msg.type == "error" else None)
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))


def new_context(browser: Any, env: dict) -> Any:
    """A fresh browser profile; a cold page computes every metric first, which takes a while on a busy machine."""
    context = browser.new_context(base_url=env["url"])
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    return context


def signed_in(browser: Any, env: dict) -> tuple[Any, Any, Console]:
    context = new_context(browser, env)
    page = context.new_page()
    console = Console(page)
    page.goto("/dashboard/login")
    page.fill("input[name=key]", env["keys"]["browser"])
    page.click("button[type=submit]")
    page.wait_for_url("**/dashboard/")
    return context, page, console


@pytest.fixture(scope="module")
def session(browser: Any, dashboard_env: dict) -> Iterator[tuple[Any, Any, Console]]:
    context, page, console = signed_in(browser, dashboard_env)
    try:
        yield context, page, console
    finally:
        context.close()


def drawn_traces(page: Any) -> list[int]:
    """For each Plotly chart on the page: its number of traces once drawn, or -1 when it has no SVG paths."""
    page.wait_for_function("document.querySelectorAll('script[data-plot]').length"
                           " === document.querySelectorAll('.js-plotly-plot').length")
    return page.evaluate("""() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(
        el => el.querySelector('svg path') ? (el.data || []).filter(t => (t.x || t.values || t.node || []).length
              || (t.link && t.link.value && t.link.value.length)).length : -1)""")


def test_every_page_loads_and_draws_its_charts(session: tuple[Any, Any, Console]) -> None:
    _, page, console = session
    for path in CHART_PAGES:
        page.goto(path)
        traces = drawn_traces(page)
        assert traces and all(n > 0 for n in traces), (path, traces)
    for path in OTHER_PAGES:
        page.goto(path)
        assert page.locator("nav a.current").count() == 1
    assert console.errors == []


def test_a_filter_changes_the_tile_to_what_pandas_says(session: tuple[Any, Any, Console], dashboard_env: dict) -> None:
    _, page, console = session
    page.goto("/dashboard/")
    tile = page.locator('#headline article[data-metric="revenue"]')
    current = date.fromisoformat(tile.get_attribute("data-period"))
    before = float(tile.get_attribute("data-value"))
    previous = (current - timedelta(days=1)).replace(day=1)
    page.fill("input[name=since]", (previous - timedelta(days=31)).isoformat())
    page.fill("input[name=until]", month_end(previous).isoformat())
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**until=*")
    tile = page.locator('#headline article[data-metric="revenue"]')
    assert tile.get_attribute("data-period") == previous.isoformat()
    after = float(tile.get_attribute("data-value"))
    assert after == pytest.approx(valid_revenue(dashboard_env["orders"], previous, month_end(previous)))
    assert after != pytest.approx(before)
    assert tile.locator(".value").inner_text() != ""
    assert all(n > 0 for n in drawn_traces(page))
    assert console.errors == []


def test_the_session_cookie_is_httponly_and_samesite(session: tuple[Any, Any, Console], dashboard_env: dict) -> None:
    context, _, _ = session
    cookie = next(c for c in context.cookies() if c["name"] == "cxlens_session")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict" and cookie["path"] == "/dashboard"
    assert dashboard_env["keys"]["browser"] not in cookie["value"]


def test_pages_send_an_unsigned_browser_to_sign_in(browser: Any, dashboard_env: dict) -> None:
    context = new_context(browser, dashboard_env)
    page = context.new_page()
    console = Console(page)
    page.goto("/dashboard/surveys")
    assert page.url.endswith("/dashboard/login")
    page.fill("input[name=key]", "cxk_wrong")
    page.click("button[type=submit]")
    assert "unknown or revoked" in page.locator("p.error").inner_text()
    assert [c for c in context.cookies() if c["name"] == "cxlens_session"] == []
    assert [e for e in console.errors if "401" not in e] == []  # the refused sign-in answers 401, nothing else fails
    context.close()


COMMENT = "Checkout was <b>quick</b> & painless"


def test_an_answer_on_the_survey_page_shows_up_on_the_surveys_page(session: tuple[Any, Any, Console],
                                                                   dashboard_env: dict) -> None:
    """Last in this file: its answer (dated today) becomes the newest NPS period of the shared workspace."""
    _, page, console = session
    env = dashboard_env
    r = httpx.post(env["url"] + "/v1/surveys", headers=bearer(env["keys"]["admin"]), timeout=60,
                   json={"survey_type": "nps", "survey_id": "nps-dashboard", "question": "Would you recommend us?",
                         "touchpoint": "checkout", "channel": "web"})
    assert r.status_code == 201, r.text
    cli = run_cli("surveys", "link", "nps-dashboard", "--customer", "dash-c1", "--base-url", env["url"],
                  "--format", "json", workspace=env["ws"])
    assert cli.returncode == 0, cli.stderr
    page.goto(json.loads(cli.stdout)["url"])
    page.fill("textarea#comment", COMMENT)
    page.click('button[name=score][value="10"]')
    page.wait_for_selector("text=Thank you")

    page.goto("/dashboard/surveys")
    cells = page.locator("#comments td.comment")
    assert COMMENT in cells.all_inner_texts()  # shown as text: the <b> is not markup
    assert page.locator("#comments td.comment b").count() == 0
    # this month is still running, so the unfiltered page leaves it out as partial; since its first day it shows
    this_month = datetime.now(UTC).date().replace(day=1)
    page.goto(f"/dashboard/surveys?since={this_month.isoformat()}")
    tile = page.locator('article[data-metric="nps"]')
    # the only NPS answer this month is a 10: one promoter of one answer is an NPS of 100
    assert tile.get_attribute("data-period") == this_month.isoformat()
    assert float(tile.get_attribute("data-value")) == 100.0
    assert console.errors == []
