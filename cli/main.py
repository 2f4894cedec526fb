"""The ``offboard`` command. Exit codes: 0 ok, 1 failure, 2 usage."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlmodel import Session

from cli import runs
from cli.campaign import campaign_app
from config import Catalog, CatalogError, Settings, get_settings, load_catalog
from db import audit
from db.migrate import upgrade
from db.session import open_session
from domain.audit import Subject
from logs import configure_logging

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Durable offboarding.")
token_app = typer.Typer(no_args_is_help=True, help="API tokens.")
audit_app = typer.Typer(no_args_is_help=True, help="Audit trails.")
apps_app = typer.Typer(no_args_is_help=True, help="The app catalog.")
app.add_typer(token_app, name="token")
app.add_typer(audit_app, name="audit")
app.add_typer(apps_app, name="apps")
app.add_typer(campaign_app, name="campaign")
app.add_typer(runs.tasks_app, name="tasks")
app.command()(runs.start)
app.command()(runs.status)
err = Console(stderr=True)


def _settings(dev_address: bool = True) -> Settings:
    settings = get_settings()
    configure_logging(settings.log_format)
    if dev_address and settings.temporal_address is None:
        # `offboard dev` writes where its embedded server listens, for CLI calls beside it.
        address_file = settings.data_dir / "temporal-address"
        if address_file.exists():
            settings = settings.model_copy(update={"temporal_address": address_file.read_text()})
    return settings


def _session(settings: Settings) -> Session:
    return open_session(settings.effective_database_url)


def _catalog(settings: Settings) -> Catalog:
    try:
        return load_catalog(settings.catalog)
    except CatalogError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


@app.command()
def dev(
    demo: Annotated[bool, typer.Option(help="Add a demo SCIM app and a manual app.")] = False,
) -> None:
    """Run everything embedded: Temporal dev server, worker, API + UI."""
    from devstack.stack import DevStack

    stack = DevStack(_settings(dev_address=False), demo=demo)
    # Until serve() installs its own handlers, SIGTERM is handled like Ctrl-C, so a
    # supervisor stopping us during start-up still stops every child.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        stack.prepare()
        console = Console()
        console.print(f"offboard is running at [bold]{stack.urls['api']}[/bold]")
        console.print(f"Temporal UI: {stack.urls['temporal_ui']}")
        console.print(f"Admin token: {stack.admin_token}")
        console.print(f"Data dir: {stack.settings.data_dir.resolve()}  (Ctrl-C stops everything)")
        sys.stdout.flush()
        asyncio.run(stack.serve())
    except KeyboardInterrupt:
        pass
    except CatalogError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    finally:
        stack.stop()


@app.command()
def api() -> None:
    """Serve the HTTP API and web UI (uvicorn)."""
    import uvicorn

    from api.app import create_app

    settings = _settings()
    uvicorn.run(create_app(settings, _catalog(settings)), host=settings.host, port=settings.port)


@app.command()
def worker() -> None:
    """Run a Temporal worker against OFFBOARD_TEMPORAL_ADDRESS."""
    from connectors.registry import ConnectorRegistry
    from metrics import count_scim_response
    from temporal_client import connect
    from worker import build_worker

    settings = _settings()
    catalog = _catalog(settings)

    async def run() -> None:
        client = await connect(settings)
        registry = ConnectorRegistry(catalog, observe=count_scim_response)
        built = build_worker(client, settings, catalog, registry)
        # As PID 1 in a container SIGTERM has no default action: drain in-flight activities.
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: loop.create_task(built.shutdown()))
        try:
            await built.run()
        finally:
            await registry.aclose()

    asyncio.run(run())


@app.command()
def migrate() -> None:
    """Apply database migrations (Alembic) up to the newest."""
    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.effective_database_url)
    typer.echo("database is up to date")


@token_app.command("create")
def token_create(
    role: Annotated[str, typer.Option(help="admin | app-admin | reviewer")],
    name: Annotated[str, typer.Option(help="Who or what holds the token.")],
    email: Annotated[str | None, typer.Option(help="The holder's email (task assignee).")] = None,
) -> None:
    """Create an API token and print it, alone, on stdout."""
    from api.tokens import ROLES, create_token

    if role not in ROLES:
        err.print(f"role must be one of {', '.join(ROLES)}")
        raise typer.Exit(2)
    settings = _settings()
    with _session(settings) as session:
        typer.echo(create_token(session, role, name, email))


@audit_app.command("show")
def audit_show(
    person: str,
    format: Annotated[str, typer.Option(help="table | json | csv")] = "table",
) -> None:
    """Print a person's audit trail."""
    from api.routes.people import audit_csv

    with _session(_settings()) as session:
        events = audit.person_events(session, person)
    if not events:
        err.print(f"no audit events for {person}")
        raise typer.Exit(1)
    if format == "json":
        typer.echo(json.dumps(events, indent=2))
    elif format == "csv":
        typer.echo(audit_csv(events), nl=False)
    else:
        table = Table("seq", "at", "kind", "app", "actor", "detail")
        for e in events:
            table.add_row(
                str(e["seq"]),
                e["at"],
                e["kind"],
                e["app"] or "",
                e["actor"],
                json.dumps(e["detail"])[:80],
            )
        Console().print(table)


@audit_app.command("verify")
def audit_verify(person: Annotated[str | None, typer.Argument()] = None) -> None:
    """Recompute hash chains; exit 1 naming the first bad event."""
    with _session(_settings()) as session:
        subjects = [Subject.person(person)] if person else audit.subjects_with_events(session)
        bad = 0
        for subject in subjects:
            events = audit.trail(session, subject)
            check = audit.verify(events)
            if check.valid:
                typer.echo(f"ok    {subject}: {len(events)} events, chain intact")
            else:
                bad += 1
                typer.echo(f"BAD   {subject}: event seq {check.first_bad_seq}: {check.reason}")
    if bad or (person and not subjects):
        raise typer.Exit(1)


@apps_app.command("list")
def apps_list() -> None:
    """List the apps in the catalog."""
    catalog = _catalog(_settings())
    table = Table("id", "name", "connector", "owners")
    for a in catalog.apps:
        table.add_row(a.id, a.name, a.connector, ", ".join(a.owners))
    Console().print(table)


from cli import apps_check as _apps_check  # noqa: E402, F401 (registers `apps check`)
