"""``offboard token create``: an API token, printed alone on stdout."""

from __future__ import annotations

from typing import Annotated

import typer

from cli import common
from domain.status import ROLES, Role
from services.tokens import create_token

token_app = typer.Typer(no_args_is_help=True, help="API tokens.")


@token_app.command("create")
def token_create(
    role: Annotated[str, typer.Option(help="admin | app-admin | reviewer")],
    name: Annotated[str, typer.Option(help="Who or what holds the token.")],
    email: Annotated[str | None, typer.Option(help="The holder's email (task assignee).")] = None,
) -> None:
    """Create an API token and print it, alone, on stdout."""
    if role not in ROLES:
        raise common.fail(f"role must be one of {', '.join(ROLES)}", 2)
    chosen: Role = next(r for r in ROLES if r == role)
    with common.session(common.settings()) as session:
        typer.echo(create_token(session, chosen, name, email))
