"""``offboard start|status`` and ``offboard tasks list|complete``: the admin API's paths, from a
shell. They talk to the DB and Temporal directly (through the API's shared service code), so
they work beside ``offboard dev`` or against a production cluster alike."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Column, Table

if TYPE_CHECKING:
    from temporalio.client import Client

    from config import Catalog, Settings

tasks_app = typer.Typer(no_args_is_help=True, help="Human tasks.")
err = Console(stderr=True)


def _env() -> tuple[Settings, Catalog]:
    # cli.main imports this module, so its helpers are fetched at call time.
    from cli.main import _catalog, _settings

    settings = _settings()
    return settings, _catalog(settings)


async def _client(settings: Settings) -> Client:
    from temporal_client import connect

    return await connect(settings)


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]{message}[/red]")
    return typer.Exit(1)


def start(
    email: str,
    reason: Annotated[str, typer.Option(help="Why (lands in the audit trail).")] = "",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan only.")] = False,
    at: Annotated[str | None, typer.Option("--at", help="Effective time, ISO 8601 + zone.")] = None,
) -> None:
    """Offboard someone by email now (or --at a time); --dry-run prints the plan."""
    from api.deps import Db
    from api.errors import ApiError
    from api.offboarding_service import resolve_person, start_offboarding
    from workflows.plan import PlanWorkflow
    from workflows.types import JoinRequest, OffboardingInput, PlanInput

    settings, _ = _env()
    effective = datetime.fromisoformat(at) if at else None
    if effective is not None and effective.tzinfo is None:
        err.print("--at needs a time zone, e.g. 2026-12-01T17:00:00+00:00")
        raise typer.Exit(2)
    db = Db(settings.effective_database_url)

    async def run() -> dict[str, Any]:
        client = await _client(settings)
        person = await db.run(lambda s: resolve_person(s, email, None))
        if dry_run:
            plan = await client.execute_workflow(
                PlanWorkflow.run,
                PlanInput(person_id=person.id, email=person.email),
                id=f"plan-{uuid.uuid4().hex}",
                task_queue=settings.task_queue,
            )
            apps = [p.model_dump(include={"app", "action", "account", "reason"}) for p in plan.apps]
            return {"dry_run": True, "person": person.id, "apps": apps}
        inp = OffboardingInput(
            person_id=person.id,
            email=person.email,
            name=person.name,
            reason=reason,
            effective_at=effective,
            trigger="cli",
            actor="cli",
        )
        run_id, joined = await start_offboarding(
            client, db, settings, inp, JoinRequest(source="cli", reason=reason)
        )
        return {"run_id": run_id, "joined": joined, "person": person.id}

    try:
        typer.echo(json.dumps(asyncio.run(run()), indent=2))
    except ApiError as exc:
        raise _fail(exc.message) from None


def status(run_id: str) -> None:
    """Show a run and each app's step."""
    from api.offboarding_service import run_view
    from db.models import OffboardingRun
    from db.session import open_session

    settings, _ = _env()
    with open_session(settings.effective_database_url) as session:
        run = session.get(OffboardingRun, run_id)
        if run is None:
            raise _fail(f"no offboarding run {run_id!r}")
        view = run_view(session, run)
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
    from sqlmodel import col, select

    from db.models import HumanTask
    from db.session import open_session

    settings, _ = _env()
    with open_session(settings.effective_database_url) as session:
        query = select(HumanTask).order_by(col(HumanTask.due_at))
        if status:
            query = query.where(HumanTask.status == status)
        tasks = session.exec(query).all()
    table = Table("kind", "app", "person", "assignees", "status", "due")
    # Ids are copied into `tasks complete`, so they are never wrapped or cut.
    table.columns.insert(0, Column("id", no_wrap=True, min_width=20))
    for t in tasks:
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
    from api.deps import Db, Principal
    from api.errors import ApiError
    from api.routes.tasks import complete

    if outcome not in ("done", "not_applicable", "could_not_complete"):
        err.print("--outcome must be done, not_applicable or could_not_complete")
        raise typer.Exit(2)
    settings, catalog = _env()
    principal = Principal(name="cli", role="admin", email=actor)

    async def run() -> None:
        client = await _client(settings)
        db = Db(settings.effective_database_url)
        await complete(db, catalog, client, principal, task_id, outcome, note)  # type: ignore[arg-type]

    try:
        asyncio.run(run())
    except ApiError as exc:
        raise _fail(exc.message) from None
    typer.echo(f"task {task_id}: {outcome}")
