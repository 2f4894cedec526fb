"""``offboard audit show|verify``: a person's trail, and hash-chain checks for auditors."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cli import common
from domain.audit import Subject
from services import trails

audit_app = typer.Typer(no_args_is_help=True, help="Audit trails.")


@audit_app.command("show")
def audit_show(
    person: str,
    format: Annotated[str, typer.Option(help="table | json | csv")] = "table",
) -> None:
    """Print a person's audit trail."""
    with common.session(common.settings()) as session, common.exit_codes():
        events = trails.trail_events(session, Subject.person(person))
    if format == "json":
        typer.echo(json.dumps(events, indent=2))
    elif format == "csv":
        typer.echo(trails.trail_csv(events), nl=False)
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
    """Recompute hash chains (one person's, or every trail's); exit 1 naming the first bad
    event."""
    subject = Subject.person(person) if person else None
    with common.session(common.settings()) as session:
        checked = trails.verify_trails(session, subject)
    bad = 0
    for each, count, check in checked:
        if check.valid:
            typer.echo(f"ok    {each}: {count} events, chain intact")
        else:
            bad += 1
            typer.echo(f"BAD   {each}: event seq {check.first_bad_seq}: {check.reason}")
    if bad:
        raise typer.Exit(1)
