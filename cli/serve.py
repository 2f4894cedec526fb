"""``offboard dev|api|worker|migrate``: run the pieces (everything embedded, or one each).

The long-running ones run on uvloop (uvicorn picks it too for ``offboard api``): under a burst
the event loop's own bookkeeping was a tenth of the worker's CPU on the standard loop.
"""

from __future__ import annotations

import signal
import sys
from typing import Annotated

import typer
import uvloop
from rich.console import Console

from cli import common
from config import CatalogError


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def dev(
    demo: Annotated[bool, typer.Option(help="Add a demo SCIM app and a manual app.")] = False,
) -> None:
    """Run everything embedded: Temporal dev server, worker, API + UI."""
    from devstack.stack import DevStack

    stack = DevStack(common.settings(dev_address=False), demo=demo)
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
        uvloop.run(stack.serve())
    except KeyboardInterrupt:
        pass
    except CatalogError as exc:
        raise common.fail(str(exc)) from None
    finally:
        stack.stop()


def api() -> None:
    """Serve the HTTP API and web UI (uvicorn)."""
    import uvicorn

    from api.app import create_app

    settings = common.settings()
    app = create_app(settings, common.catalog(settings))
    uvicorn.run(app, host=settings.host, port=settings.port)


def worker() -> None:
    """Run a Temporal worker against OFFBOARD_TEMPORAL_ADDRESS (metrics on its own port)."""
    from worker import serve_worker

    settings = common.settings()
    uvloop.run(serve_worker(settings, common.catalog(settings)))


def migrate() -> None:
    """Apply database migrations (Alembic) up to the newest."""
    from db.migrate import upgrade

    settings = common.settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.effective_database_url)
    typer.echo("database is up to date")
