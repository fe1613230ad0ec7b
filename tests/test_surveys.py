"""Surveys over real HTTP: `cxlens serve` in a subprocess on a real DuckDB file, the real CLI.

Definitions through the admin API and the CLI, the signed one-tap page (no external assets,
escaped text, clear refusals), answers through the form and the JSON endpoint landing once in
survey_responses and in the NPS metric (checked against a hand computation), and the invitation
rules on a small hand-built workspace checked against an independent pandas computation.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pandas as pd
import pytest
from conftest import run_cli
from test_service_helpers import Server, bearer, new_key

from cxlens import Workspace
from cxlens.ingest.loader import ingest
from cxlens.service.keys import create_key
from cxlens.service.surveys import secret, sign

AS_OF = datetime(2025, 3, 15)
SOURCE = "webshop"

INTERACTIONS = pd.DataFrame([
    # interaction_id, customer_id, started_at, channel, case_id, resolved, wait_seconds
    ("i1", "c1", "2025-03-13 10:00:00", "chat", "k1", True, 60),      # resolved -> invited
    ("i2", "c2", "2025-03-13 09:00:00", "phone", "k2", True, 30),
    ("i3", "c2", "2025-03-14 08:00:00", "phone", "k3", True, 1200),   # long wait yesterday -> not
    ("i4", "c3", "2025-03-12 10:00:00", "email", "k4", True, 10),
    ("i5", "c3", "2025-03-14 11:00:00", "chat", "k5", False, 20),     # open case -> not
    ("i6", "c4", "2025-03-13 10:00:00", "chat", "k6", True, 15),      # answered 10 days ago -> not
    ("i7", "c5", "2025-02-01 10:00:00", "chat", "k7", True, 15),      # too long ago -> not due
    ("i8", "c6", "2025-03-05 10:00:00", "phone", "k8", True, 1500),   # long wait, but 10 days ago
    ("i9", "c6", "2025-03-13 12:00:00", "phone", "k9", True, 40),     # -> invited
    ("i10", "c9", "2025-03-13 12:00:00", "chat", "k10", True, 5),     # -> invited (then not for the order)
    ("i11", "c10", "2025-03-12 09:00:00", "chat", "k11", False, 5),
    ("i12", "c10", "2025-03-13 09:00:00", "chat", "k11", True, 5),    # the same case resolved later -> invited
], columns=["interaction_id", "customer_id", "started_at", "channel", "case_id", "resolved", "wait_seconds"])

ORDERS = pd.DataFrame([
    ("o1", "c7", "2025-03-08 10:00:00", 50.0, "online", "completed"),  # + 5 days = 03-13 -> invited
    ("o2", "c8", "2025-03-12 10:00:00", 20.0, "online", "completed"),  # due 03-17: not yet
    ("o3", "c9", "2025-03-08 11:00:00", 30.0, "store", "completed"),   # due, but invited for the case
    ("o4", "c11", "2025-03-07 10:00:00", 10.0, "online", "cancelled"), # cancelled -> not
    ("o5", "c12", "2025-03-01 10:00:00", 15.0, "app", "completed"),    # due 03-06: older than the window
], columns=["order_id", "customer_id", "ordered_at", "revenue", "channel", "status"])

RESPONSES = pd.DataFrame([
    ("r1", "c4", "2025-03-05 10:00:00", "nps", 9, "fine"),
    ("r2", "c20", "2025-01-10 10:00:00", "nps", 3, None),
    ("r3", "c21", "2025-01-11 10:00:00", "nps", 7, None),
    ("r4", "c22", "2025-02-02 10:00:00", "csat", 5, None),
], columns=["response_id", "customer_id", "responded_at", "survey_type", "score", "comment"])

NPS_SCORES: list[int] = [int(s) for s in RESPONSES.loc[RESPONSES.survey_type == "nps", "score"]]
"""Every NPS score in the workspace: the imported ones, then each answer a test gets stored."""

EXTERNAL = re.compile(r"""(?:src|href|action)\s*=\s*["']?\s*(?:https?:|//)""", re.I)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("surveys")
    ws = root / "shop.duckdb"
    keys = {"admin": new_key(ws, "admin", "--name", "ops")["key"]}
    with Workspace.open(ws) as w:
        for scope in ("write", "read"):
            keys[scope] = create_key(w, scope, f"{scope}-key")[0]
        for table, frame in (("interactions", INTERACTIONS), ("orders", ORDERS), ("survey_responses", RESPONSES)):
            path = root / f"{table}.csv"
            frame.to_csv(path, index=False)
            assert ingest(w, table, [path], source=SOURCE)[0].rows_loaded == len(frame)
    server = Server(ws, "--source", SOURCE).start()
    try:
        yield {"ws": ws, "root": root, "keys": keys, "url": server.url, "server": server}
    finally:
        server.stop()


