"""``offboard start|status`` and ``offboard tasks list|complete``: the admin API's paths, from a
shell. They talk to the DB and Temporal directly (through the shared services), so they work
beside ``offboard dev`` or against a production cluster alike."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Column, Table

from cli import common
from domain.status import OUTCOMES
from services import offboardings, tasks
from services.authz import Principal
from workflows.types import JoinRequest

tasks_app = typer.Typer(no_args_is_help=True, help="Human tasks.")
CLI_ADMIN = Principal(name="cli", role="admin", email=None)


def start(
    email: str,
    reason: Annotated[str, typer.Option(help="Why (lands in the audit trail).")] = "",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan only.")] = False,
    at: Annotated[str | None, typer.Option("--at", help="Effective time, ISO 8601 + zone.")] = None,
) -> None:
    """Offboard someone by email now (or --at a time); --dry-run prints the plan."""
    settings = common.settings()
    effective = datetime.fromisoformat(at) if at else None
    if effective is not None and effective.tzinfo is None:
        raise common.fail("--at needs a time zone, e.g. 2026-12-01T17:00:00+00:00", 2)
    db = common.db(settings)

    async def run() -> dict[str, Any]:
        client = await common.client(settings)
        person = await db.run(lambda s: offboardings.resolve_person(s, email, None))
        if dry_run:
            return await offboardings.dry_run(client, settings, person)
        inp = offboardings.offboarding_input(
            person, reason=reason, effective_at=effective, trigger="cli", actor="cli"
        )
        join = JoinRequest(source="cli", reason=reason)
        run_id, joined = await offboardings.start_offboarding(client, db, settings, inp, join)
        return {"run_id": run_id, "joined": joined, "person": person.id}

    typer.echo(json.dumps(common.run(run()), indent=2))


def status(run_id: str) -> None:
    """Show a run and each app's step."""
    settings = common.settings()
    with common.session(settings) as session, common.exit_codes():
        [view] = offboardings.run_views(session, [offboardings.find_run(session, run_id)])
    console = Console()
    console.print(f"run {view['run_id']}  {view['person']['email']}  [bold]{view['status']}[/bold]")
    table = Table("app", "connector", "status", "detail", "updated")
    for step in view["apps"]:
        table.add_row(
            step["app"], step["connector"], step["status"], step["detail"], str(step["updated_at"])
        )
    console.print(table)
    if view["status"] == "failed":
        raise typer.Exit(1)


@tasks_app.command("list")
def tasks_list(
    status: Annotated[str | None, typer.Option(help="open | done | cancelled")] = "open",
) -> None:
    """List human tasks (all assignees)."""
    settings = common.settings()
    with common.session(settings) as session:
        found = tasks.list_tasks(
            session, CLI_ADMIN, common.catalog(settings), status=status or None
        )
    table = Table("kind", "app", "person", "assignees", "status", "due")
    # Ids are copied into `tasks complete`, so they are never wrapped or cut.
    table.columns.insert(0, Column("id", no_wrap=True, min_width=20))
    for t in found:
        table.add_row(
            t.id, t.kind, t.app, t.person_email, ", ".join(t.assignees), t.status, str(t.due_at)
        )
    Console().print(table)


@tasks_app.command("complete")
def tasks_complete(
    task_id: str,
    note: Annotated[str, typer.Option(help="What was done (required).")],
    outcome: Annotated[str, typer.Option(help="done | not_applicable | could_not_complete")] = (
        "done"
    ),
    actor: Annotated[str, typer.Option(help="Who did it (lands in the trail).")] = "cli",
) -> None:
    """Complete a task, as an admin would in the web UI."""
    if outcome not in OUTCOMES:
        raise common.fail("--outcome must be done, not_applicable or could_not_complete", 2)
    settings = common.settings()
    catalog = common.catalog(settings)
    principal = Principal(name="cli", role="admin", email=actor)

    async def run() -> None:
        client = await common.client(settings)
        db = common.db(settings)
        await tasks.complete_task(db, catalog, client, principal, task_id, outcome, note)

    common.run(run())
    typer.echo(f"task {task_id}: {outcome}")
