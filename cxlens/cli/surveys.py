"""CLI commands `cxlens surveys create|list|close|link|invite|outbox|sent`: survey definitions, signed
answer links and the invitation outbox, on the same workspace a running server uses."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Annotated

import typer

from cxlens.cli.context import open_workspace
from cxlens.cli.output import Format, console, print_json, print_rows
from rich.markup import escape

FORMAT_OPTION = typer.Option("--format", "-f", help="table (for people) or json (for scripts).")
surveys_app = typer.Typer(help="Surveys: define NPS/CSAT/CES surveys, make answer links, run invitation rules.",
                          no_args_is_help=True)


class TypeChoice(str, enum.Enum):
    nps = "nps"
    csat = "csat"
    ces = "ces"


class AfterChoice(str, enum.Enum):
    resolved_case = "resolved_case"
    order = "order"


def _survey_rows(surveys: list) -> list[dict]:
    return [s.to_dict() for s in surveys]


@surveys_app.command("create")
def create(
    ctx: typer.Context,
    type: Annotated[TypeChoice, typer.Option("--type", help="nps (0-10), csat (1-5) or ces (1-7).", show_default=False)],
    question: Annotated[str | None, typer.Option("--question", help="The question (default: the standard one of the type).")] = None,
    touchpoint: Annotated[str | None, typer.Option("--touchpoint", help="What it asks about (support, delivery, checkout...).")] = None,
    channel: Annotated[str | None, typer.Option("--channel", help="Where it is asked (email, sms, web, app...).")] = None,
    throttle_days: Annotated[int, typer.Option("--throttle-days", min=0, max=3650, help="Ask a customer at most once in this many days.")] = 90,
    after: Annotated[AfterChoice | None, typer.Option("--after", help="Invite after a resolved support contact or an order.")] = None,
    delay_days: Annotated[int, typer.Option("--delay-days", min=0, max=3650, help="Days after the trigger to invite.")] = 0,
    max_wait: Annotated[float, typer.Option("--max-wait", min=1, help="Seconds of waiting on a contact that block invitations for a few days.")] = 600,
    survey_id: Annotated[str | None, typer.Option("--id", help="The survey id (default: type plus random letters).")] = None,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
) -> None:
    """Define a survey; JSON is the stored definition (survey_id, survey_type, question, scale, ...).

    Examples:

      cxlens surveys create --type nps --question "How likely are you to recommend us?" --after resolved_case

      cxlens surveys create --type csat --touchpoint delivery --after order --delay-days 5 --format json
    """
    from cxlens.service.surveys import create_survey

    with open_workspace(ctx) as ws:
        survey = create_survey(ws, type.value, question, touchpoint=touchpoint, channel=channel,
                               throttle_days=throttle_days, after=after.value if after else None, delay_days=delay_days,
                               max_wait_seconds=max_wait, survey_id=survey_id)
    if format is Format.json:
        print_json(survey.to_dict())
        return
    console.print(f"Created {survey.survey_type} survey [bold]{survey.survey_id}[/]: {escape(survey.question)}", highlight=False)


@surveys_app.command("list")
def list_(ctx: typer.Context, format: Annotated[Format, FORMAT_OPTION] = Format.table) -> None:
    """List survey definitions, active and closed.

    Examples:

      cxlens surveys list --format json
    """
    from cxlens.service.surveys import list_surveys

    with open_workspace(ctx) as ws:
        rows = _survey_rows(list_surveys(ws))
    if format is Format.json:
        print_json({"surveys": rows})
        return
    print_rows(rows, title=f"{len(rows)} surveys", columns=("survey_id", "survey_type", "active", "question", "touchpoint",
                                                              "channel", "after", "delay_days", "throttle_days"))


@surveys_app.command("close")
def close(ctx: typer.Context, survey_id: Annotated[str, typer.Argument(help="The survey id.", show_default=False)],
          format: Annotated[Format, FORMAT_OPTION] = Format.table) -> None:
    """Close (deactivate) a survey: its links answer 410 and it invites nobody; answers stay.

    Examples:

      cxlens surveys close nps-1a2b3c4d
    """
    from cxlens.service.surveys import deactivate_survey

    with open_workspace(ctx) as ws:
        survey = deactivate_survey(ws, survey_id)
    if format is Format.json:
        print_json(survey.to_dict())
        return
    console.print(f"Closed survey {survey.survey_id}.", highlight=False)


@surveys_app.command("link")
def link(
    ctx: typer.Context,
    survey_id: Annotated[str, typer.Argument(help="The survey id.", show_default=False)],
    customer: Annotated[str, typer.Option("--customer", help="The customer id the answer belongs to.", show_default=False)],
    source: Annotated[str | None, typer.Option("--source", help="Namespace of the customer id (default: the server's --source).")] = None,
    days_valid: Annotated[float, typer.Option("--days-valid", min=0.001, max=3650, help="Days the link works.")] = 30,
    base_url: Annotated[str, typer.Option("--base-url", help="Public address of the server.")] = "http://127.0.0.1:8000",
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
) -> None:
    """Print a signed survey link for one customer (one answer per link).

    JSON: {"survey_id", "customer_id", "source", "token", "url", "expires_at"}.

    Examples:

      cxlens surveys link nps-1a2b3c4d --customer 42 --days-valid 14

      cxlens surveys link nps-1a2b3c4d --customer 42 --source webshop --base-url https://cx.example.com --format json
    """
    from cxlens.service.surveys import get_survey, secret, sign, verify

    with open_workspace(ctx) as ws:
        survey = get_survey(ws, survey_id)
        key = secret(ws)
    token = sign(key, survey.survey_id, customer, source=source, days_valid=days_valid)
    expires = datetime.fromtimestamp(verify(key, survey.survey_id, token).expires, UTC).isoformat()
    url = f"{base_url.rstrip('/')}/s/{survey.survey_id}?t={token}"
    if format is Format.json:
        print_json({"survey_id": survey.survey_id, "customer_id": customer, "source": source, "token": token, "url": url,
                    "expires_at": expires})
        return
    print(url)


@surveys_app.command("invite")
def invite(
    ctx: typer.Context,
    as_of: Annotated[datetime | None, typer.Option("--as-of", formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"],
                                                   help="Evaluate the rules at this UTC time (default: now).")] = None,
    base_url: Annotated[str, typer.Option("--base-url", help="Public address of the server, prefixed to the links.")] = "",
    window_days: Annotated[int, typer.Option("--window-days", min=1, max=365, help="Triggers due longer ago are too old.")] = 7,
    quiet_days: Annotated[int, typer.Option("--quiet-days", min=0, max=365, help="How far back a long wait blocks an invitation.")] = 3,
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
) -> None:
    """Run every active survey's invitation rules and add new invitations to the outbox (never twice).

    JSON: {"as_of", "created", "due", "excluded": {long_wait, open_case, throttled, already_invited}, "invitations"}.

    Examples:

      cxlens surveys invite --as-of 2025-03-15

      cxlens surveys invite --base-url https://cx.example.com --format json
    """
    from cxlens.service.surveys import InviteSettings, run_invitations

    settings = InviteSettings(window_days=window_days, quiet_days=quiet_days)
    with open_workspace(ctx) as ws:
        report = run_invitations(ws, as_of=as_of, base_url=base_url, settings=settings)
    if format is Format.json:
        print_json(report.to_dict())
        return
    skipped = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in report.excluded.items() if n) or "none"
    console.print(f"{report.created} new invitations at {report.as_of} ({report.due} customers due; skipped: {skipped}).",
                  highlight=False)


@surveys_app.command("outbox")
def show_outbox(ctx: typer.Context, all_: Annotated[bool, typer.Option("--all", help="Include invitations marked sent.")] = False,
                due: Annotated[bool, typer.Option("--due", help="Only invitations whose send time has come.")] = False,
                format: Annotated[Format, FORMAT_OPTION] = Format.table) -> None:
    """List invitations waiting to be sent: survey, customer, channel, send time, reason and link.

    Examples:

      cxlens surveys outbox --due --format json

      cxlens surveys sent INVITATION_ID ...   (once your email or SMS tool has sent them)
    """
    from datetime import UTC, datetime

    from cxlens.service.surveys import outbox

    with open_workspace(ctx) as ws:
        rows = outbox(ws, pending_only=not all_, due_by=datetime.now(UTC) if due else None)
    if format is Format.json:
        print_json({"invitations": rows})
        return
    print_rows(rows, title=f"{len(rows)} invitations", columns=("send_at", "survey_id", "customer_id", "source", "channel",
                                                                   "reason", "url"))


@surveys_app.command("sent")
def mark_sent_command(ctx: typer.Context,
                      invitation_ids: Annotated[list[str], typer.Argument(help="Invitation ids from the outbox.", show_default=False)],
                      format: Annotated[Format, FORMAT_OPTION] = Format.table) -> None:
    """Mark invitations as sent, so the outbox stops listing them (a repeat changes nothing).

    JSON: {"marked": n, "already_sent": [...], "unknown": [...], "sent_at": "..."}.

    Examples:

      cxlens surveys sent inv_3f2a9c inv_77b01d --format json
    """
    from cxlens.service.surveys import mark_sent

    with open_workspace(ctx) as ws:
        result = mark_sent(ws, invitation_ids)
    if format is Format.json:
        print_json(result)
        return
    notes = [f"{len(result['already_sent'])} were already marked" if result["already_sent"] else "",
             f"not in the outbox: {', '.join(result['unknown'])}" if result["unknown"] else ""]
    extra = "; ".join(n for n in notes if n)
    console.print(f"Marked {result['marked']} invitations sent at {result['sent_at']}" + (f" ({extra})." if extra else "."),
                  highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(surveys_app, name="surveys")
