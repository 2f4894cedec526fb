"""Starting and reading offboarding runs; shared by the webhook, the admin API and the CLI."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from temporalio.client import Client

from api.deps import Db
from api.errors import ApiError
from config import Settings
from db.models import OffboardingRun, Person, Step
from metrics import RUNS_STARTED
from workflows.offboarding import OffboardingWorkflow
from workflows.types import JoinRequest, OffboardingInput

LIVE = ("scheduled", "running", "waiting_human")


def workflow_id_for(person_id: str) -> str:
    return f"offboard-{person_id}"


def resolve_person(session: Session, email: str | None, employee_id: str | None) -> Person:
    """An HR person by id or email; an unknown email is offboarded as its own lower-cased id."""
    if employee_id:
        person = session.get(Person, employee_id)
        if person is None:
            raise ApiError(404, "unknown_person", f"no person with employee_id {employee_id!r}")
        return person
    assert email is not None
    matches = session.exec(
        select(Person).where(func.lower(Person.email) == email.strip().lower())
    ).all()
    if len(matches) > 1:
        ids = ", ".join(p.id for p in matches)
        raise ApiError(
            409,
            "ambiguous_person",
            f"{len(matches)} people have email {email}: {ids}; offboard by employee_id",
        )
    if matches:
        return matches[0]
    lowered = email.strip().lower()
    return Person(id=lowered, email=lowered, name="")


def live_run(session: Session, person_id: str) -> OffboardingRun | None:
    return session.exec(
        select(OffboardingRun)
        .where(OffboardingRun.person_id == person_id, col(OffboardingRun.status).in_(LIVE))
        .order_by(col(OffboardingRun.created_at).desc())
    ).first()


def burst_exceeded(session: Session, settings: Settings) -> bool:
    """Too many terminations in the window: new runs wait for an admin (mass-termination guard)."""
    if settings.burst_threshold <= 0:
        return False
    since = datetime.now(UTC) - timedelta(minutes=settings.burst_window_minutes)
    recent = session.exec(
        select(func.count())
        .select_from(OffboardingRun)
        .where(OffboardingRun.created_at >= since, OffboardingRun.trigger == "webhook")
    ).one()
    return recent >= settings.burst_threshold


async def start_offboarding(
    client: Client,
    db: Db,
    settings: Settings,
    inp: OffboardingInput,
    join: JoinRequest,
) -> tuple[str, bool]:
    """Start the person's run, or join the live one; returns (run_id, joined).

    Signal-with-start on ``offboard-<person>`` makes two racing terminations land in one run;
    the starting request's own join signal carries the start token and is ignored by the run.
    """

    def check(session: Session) -> tuple[OffboardingRun | None, bool]:
        live = live_run(session, inp.person_id)
        hold = live is None and inp.trigger == "webhook" and burst_exceeded(session, settings)
        return live, hold

    existing, hold = await db.run(check)
    if existing is not None:
        handle = client.get_workflow_handle(existing.workflow_id, run_id=existing.run_id)
        await handle.signal(OffboardingWorkflow.join, join)
        return existing.run_id, True
    token = uuid.uuid4().hex
    inp = inp.model_copy(
        update={
            "hold_for_approval": hold,
            "start_token": token,
            "idp_wait_seconds": settings.idp_wait_seconds,
        }
    )
    handle = await client.start_workflow(
        OffboardingWorkflow.run,
        inp,
        id=workflow_id_for(inp.person_id),
        task_queue=settings.task_queue,
        start_signal="join",
        start_signal_args=[join.model_copy(update={"token": token})],
    )
    run_id = handle.result_run_id or handle.first_execution_run_id
    assert run_id is not None

    def record(session: Session) -> None:
        # Read-your-writes: the row exists before the 202, whoever (API or run) writes first.
        if session.get(OffboardingRun, run_id) is not None:
            return
        session.add(
            OffboardingRun(
                run_id=run_id,
                workflow_id=handle.id,
                person_id=inp.person_id,
                email=inp.email,
                reason=inp.reason,
                trigger=inp.trigger,
                effective_at=inp.effective_at,
            )
        )
        try:
            session.commit()
        except IntegrityError:
            session.rollback()

    await db.run(record)
    RUNS_STARTED.labels(inp.trigger).inc()
    return run_id, False


def run_views(session: Session, runs: list[OffboardingRun]) -> list[dict[str, Any]]:
    """Runs with their steps, in one query for all steps (lists stay cheap)."""
    ids = [r.run_id for r in runs]
    by_run: dict[str, list[Step]] = {i: [] for i in ids}
    if ids:
        for step in session.exec(
            select(Step).where(col(Step.run_id).in_(ids)).order_by(col(Step.app))
        ):
            by_run[step.run_id].append(step)
    return [_view(run, by_run[run.run_id]) for run in runs]


def run_view(session: Session, run: OffboardingRun) -> dict[str, Any]:
    return run_views(session, [run])[0]


def _view(run: OffboardingRun, steps: list[Step]) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "workflow_id": run.workflow_id,
        "person": {"id": run.person_id, "email": run.email},
        "status": run.status,
        "reason": run.reason,
        "trigger": run.trigger,
        "effective_at": run.effective_at,
        "apps": [
            {
                "app": s.app,
                "connector": s.connector,
                "status": s.status,
                "account": s.account,
                "detail": s.detail,
                "updated_at": s.updated_at,
            }
            for s in steps
        ],
        "created_at": run.created_at,
        "completed_at": run.completed_at,
    }
