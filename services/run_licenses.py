"""Licences a run reclaimed: its finished steps' seats, less what a restore gave back."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from db.models import AuditEvent


def restore_workflow_id(run_id: str) -> str:
    """The RestoreWorkflow of a run (one offer per run)."""
    return f"restore-{run_id}"


def restored_apps(session: Session, run_ids: list[str]) -> dict[str, set[str]]:
    """Per run id, the apps its restore gave back (``restore.app_restored`` on the trail)."""
    restored: dict[str, set[str]] = {i: set() for i in run_ids}
    if not run_ids:
        return restored
    by_workflow = {restore_workflow_id(i): i for i in run_ids}
    for workflow_id, app in session.exec(
        select(AuditEvent.workflow_id, AuditEvent.app).where(
            col(AuditEvent.workflow_id).in_(list(by_workflow)),
            AuditEvent.kind == "restore.app_restored",
        )
    ):
        restored[by_workflow[workflow_id]].add(app or "")
    return restored


def reclaimed_steps(views: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """``(app, status)`` of the run views' steps whose seat is still reclaimed: an app a
    restore gave back (the view's ``restored_apps``) has its seat in use again."""
    return [
        (a["app"], a["status"])
        for v in views
        for a in v["apps"]
        if a["app"] not in v["restored_apps"]
    ]
