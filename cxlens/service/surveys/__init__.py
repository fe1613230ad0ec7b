"""Surveys: NPS, CSAT and CES definitions, signed one-tap answer links, and invitation rules.

Definitions live in the workspace table `surveys`, answers in the canonical `survey_responses`
(so the feedback metrics see them), invitations in `survey_outbox`.
"""

from cxlens.service.surveys.definitions import (
    Survey,
    SurveyInputError,
    create_survey,
    deactivate_survey,
    get_survey,
    list_surveys,
)
from cxlens.service.surveys.invitations import InviteReport, InviteSettings, mark_sent, outbox, run_invitations
from cxlens.service.surveys.responses import latest_comments, list_responses, record_response
from cxlens.service.surveys.tokens import Grant, TokenError, secret, sign, verify

__all__ = [
    "Grant", "InviteReport", "InviteSettings", "Survey", "SurveyInputError", "TokenError", "create_survey",
    "deactivate_survey", "get_survey", "latest_comments", "list_responses", "list_surveys", "mark_sent", "outbox",
    "record_response", "run_invitations", "secret", "sign", "verify",
]
