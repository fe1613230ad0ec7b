"""Surveys over HTTP: definitions and invitations (admin keys), answers by signed link (no key), and
the one-tap survey page `/s/{survey_id}?t=TOKEN` (server-rendered, no external assets, no JS).

Every refusal is a sentence: an HTML page on the survey page, `{"detail", "field"}` on the JSON
endpoints (422 names the field: `score`, `comment`, ...).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from cxlens.errors import NotFoundError, WorkspaceError
from cxlens.service import surveys as sv
from cxlens.service.auth import require, runtime
from cxlens.service.body import json_body
from cxlens.service.surveys.definitions import SCALE_LABELS, Survey, SurveyType, Trigger
from cxlens.service.surveys.invitations import MAX_MARK
from cxlens.service.surveys.responses import MAX_COMMENT, Stored, answered

api = APIRouter(prefix="/v1/surveys", tags=["surveys"])
pages = APIRouter(tags=["survey page"])
router = APIRouter()

ADMIN = [Depends(require("admin"))]
MAX_FORM_BYTES = 16_384
WAIT_SECONDS = 30.0
PAGE_HEADERS = {"content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                                           "frame-ancestors 'none'; base-uri 'none'"}


class Refused(Exception):
    """Why an answer or page is refused: HTTP status, a title, a sentence and the field at fault."""

    def __init__(self, status: int, title: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.title, self.message, self.field = status, title, message, field


class NewSurvey(BaseModel):
    survey_type: SurveyType
    question: str | None = Field(None, max_length=sv.definitions.MAX_QUESTION)
    touchpoint: str | None = Field(None, max_length=64)
    channel: str | None = Field(None, max_length=64, description="Where it is asked (email, sms, web, app...).")
    throttle_days: int = Field(sv.definitions.DEFAULT_THROTTLE_DAYS, ge=0, le=3650,
                               description="Ask a customer at most once in this many days (any survey).")
    after: Trigger | None = Field(None, description="Invite after a resolved support contact or an order.")
    delay_days: int = Field(0, ge=0, le=3650, description="Days after the trigger to invite.")
    max_wait_seconds: float = Field(sv.definitions.DEFAULT_MAX_WAIT_SECONDS, gt=0, le=604_800,
                                    description="A contact that waited longer blocks invitations for a few days.")
    survey_id: str | None = Field(None, max_length=64, pattern=sv.definitions.ID_PATTERN.pattern)


class Answer(BaseModel):
    token: str = Field(max_length=2048)
    score: Any = Field(description="A whole number on the survey's scale (NPS 0-10, CSAT 1-5, CES 1-7).")
    comment: str | None = Field(None, max_length=MAX_COMMENT)


class InviteRun(BaseModel):
    as_of: date | None = Field(None, description="Evaluate the rules at 00:00 UTC of this day (default: now).")
    base_url: str = Field("", max_length=512, description="Prefix of the survey links written to the outbox.")


@lru_cache(maxsize=1)
def _templates() -> Environment:
    return Environment(loader=PackageLoader("cxlens.service", "templates"), autoescape=select_autoescape(default=True))


def _page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = _templates().get_template(name).render(**context)
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)


def _error_page(refused: Refused) -> HTMLResponse:
    headers = {"Retry-After": "5"} if refused.status == 503 else {}
    response = _page("survey_error.html", refused.status, title=refused.title, message=refused.message)
    response.headers.update(headers)
    return response


def _refused_json(refused: Refused) -> JSONResponse:
    headers = {"Retry-After": "5"} if refused.status == 503 else None
    return JSONResponse({"detail": refused.message, "field": refused.field}, status_code=refused.status, headers=headers)


def _signing_key(request: Request, ws: Any) -> bytes:
    """The workspace's token secret, read once per app (it never changes once created)."""
    key = getattr(request.app.state, "survey_secret", None)
    if key is None:
        key = request.app.state.survey_secret = sv.secret(ws)
    return key


