"""``offboard campaign``: start an access review, follow it, close it, get its evidence, and
manage the Temporal Schedule that starts one every quarter."""

from __future__ import annotations

import asyncio
import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from workflows.campaign_messages import CampaignTemplate

if TYPE_CHECKING:
    from sqlmodel import Session
    from temporalio.client import Client

    from config import Catalog, Settings

campaign_app = typer.Typer(no_args_is_help=True, help="Quarterly access-review campaigns.")
err = Console(stderr=True)


class Reviewer(StrEnum):
    manager = "manager"
    app_owner = "app_owner"


class NoDecision(StrEnum):
    keep = "keep"
    revoke = "revoke"


class ReportFormat(StrEnum):
    json = "json"
    csv = "csv"


AppsOpt = Annotated[
    str | None, typer.Option("--apps", help="Comma-separated app ids (default: every app).")
]
DueOpt = Annotated[float, typer.Option("--due-in-days", min=0.0001, help="Review window.")]
ReviewerOpt = Annotated[Reviewer, typer.Option("--reviewer", help="manager | app_owner")]
NoDecisionOpt = Annotated[
    NoDecision, typer.Option("--on-no-decision", help="What a missing decision becomes.")
]


def _env() -> tuple[Settings, Catalog]:
    # cli.main imports this module, so its helpers are fetched at call time.
    from cli.main import _catalog, _settings

    settings = _settings()
    return settings, _catalog(settings)


def _session(settings: Settings) -> Session:
    from cli.main import _session as session

    return session(settings)


async def _client(settings: Settings) -> Client:
    from temporal_client import connect

    return await connect(settings)


def _template(
    name: str, apps: str | None, due: float, reviewer: Reviewer, on_no_decision: NoDecision
) -> CampaignTemplate:
    return CampaignTemplate(
        name=name,
        apps=[a.strip() for a in apps.split(",") if a.strip()] if apps else None,
        due_in_days=due,
        reviewer=reviewer.value,
        on_no_decision=on_no_decision.value,
    )


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]{message}[/red]")
    return typer.Exit(code)


@campaign_app.command("start")
def start(
    name: Annotated[str, typer.Option(help="The campaign's name.")],
    apps: AppsOpt = None,
    due_in_days: DueOpt = 14,
    reviewer: ReviewerOpt = Reviewer.manager,
    on_no_decision: NoDecisionOpt = NoDecision.keep,
) -> None:
    """Start a campaign now; prints its id."""
    from api.campaign_service import start_campaign
    from api.deps import Db
    from api.errors import ApiError

    settings, catalog = _env()
    template = _template(name, apps, due_in_days, reviewer, on_no_decision)

    async def run() -> str:
        client = await _client(settings)
        db = Db(settings.effective_database_url)
        row = await start_campaign(client, db, settings, catalog, template, "cli", trigger="cli")
        return row.id

    try:
        typer.echo(asyncio.run(run()))
    except ApiError as exc:
        raise _fail(exc.message, 2 if exc.status == 422 else 1) from None


