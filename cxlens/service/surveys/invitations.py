"""Invitation rules: who should be asked which survey now, written to the `survey_outbox` table.

Each active survey with a trigger (`after`) invites a customer whose trigger fell due within the
last `window_days`: a support contact marked resolved (`interactions.resolved`), or a completed
order (`orders.ordered_at`; the canonical tables have no delivery time), plus `delay_days`. Nobody
is invited who, within `quiet_days`, waited longer than the survey's `max_wait_seconds` for a
contact; who has an open case (its latest contact in the last `open_case_days` is unresolved);
or who was invited (any survey) or answered (any survey type) within the survey's
`throttle_days`. The rules run as one SQL statement per survey in the engine; Python only signs
the tokens of the invitations it writes. Invitation ids are derived from the survey and the
triggering record, so running the rules again never duplicates an invitation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from cxlens.service.surveys.definitions import Survey, list_surveys
from cxlens.service.surveys.tokens import DEFAULT_DAYS_VALID, secret, sign
from cxlens.workspace import Workspace

OUTBOX = "survey_outbox"
OUTBOX_COLUMNS = (
    "invitation_id VARCHAR PRIMARY KEY, survey_id VARCHAR NOT NULL, profile_id VARCHAR NOT NULL, "
    "customer_id VARCHAR NOT NULL, source VARCHAR NOT NULL, channel VARCHAR NOT NULL, send_at TIMESTAMP NOT NULL, "
    "reason VARCHAR NOT NULL, token VARCHAR NOT NULL, url VARCHAR NOT NULL, created_at TIMESTAMP NOT NULL, "
    "sent_at TIMESTAMP"
)
FIELDS = ("invitation_id", "survey_id", "profile_id", "customer_id", "source", "channel", "send_at", "reason", "token",
          "url", "created_at", "sent_at")

TRIGGER_SQL: dict[str, str] = {
    "resolved_case": (
        "SELECT profile_id, source, customer_id, channel, interaction_id AS ref, started_at AS happened_at, "
        "'resolved support contact ' || interaction_id AS what FROM interactions "
        "WHERE resolved AND profile_id IS NOT NULL AND customer_id IS NOT NULL"
    ),
    "order": (
        "SELECT profile_id, source, customer_id, channel, order_id AS ref, ordered_at AS happened_at, "
        "'order ' || order_id AS what FROM orders "
        "WHERE coalesce(status, 'completed') = 'completed' AND profile_id IS NOT NULL AND customer_id IS NOT NULL"
    ),
}


@dataclass(frozen=True)
class InviteSettings:
    """Windows of the rules (the per-survey parts live on the survey definition)."""

    window_days: int = 7
    """A trigger that fell due longer ago than this is too old to ask about."""
    quiet_days: int = 3
    """How far back a long wait blocks an invitation."""
    open_case_days: int = 30
    """An unresolved contact older than this no longer counts as an open case."""


@dataclass(frozen=True)
class InviteReport:
    """What one run of the rules did (the `cxlens surveys invite --format json` contract)."""

    as_of: str
    created: int
    due: int
    """Customers with a due trigger, before the exclusions."""
    excluded: dict[str, int] = field(default_factory=dict)
    """Customers skipped per reason: long_wait, open_case, throttled, already_invited."""
    invitations: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def ensure_outbox(ws: Workspace) -> None:
    ws.sql(f"CREATE TABLE IF NOT EXISTS {OUTBOX} ({OUTBOX_COLUMNS})")


def _candidates_sql(survey: Survey) -> str:
    """Every customer with a due trigger for `survey`, their latest trigger and why they may not be asked."""
    assert survey.after is not None
    return f"""
    WITH trig AS ({TRIGGER_SQL[survey.after]}),
    due AS (
        SELECT *, happened_at + to_days(CAST($delay AS INTEGER)) AS due_at FROM trig
        WHERE happened_at + to_days(CAST($delay AS INTEGER)) <= $as_of
          AND happened_at + to_days(CAST($delay AS INTEGER)) > $window_start),
    latest AS (
        SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY profile_id ORDER BY due_at DESC, ref) AS rn FROM due)
        WHERE rn = 1),
    long_wait AS (
        SELECT DISTINCT profile_id FROM interactions
        WHERE wait_seconds > $max_wait AND started_at > $quiet_start AND started_at <= $as_of),
    open_case AS (
        SELECT DISTINCT profile_id FROM (
            SELECT profile_id, resolved, started_at, row_number() OVER (
                PARTITION BY profile_id, source, coalesce(case_id, interaction_id) ORDER BY started_at DESC) AS rn
            FROM interactions WHERE started_at <= $as_of AND profile_id IS NOT NULL)
        WHERE rn = 1 AND resolved IS FALSE AND started_at > $open_start),
    asked AS (
        SELECT profile_id FROM {OUTBOX} WHERE send_at > $throttle_start
        UNION SELECT profile_id FROM survey_responses WHERE responded_at > $throttle_start AND profile_id IS NOT NULL)
    SELECT 'inv_' || substr(sha256($survey_id || chr(10) || $after || chr(10) || l.source || chr(10) || l.ref), 1, 24)
               AS invitation_id,
           l.profile_id, l.customer_id, l.source, coalesce($channel, l.channel, 'email') AS channel,
           l.what || ' on ' || strftime(l.happened_at, '%Y-%m-%d') ||
               $suffix AS reason,
           l.profile_id IN (SELECT profile_id FROM long_wait) AS long_wait,
           l.profile_id IN (SELECT profile_id FROM open_case) AS open_case,
           l.profile_id IN (SELECT profile_id FROM asked) AS throttled
    FROM latest l
    """


def run_invitations(ws: Workspace, *, as_of: datetime | None = None, base_url: str = "",
                    settings: InviteSettings = InviteSettings()) -> InviteReport:
    """Evaluate every active survey's rules at `as_of` (default now) and write new invitations."""
    ensure_outbox(ws)
    as_of = as_of or datetime.now(UTC)
    if as_of.tzinfo is not None:
        as_of = as_of.astimezone(UTC).replace(tzinfo=None)
    key = secret(ws)
    created: list[dict[str, Any]] = []
    excluded = {"long_wait": 0, "open_case": 0, "throttled": 0, "already_invited": 0}
    due = 0
    now = datetime.now(UTC).replace(tzinfo=None)
    for survey in list_surveys(ws, active_only=True):
        if survey.after is None:
            continue
        params = {"survey_id": survey.survey_id, "after": survey.after, "delay": survey.delay_days,
                  "suffix": f" + {survey.delay_days} days" if survey.delay_days else "",
                  "channel": survey.channel, "as_of": as_of, "max_wait": survey.max_wait_seconds,
                  "window_start": as_of - timedelta(days=settings.window_days),
                  "quiet_start": as_of - timedelta(days=settings.quiet_days),
                  "open_start": as_of - timedelta(days=settings.open_case_days),
                  "throttle_start": as_of - timedelta(days=survey.throttle_days)}
        rows = ws.backend.raw.execute(_candidates_sql(survey), params).fetchall()
        existing = {r[0] for r in ws.sql(f"SELECT invitation_id FROM {OUTBOX} WHERE survey_id = ?",
                                         [survey.survey_id]).fetchall()}
        due += len(rows)
        new = []
        for inv_id, profile_id, customer_id, source, channel, reason, long_wait, open_case, throttled in rows:
            if inv_id in existing:
                excluded["already_invited"] += 1
            elif long_wait or open_case or throttled:
                for name, flag in (("long_wait", long_wait), ("open_case", open_case), ("throttled", throttled)):
                    excluded[name] += int(bool(flag))
            else:
                token = sign(key, survey.survey_id, customer_id, source=source, days_valid=DEFAULT_DAYS_VALID,
                             now=max(as_of, now).replace(tzinfo=UTC).timestamp())  # valid from when it can be sent
                new.append({"invitation_id": inv_id, "survey_id": survey.survey_id, "profile_id": profile_id,
                            "customer_id": customer_id, "source": source, "channel": channel, "send_at": as_of,
                            "reason": reason, "token": token,
                            "url": f"{base_url.rstrip('/')}/s/{survey.survey_id}?t={token}", "created_at": now,
                            "sent_at": None})
        if new:
            frame = pa.Table.from_pylist(new, schema=pa.schema([
                (f, pa.timestamp("us") if f in ("send_at", "created_at", "sent_at") else pa.string()) for f in FIELDS]))
            raw = ws.backend.raw
            raw.register("_cx_new_invitations", frame)
            try:
                raw.execute(f"INSERT INTO {OUTBOX} SELECT * FROM _cx_new_invitations")
            finally:
                raw.unregister("_cx_new_invitations")
            created += new
    return InviteReport(as_of=as_of.isoformat(), created=len(created), due=due, excluded=excluded,
                        invitations=[_public(r) for r in created])


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