def _open(request: Request, survey_id: str, token: str | None) -> tuple[Survey, sv.Grant, bool]:
    """The survey, the token's grant and whether it was answered; Refused for anything wrong."""
    try:
        with runtime(request).workspace(WAIT_SECONDS) as ws:
            try:
                survey = sv.get_survey(ws, survey_id)
            except NotFoundError:
                raise Refused(404, "Survey not found", "There is no such survey; check the link you received.") from None
            try:
                grant = sv.verify(_signing_key(request, ws), survey_id, token)
            except sv.TokenError as exc:
                raise Refused(410 if exc.expired else 403, "Link expired" if exc.expired else "Link not valid",
                              str(exc), "token") from None
            if not survey.active:
                raise Refused(410, "Survey closed", "This survey is closed; thank you for your interest.")
            return survey, grant, answered(ws, grant.response_id)
    except WorkspaceError:
        raise Refused(503, "Busy", "The service is busy; please try again in a few seconds.") from None


def _answer(request: Request, survey_id: str, token: str | None, score: Any, comment: Any) -> tuple[Survey, Stored]:
    """Check the link, the score and the comment, then store the answer durably."""
    survey, grant, _ = _open(request, survey_id, token)
    try:
        with runtime(request).workspace(WAIT_SECONDS) as ws:
            stored = sv.record_response(ws, survey, grant, score, comment, default_source=runtime(request).settings.source)
    except sv.SurveyInputError as exc:
        raise Refused(422, "Please check your answer", str(exc), exc.field) from None
    except WorkspaceError:
        raise Refused(503, "Busy", "The service is busy; please try again in a few seconds.") from None
    return survey, stored


def _form_context(survey: Survey, token: str, **extra: Any) -> dict[str, Any]:
    low, high = survey.scale
    low_label, high_label = SCALE_LABELS[survey.survey_type]
    return {"survey": survey, "token": token, "scores": range(low, high + 1), "low_label": f"{low} = {low_label}",
            "high_label": f"{high} = {high_label}", "max_comment": MAX_COMMENT, **extra}


@pages.get("/s/{survey_id}", response_class=HTMLResponse)
def survey_page(request: Request, survey_id: str, t: Annotated[str | None, Query(max_length=4096)] = None) -> Response:
    """The survey page of a signed link: the question, one button per score, an optional comment."""
    try:
        survey, grant, done = _open(request, survey_id, t)
    except Refused as refused:
        return _error_page(refused)
    if done:
        return _page("survey_thanks.html", duplicate=True)
    return _page("survey.html", **_form_context(survey, t or ""))


async def _form(request: Request) -> dict[str, str]:
    """The url-encoded form fields (first value of each), refusing bodies over MAX_FORM_BYTES."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            raise Refused(413, "Answer too long", f"The answer is larger than {MAX_FORM_BYTES:,} bytes; shorten the comment.",
                          "comment")
        chunks.append(chunk)
    try:
        fields = parse_qs(b"".join(chunks).decode("utf-8"), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "Answer not readable", "The answer could not be read; please use the survey page.") from None
    return {k: v[0] for k, v in fields.items()}


@pages.post("/s/{survey_id}", response_class=HTMLResponse)
async def submit_page(request: Request, survey_id: str) -> Response:
    """Store the answer tapped on the survey page and thank the customer (the same link answers once).

    A bad score or comment shows the form again with the sentence and the comment kept."""
    try:
        form = await _form(request)
    except Refused as refused:
        return _error_page(refused)
    try:
        if not form.get("score"):
            raise Refused(422, "Please choose a score", "Tap one of the numbers to answer.", "score")
        _, stored = await run_in_threadpool(_answer, request, survey_id, form.get("t"), form["score"], form.get("comment"))
    except Refused as refused:
        if refused.status != 422:
            return _error_page(refused)
        try:
            survey, _, _ = await run_in_threadpool(_open, request, survey_id, form.get("t"))
        except Refused as other:
            return _error_page(other)
        context = _form_context(survey, form.get("t", ""), error=refused.message,
                                comment=form.get("comment", "")[:MAX_COMMENT])
        return _page("survey.html", 422, **context)
    return _page("survey_thanks.html", duplicate=stored.duplicate)


@api.post("/{survey_id}/responses", status_code=201, responses={403: {}, 410: {}, 422: {}})
async def answer_json(request: Request, survey_id: str) -> Any:
    """Answer from an in-app widget: `{"token", "score", "comment"}`; the signed token authorizes it
    (no key). Answering twice with one token stores one response (`duplicate: true`)."""
    try:
        body = await json_body(request, MAX_FORM_BYTES)
        try:
            answer = Answer.model_validate(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            name = str(first["loc"][0]) if first["loc"] else "body"
            raise Refused(422, "Invalid answer", f"`{name}`: {first['msg']}.", name) from None
        survey, stored = await run_in_threadpool(_answer, request, survey_id, answer.token, answer.score, answer.comment)
    except Refused as refused:
        return _refused_json(refused)
    return {"response_id": stored.response_id, "survey_id": survey.survey_id, "survey_type": survey.survey_type,
            "duplicate": stored.duplicate}


@api.get("/{survey_id}/responses", dependencies=[Depends(require("read"))])
def list_responses(request: Request, survey_id: str,
                   limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> dict[str, Any]:
    """Answers given through this survey's links, newest first (read key)."""
    with runtime(request).workspace() as ws:
        sv.get_survey(ws, survey_id)
        return {"survey_id": survey_id, "responses": sv.list_responses(ws, survey_id, limit)}


