"""Survey definitions: what is asked (NPS, CSAT or CES), where, how often, and after what.

Stored in the workspace table `surveys`, so the CLI and a running server share them. A survey is
never deleted: deactivating it keeps its answers' meaning and stops its page and invitations.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from cxlens.errors import NotFoundError, UsageError
from cxlens.workspace import Workspace
from cxlens.workspace.schema import SURVEY_SCALES

SurveyType = Literal["nps", "csat", "ces"]
Trigger = Literal["resolved_case", "order"]
SURVEY_TYPES: tuple[str, ...] = get_args(SurveyType)
TRIGGERS: tuple[str, ...] = get_args(Trigger)
TABLE = "surveys"
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
MAX_QUESTION = 500
MAX_LABEL = 64
DEFAULT_THROTTLE_DAYS = 90
DEFAULT_MAX_WAIT_SECONDS = 600.0

DEFAULT_QUESTIONS: dict[str, str] = {
    "nps": "How likely are you to recommend us to a friend or colleague?",
    "csat": "How satisfied were you with your experience?",
    "ces": "It was easy to get what I needed.",
}
SCALE_LABELS: dict[str, tuple[str, str]] = {
    "nps": ("Not at all likely", "Extremely likely"),
    "csat": ("Very dissatisfied", "Very satisfied"),
    "ces": ("Strongly disagree", "Strongly agree"),
}

COLUMNS = (
    "survey_id VARCHAR PRIMARY KEY, survey_type VARCHAR NOT NULL, question VARCHAR NOT NULL, touchpoint VARCHAR, "
    "channel VARCHAR, throttle_days INTEGER NOT NULL, after VARCHAR, delay_days INTEGER NOT NULL, "
    "max_wait_seconds DOUBLE NOT NULL, active BOOLEAN NOT NULL, created_at TIMESTAMP NOT NULL"
)
FIELDS = ("survey_id", "survey_type", "question", "touchpoint", "channel", "throttle_days", "after", "delay_days",
          "max_wait_seconds", "active", "created_at")


class SurveyInputError(UsageError):
    """A survey definition or answer has a bad value; `field` names it (HTTP answers 422 with it)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Survey:
    """One stored survey definition and its invitation rule."""

    survey_id: str
    survey_type: str
    question: str
    touchpoint: str | None
    channel: str | None
    throttle_days: int
    after: str | None
    """Invitation trigger: `resolved_case`, `order` or None (links only, no invitations)."""
    delay_days: int
    max_wait_seconds: float
    """A contact that waited longer than this within the quiet days blocks the invitation."""
    active: bool
    created_at: datetime

    @property
    def scale(self) -> tuple[int, int]:
        return SURVEY_SCALES[self.survey_type]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["created_at"] = self.created_at.isoformat()
        d["scale"] = list(self.scale)
        return d


def ensure_table(ws: Workspace) -> None:
    ws.sql(f"CREATE TABLE IF NOT EXISTS {TABLE} ({COLUMNS})")


def _check_label(field: str, value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if len(value) > MAX_LABEL or not value.isprintable():
        raise SurveyInputError(field, f"`{field}` must be at most {MAX_LABEL} printable characters.")
    return value


def create_survey(ws: Workspace, survey_type: str, question: str | None = None, *, touchpoint: str | None = None,
                  channel: str | None = None, throttle_days: int = DEFAULT_THROTTLE_DAYS, after: str | None = None,
                  delay_days: int = 0, max_wait_seconds: float = DEFAULT_MAX_WAIT_SECONDS,
                  survey_id: str | None = None) -> Survey:
    """Store a new active survey; every bad value is a SurveyInputError naming its field."""
    if survey_type not in SURVEY_TYPES:
        raise SurveyInputError("survey_type", f"Unknown survey type `{survey_type}` (valid: {', '.join(SURVEY_TYPES)}).")
    question = (question or DEFAULT_QUESTIONS[survey_type]).strip()
    if not question or len(question) > MAX_QUESTION:
        raise SurveyInputError("question", f"`question` must be 1 to {MAX_QUESTION} characters.")
    if after is not None and after not in TRIGGERS:
        raise SurveyInputError("after", f"Unknown invitation trigger `{after}` (valid: {', '.join(TRIGGERS)}).")
    for field, value in (("throttle_days", throttle_days), ("delay_days", delay_days)):
        if not 0 <= value <= 3650:
            raise SurveyInputError(field, f"`{field}` must be between 0 and 3650; got {value}.")
    if not 0 < max_wait_seconds <= 86_400 * 7:
        raise SurveyInputError("max_wait_seconds", "`max_wait_seconds` must be positive and at most a week.")
    survey_id = survey_id or f"{survey_type}-{secrets.token_hex(4)}"
    if not ID_PATTERN.match(survey_id):
        raise SurveyInputError("survey_id", "`survey_id` must be 1 to 64 letters, digits, '-' or '_' (starting with a letter or digit).")
    ensure_table(ws)
    if ws.sql(f"SELECT count(*) FROM {TABLE} WHERE survey_id = ?", [survey_id]).fetchone()[0]:
        raise SurveyInputError("survey_id", f"A survey `{survey_id}` already exists; choose another id.")
    survey = Survey(survey_id, survey_type, question, _check_label("touchpoint", touchpoint), _check_label("channel", channel),
                    int(throttle_days), after, int(delay_days), float(max_wait_seconds), True,
                    datetime.now(UTC).replace(tzinfo=None))
    ws.sql(f"INSERT INTO {TABLE} ({', '.join(FIELDS)}) VALUES ({', '.join('?' * len(FIELDS))})",
           [getattr(survey, f) for f in FIELDS])
    return survey


def list_surveys(ws: Workspace, *, active_only: bool = False) -> list[Survey]:
    """Every survey, oldest first (only active ones with `active_only`)."""
    ensure_table(ws)
    where = " WHERE active" if active_only else ""
    rows = ws.sql(f"SELECT {', '.join(FIELDS)} FROM {TABLE}{where} ORDER BY created_at, survey_id").fetchall()
    return [Survey(*r) for r in rows]


def get_survey(ws: Workspace, survey_id: str) -> Survey:
    """The survey with this id, active or not; NotFoundError otherwise."""
    ensure_table(ws)
    rows = ws.sql(f"SELECT {', '.join(FIELDS)} FROM {TABLE} WHERE survey_id = ?", [survey_id]).fetchall()
    if not rows:
        raise NotFoundError(f"There is no survey `{survey_id[:64]}` (see `cxlens surveys list`).")
    return Survey(*rows[0])


def deactivate_survey(ws: Workspace, survey_id: str) -> Survey:
    """Close a survey: its page answers 410 and it invites nobody; its answers stay."""
    get_survey(ws, survey_id)
    ws.sql(f"UPDATE {TABLE} SET active = false WHERE survey_id = ?", [survey_id])
    return get_survey(ws, survey_id)


def check_score(survey: Survey, score: Any) -> int:
    """The score as an int on the survey's scale; SurveyInputError('score') otherwise."""
    low, high = survey.scale
    if isinstance(score, bool) or not isinstance(score, (int, str, float)):
        raise SurveyInputError("score", f"`score` must be a whole number from {low} to {high} for a {survey.survey_type} survey.")
    try:
        value = float(score)
    except ValueError:
        value = float("nan")
    if not (value == value and value.is_integer() and low <= value <= high):
        raise SurveyInputError("score", f"`score` must be a whole number from {low} to {high} for a {survey.survey_type} "
                                        f"survey; got {str(score)[:20]!r}.")
    return int(value)
