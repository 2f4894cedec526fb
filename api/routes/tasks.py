"""Human tasks: list what is mine (or everything, for admins) and complete one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import CatalogDep, DbDep, PrincipalDep, SessionDep, TemporalDep
from api.schemas import MAX_OFFSET, TaskView
from domain.status import Outcome, TaskStatus
from services import tasks

router = APIRouter(tags=["tasks"])


class TaskComplete(BaseModel):
    outcome: Outcome
    note: str


@router.get("/tasks", response_model=list[TaskView])
def list_tasks(
    principal: PrincipalDep,
    session: SessionDep,
    catalog: CatalogDep,
    status: Annotated[TaskStatus | None, Query()] = None,
    assignee: str | None = Query(default=None),
    limit: int | None = Query(default=None, ge=1, le=5000),
    offset: int = Query(default=0, ge=0, le=MAX_OFFSET),
) -> list[dict[str, Any]]:
    """Tasks assigned to me, plus (app admins) those of my apps; admins see all."""
    found = tasks.list_tasks(
        session,
        principal,
        catalog,
        status=status,
        assignee=assignee,
        limit=limit,
        offset=offset,
    )
    return [tasks.task_view(t) for t in found]


@router.post("/tasks/{task_id}/complete", response_model=TaskView)
async def complete_task(
    task_id: str,
    body: TaskComplete,
    principal: PrincipalDep,
    db: DbDep,
    catalog: CatalogDep,
    client: TemporalDep,
) -> dict[str, Any]:
    task = await tasks.complete_task(
        db, catalog, client, principal, task_id, body.outcome, body.note
    )
    return tasks.task_view(task)
