"""Exports of the systems that see engagement: analytics, email tool, support desk, surveys, experiments."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cxlens.simulate.exports_sales import ISO, ISO_Z, phone_styles
from cxlens.simulate.formats import format_time, padded
from cxlens.simulate.writer import DirtSpec, Export
from cxlens.simulate.world import World

OFFSET = "%Y-%m-%dT%H:%M:%S+00:00"


def web_events(w: World, rng: np.random.Generator) -> Export:
    """The analytics tool's raw event export (gzip CSV, JSON `props`); `userId` is the web-shop account id."""
    e = w.events
    n = e.t.size
    cols = {
        "messageId": padded("e", 1 + np.arange(n), 8), "timestamp": format_time(w.cfg, e.t, ISO_Z),
        "event": e.event, "anonymousId": e.anonymous_id, "userId": e.user_id,
        "sessionId": padded("s", 1 + e.session, 7), "platform": e.platform, "page": e.page, "referrer": e.referrer,
        "utm_source": e.utm_source, "utm_medium": e.utm_medium, "utm_campaign": e.utm_campaign,
        "campaignRef": e.campaign_id, "variant": e.variant, "personalized": e.personalized.astype(object),
        "value": e.value, "props": e.props,
    }
    mapping = {
        "event_id": "messageId", "occurred_at": "timestamp", "event_type": "event", "anonymous_id": "anonymousId",
        "customer_id": "userId", "session_id": "sessionId", "channel": "platform", "page_url": "page",
        "referrer": "referrer", "utm_source": "utm_source", "utm_medium": "utm_medium",
        "utm_campaign": "utm_campaign", "campaign_id": "campaignRef", "variant": "variant",
        "personalized": "personalized", "value": "value", "properties": "props",
    }
    anonymous_only = pd.isna(e.user_id)
    dirt = (
        DirtSpec("occurred_at", "timestamp", "bad_timestamp", ("2025-02-30T25:61:00Z", "not a date")),
        DirtSpec("event_type", "event", "missing_required", (None,)),
        DirtSpec("properties", "props", "bad_json", ('{"sku": "SKU-1001"', "{sku: SKU-1001}"),
                 rows=~pd.isna(e.props)),
    )
    return Export("web_events.csv.gz", "events", "webshop", cols, mapping, e.person, fmt="csv.gz", dirt=dirt,
                  dirt_rate=0.002, duplicate_rate=0.001, protect=~anonymous_only | (e.anonymous_id == "kiosk-S01-01"))


def email_activity(w: World, rng: np.random.Generator) -> Export:
    """The email tool's activity report: one row per send, open, click or unsubscribe, keyed by address."""
    m, c, p = w.email, w.campaigns, w.people
    recipient = p.email[m.person].copy()
    upper = rng.random(recipient.size) < 0.02
    recipient[upper] = np.char.upper(recipient[upper].astype(str)).astype(object)
    cols = {
        "Recipient": recipient, "Activity": m.activity, "Timestamp": format_time(w.cfg, m.t, ISO),
        "CampaignCode": c.campaign_id[m.campaign], "ContentCode": c.content_id[m.campaign],
        "Personalized": np.where(c.personalized[m.campaign], "TRUE", "FALSE").astype(object), "Variant": m.variant,
    }
    mapping = {
        "occurred_at": "Timestamp", "event_type": {"expr": "'message_' || lower(trim(Activity))"},
        "channel": {"expr": "'email'"}, "campaign_id": "CampaignCode", "content_id": "ContentCode",
        "variant": "Variant", "personalized": "Personalized", "email": "Recipient",
    }
    dirt = (
        DirtSpec("occurred_at", "Timestamp", "missing_required", (None,)),
        DirtSpec("occurred_at", "Timestamp", "bad_timestamp", ("2025-02-30 10:00:00", "soon")),
        DirtSpec("personalized", "Personalized", "bad_boolean", ("maybe", "PERSO")),
    )
    return Export("email_activity.csv", "events", "email", cols, mapping, m.person, dirt=dirt, dirt_rate=0.004,
                  duplicate_rate=0.002)


def campaigns(w: World, rng: np.random.Generator) -> Export:
    """Campaign register: personalized or generic content, cost, flight dates."""
    c = w.campaigns
    cols = {
        "CampaignCode": c.campaign_id, "CampaignName": c.name, "Medium": c.channel,
        "IsPersonalized": np.where(c.personalized, "yes", "no").astype(object), "ContentCode": c.content_id,
        "Budget": c.cost, "StartDate": format_time(w.cfg, c.start_t, ISO),
        "EndDate": format_time(w.cfg, np.minimum(c.end_t, w.cfg.horizon) - 1, ISO),
    }
    mapping = {"campaign_id": "CampaignCode", "name": "CampaignName", "channel": "Medium",
               "personalized": "IsPersonalized", "content_id": "ContentCode", "cost": "Budget",
               "started_at": "StartDate", "ended_at": "EndDate"}
    return Export("campaigns.csv", "campaigns", None, cols, mapping, np.full(c.campaign_id.size, -1))