def admin(env: dict, method: str, path: str, body: object = None, key: str = "admin") -> httpx.Response:
    return httpx.request(method, env["url"] + path, json=body, headers=bearer(env["keys"][key]), timeout=60)


def make_survey(env: dict, **spec: object) -> dict:
    r = admin(env, "POST", "/v1/surveys", spec)
    assert r.status_code == 201, r.text
    return r.json()


def link(env: dict, survey_id: str, customer: str, **kw: object) -> str:
    with Workspace.open(env["ws"]) as w:
        key = secret(w)
    return sign(key, survey_id, customer, **kw)


def answer_json(env: dict, survey_id: str, token: str, score: object, comment: object = None) -> httpx.Response:
    return httpx.post(f"{env['url']}/v1/surveys/{survey_id}/responses",
                      json={"token": token, "score": score, "comment": comment}, timeout=60)


def answer_form(env: dict, survey_id: str, token: str, score: str, comment: str = "") -> httpx.Response:
    return httpx.post(f"{env['url']}/s/{survey_id}", data={"t": token, "score": score, "comment": comment}, timeout=60)


def stored(env: dict, sql: str, params: list | None = None) -> list[tuple]:
    with Workspace.open(env["ws"]) as w:
        return w.sql(sql, params or []).fetchall()


def test_definitions_via_api_and_cli(env: dict) -> None:
    made = make_survey(env, survey_type="csat", question="How was the delivery?", touchpoint="delivery",
                       channel="email", throttle_days=30, survey_id="csat-delivery")
    assert (made["survey_id"], made["scale"], made["throttle_days"], made["active"]) == ("csat-delivery", [1, 5], 30, True)
    cli = run_cli("surveys", "create", "--type", "ces", "--question", "Getting help was easy.", "--touchpoint", "support",
                  "--channel", "chat", "--throttle-days", "45", "--id", "ces-support", "--format", "json", workspace=env["ws"])
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["scale"] == [1, 7]
    listed = {s["survey_id"]: s for s in admin(env, "GET", "/v1/surveys").json()["surveys"]}
    assert listed["ces-support"]["question"] == "Getting help was easy." and listed["ces-support"]["throttle_days"] == 45
    assert listed["csat-delivery"]["channel"] == "email"
    via_cli = json.loads(run_cli("surveys", "list", "--format", "json", workspace=env["ws"]).stdout)["surveys"]
    assert {s["survey_id"] for s in via_cli} == set(listed)

    bad = admin(env, "POST", "/v1/surveys", {"survey_type": "stars"})
    assert bad.status_code == 422 and "survey_type" in bad.text
    long_question = admin(env, "POST", "/v1/surveys", {"survey_type": "nps", "question": "x" * 501})
    assert long_question.status_code == 422 and "question" in long_question.text
    dup = admin(env, "POST", "/v1/surveys", {"survey_type": "nps", "survey_id": "csat-delivery"})
    assert dup.status_code == 422 and dup.json()["field"] == "survey_id"
    cli_bad = run_cli("surveys", "create", "--type", "nps", "--id", "ces-support", workspace=env["ws"])
    assert cli_bad.returncode != 0 and "already exists" in cli_bad.stderr and "Traceback" not in cli_bad.stderr

    token = link(env, "csat-delivery", "c40")
    assert httpx.get(f"{env['url']}/s/csat-delivery", params={"t": token}).status_code == 200
    closed = admin(env, "DELETE", "/v1/surveys/csat-delivery")
    assert closed.status_code == 200 and closed.json()["active"] is False
    page = httpx.get(f"{env['url']}/s/csat-delivery", params={"t": token})
    assert page.status_code == 410 and "closed" in page.text
    assert answer_json(env, "csat-delivery", token, 4).status_code == 410
    assert admin(env, "DELETE", "/v1/surveys/nobody").status_code == 404


