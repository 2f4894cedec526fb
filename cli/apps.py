"""``offboard apps list|check``: the app catalog, and read-only probes of its SCIM and IdP apps.

``check`` exits 1 when an app is unusable, 2 for an unknown app id.
"""

from __future__ import annotations

import asyncio
import os
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cli import common
from cli.common import err
from services.app_checks import AppReport, check_app, suggested_settings
from services.idp_checks import check_idp_app

apps_app = typer.Typer(no_args_is_help=True, help="The app catalog.")
MARK = {
    "ok": "[green]ok[/green]",
    "warn": "[yellow]warn[/yellow]",
    "fail": "[red]FAIL[/red]",
    "info": "[dim]info[/dim]",
}


@apps_app.command("list")
def apps_list() -> None:
    """List the apps in the catalog."""
    catalog = common.catalog(common.settings())
    table = Table("id", "name", "connector", "owners")
    for a in catalog.apps:
        table.add_row(a.id, a.name, a.connector, ", ".join(a.owners))
    Console().print(table)


def render(report: AppReport, console: Console) -> None:
    app = report.app
    verdict = "[green]usable[/green]" if report.usable else "[red]UNUSABLE[/red]"
    table = Table(
        "check",
        "result",
        "detail",
        "suggestion",
        title=f"{app.name} ({app.id}): {verdict}",
        title_justify="left",
    )
    for f in report.findings:
        table.add_row(f.check, MARK[f.status], f.detail, f.suggestion)
    console.print(table)
    settings = suggested_settings(report)
    if settings:
        console.print(f"Suggested catalog settings for {app.id} (under {app.connector}:):")
        for line in settings:
            console.print(f"  {line}", highlight=False)


@apps_app.command("check")
def apps_check(
    app: Annotated[str | None, typer.Argument(help="One app id; default: every app.")] = None,
) -> None:
    """Probe SCIM and IdP apps (read only): reach, auth, permissions, the probe user."""
    catalog = common.catalog(common.settings())
    apps = catalog.apps
    if app is not None:
        apps = [a for a in catalog.apps if a.id == app]
        if not apps:
            known = ", ".join(a.id for a in catalog.apps) or "none"
            err.print(f"unknown app {app!r} (catalog apps: {known})")
            raise typer.Exit(2)
    console = Console(soft_wrap=True)
    unusable: list[str] = []
    for entry in apps:
        if entry.scim is not None:
            report = asyncio.run(check_app(entry, os.environ))
        elif entry.idp_settings is not None:
            report = asyncio.run(check_idp_app(entry, os.environ))
        else:
            console.print(f"{entry.name} ({entry.id}): {entry.connector} app, nothing to probe")
            continue
        render(report, console)
        if not report.usable:
            unusable.append(entry.id)
    if unusable:
        err.print(f"unusable: {', '.join(unusable)}")
        raise typer.Exit(1)
