"""The restore plan of a run that took effect: what it changed in each app, read from the trail.

The trail is the evidence of what the run did (``scim.deactivated``, ``scim.deleted``,
``scim.groups_removed`` with the ``group_ids``): a restore undoes exactly that, nothing it
did not do. Manual apps (and identity providers) that were done by hand get a task for a
person, opened only once an admin approves the restore.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, col, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from config import AppConfig, Catalog
from db import audit
from db.models import AuditEvent, OffboardingRun, Step
from domain.audit import AuditEventIn, Subject
from domain.status import LIVE_RUNS
from workflows.types import ManualPlan, RestoreApp, RestoreGroup, RestoreInput, RestorePlan

DELETED = "the account was deleted, and a deleted account cannot be restored over SCIM"


@dataclass
class _Effects:
    """What the run did to one app's account, from its trail events."""

    account_id: str | None = None
    deactivated: bool = False
    deleted: bool = False
    groups: dict[str, str] = field(default_factory=dict)  # id -> name


def _effects(rows: list[AuditEvent]) -> dict[str, _Effects]:
    found: dict[str, _Effects] = {}
    for row in sorted(rows, key=lambda r: r.seq):
        if row.app is None or not row.kind.startswith("scim."):
            continue
        effects = found.setdefault(row.app, _Effects())
        effects.account_id = row.detail.get("account_id") or effects.account_id
        if row.kind == "scim.deactivated":
            effects.deactivated = True
        elif row.kind in ("scim.deleted", "scim.gone"):
            effects.deleted = True
        elif row.kind == "scim.groups_removed":
            ids, names = row.detail.get("group_ids") or [], row.detail.get("groups") or []
            for gid, name in zip(ids, names, strict=False):
                effects.groups[str(gid)] = str(name)
    return found


def _scim_app(
    step: Step, config: AppConfig | None, inp: RestoreInput, effects: _Effects | None
) -> RestoreApp | None:
    if effects is None or not (effects.deactivated or effects.deleted or effects.groups):
        return None  # the run changed nothing there
    name = config.name if config is not None else step.app
    groups = [RestoreGroup(id=i, name=n) for i, n in sorted(effects.groups.items())]
    base = RestoreApp(
        app=step.app,
        name=name,
        connector=step.connector,
        action="reactivate",
        account=step.account,
        account_id=effects.account_id,
        groups=groups,
    )
    if effects.deleted or effects.account_id is None:
        reason = DELETED if effects.deleted else "the trail does not name the account"
        return base.model_copy(
            update={"action": "cannot_restore", "reason": f"{reason}; recreate it by hand"}
        )
    regroup = f"; add back to {', '.join(g.name for g in groups)}" if groups else ""
    # Should the app refuse or not show the restore, a person finishes it (the app's owners).
    fallback = ManualPlan(
        assignees=config.owners if config is not None else [],
        sla_hours=24,
        instructions=(
            f"Restoring {inp.email}'s access in {name} ({inp.reason}) failed: reactivate the "
            f"account {step.account}{regroup} by hand, then complete this task with a note."
        ),
    )
    return base.model_copy(update={"reason": f"reactivate the account{regroup}", "task": fallback})


def _task_app(step: Step, app: AppConfig | None, inp: RestoreInput) -> RestoreApp:
    name = app.name if app is not None else step.app
    assignees = (app.manual.assignees if app and app.manual else None) or (
        app.owners if app else []
    )
    instructions = (
        f"Restore access in {name} for {inp.email} ({inp.reason}). The offboarding removed it "
        f"by hand: {step.detail}"
    )
    return RestoreApp(
        app=step.app,
        name=name,
        connector=step.connector,
        action="human_task",
        account=step.account,
        reason=f"restore access in {name} (a task, opened once approved)",
        task=ManualPlan(assignees=assignees, sla_hours=24, instructions=instructions),
    )


def build_plan(session: Session, catalog: Catalog, inp: RestoreInput) -> RestorePlan:
    """The plan for ``inp.run_id`` from its steps and its trail events."""
    steps = session.exec(
        select(Step).where(Step.run_id == inp.run_id).order_by(col(Step.app))
    ).all()
    rows = session.exec(
        select(AuditEvent).where(
            AuditEvent.workflow_id == inp.run_workflow_id,
            col(AuditEvent.step_id).startswith(f"{inp.run_id}:"),
        )
    ).all()
    effects = _effects(list(rows))
    apps: list[RestoreApp] = []
    for step in steps:
        try:
            config: AppConfig | None = catalog.app(step.app)
        except KeyError:
            config = None
        if step.connector == "scim":
            planned = _scim_app(step, config, inp, effects.get(step.app))
            if planned is not None:
                apps.append(planned)
        elif step.status == "done" and not step.detail.startswith("not_applicable"):
            apps.append(_task_app(step, config, inp))
        elif step.status == "verified":  # an identity provider: re-enabled by a person
            apps.append(_task_app(step, config, inp))
    return RestorePlan(apps=apps)


class RestorePlanActivities:
    def __init__(self, catalog: Catalog, session_factory: Callable[[], Session]) -> None:
        self._catalog = catalog
        self._sessions = session_factory

    @activity.defn(name="plan_restore")
    def plan_restore(self, inp: RestoreInput) -> RestorePlan:
        """Build the plan once the run has settled and put it on the trail (``restore.offered``).

        Raises a retryable ApplicationError (type ``run_live``) while the run is still live:
        a cancelled run may still be finishing a step, whose effects the plan must include.
        """
        with self._sessions() as session:
            run = session.get(OffboardingRun, inp.run_id)
            if run is None or run.status in LIVE_RUNS:
                state = run.status if run is not None else "not recorded yet"
                raise ApplicationError(f"run {inp.run_id} is {state}", type="run_live")
            plan = build_plan(session, self._catalog, inp)
        info = activity.info()
        detail: dict[str, Any] = {
            "run_id": inp.run_id,
            "reason": inp.reason,
            "apps": [
                {
                    **a.model_dump(include={"app", "action", "account", "account_id", "reason"}),
                    "groups": [g.name for g in a.groups],
                    "group_ids": [g.id for g in a.groups],
                }
                for a in plan.apps
            ],
        }
        event = AuditEventIn(
            subject=Subject.person(inp.person_id),
            workflow_id=info.workflow_id,
            step_id="offered",
            kind="restore.offered",
            at=datetime.now(UTC).isoformat(),
            actor=inp.actor,
            detail=detail,
        )
        audit.append(self._sessions, [event])
        return plan