ADMIN_ENDPOINTS = [("POST", "/v1/surveys"), ("GET", "/v1/surveys"), ("DELETE", "/v1/surveys/x"),
                   ("POST", "/v1/surveys/invitations/run"), ("GET", "/v1/surveys/outbox"),
                   ("POST", "/v1/surveys/outbox/sent")]


@pytest.mark.parametrize(("method", "path"), ADMIN_ENDPOINTS)
def test_admin_endpoints_refuse_missing_and_wrong_keys(env: dict, method: str, path: str) -> None:
    url = env["url"] + path
    for headers in ({}, bearer("cxk_" + "B" * 43)):
        assert httpx.request(method, url, headers=headers, json={}, timeout=30).status_code == 401
    for scope in ("write", "read"):
        r = httpx.request(method, url, headers=bearer(env["keys"][scope]), json={}, timeout=30)
        assert r.status_code == 403 and "needs a `admin` key" in r.json()["detail"], r.text


def test_responses_list_needs_a_read_key(env: dict) -> None:
    make_survey(env, survey_type="nps", survey_id="nps-list")
    url = env["url"] + "/v1/surveys/nps-list/responses"
    assert httpx.get(url, timeout=30).status_code == 401
    for scope in ("write", "admin"):
        assert httpx.get(url, headers=bearer(env["keys"][scope]), timeout=30).status_code == 403
    ok = httpx.get(url, headers=bearer(env["keys"]["read"]), timeout=30)
    assert ok.status_code == 200 and ok.json() == {"survey_id": "nps-list", "responses": []}


@pytest.mark.parametrize(("survey_type", "buttons"), [("nps", list(range(0, 11))), ("csat", list(range(1, 6))),
                                                      ("ces", list(range(1, 8)))])
def test_page_has_the_question_one_button_per_score_and_nothing_external(env: dict, survey_type: str,
                                                                          buttons: list[int]) -> None:
    question = f"Would you <script>alert('{survey_type}')</script> recommend \"us\" & friends?"
    survey = make_survey(env, survey_type=survey_type, question=question)
    r = httpx.get(f"{env['url']}/s/{survey['survey_id']}", params={"t": link(env, survey["survey_id"], "c50")})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert "<script" not in html.lower()
    assert "Would you &lt;script&gt;alert(&#39;" in html and "&#34;us&#34; &amp; friends?" in html
    values = [int(v) for v in re.findall(r'<button type="submit" name="score" value="(\d+)"', html)]
    assert values == buttons
    assert html.count("<form") == 1 and '<textarea id="comment" name="comment"' in html
    assert 'name="viewport"' in html and "width=device-width" in html
    assert not EXTERNAL.search(html), EXTERNAL.search(html)
    assert not re.search(r"<(?:link|img|script|iframe)\b", html, re.I)
    assert "default-src 'none'" in r.headers["content-security-policy"]


def test_bad_tampered_and_expired_links_get_a_clear_page(env: dict) -> None:
    survey = make_survey(env, survey_type="nps", survey_id="nps-tokens")
    good = link(env, "nps-tokens", "c60")
    payload, mac = good.split(".")
    other_customer = link(env, "nps-tokens", "c61").split(".")[0] + "." + mac
    other_survey = link(env, "nps-list", "c60")
    expired = link(env, "nps-tokens", "c60", now=time.time() - 40 * 86_400, days_valid=30)
    flipped = payload + "." + ("A" if mac[0] != "A" else "B") + mac[1:]
    cases = {None: 403, "": 403, "garbage": 403, other_customer: 403, other_survey: 403, flipped: 403,
             good + "x": 403, "' OR 1=1 --": 403, "../../etc/passwd": 403, expired: 410}
    for token, status in cases.items():
        params = {} if token is None else {"t": token}
        r = httpx.get(f"{env['url']}/s/{survey['survey_id']}", params=params, timeout=30)
        assert r.status_code == status, (token, r.text)
        assert r.headers["content-type"].startswith("text/html")
        assert ("expired" if status == 410 else "not valid") in r.text and "Traceback" not in r.text
        if token:
            j = answer_json(env, "nps-tokens", token, 9)
            assert j.status_code == status and j.json()["field"] == "token", j.text
    missing = httpx.get(f"{env['url']}/s/no-such-survey", params={"t": good}, timeout=30)
    assert missing.status_code == 404 and "no such survey" in missing.text
    for hostile in ("..%2F..%2Fetc%2Fpasswd", "%27%3B%20DROP%20TABLE%20surveys%3B%20--", "%3Cscript%3Ealert(1)%3C%2Fscript%3E"):
        page = httpx.get(f"{env['url']}/s/{hostile}", params={"t": good}, timeout=30)
        assert page.status_code == 404 and "<script>" not in page.text and "Traceback" not in page.text
        assert admin(env, "DELETE", f"/v1/surveys/{hostile}").status_code == 404
    for body in ([], "x", {"score": 9}, {"token": good}):
        r = httpx.post(f"{env['url']}/v1/surveys/nps-tokens/responses", json=body, timeout=30)
        assert r.status_code == 422 and r.json()["field"] in ("body", "token", "score"), r.text
    assert stored(env, "SELECT count(*) FROM survey_responses WHERE customer_id = 'c60'") == [(0,)]


