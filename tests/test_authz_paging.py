"""Paging shows only what the caller may see, in full pages: visibility is decided in SQL
before LIMIT/OFFSET (services/authz.py), not by filtering a page afterwards."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from db.models import HumanTask, OffboardingRun, Step, utcnow
from tests.conftest import Stack, StackFactory

pytestmark = pytest.mark.slow

OWNER = "it-lead@example.com"  # owns iManage in the test catalog
RUNS = 30  # every third involves iManage
TASKS = 30  # every third is iManage's, every fifth (of the rest) is assigned to the owner


def seed(stack: Stack) -> tuple[set[str], set[str]]:
    """Runs and tasks straight in the DB; returns the ids an iManage owner may see."""
    now = utcnow()
    runs, tasks = set(), set()
    with stack.session() as session:
        for i in range(RUNS):
            run_id = f"run-{i:03d}"
            app = "imanage" if i % 3 == 0 else "ironclad"
            session.add(
                OffboardingRun(
                    run_id=run_id,
                    workflow_id=f"offboard-P{i}",
                    person_id=f"P{i}",
                    email=f"p{i}@example.com",
                    status="running",
                    created_at=now - timedelta(minutes=i),
                )
            )
            session.add(Step(run_id=run_id, app=app, connector="manual", status="running"))
            if app == "imanage":
                runs.add(run_id)
        for i in range(TASKS):
            app = "imanage" if i % 3 == 0 else "ironclad"
            assignees = ["someone@example.com"]
            if i % 5 == 0:
                assignees.append(OWNER.upper())  # matched case-insensitively
            session.add(
                HumanTask(
                    id=f"task-{i:03d}",
                    workflow_id=f"task-task-{i:03d}",
                    kind="manual_step",
                    app=app,
                    run_id=f"run-{i:03d}",
                    person_id=f"P{i}",
                    person_email=f"p{i}@example.com",
                    assignees=assignees,
                    due_at=now + timedelta(hours=i),
                )
            )
            if app == "imanage" or i % 5 == 0:
                tasks.add(f"task-{i:03d}")
        session.commit()
    return runs, tasks


async def pages(stack: Stack, token: str, path: str, key: str, size: int) -> list[list[Any]]:
    found: list[list[Any]] = []
    while True:
        response = await stack.http.get(
            path,
            params={"limit": size, "offset": size * len(found)},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 200, response.text
        page = [row[key] for row in response.json()]
        if not page:
            return found
        found.append(page)


async def test_an_app_admin_pages_through_full_pages_of_only_visible_rows(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(worker=False)
    visible_runs, visible_tasks = seed(stack)
    owner = stack.token("app-admin", OWNER)
    size = 4

    run_pages = await pages(stack, owner, "/api/v1/offboardings", "run_id", size)
    assert all(len(p) == size for p in run_pages[:-1]), run_pages
    seen_runs = [r for p in run_pages for r in p]
    assert sorted(seen_runs) == sorted(visible_runs)  # each once, none of another app's
    assert len(run_pages) == -(-len(visible_runs) // size)

    task_pages = await pages(stack, owner, "/api/v1/tasks", "id", size)
    assert all(len(p) == size for p in task_pages[:-1]), task_pages
    seen_tasks = [t for p in task_pages for t in p]
    assert sorted(seen_tasks) == sorted(visible_tasks)
    assert len(task_pages) == -(-len(visible_tasks) // size)

    # An admin pages through everything the same way.
    admin_runs = await pages(stack, stack.admin_token, "/api/v1/offboardings", "run_id", 7)
    assert sum(len(p) for p in admin_runs) == RUNS
