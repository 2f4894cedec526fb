"""The ``offboard`` command: this module assembles the command groups, nothing else.

Each group (``cli/<group>.py``) imports ``cli/common.py`` and ``services``, never another group.
Exit codes: 0 ok, 1 failure, 2 usage.
"""

from __future__ import annotations

import typer

from cli import apps, audit, campaign, runs, serve, tokens

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Durable offboarding.")
for command in (serve.dev, serve.api, serve.worker, serve.migrate, runs.start, runs.status):
    app.command()(command)
app.add_typer(tokens.token_app, name="token")
app.add_typer(audit.audit_app, name="audit")
app.add_typer(apps.apps_app, name="apps")
app.add_typer(campaign.campaign_app, name="campaign")
app.add_typer(runs.tasks_app, name="tasks")
