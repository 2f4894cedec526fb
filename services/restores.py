"""Restores: undo an offboarding that already took effect (a rescinded termination, a rehire).

``offer_restore`` starts ``RestoreWorkflow`` (``restore-<run id>``, one per run, ever) for the
person's newest run, when that run took effect; an admin approves it (``approve_restore``),
and its plan and progress are read back from the person's trail (``restore_view``): the trail
is where the plan, the approval and every app's outcome are recorded anyway.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from config import Settings
from db.models import AuditEvent, OffboardingRun, Person, Step
from db.session import Db
from services import authz
from services.authz import Principal
from services.errors import Conflict, NotFound
from services.offboardings import find_run, live_run
from services.run_licenses import restore_workflow_id
from services.workflow_calls import update
from workflows.offboarding import OffboardingWorkflow
from workflows.restore import RestoreWorkflow
from workflows.types import ApprovalRequest, RestoreInput

# Trail events that show a run changed something in an app (beyond a step's status).
EFFECTS = ("scim.deactivated", "scim.deleted", "scim.groups_removed")
REHIRED = "rehired"


def took_effect(session: Session, run: OffboardingRun) -> bool:
    """Whether the run changed anything: a step verified, done or under way, or an effect on
    its trail (a failed step may have cut access before it failed)."""
    step = session.exec(
        select(Step.id).where(
            Step.run_id == run.run_id, col(Step.status).in_(("verified", "done", "running"))
        )
    ).first()
    if step is not None:
        return True
    effect = session.exec(
        select(AuditEvent.seq).where(
            AuditEvent.workflow_id == run.workflow_id,
            col(AuditEvent.step_id).startswith(f"{run.run_id}:"),
            col(AuditEvent.kind).in_(EFFECTS),
        )
    ).first()
    return effect is not None


def newest_run(session: Session, person_id: str) -> OffboardingRun | None:
    """The person's most recently created run, or None."""
    return session.exec(
        select(OffboardingRun)
        .where(OffboardingRun.person_id == person_id)
        .order_by(col(OffboardingRun.created_at).desc())
        .limit(1)
    ).first()


def latest_effective_run(session: Session, person_id: str) -> OffboardingRun | None:
    """The person's newest run when it took effect, or None: a run cancelled before its
    effect says this termination changed nothing, whatever an older run (an earlier stint of
    employment) did."""
    newest = newest_run(session, person_id)
    return newest if newest is not None and took_effect(session, newest) else None