def test_answers_by_form_and_json_are_stored_once_and_reach_the_nps_metric(env: dict) -> None:
    survey = make_survey(env, survey_type="nps", survey_id="nps-web", touchpoint="checkout", channel="web")
    cli = run_cli("surveys", "link", "nps-web", "--customer", "c30", "--base-url", env["url"], "--format", "json",
                  workspace=env["ws"])
    assert cli.returncode == 0, cli.stderr
    url = json.loads(cli.stdout)["url"]
    assert url.startswith(env["url"] + "/s/nps-web?t=")
    token30 = url.split("t=", 1)[1]
    page = httpx.get(url, timeout=30)
    assert page.status_code == 200 and survey["question"] in page.text

    started = time.perf_counter()
    thanks = answer_form(env, "nps-web", token30, "10", "Great checkout")
    seconds = time.perf_counter() - started
    assert thanks.status_code == 200 and "Thank you" in thanks.text, thanks.text
    assert httpx.get(url, timeout=30).text.count("already have your answer") == 1
    tokens = {c: link(env, "nps-web", c) for c in ("c31", "c32", "c33", "c34")}
    assert answer_form(env, "nps-web", tokens["c31"], "9").status_code == 200
    again = answer_form(env, "nps-web", tokens["c31"], "2", "changed my mind")
    assert again.status_code == 200 and "already have your answer" in again.text
    first = answer_json(env, "nps-web", tokens["c32"], 6, "slow")
    assert first.status_code == 201 and first.json()["duplicate"] is False
    assert answer_json(env, "nps-web", tokens["c33"], "8").status_code == 201
    assert answer_json(env, "nps-web", tokens["c34"], 0).status_code == 201
    repeat = answer_json(env, "nps-web", tokens["c34"], 10)
    assert repeat.status_code == 201 and repeat.json() == {**first.json(), "response_id": repeat.json()["response_id"],
                                                           "duplicate": True}
    NPS_SCORES.extend([10, 9, 6, 8, 0])

    rows = stored(env, "SELECT customer_id, score, comment, channel, touchpoint, source, profile_id FROM survey_responses "
                       "WHERE json_extract_string(attributes, '$.survey_id') = 'nps-web' ORDER BY customer_id")
    assert [(r[0], r[1]) for r in rows] == [("c30", 10.0), ("c31", 9.0), ("c32", 6.0), ("c33", 8.0), ("c34", 0.0)]
    assert rows[0][2:6] == ("Great checkout", "web", "checkout", SOURCE)
    # c30-c34 are new to the identity graph: stored at once, given a profile by the next resolution
    assert not any(r[6] for r in rows)
    listed = httpx.get(env["url"] + "/v1/surveys/nps-web/responses", headers=bearer(env["keys"]["read"]), timeout=30).json()
    assert sorted(r["score"] for r in listed["responses"]) == [0, 6, 8, 9, 10]

    out = run_cli("metrics", "show", "nps", "--grain", "all", "--format", "json", workspace=env["ws"])
    assert out.returncode == 0, out.stderr
    row = json.loads(out.stdout)["rows"][0]
    scores = pd.Series(NPS_SCORES)
    expected = 100 * ((scores >= 9).mean() - (scores <= 6).mean())
    assert row["n"] == len(scores)
    assert row["value"] == pytest.approx(expected)
    assert seconds < 5  # resolving inside the answer took 7-10 s on the demo workspace

    assert run_cli("identity", "resolve", workspace=env["ws"]).returncode == 0
    profiled = stored(env, "SELECT customer_id, profile_id FROM survey_responses "
                           "WHERE json_extract_string(attributes, '$.survey_id') = 'nps-web'")
    assert len(profiled) == 5 and all(p for _, p in profiled) and len({p for _, p in profiled}) == 5


