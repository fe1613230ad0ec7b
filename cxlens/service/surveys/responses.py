"""Storing and reading survey answers in the canonical `survey_responses` table.

An answer is written as a one-row file through the ordinary file ingest (validated, keyed by
response_id per source, one DuckDB transaction), so the `nps`, `csat` and `ces` metrics see it
like any imported answer and a second answer with the same link is a duplicate. Its profile_id
is looked up at once when the identity graph knows the customer; a customer it does not know yet
gets one at the next identity resolution (the next spool load, ingest or `cxlens identity
resolve`): resolving inside the answer took 7-10 s on the demo workspace, with the customer
waiting on the page and the workspace busy for everyone. The `profiles` summary table is not rebuilt per answer (that takes
seconds on a large workspace, far too long for a tap); the next ingest or spool load rebuilds it.
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
    from cxlens.ingest.loader import ingest_file

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
        source = grant.source or default_source
        profile_id = known_profile(ws, source, grant.customer_id)
        # Never resolved here: the ingest stays pending (also for a known customer, so the next
        # resolution records the answer's edge in the identity graph).
        result = ingest_file(ws, "survey_responses", path, source=source, format="ndjson", resolve=False)
        if profile_id is not None and result.rows_loaded:
            ws.sql("UPDATE survey_responses SET profile_id = ? WHERE source = ? AND response_id = ? AND profile_id IS NULL",
                   [profile_id, source, grant.response_id])
    finally:
        path.unlink(missing_ok=True)
    if result.rows_quarantined:
        reasons = ", ".join(result.quarantine_reasons) or "invalid"
        raise SurveyInputError("score", f"The answer could not be stored ({reasons}).")
    return Stored(grant.response_id, duplicate=result.rows_loaded == 0)


def known_profile(ws: Workspace, source: str, customer_id: str) -> str | None:
    """The profile the identity graph already gives `customer_id` of `source`, if any.

    Resolving one row through the identity engine takes seconds on a large workspace (it
    recompiles and rewrites its scratch tables); a customer the graph knows needs only this
    lookup."""
    if "identity_keys" not in ws.backend.tables():
        return None
    rows = ws.sql("SELECT DISTINCT profile_id FROM identity_keys WHERE key = ? AND profile_id IS NOT NULL",
                  [f"customer_id:{source}:{customer_id.strip()}"]).fetchall()
    return rows[0][0] if len(rows) == 1 else None


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
