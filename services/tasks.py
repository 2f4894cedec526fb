"""Human tasks: list the ones the caller may see, read one, complete one through its workflow."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select
from temporalio.client import Client

from config import Catalog
from db.models import HumanTask
from db.session import Db
from domain.status import Outcome
from services import authz
from services.authz import Principal
from services.errors import Conflict, NotFound
from services.workflow_calls import update
from workflows.human_task import HumanTaskWorkflow
from workflows.types import TaskCompletion


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


def list_tasks(
    session: Session,
    principal: Principal,
    catalog: Catalog,
    *,
    status: str | None = None,
    assignee: str | None = None,
    limit: int | None = None,
    offset: int = 0,
    newest_first: bool = False,
) -> list[HumanTask]:
    """The tasks the caller may see (filtered in SQL, before paging), by due time."""
    query = select(HumanTask).where(authz.visible_tasks(principal, catalog))
    if status == "closed":
        query = query.where(HumanTask.status != "open")
    elif status:
        query = query.where(HumanTask.status == status)
    if assignee:
        query = query.where(authz.assigned_to(assignee))
    if newest_first:
        query = query.order_by(col(HumanTask.completed_at).desc(), col(HumanTask.created_at).desc())
    else:
        query = query.order_by(col(HumanTask.due_at), col(HumanTask.created_at))
    query = query.order_by(col(HumanTask.id)).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return list(session.exec(query).all())


def run_tasks(session: Session, run_id: str) -> list[HumanTask]:
    """Every task of a run, oldest first (for whoever may see the run)."""
    query = select(HumanTask).where(HumanTask.run_id == run_id)
    return list(session.exec(query.order_by(col(HumanTask.created_at))).all())


def get_task(session: Session, principal: Principal, catalog: Catalog, task_id: str) -> HumanTask:
    """One task the caller may see; NotFound otherwise (a task's existence is confidential)."""
    task = session.exec(
        select(HumanTask).where(HumanTask.id == task_id, authz.visible_tasks(principal, catalog))
    ).first()
    if task is None:
        raise NotFound(f"no task {task_id!r} for you")
    return task


async def complete_task(
    db: Db,
    catalog: Catalog,
    client: Client,
    principal: Principal,
    task_id: str,
    outcome: Outcome,
    note: str,
    evidence_sha256: str | None = None,
) -> HumanTask:
    """Complete a task through its workflow's Update; returns the row as it is once done.

    Raises NotFound (not the caller's), Conflict ``task_closed`` (already done or cancelled)
    or Conflict ``cannot_complete`` (the workflow refused, e.g. an empty note).
    """
    task = await db.run(lambda session: get_task(session, principal, catalog, task_id))
    if task.status != "open":
        raise Conflict("task_closed", f"task {task_id} is already {task.status}")
    completion = TaskCompletion(
        outcome=outcome, note=note, actor=principal.actor, evidence_sha256=evidence_sha256
    )
    handle = client.get_workflow_handle(task.workflow_id)
    await update(handle, HumanTaskWorkflow.complete, completion, "cannot_complete")
    done = await db.run(lambda session: session.get(HumanTask, task_id))
    assert done is not None
    return done