def test_out_of_scale_scores_and_oversize_comments_are_refused_naming_the_field(env: dict) -> None:
    make_survey(env, survey_type="csat", survey_id="csat-hostile")
    token = link(env, "csat-hostile", "c70")
    for score in (0, 6, -1, 4.5, "four", None, True, [4]):
        r = answer_json(env, "csat-hostile", token, score)
        assert r.status_code == 422 and r.json()["field"] == "score", (score, r.text)
    long = answer_json(env, "csat-hostile", token, 4, "x" * 2001)
    assert long.status_code == 422 and long.json()["field"] == "comment"
    huge = httpx.post(f"{env['url']}/v1/surveys/csat-hostile/responses", content=b"{" + b" " * 100_000 + b"}", timeout=30)
    assert huge.status_code == 413
    form = answer_form(env, "csat-hostile", token, "9", "</textarea><script>alert(1)</script>")
    assert form.status_code == 422 and "`score`" in form.text and "from 1 to 5" in form.text
    assert "<script>" not in form.text and "&lt;/textarea&gt;&lt;script&gt;" in form.text
    assert stored(env, "SELECT count(*) FROM survey_responses WHERE customer_id = 'c70'") == [(0,)]

    hostile = "'); DROP TABLE survey_responses; -- <img src=x onerror=alert(1)>"
    ok = answer_json(env, "csat-hostile", token, 5, hostile)
    assert ok.status_code == 201, ok.text
    assert stored(env, "SELECT comment, score FROM survey_responses WHERE customer_id = 'c70'") == [(hostile, 5.0)]
    thanks_again = httpx.get(f"{env['url']}/s/csat-hostile", params={"t": token}, timeout=30)
    assert thanks_again.status_code == 200 and "<img" not in thanks_again.text

    from cxlens.service.surveys import latest_comments

    with Workspace.open(env["ws"]) as w:
        latest = latest_comments(w, 5, survey_type="csat")
    assert latest[0]["comment"] == hostile and latest[0]["survey_id"] == "csat-hostile"


def expected_invitations(surveys: list[dict], as_of: datetime, window_days: int = 7, quiet_days: int = 3,
                         open_case_days: int = 30) -> set[tuple[str, str]]:
    """The invitation rules written out in pandas, survey by survey in creation order."""
    inter = INTERACTIONS.assign(started_at=pd.to_datetime(INTERACTIONS.started_at))
    orders = ORDERS.assign(ordered_at=pd.to_datetime(ORDERS.ordered_at))
    answered = RESPONSES.assign(responded_at=pd.to_datetime(RESPONSES.responded_at))
    invited: list[tuple[str, str, datetime]] = []
    for s in surveys:
        if s["after"] == "resolved_case":
            trig = inter[inter.resolved].rename(columns={"started_at": "happened"})
        else:
            trig = orders[orders.status == "completed"].rename(columns={"ordered_at": "happened"})
        due = trig.happened + timedelta(days=s["delay_days"])
        due_customers = set(trig[(due <= as_of) & (due > as_of - timedelta(days=window_days))].customer_id)
        recent = inter[(inter.started_at > as_of - timedelta(days=quiet_days)) & (inter.started_at <= as_of)]
        long_wait = set(recent[recent.wait_seconds > s["max_wait_seconds"]].customer_id)
        last = inter[inter.started_at <= as_of].sort_values("started_at").groupby(["customer_id", "case_id"]).tail(1)
        open_case = set(last[(~last.resolved) & (last.started_at > as_of - timedelta(days=open_case_days))].customer_id)
        since = as_of - timedelta(days=s["throttle_days"])
        asked = {c for _, c, at in invited if at > since} | set(answered[answered.responded_at > since].customer_id)
        invited += [(s["survey_id"], c, as_of) for c in sorted(due_customers - long_wait - open_case - asked)]
    return {(sid, c) for sid, c, _ in invited}