async def offer_restore(
    client: Client, db: Db, settings: Settings, person_id: str, reason: str, actor: str
) -> str | None:
    """Offer to restore what the person's newest run did, when it took effect; returns its id,
    or None when no run took effect. A run is offered once: a second offer is the first one."""
    run = await db.run(lambda session: latest_effective_run(session, person_id))
    if run is None:
        return None
    inp = RestoreInput(
        run_id=run.run_id,
        run_workflow_id=run.workflow_id,
        person_id=person_id,
        email=run.email,
        reason=reason,
        actor=actor,
        offer_days=settings.restore_offer_days,
    )
    try:
        await client.start_workflow(
            RestoreWorkflow.run,
            inp,
            id=restore_workflow_id(run.run_id),
            task_queue=settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
    except WorkflowAlreadyStartedError:
        pass
    return run.run_id


async def stop_and_offer(
    client: Client, db: Db, settings: Settings, person_id: str, reason: str, actor: str
) -> str | None:
    """Stop the person's live run (no further removals; a pending delete is called off) and
    offer to restore what took effect. Returns the live run's id, else the restored run's,
    else None."""
    live = await db.run(lambda session: live_run(session, person_id))
    if live is not None:
        handle = client.get_workflow_handle(live.workflow_id, run_id=live.run_id)
        await handle.signal(OffboardingWorkflow.cancel, reason)
    restored = await offer_restore(client, db, settings, person_id, reason, actor)
    return live.run_id if live is not None else restored


# -- reading and approving ---------------------------------------------------------------------

_APP_OUTCOMES = {"restore.app_restored": "restored", "restore.app_failed": "failed"}
_STATUS_AFTER = {
    "restore.approved": "restoring",
    "restore.completed": "completed",
    "restore.expired": "expired",
}


def restore_view(session: Session, run_id: str) -> dict[str, Any] | None:
    """``{run_id, status: offered|restoring|completed|expired, reason, offered_at, approved_by,
    approved_at, apps: [{app, action, account, groups, reason, status, detail}]}`` from the
    trail; None when no plan has been offered for the run."""
    rows = session.exec(
        select(AuditEvent)
        .where(AuditEvent.workflow_id == restore_workflow_id(run_id))
        .order_by(col(AuditEvent.seq))
    ).all()
    offered = next((r for r in rows if r.kind == "restore.offered"), None)
    if offered is None:
        return None
    view: dict[str, Any] = {
        "run_id": run_id,
        "status": "offered",
        "reason": offered.detail.get("reason", ""),
        "offered_at": offered.at,
        "approved_by": None,
        "approved_at": None,
    }
    apps = {
        a["app"]: {
            **a,
            "status": "cannot_restore" if a["action"] == "cannot_restore" else "planned",
            "detail": "",
        }
        for a in offered.detail.get("apps", [])
    }
    for row in rows:
        view["status"] = _STATUS_AFTER.get(row.kind, view["status"])
        if row.kind == "restore.approved":
            view["approved_by"], view["approved_at"] = row.actor, row.at
        if row.kind in _APP_OUTCOMES and row.app in apps:
            apps[row.app]["status"] = _APP_OUTCOMES[row.kind]
            detail = row.detail
            apps[row.app]["detail"] = str(
                detail.get("read_back") or detail.get("by") or detail.get("error") or ""
            )
    view["apps"] = list(apps.values())
    return view


def get_restore(session: Session, principal: Principal, run_id: str) -> dict[str, Any]:
    """The run's restore plan and its state (admins); NotFound for no run or no offer."""
    authz.require_admin(principal)
    find_run(session, run_id)
    view = restore_view(session, run_id)
    if view is None:
        raise NotFound(f"no restore has been offered for run {run_id}", "no_restore")
    return view


def _superseded_by(session: Session, run_id: str) -> str:
    """Why an offer for ``run_id`` may no longer be approved ("" when it may): the person
    was terminated again (a newer run, or HR's status), so restoring would hand a leaver
    their access back."""
    run = session.get(OffboardingRun, run_id)
    if run is None:
        return ""
    newest = newest_run(session, run.person_id)
    if newest is not None and newest.run_id != run_id:
        return f"superseded: {run.person_id} has a newer offboarding run {newest.run_id}"
    person = session.get(Person, run.person_id)
    if person is not None and person.status == "terminated":
        return f"superseded: {run.person_id} is terminated in HR again"
    return ""


async def approve_restore(db: Db, client: Client, principal: Principal, run_id: str) -> None:
    """Approve the offered restore of ``run_id`` (admins); audited with the approver.

    Raises NotFound when none is offered, Conflict ``cannot_approve_restore`` when it is
    already approved, finished or expired.
    """
    authz.require_admin(principal)
    view = await db.run(lambda session: get_restore(session, principal, run_id))
    if view["status"] != "offered":
        by = f" (approved by {view['approved_by']})" if view["approved_by"] else ""
        raise Conflict("cannot_approve_restore", f"this restore is {view['status']}{by}")
    newer = await db.run(lambda session: _superseded_by(session, run_id))
    if newer:
        raise Conflict("cannot_approve_restore", newer)
    handle = client.get_workflow_handle(restore_workflow_id(run_id))
    try:
        await update(
            handle,
            RestoreWorkflow.approve_restore,
            ApprovalRequest(actor=principal.actor),
            "cannot_approve_restore",
        )
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        raise Conflict("cannot_approve_restore", "this restore offer is closed") from None
