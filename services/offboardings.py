"""Offboarding runs: start (or join, or dry-run), list, read, cancel, approve, retry a step.

Shared by the HR webhook, the admin API, the web UI and the CLI.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from config import Catalog, Settings
from db.models import AuditEvent, OffboardingRun, Person, Step, utcnow
from db.session import Db
from domain.status import LIVE_RUNS
from metrics import RUNS_STARTED
from services import authz
from services.authz import Principal
from services.errors import Conflict, Forbidden, Invalid, NotFound
from services.run_licenses import reclaimed_steps, restored_apps
from services.workflow_calls import update
from workflows.offboarding import OffboardingWorkflow
from workflows.plan import PlanWorkflow
from workflows.types import ApprovalRequest, JoinRequest, OffboardingInput, PlanInput, RetryRequest


def workflow_id_for(person_id: str) -> str:
    return f"offboard-{person_id}"


def check_apps(catalog: Catalog, apps: list[str] | None) -> list[str]:
    """The requested app ids (all apps when none), or Invalid naming every unknown one."""
    unknown = catalog.unknown_apps(apps)
    if unknown:
        raise Invalid("unknown_app", f"unknown app(s): {', '.join(unknown)}")
    return list(dict.fromkeys(apps)) if apps else [a.id for a in catalog.apps]


def resolve_person(session: Session, email: str | None, employee_id: str | None) -> Person:
    """An HR person by id or email; an unknown email is offboarded as its own lower-cased id."""
    if employee_id:
        person = session.get(Person, employee_id)
        if person is None:
            raise NotFound(f"no person with employee_id {employee_id!r}", "unknown_person")
        return person
    if not email:
        raise Invalid("validation_error", "give email or employee_id")
    lowered = email.strip().lower()
    matches = session.exec(select(Person).where(func.lower(Person.email) == lowered)).all()
    if len(matches) > 1:
        ids = ", ".join(p.id for p in matches)
        raise Conflict(
            "ambiguous_person",
            f"{len(matches)} people have email {email}: {ids}; offboard by employee_id",
        )
    if matches:
        return matches[0]
    return Person(id=lowered, email=lowered, name="")


def live_run(session: Session, person_id: str) -> OffboardingRun | None:
    return session.exec(
        select(OffboardingRun)
        .where(OffboardingRun.person_id == person_id, col(OffboardingRun.status).in_(LIVE_RUNS))
        .order_by(col(OffboardingRun.created_at).desc())
    ).first()


def burst_exceeded(session: Session, settings: Settings) -> bool:
    """Too many terminations in the window: new runs wait for an admin (mass-termination guard)."""
    if settings.burst_threshold <= 0:
        return False
    since = utcnow() - timedelta(minutes=settings.burst_window_minutes)
    recent = session.exec(
        select(func.count())
        .select_from(OffboardingRun)
        .where(OffboardingRun.created_at >= since, OffboardingRun.trigger == "webhook")
    ).one()
    return recent >= settings.burst_threshold


async def dry_run(
    client: Client, settings: Settings, person: Person, apps: list[str] | None = None
) -> dict[str, Any]:
    """What an offboarding would do, changing nothing: ``{dry_run, person: {id, email},
    apps: [{app, action, account, reason}]}`` (the same shape for the API and the CLI)."""
    plan = await client.execute_workflow(
        PlanWorkflow.run,
        PlanInput(person_id=person.id, email=person.email, apps=apps),
        id=f"plan-{uuid.uuid4().hex}",
        task_queue=settings.task_queue,
    )
    return {
        "dry_run": True,
        "person": {"id": person.id, "email": person.email},
        "apps": [p.model_dump(include={"app", "action", "account", "reason"}) for p in plan.apps],
    }


async def start_offboarding(
    client: Client,
    db: Db,
    settings: Settings,
    inp: OffboardingInput,
    join: JoinRequest,
    before_join: Callable[[str], Awaitable[None]] | None = None,
) -> tuple[str, bool]:
    """Start the person's run, or join the live one; returns (run_id, joined).

    Signal-with-start on ``offboard-<person>`` makes two racing terminations land in one run;
    the starting request's own join signal carries the start token and is ignored by the run.
    The token (``inp.start_token``, else a fresh one) is also the run's memo ``start_token``,
    so a caller that died before hearing the run id can find the run again
    (``run_started_with``). ``before_join(run_id)`` runs before a live run is signalled, so
    the caller can record which run it is about to join. The run's row exists before this
    returns (read-your-writes for the 202).
    """

    def check(session: Session) -> tuple[OffboardingRun | None, bool]:
        live = live_run(session, inp.person_id)
        hold = live is None and inp.trigger == "webhook" and burst_exceeded(session, settings)
        return live, hold

    existing, hold = await db.run(check)
    if existing is not None:
        if before_join is not None:
            await before_join(existing.run_id)
        handle = client.get_workflow_handle(existing.workflow_id, run_id=existing.run_id)
        await handle.signal(OffboardingWorkflow.join, join)
        return existing.run_id, True
    token = inp.start_token or uuid.uuid4().hex
    inp = inp.model_copy(
        update={
            "hold_for_approval": hold,
            "start_token": token,
            "idp_wait_seconds": settings.idp_wait_seconds,
        }
    )
    started = await client.start_workflow(
        OffboardingWorkflow.run,
        inp,
        id=workflow_id_for(inp.person_id),
        task_queue=settings.task_queue,
        start_signal="join",
        start_signal_args=[join.model_copy(update={"token": token})],
        memo={"start_token": token},
    )
    run_id = started.result_run_id or started.first_execution_run_id
    assert run_id is not None

    def record(session: Session) -> None:
        # Whoever writes first (this or the run's own mirror) creates the row.
        if session.get(OffboardingRun, run_id) is not None:
            return
        session.add(
            OffboardingRun(
                run_id=run_id,
                workflow_id=started.id,
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


async def run_started_with(client: Client, person_id: str, token: str) -> str | None:
    """The run of ``offboard-<person>`` whose memo carries this start token, or None.

    The current run is read first (strongly consistent); older runs from visibility.
    """
    workflow_id = workflow_id_for(person_id)
    try:
        current = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    if (await current.memo()).get("start_token") == token:
        return current.run_id
    async for execution in client.list_workflows(f"WorkflowId = {json.dumps(workflow_id)}"):
        if (await execution.memo()).get("start_token") == token:
            return execution.run_id
    return None


def offboarding_input(
    person: Person,
    *,
    reason: str,
    trigger: str,
    actor: str,
    effective_at: datetime | None = None,
    apps: list[str] | None = None,
) -> OffboardingInput:
    return OffboardingInput(
        person_id=person.id,
        email=person.email,
        name=person.name,
        reason=reason,
        effective_at=effective_at,
        apps=apps,
        trigger=trigger,
        actor=actor,
    )


# -- reading -----------------------------------------------------------------------------


def run_views(
    session: Session, runs: list[OffboardingRun], catalog: Catalog | None = None
) -> list[dict[str, Any]]:
    """Runs with their steps, in one query for all steps (lists stay cheap); with the
    catalog, each also says the licences it reclaimed."""
    ids = [r.run_id for r in runs]
    by_run: dict[str, list[Step]] = {i: [] for i in ids}
    if ids:
        for step in session.exec(
            select(Step).where(col(Step.run_id).in_(ids)).order_by(col(Step.app))
        ):
            by_run[step.run_id].append(step)
    restored = restored_apps(session, ids)
    views = [
        _view(r, by_run[r.run_id]) | {"restored_apps": sorted(restored[r.run_id])} for r in runs
    ]
    if catalog is not None:
        for view in views:
            view["licenses"] = catalog.licenses_reclaimed(reclaimed_steps([view])).model_dump()
    return views


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


def list_runs(
    session: Session,
    principal: Principal,
    catalog: Catalog,
    *,
    status: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[OffboardingRun]:
    """The runs the caller may see, newest first; filtered before paging."""
    authz.require_staff(principal)
    query = select(OffboardingRun).where(authz.visible_runs(principal, catalog))
    if status:
        query = query.where(OffboardingRun.status == status)
    query = query.order_by(col(OffboardingRun.created_at).desc(), col(OffboardingRun.run_id))
    return list(session.exec(query.offset(offset).limit(limit)).all())


def run_counts(session: Session, principal: Principal, catalog: Catalog) -> dict[str, int]:
    """How many visible runs have each status."""
    rows = session.exec(
        select(OffboardingRun.status, func.count())
        .where(authz.visible_runs(principal, catalog))
        .group_by(col(OffboardingRun.status))
    ).all()
    return {str(status): n for status, n in rows}


def find_run(session: Session, run_id: str) -> OffboardingRun:
    run = session.get(OffboardingRun, run_id)
    if run is None:
        raise NotFound(f"no offboarding run {run_id!r}")
    return run


def get_run(
    session: Session, principal: Principal, catalog: Catalog, run_id: str
) -> OffboardingRun:
    """One run, if the caller may see it (403 for an app admin's run of other apps)."""
    authz.require_staff(principal)
    run = find_run(session, run_id)
    visible = session.exec(
        select(OffboardingRun.run_id).where(
            OffboardingRun.run_id == run_id, authz.visible_runs(principal, catalog)
        )
    ).first()
    if visible is None:
        raise Forbidden("this run involves none of the apps you own")
    return run


# -- acting on a live run ----------------------------------------------------------------


async def _live_handle(db: Db, client: Client, run_id: str) -> WorkflowHandle[Any, Any]:
    run = await db.run(lambda session: find_run(session, run_id))
    if run.status not in LIVE_RUNS:
        raise Conflict("run_finished", f"run {run_id} is already {run.status}")
    return client.get_workflow_handle(run.workflow_id, run_id=run.run_id)


async def cancel_run(db: Db, client: Client, principal: Principal, run_id: str) -> None:
    authz.require_admin(principal)
    handle = await _live_handle(db, client, run_id)
    await handle.signal(OffboardingWorkflow.cancel, f"cancelled by {principal.actor}")


def awaiting_approval(session: Session, run: OffboardingRun) -> bool:
    """Whether the burst guard holds this run and no admin has approved it yet."""
    if run.status != "scheduled":
        return False
    kinds = set(
        session.exec(
            select(AuditEvent.kind).where(
                AuditEvent.workflow_id == run.workflow_id,
                col(AuditEvent.step_id).in_([f"{run.run_id}:run", f"{run.run_id}:run:approved"]),
            )
        )
    )
    return "run.held_for_approval" in kinds and "run.approved" not in kinds


async def approve_run(db: Db, client: Client, principal: Principal, run_id: str) -> None:
    """Let a run held by the burst guard go ahead; audited with the approver.

    Raises Conflict ``cannot_approve`` when the run is not held (or already approved).
    """
    authz.require_admin(principal)
    handle = await _live_handle(db, client, run_id)
    request = ApprovalRequest(actor=principal.actor)
    await update(handle, OffboardingWorkflow.approve_run, request, "cannot_approve")


async def retry_step(
    db: Db, client: Client, catalog: Catalog, principal: Principal, run_id: str, app: str
) -> None:
    """Retry a failed step (its exception task is cancelled); admins or the app's owners."""
    authz.require_staff(principal)
    owned = authz.owned_apps(principal, catalog)
    if owned is not None and app not in owned:
        raise Forbidden(f"retrying {app} needs admin or an owner of {app}")
    handle = await _live_handle(db, client, run_id)
    request = RetryRequest(app=app, actor=principal.actor)
    await update(handle, OffboardingWorkflow.retry_step, request, "cannot_retry")