def test_invitation_rules_match_pandas_and_never_duplicate(env: dict) -> None:
    case = make_survey(env, survey_type="nps", survey_id="nps-support", touchpoint="support", after="resolved_case")
    cli = run_cli("surveys", "create", "--type", "csat", "--id", "csat-order", "--after", "order", "--delay-days", "5",
                  "--channel", "email", "--format", "json", workspace=env["ws"])
    assert cli.returncode == 0, cli.stderr
    order = json.loads(cli.stdout)
    expected = expected_invitations([case, order], AS_OF)
    assert expected == {("nps-support", "c1"), ("nps-support", "c6"), ("nps-support", "c9"), ("nps-support", "c10"),
                        ("csat-order", "c7")}

    run = run_cli("surveys", "invite", "--as-of", "2025-03-15", "--base-url", env["url"], "--format", "json",
                  workspace=env["ws"])
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["created"] == len(expected)
    assert report["excluded"] == {"long_wait": 1, "open_case": 1, "throttled": 2, "already_invited": 0}
    got = {(i["survey_id"], i["customer_id"]) for i in report["invitations"]}
    assert got == expected

    again = admin(env, "POST", "/v1/surveys/invitations/run", {"as_of": "2025-03-15"})
    assert again.status_code == 200 and again.json()["created"] == 0
    table = run_cli("surveys", "invite", "--as-of", "2025-03-15", workspace=env["ws"])
    assert table.stdout.split() == ("0 new invitations at 2025-03-15T00:00:00 (9 customers due; skipped: 1 long wait, "
                                    "1 open case, 2 throttled, 5 already invited).").split()
    assert stored(env, "SELECT count(*), count(DISTINCT invitation_id) FROM survey_outbox") == [(5, 5)]

    outbox = json.loads(run_cli("surveys", "outbox", "--format", "json", workspace=env["ws"]).stdout)["invitations"]
    assert {(i["survey_id"], i["customer_id"]) for i in outbox} == expected
    by_customer = {i["customer_id"]: i for i in outbox}
    assert by_customer["c7"]["channel"] == "email" and by_customer["c1"]["channel"] == "chat"
    assert by_customer["c6"]["reason"] == "resolved support contact i9 on 2025-03-13"
    assert by_customer["c7"]["reason"] == "order o1 on 2025-03-08 + 5 days"
    assert all(i["send_at"] == "2025-03-15T00:00:00" for i in outbox)
    assert admin(env, "GET", "/v1/surveys/outbox").json()["invitations"] == outbox

    c1 = by_customer["c1"]
    page = httpx.get(c1["url"], timeout=30)
    assert page.status_code == 200 and case["question"] in page.text
    token = c1["url"].split("t=", 1)[1]
    pending = "SELECT count(*) FROM sources WHERE NOT coalesce(resolved, false)"
    [(pending_before,)] = stored(env, pending)
    assert answer_form(env, "nps-support", token, "9", "quick fix").status_code == 200
    NPS_SCORES.append(9)
    [(profile, source)] = stored(env, "SELECT profile_id, source FROM survey_responses WHERE customer_id = 'c1'")
    assert source == SOURCE
    assert stored(env, "SELECT DISTINCT profile_id FROM interactions WHERE customer_id = 'c1'") == [(profile,)]
    # a known customer's answer took its profile from the graph; the next resolution agrees and records it
    assert stored(env, pending) == [(pending_before + 1,)]
    assert run_cli("identity", "resolve", workspace=env["ws"]).returncode == 0
    assert stored(env, "SELECT profile_id FROM survey_responses WHERE customer_id = 'c1'") == [(profile,)]
    assert stored(env, pending) == [(0,)]