def outbox(ws: Workspace, *, pending_only: bool = True, due_by: datetime | None = None,
           limit: int = 10_000) -> list[dict[str, Any]]:
    """Invitations to send (not yet marked sent), in send order; with `due_by`, only those whose
    send time has come by then (UTC)."""
    ensure_outbox(ws)
    conditions, params = [], []
    if pending_only:
        conditions.append("sent_at IS NULL")
    if due_by is not None:
        conditions.append("send_at <= ?")
        params.append(_utc(due_by))
    where = f"WHERE {' AND '.join(conditions)} " if conditions else ""
    cur = ws.sql(f"SELECT {', '.join(FIELDS)} FROM {OUTBOX} {where}ORDER BY send_at, invitation_id LIMIT ?",
                 [*params, limit])
    return [_public(dict(zip(FIELDS, r))) for r in cur.fetchall()]


MAX_MARK = 10_000
"""Invitation ids one call may mark sent."""


def mark_sent(ws: Workspace, invitation_ids: Sequence[str], *, sent_at: datetime | None = None) -> dict[str, Any]:
    """Record that the delivery tool sent these invitations, so the outbox stops listing them.

    Marking is idempotent: an invitation already marked keeps its first time (a retried call
    changes nothing) and is reported in `already_sent`; ids the outbox does not hold are reported
    in `unknown` and change nothing. Returns {"marked", "already_sent", "unknown", "sent_at"}.
    """
    from cxlens.service.surveys.definitions import SurveyInputError

    ids = list(dict.fromkeys(i.strip() for i in invitation_ids if isinstance(i, str) and i.strip()))
    if not ids:
        raise SurveyInputError("invitation_ids", "Name at least one invitation id (from the outbox).")
    if len(ids) > MAX_MARK:
        raise SurveyInputError("invitation_ids", f"{len(ids):,} invitation ids in one call; the limit is {MAX_MARK:,}.")
    ensure_outbox(ws)
    when = _utc(sent_at or datetime.now(UTC))
    known = dict(ws.sql(f"SELECT invitation_id, sent_at FROM {OUTBOX} WHERE list_contains(?, invitation_id)",
                        [ids]).fetchall())
    fresh = [i for i in ids if i in known and known[i] is None]
    if fresh:
        ws.sql(f"UPDATE {OUTBOX} SET sent_at = ? WHERE list_contains(?, invitation_id) AND sent_at IS NULL", [when, fresh])
    return {"marked": len(fresh), "already_sent": [i for i in ids if known.get(i) is not None],
            "unknown": [i for i in ids if i not in known], "sent_at": when.isoformat()}


def _utc(t: datetime) -> datetime:
    """A naive UTC time, as the outbox stores them (a naive input is taken as UTC)."""
    return t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo else t