def support_interactions(w: World, rng: np.random.Generator) -> Export:
    """Help-desk tickets: one row per contact, cases spanning channels, identified by email or phone."""
    s, p = w.service, w.people
    has_phone = p.phone[s.person] != ""
    by_phone = ((s.channel == "phone") | (s.channel == "store")) & has_phone
    by_phone |= p.shared_email[s.person]
    email = np.where(by_phone, None, p.email[s.person])
    phone = np.where(by_phone, phone_styles(rng, p.phone[s.person], (3, 0)), None)
    order = np.lexsort((s.case, s.t))
    cols = {
        "TicketId": np.empty(order.size, dtype=object), "CaseNumber": padded("CASE-", 1 + s.case, 6),
        "ContactEmail": email, "ContactPhone": phone, "OpenedAt": format_time(w.cfg, s.t, OFFSET),
        "Channel": np.char.capitalize(s.channel.astype(str)).astype(object), "Topic": s.topic, "Agent": s.agent,
        "Transfers": s.transfers, "Resolved": np.where(s.resolved, "yes", "no").astype(object),
        "WaitSec": s.wait_seconds, "HandleSec": s.handle_seconds,
    }
    cols = {k: v[order] for k, v in cols.items()}
    cols["TicketId"] = padded("T-", 1 + np.arange(order.size), 7)
    mapping = {
        "interaction_id": "TicketId", "started_at": "OpenedAt", "channel": "Channel", "case_id": "CaseNumber",
        "topic": "Topic", "agent_id": "Agent", "transfers": "Transfers", "resolved": "Resolved",
        "wait_seconds": "WaitSec", "handle_seconds": "HandleSec", "email": "ContactEmail", "phone": "ContactPhone",
    }
    dirt = (
        DirtSpec("interaction_id", "TicketId", "missing_required", (None,)),
        DirtSpec("started_at", "OpenedAt", "bad_timestamp", ("2025-13-45T10:00:00+00:00",)),
        DirtSpec("transfers", "Transfers", "bad_integer", ("two",)),
        DirtSpec("resolved", "Resolved", "bad_boolean", ("maybe",)),
        DirtSpec("wait_seconds", "WaitSec", "bad_number", ("12,3x",)),
    )
    return Export("support_interactions.csv", "interactions", "support", cols, mapping, s.person[order], dirt=dirt,
                  duplicate_rate=0.003)


def ticket_ids(w: World) -> np.ndarray:
    """Ticket id of each interaction (by the service arrays' index), as written in the export."""
    order = np.lexsort((w.service.case, w.service.t))
    ids = np.empty(order.size, dtype=object)
    ids[order] = padded("T-", 1 + np.arange(order.size), 7)
    return ids


def survey_responses(w: World, rng: np.random.Generator) -> Export:
    """The survey tool's responses (NPS, CSAT, CES) with free-text comments."""
    s, p = w.surveys, w.people
    tickets = ticket_ids(w)
    cols = {
        "ResponseID": padded("RSP-", 1 + np.arange(s.t.size), 7), "RespondentEmail": p.email[s.person],
        "SubmittedAt": format_time(w.cfg, s.t, ISO_Z), "SurveyKind": s.kind, "Score": s.score, "Comment": s.comment,
        "Channel": s.channel, "Touchpoint": s.touchpoint,
        "OrderRef": np.where(s.order >= 0, w.online_ids[np.maximum(s.order, 0)], None),
        "TicketRef": np.where(s.interaction >= 0, tickets[np.maximum(s.interaction, 0)], None),
    }
    mapping = {
        "response_id": "ResponseID", "responded_at": "SubmittedAt", "survey_type": "SurveyKind", "score": "Score",
        "comment": "Comment", "channel": "Channel", "touchpoint": "Touchpoint", "order_id": "OrderRef",
        "interaction_id": "TicketRef", "email": "RespondentEmail",
    }
    dirt = (
        DirtSpec("response_id", "ResponseID", "missing_required", (None,)),
        DirtSpec("responded_at", "SubmittedAt", "bad_timestamp", ("2025-02-30T10:00:00Z",)),
        DirtSpec("survey_type", "SurveyKind", "unknown_value", ("CSI", "Stars")),
        DirtSpec("score", "Score", "out_of_scale", ("11", "12"), rows=s.kind == "NPS"),
        DirtSpec("score", "Score", "out_of_scale", ("0", "6"), rows=s.kind == "CSAT"),
        DirtSpec("score", "Score", "out_of_scale", ("8", "0"), rows=s.kind == "CES"),
        DirtSpec("score", "Score", "bad_number", ("nine", "7,5x")),
    )
    return Export("survey_responses.csv", "survey_responses", "surveys", cols, mapping, s.person, dirt=dirt,
                  duplicate_rate=0.003)


def assignments(w: World, rng: np.random.Generator) -> Export:
    """Experiment assignments of `perso-2025`, keyed by web-shop account id."""
    x, p = w.experiment, w.people
    order = np.lexsort((x.person, x.assigned_t))
    cols = {
        "Experiment": np.full(order.size, "perso-2025", dtype=object), "ShopperId": p.webshop_id[x.person[order]],
        "Arm": np.where(x.personalized[order], "personalized", "holdout").astype(object),
        "AssignedAt": format_time(w.cfg, x.assigned_t[order], ISO),
    }
    mapping = {"experiment_id": "Experiment", "unit_id": "ShopperId", "variant": "Arm", "assigned_at": "AssignedAt",
               "customer_id": "ShopperId"}
    return Export("assignments.csv", "assignments", "webshop", cols, mapping, x.person[order], duplicate_rate=0.002)