def test_the_delivery_tool_takes_due_invitations_and_marks_them_sent(env: dict) -> None:
    from cxlens.service.surveys import outbox

    if not stored(env, "SELECT count(*) FROM survey_outbox")[0][0]:
        assert run_cli("surveys", "invite", "--as-of", "2025-03-15", workspace=env["ws"]).returncode == 0
    pending = admin(env, "GET", "/v1/surveys/outbox").json()["invitations"]
    assert len(pending) >= 3
    with Workspace.open(env["ws"]) as w:  # every send time is 2025-03-15 00:00 UTC
        assert outbox(w, due_by=datetime(2025, 3, 14, 23, 59)) == []
        assert outbox(w, due_by=datetime(2025, 3, 15, 1, 0, tzinfo=timezone(timedelta(hours=1)))) == pending
    assert admin(env, "GET", "/v1/surveys/outbox?due=true").json()["invitations"] == pending

    first, second, *rest = [i["invitation_id"] for i in pending]
    r = admin(env, "POST", "/v1/surveys/outbox/sent", {"invitation_ids": [first, second, "inv_nobody"],
                                                       "sent_at": "2025-03-15T09:30:00+01:00"})
    assert r.status_code == 200, r.text
    assert r.json() == {"marked": 2, "already_sent": [], "unknown": ["inv_nobody"], "sent_at": "2025-03-15T08:30:00"}
    left = [i["invitation_id"] for i in admin(env, "GET", "/v1/surveys/outbox").json()["invitations"]]
    assert left == rest
    again = admin(env, "POST", "/v1/surveys/outbox/sent", {"invitation_ids": [second]}).json()
    assert again["marked"] == 0 and again["already_sent"] == [second]
    assert stored(env, f"SELECT sent_at FROM survey_outbox WHERE invitation_id = '{second}'") == [(datetime(2025, 3, 15, 8, 30),)]

    cli = run_cli("surveys", "sent", rest[0], "--format", "json", workspace=env["ws"])
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["marked"] == 1
    shown = json.loads(run_cli("surveys", "outbox", "--all", "--format", "json", workspace=env["ws"]).stdout)
    assert sum(i["sent_at"] is not None for i in shown["invitations"]) == 3

    empty = admin(env, "POST", "/v1/surveys/outbox/sent", {"invitation_ids": []})
    assert empty.status_code == 422 and empty.json()["field"] == "invitation_ids", empty.text
    assert httpx.post(env["url"] + "/v1/surveys/outbox/sent", json={"invitation_ids": [first]},
                      headers=bearer(env["keys"]["write"]), timeout=30).status_code == 403


def test_docs_surveys_python_example_runs_and_prints_what_it_says() -> None:
    import contextlib
    import io

    from conftest import REPO

    section = (REPO / "docs" / "service.md").read_text().split("\n## Surveys\n", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    expected = [line.removeprefix("# ") for line in code.splitlines() if line.startswith("# ")]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "docs/service.md#surveys", "exec"), {"__name__": "docs_example"})  # noqa: S102 - the snippet is ours
    assert out.getvalue().splitlines() == expected


def test_page_in_a_phone_browser_answers_with_one_tap_and_loads_nothing_else(env: dict) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="the browser tests need playwright (pip install -e '.[browser]')")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("the browser tests need Debian's chromium (.ci/run installs it)")
    make_survey(env, survey_type="nps", survey_id="nps-phone", question="Would you recommend us?")
    url = f"{env['url']}/s/nps-phone?t={link(env, 'nps-phone', 'c80')}"
    requests: list[str] = []
    problems: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 375, "height": 667}, is_mobile=True, has_touch=True)
            page.on("request", lambda r: requests.append(r.url))
            page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(url)
            buttons = page.locator("button[name=score]")
            assert buttons.count() == 11
            boxes = [buttons.nth(i).bounding_box() for i in range(11)]
            assert all(b is not None and b["height"] >= 44 and b["width"] >= 44 for b in boxes), boxes
            assert page.evaluate("document.documentElement.scrollWidth") <= 375
            page.fill("#comment", "Tapped on a phone")
            buttons.nth(9).tap()
            page.wait_for_selector("text=Thank you", timeout=30_000)
        finally:
            browser.close()
    assert all(r.startswith(env["url"] + "/s/nps-phone") for r in requests), requests
    assert not problems, problems
    NPS_SCORES.append(9)
    assert stored(env, "SELECT score, comment FROM survey_responses WHERE customer_id = 'c80'") == [(9.0, "Tapped on a phone")]