@campaign_app.command("status")
def status(
    campaign_id: str,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """A campaign's status, per-app collection and decision counts."""
    from api.campaign_service import campaign_view, get_campaign
    from api.errors import ApiError

    settings, _ = _env()
    with _session(settings) as session:
        try:
            view = campaign_view(session, get_campaign(session, campaign_id))
        except ApiError as exc:
            raise _fail(exc.message) from None
    if as_json:
        typer.echo(json.dumps(view, indent=2))
        return
    console = Console()
    console.print(f"[bold]{view['name']}[/bold] ({view['id']}): {view['status']}")
    console.print(
        f"due {view['due_at']}; reviewer: {view['reviewer']}; "
        f"no decision -> {view['on_no_decision']}"
    )
    table = Table("app", "collection", "accounts", "detail")
    for app, state in view["collection"].items():
        table.add_row(
            app, state.get("status", ""), str(state.get("accounts", 0)), state.get("detail", "")
        )
    console.print(table)
    counts = view["counts"]
    console.print(", ".join(f"{k}: {v}" for k, v in counts.items()))


@campaign_app.command("close")
def close(
    campaign_id: str,
    reason: Annotated[str, typer.Option(help="Why the review ends early.")] = "",
) -> None:
    """End the review now: on_no_decision applies and revocations start."""
    from temporalio.client import WorkflowUpdateFailedError

    from workflows.campaign import AccessReviewCampaignWorkflow
    from workflows.campaign_messages import CloseRequest

    settings, _ = _env()

    async def run() -> dict[str, Any]:
        client = await _client(settings)
        handle = client.get_workflow_handle(campaign_id)
        result = await handle.execute_update(
            AccessReviewCampaignWorkflow.close, CloseRequest(actor="cli", reason=reason)
        )
        return result.model_dump()

    try:
        typer.echo(json.dumps(asyncio.run(run()), indent=2))
    except WorkflowUpdateFailedError as exc:
        raise _fail(str(getattr(exc.cause, "message", exc.cause))) from None


@campaign_app.command("report")
def report(
    campaign_id: str,
    format: Annotated[ReportFormat, typer.Option(help="json | csv")] = ReportFormat.json,
    output: Annotated[Path | None, typer.Option(help="Write to this file.")] = None,
) -> None:
    """The evidence: one row per account, plus a summary (JSON)."""
    from api.campaign_service import get_campaign, report_csv, report_json
    from api.errors import ApiError

    settings, _ = _env()
    with _session(settings) as session:
        try:
            campaign = get_campaign(session, campaign_id)
        except ApiError as exc:
            raise _fail(exc.message) from None
        if format == ReportFormat.csv:
            text = "".join(report_csv(session, campaign_id))
        else:
            text = json.dumps(report_json(session, campaign), indent=2) + "\n"
    if output is not None:
        output.write_text(text)
        err.print(f"wrote {output}")
    else:
        typer.echo(text, nl=False)


@campaign_app.command("schedule")
def schedule(
    quarterly: Annotated[
        bool, typer.Option("--quarterly", help="First Monday of Jan/Apr/Jul/Oct, 09:00.")
    ] = False,
    cron: Annotated[str | None, typer.Option("--cron", help="A cron expression instead.")] = None,
    list_: Annotated[bool, typer.Option("--list", help="List campaign schedules.")] = False,
    delete: Annotated[
        str | None, typer.Option("--delete", help="Delete the schedule with this name.")
    ] = None,
    schedule_name: Annotated[
        str, typer.Option("--id", help="The schedule's name (id campaign-schedule-<id>).")
    ] = "quarterly",
    name: Annotated[
        str, typer.Option("--name", help="Campaign name; the quarter is appended.")
    ] = "Access review",
    apps: AppsOpt = None,
    due_in_days: DueOpt = 14,
    reviewer: ReviewerOpt = Reviewer.manager,
    on_no_decision: NoDecisionOpt = NoDecision.keep,
    time_zone: Annotated[
        str,
        typer.Option(
            "--time-zone",
            envvar="OFFBOARD_CAMPAIGN_TIME_ZONE",
            help="IANA time zone of the schedule (env OFFBOARD_CAMPAIGN_TIME_ZONE).",
        ),
    ] = "UTC",
) -> None:
    """Create (--quarterly | --cron EXPR), list (--list) or delete (--delete NAME) the Temporal
    Schedule that starts campaigns from a template."""
    from temporalio.service import RPCError

    from api.campaign_service import (
        SCHEDULE_PREFIX,
        create_schedule,
        cron_spec,
        list_schedules,
        quarterly_spec,
    )
    from api.deps import check_apps
    from api.errors import ApiError

    modes = [quarterly, cron is not None, list_, delete is not None]
    if sum(modes) != 1:
        raise _fail("give exactly one of --quarterly, --cron, --list, --delete", 2)
    settings, catalog = _env()

    async def run() -> None:
        client = await _client(settings)
        if list_:
            table = Table("name", "when", "time zone", "template", "next runs")
            for s in await list_schedules(client):
                when = "; ".join(s["calendars"] + s["cron"])
                shown = ", ".join(f"{k}={v}" for k, v in s["template"].items())
                table.add_row(
                    s["name"],
                    when,
                    s["time_zone"] or "UTC",
                    shown,
                    "\n".join(t for t in s["next"] if t),
                )
            Console().print(table)
            return
        if delete is not None:
            await client.get_schedule_handle(f"{SCHEDULE_PREFIX}{delete}").delete()
            typer.echo(f"deleted {SCHEDULE_PREFIX}{delete}")
            return
        template = _template(name, apps, due_in_days, reviewer, on_no_decision)
        if template.apps:
            check_apps(catalog, template.apps)
        spec = quarterly_spec(time_zone) if quarterly else cron_spec(cron or "", time_zone)
        handle = await create_schedule(client, schedule_name, template, spec, settings.task_queue)
        described = await handle.describe()
        typer.echo(handle.id)
        for moment in described.info.next_action_times[:4]:
            err.print(f"next: {moment.isoformat()}")

    try:
        asyncio.run(run())
    except ValueError as exc:
        raise _fail(str(exc), 2) from None
    except ApiError as exc:
        raise _fail(exc.message, 2) from None
    except RPCError as exc:
        raise _fail(f"Temporal: {exc.message}") from None
