"""Human tasks: list what is mine (or everything, for admins) and complete one."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlmodel import col, select
from temporalio.client import Client, WorkflowUpdateFailedError

from api.deps import CatalogDep, Db, DbDep, Principal, PrincipalDep, SessionDep, TemporalDep
from api.errors import ApiError
from config import Catalog
from db.models import HumanTask
from workflows.human_task import HumanTaskWorkflow
from workflows.types import Outcome, TaskCompletion

router = APIRouter(tags=["tasks"])


class TaskComplete(BaseModel):
    outcome: Outcome
    note: str


def task_view(task: HumanTask) -> dict[str, Any]:
    return {
        "id": task.id,
        "kind": task.kind,
        "app": task.app,
        "run_id": task.run_id,
        "person": {"id": task.person_id, "email": task.person_email},
        "assignees": task.assignees,
        "status": task.status,
        "due_at": task.due_at,
        "instructions": task.instructions,
        "outcome": task.outcome,
        "note": task.note,
        "completed_by": task.completed_by,
        "completed_at": task.completed_at,
    }


def can_see(principal: Principal, task: HumanTask, catalog: Catalog) -> bool:
    if principal.role == "admin":
        return True
    email = (principal.email or "").lower()
    if email and email in {a.lower() for a in task.assignees}:
        return True
    if principal.role == "app-admin" and email:
        try:
            return email in {o.lower() for o in catalog.app(task.app).owners}
        except KeyError:
            return False
    return False


@router.get("/tasks")
def list_tasks(
    principal: PrincipalDep,
    session: SessionDep,
    catalog: CatalogDep,
    status: str | None = Query(default=None),
    assignee: str | None = Query(default=None),
) -> list[dict[str, Any]]:
    query = select(HumanTask).order_by(col(HumanTask.due_at))
    if status:
        query = query.where(HumanTask.status == status)
    tasks = [t for t in session.exec(query).all() if can_see(principal, t, catalog)]
    if assignee:
        tasks = [t for t in tasks if assignee.lower() in {a.lower() for a in t.assignees}]
    return [task_view(t) for t in tasks]


@router.post("/tasks/{task_id}/complete")
async def complete_task(
    task_id: str,
    body: TaskComplete,
    principal: PrincipalDep,
    db: DbDep,
    catalog: CatalogDep,
    client: TemporalDep,
) -> dict[str, Any]:
    task = await complete(db, catalog, client, principal, task_id, body.outcome, body.note)
    return task_view(task)


async def complete(
    db: Db,
    catalog: Catalog,
    client: Client,
    principal: Principal,
    task_id: str,
    outcome: Outcome,
    note: str,
    evidence_sha256: str | None = None,
) -> HumanTask:
    """Complete a task through its workflow (one path for the JSON API and the web form)."""
    task = await db.run(lambda session: session.get(HumanTask, task_id))
    if task is None or not can_see(principal, task, catalog):
        raise ApiError(404, "not_found", f"no task {task_id!r} for you")
    if task.status != "open":
        raise ApiError(409, "task_closed", f"task {task_id} is already {task.status}")
    handle = client.get_workflow_handle(task.workflow_id)
    completion = TaskCompletion(
        outcome=outcome, note=note, actor=principal.actor, evidence_sha256=evidence_sha256
    )
    try:
        await handle.execute_update(HumanTaskWorkflow.complete, completion)
    except WorkflowUpdateFailedError as exc:
        message = getattr(exc.cause, "message", None) or str(exc.cause)
        raise ApiError(409, "cannot_complete", message) from None
    done = await db.run(lambda session: session.get(HumanTask, task_id))
    assert done is not None
    return done