@api.post("", status_code=201, dependencies=ADMIN)
def create_survey(request: Request, body: NewSurvey) -> Any:
    """Define a survey (admin key); the answer is the stored definition with its scale."""
    try:
        with runtime(request).workspace() as ws:
            survey = sv.create_survey(ws, body.survey_type, body.question, touchpoint=body.touchpoint, channel=body.channel,
                                      throttle_days=body.throttle_days, after=body.after, delay_days=body.delay_days,
                                      max_wait_seconds=body.max_wait_seconds, survey_id=body.survey_id)
    except sv.SurveyInputError as exc:
        return _refused_json(Refused(422, "", str(exc), exc.field))
    return survey.to_dict()


@api.get("", dependencies=ADMIN)
def list_surveys(request: Request) -> dict[str, Any]:
    """Every survey definition, active or closed (admin key)."""
    with runtime(request).workspace() as ws:
        return {"surveys": [s.to_dict() for s in sv.list_surveys(ws)]}


@api.delete("/{survey_id}", dependencies=ADMIN)
def deactivate_survey(request: Request, survey_id: str) -> dict[str, Any]:
    """Close a survey: its links answer 410 and it invites nobody; its answers stay (admin key)."""
    with runtime(request).workspace() as ws:
        return sv.deactivate_survey(ws, survey_id).to_dict()


@api.post("/invitations/run", dependencies=ADMIN)
def run_invitations(request: Request, body: InviteRun | None = None) -> dict[str, Any]:
    """Evaluate the invitation rules now (or at `as_of`) and write new invitations to the outbox."""
    body = body or InviteRun()
    as_of = datetime(body.as_of.year, body.as_of.month, body.as_of.day) if body.as_of else None
    if body.base_url and not body.base_url.startswith(("http://", "https://")):
        raise HTTPException(422, "`base_url` must start with http:// or https://.")
    with runtime(request).workspace() as ws:
        return sv.run_invitations(ws, as_of=as_of, base_url=body.base_url).to_dict()


@api.get("/outbox", dependencies=ADMIN)
def list_outbox(request: Request, limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
                due: Annotated[bool, Query(description="Only invitations whose send time has come.")] = False
                ) -> dict[str, Any]:
    """Invitations waiting to be sent (not marked sent), with channel, send time and link (admin key)."""
    with runtime(request).workspace() as ws:
        return {"invitations": sv.outbox(ws, limit=limit, due_by=datetime.now(UTC) if due else None)}


class Sent(BaseModel):
    invitation_ids: list[str] = Field(max_length=MAX_MARK, description="Ids from the outbox that were sent.")
    sent_at: datetime | None = Field(None, description="When they were sent (default: now); without an offset, UTC.")


@api.post("/outbox/sent", dependencies=ADMIN)
def mark_sent(request: Request, body: Sent) -> Any:
    """Mark invitations as sent so the outbox stops listing them; a repeated call changes nothing (admin key)."""
    try:
        with runtime(request).workspace() as ws:
            return sv.mark_sent(ws, body.invitation_ids, sent_at=body.sent_at)
    except sv.SurveyInputError as exc:
        return _refused_json(Refused(422, "", str(exc), exc.field))


router.include_router(api)
router.include_router(pages)
