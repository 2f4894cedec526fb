"""``offboard campaign``: start an access review, follow it, close it, get its evidence, and
manage the Temporal Schedule that starts one every quarter."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cli import common
from cli.common import err
from services import campaign_reports, campaign_schedules, campaigns
from services.authz import Principal
from services.offboardings import check_apps
from workflows.campaign_messages import CampaignTemplate

campaign_app = typer.Typer(no_args_is_help=True, help="Quarterly access-review campaigns.")
CLI_ADMIN = Principal(name="cli", role="admin", email=None)


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


@campaign_app.command("start")
def start(
    name: Annotated[str, typer.Option(help="The campaign's name.")],
    apps: AppsOpt = None,
    due_in_days: DueOpt = 14,
    reviewer: ReviewerOpt = Reviewer.manager,
    on_no_decision: NoDecisionOpt = NoDecision.keep,
) -> None:
    """Start a campaign now; prints its id."""
    settings = common.settings()
    catalog = common.catalog(settings)
    template = _template(name, apps, due_in_days, reviewer, on_no_decision)

    async def run() -> str:
        client = await common.client(settings)
        db = common.db(settings)
        row = await campaigns.start_campaign(
            client, db, settings, catalog, template, "cli", trigger="cli"
        )
        return row.id

    typer.echo(common.run(run()))


@campaign_app.command("status")
def status(
    campaign_id: str,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """A campaign's status, per-app collection and decision counts."""
    with common.session(common.settings()) as session, common.exit_codes():
        view = campaigns.campaign_view(session, campaigns.get_campaign(session, campaign_id))
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
    settings = common.settings()

    async def run() -> dict[str, object]:
        client = await common.client(settings)
        db = common.db(settings)
        closed = await campaigns.close_campaign(db, client, CLI_ADMIN, campaign_id, reason)
        return closed.model_dump()

    typer.echo(json.dumps(common.run(run()), indent=2))


@campaign_app.command("report")
def report(
    campaign_id: str,
    format: Annotated[ReportFormat, typer.Option(help="json | csv")] = ReportFormat.json,
    output: Annotated[Path | None, typer.Option(help="Write to this file.")] = None,
) -> None:
    """The evidence: one row per account, plus a summary (JSON)."""
    settings = common.settings()
    with common.session(settings) as session:
        with common.exit_codes():
            campaign = campaigns.get_campaign(session, campaign_id)
        if format == ReportFormat.csv:
            text = "".join(campaign_reports.report_csv(session, campaign_id))
        else:
            report = campaign_reports.report_json(session, campaign, common.catalog(settings))
            text = json.dumps(report, indent=2) + "\n"
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
    modes = [quarterly, cron is not None, list_, delete is not None]
    if sum(modes) != 1:
        raise common.fail("give exactly one of --quarterly, --cron, --list, --delete", 2)
    settings = common.settings()
    catalog = common.catalog(settings)
    prefix = campaign_schedules.SCHEDULE_PREFIX

    async def run() -> None:
        client = await common.client(settings)
        if list_:
            table = Table("name", "when", "time zone", "template", "next runs")
            for s in await campaign_schedules.list_schedules(client):
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
            await client.get_schedule_handle(f"{prefix}{delete}").delete()
            typer.echo(f"deleted {prefix}{delete}")
            return
        template = _template(name, apps, due_in_days, reviewer, on_no_decision)
        if template.apps:
            check_apps(catalog, template.apps)
        if quarterly:
            spec = campaign_schedules.quarterly_spec(time_zone)
        else:
            spec = campaign_schedules.cron_spec(cron or "", time_zone)
        handle = await campaign_schedules.create_schedule(
            client, schedule_name, template, spec, settings.task_queue
        )
        described = await handle.describe()
        typer.echo(handle.id)
        for moment in described.info.next_action_times[:4]:
            err.print(f"next: {moment.isoformat()}")

    common.run(run())
