"""Storing and reading survey answers in the canonical `survey_responses` table.

An answer is written as a one-row file through the ordinary ingest (validated, its identity
resolved, keyed by response_id per source, one DuckDB transaction), so the `nps`, `csat` and `ces`
metrics see it like any imported answer, and a second answer with the same link is a duplicate.
The survey id travels in the row's `attributes` (the canonical table has no column for it).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cxlens.errors import WorkspaceError
from cxlens.service.surveys.definitions import Survey, SurveyInputError, check_score
from cxlens.service.surveys.tokens import Grant
from cxlens.workspace import Workspace

MAX_COMMENT = 2000
RESPONSE_FIELDS = ("response_id", "customer_id", "profile_id", "source", "responded_at", "survey_type", "score",
                   "comment", "channel", "touchpoint")


@dataclass(frozen=True)
class Stored:
    response_id: str
    duplicate: bool


def check_comment(comment: str | None) -> str | None:
    """The comment trimmed (None when empty); SurveyInputError('comment') past MAX_COMMENT characters."""
    if comment is None:
        return None
    if not isinstance(comment, str):
        raise SurveyInputError("comment", "`comment` must be text.")
    comment = comment.replace("\r\n", "\n").strip()
    if len(comment) > MAX_COMMENT:
        raise SurveyInputError("comment", f"`comment` is {len(comment):,} characters long; the limit is {MAX_COMMENT:,}.")
    return comment or None


def record_response(ws: Workspace, survey: Survey, grant: Grant, score: Any, comment: str | None, *,
                    default_source: str, now: datetime | None = None) -> Stored:
    """Validate and store one answer (durable when this returns); a repeat of the link is a duplicate."""
    from cxlens.ingest.loader import ingest

    value, text = check_score(survey, score), check_comment(comment)
    responded = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    row = {"response_id": grant.response_id, "customer_id": grant.customer_id, "responded_at": responded,
           "survey_type": survey.survey_type, "score": value, "comment": text, "channel": survey.channel,
           "touchpoint": survey.touchpoint, "survey_id": survey.survey_id}
    if ws.path is None:
        raise WorkspaceError("Survey answers are stored in a DuckDB workspace file.")
    path = ws.path.with_name(f"{ws.path.name}.survey-{grant.response_id}-{os.getpid()}.ndjson")
    path.write_text(json.dumps(row, ensure_ascii=False) + "\n", encoding="utf-8")
    try:
        result = ingest(ws, "survey_responses", [path], source=grant.source or default_source, format="ndjson")[0]
    finally:
        path.unlink(missing_ok=True)
    if result.rows_quarantined:
        reasons = ", ".join(result.quarantine_reasons) or "invalid"
        raise SurveyInputError("score", f"The answer could not be stored ({reasons}).")
    return Stored(grant.response_id, duplicate=result.rows_loaded == 0)


def _rows(cursor: Any) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in zip(names, r)} for r in cursor.fetchall()]


def answered(ws: Workspace, response_id: str) -> bool:
    return bool(ws.sql("SELECT count(*) FROM survey_responses WHERE response_id = ?", [response_id]).fetchone()[0])


def list_responses(ws: Workspace, survey_id: str, limit: int = 1000) -> list[dict[str, Any]]:
    """Answers given through this survey's links, newest first."""
    return _rows(ws.sql(
        f"SELECT {', '.join(RESPONSE_FIELDS)} FROM survey_responses "
        "WHERE json_extract_string(attributes, '$.survey_id') = ? ORDER BY responded_at DESC, response_id LIMIT ?",
        [survey_id, limit]))


def latest_comments(ws: Workspace, limit: int = 20, survey_type: str | None = None) -> list[dict[str, Any]]:
    """The most recent answers that carry a comment, from every source (for the dashboard).

    Each row: response_id, customer_id, profile_id, source, responded_at, survey_type, score,
    comment, channel, touchpoint and survey_id (None for imported answers). Comments are raw
    text: escape them when rendering.
    """
    where, params = "comment IS NOT NULL AND trim(comment) <> ''", []
    if survey_type is not None:
        where += " AND survey_type = ?"
        params.append(survey_type)
    return _rows(ws.sql(
        f"SELECT {', '.join(RESPONSE_FIELDS)}, json_extract_string(attributes, '$.survey_id') AS survey_id "
        f"FROM survey_responses WHERE {where} ORDER BY responded_at DESC, response_id LIMIT ?", [*params, int(limit)]))
