"""RestoreWorkflow (id ``restore-<run id>``): undo what an offboarding run did, once approved.

Offered when HR rescinds a termination that already took effect, or rehires someone who was
offboarded. The plan is built from the run's trail once the run has settled; the workflow then
waits, durably, for an admin's ``approve_restore`` Update (the offer expires after
``offer_days``, audited), and restores each app: SCIM accounts by activity with read-back,
manual apps (and IdPs) by a task for a person. Approval, every app's outcome and the end are on
the person's trail.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from activities.records import RecordActivities
    from activities.restore import RestoreActivities
    from activities.restore_plan import RestorePlanActivities
    from domain.audit import Subject
    from workflows.human_task import HumanTaskWorkflow
    from workflows.steps import failure_message
    from workflows.types import (
        ApprovalRequest,
        AuditEventIn,
        HumanTaskInput,
        RestoreApp,
        RestoreAppInput,
        RestoreAppResult,
        RestoreInput,
        RestorePlan,
        RestoreState,
        RestoreStatus,
        TaskKind,
    )

# The plan waits for the run to settle (a cancelled run may still be finishing a step).
PLAN_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=15)
)
# A restore that keeps failing transiently is reported failed (for a person), not retried for days.
RESTORE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=6,
)
_QUICK = timedelta(seconds=30)


@workflow.defn
class RestoreWorkflow:
    @workflow.init
    def __init__(self, inp: RestoreInput) -> None:
        self._inp = inp
        self._plan: RestorePlan | None = None
        self._status: RestoreStatus = "planning"
        self._approved_by: str | None = None
        self._apps: dict[str, str] = {}

    @workflow.run
    async def run(self, inp: RestoreInput) -> RestoreState:
        self._plan = await workflow.execute_activity_method(
            RestorePlanActivities.plan_restore,
            inp,
            start_to_close_timeout=timedelta(seconds=60),
            schedule_to_close_timeout=timedelta(hours=1),
            retry_policy=PLAN_RETRY,
        )
        self._apps = {
            a.app: "cannot_restore" if a.action == "cannot_restore" else "planned"
            for a in self._plan.apps
        }
        self._status = "offered"
        try:
            await workflow.wait_condition(
                lambda: self._approved_by is not None, timeout=timedelta(days=inp.offer_days)
            )
        except TimeoutError:
            self._status = "expired"
            await self._record("expired", "restore.expired", None, {"after_days": inp.offer_days})
            return self.state()
        self._status = "restoring"
        assert self._approved_by is not None
        await self._record("approved", "restore.approved", None, {}, actor=self._approved_by)
        todo = [a for a in self._plan.apps if a.action != "cannot_restore"]
        await asyncio.gather(*(self._restore(a) for a in todo))
        self._status = "completed"
        await self._record("completed", "restore.completed", None, dict(self._apps))
        return self.state()

    async def _restore(self, app: RestoreApp) -> None:
        self._apps[app.app] = "restoring"
        detail: str | None
        if app.action == "human_task":
            restored, detail = await self._by_hand(app)
        else:
            restored, detail = await self._scim(app)
            if not restored and app.task is not None:
                # The app refused or does not show it: on the trail, then a person's task.
                self._apps[app.app] = "failed"
                if detail is not None:
                    await self._record(
                        f"{app.app}:restore", "restore.app_failed", app.app, {"error": detail}
                    )
                restored, detail = await self._by_hand(app, "exception")
        self._apps[app.app] = "restored" if restored else "failed"
        if detail is not None:  # not yet on the trail (the SCIM activity writes its own)
            kind = "restore.app_restored" if restored else "restore.app_failed"
            key = "by" if restored else "error"
            await self._record(f"{app.app}:restore", kind, app.app, {key: detail})

    async def _scim(self, app: RestoreApp) -> tuple[bool, str | None]:
        assert app.account_id is not None
        inp = RestoreAppInput(
            person_id=self._inp.person_id,
            workflow_id=workflow.info().workflow_id,
            step_id=f"{app.app}:restore",
            app=app.app,
            account=app.account,
            account_id=app.account_id,
            groups=app.groups,
        )
        try:
            result: RestoreAppResult = await workflow.execute_activity_method(
                RestoreActivities.restore_scim,
                inp,
                start_to_close_timeout=timedelta(minutes=2),
                retry_policy=RESTORE_RETRY,
            )
        except ActivityError as exc:
            return False, failure_message(exc)
        return result.restored, None

    async def _by_hand(self, app: RestoreApp, kind: TaskKind = "restore") -> tuple[bool, str]:
        """A task "restore access in <app>" for the app's people (else the approver); an
        ``exception`` when an automatic restore failed."""
        assert app.task is not None and self._approved_by is not None
        task_id = f"{kind}-{app.app}-{workflow.uuid4().hex[:12]}"
        try:
            completion = await workflow.execute_child_workflow(
                HumanTaskWorkflow.run,
                HumanTaskInput(
                    task_id=task_id,
                    kind=kind,
                    app=app.app,
                    run_id=self._inp.run_id,
                    parent_workflow_id=workflow.info().workflow_id,
                    person_id=self._inp.person_id,
                    person_email=self._inp.email,
                    assignees=app.task.assignees or [self._approved_by],
                    sla_hours=app.task.sla_hours,
                    instructions=app.task.instructions,
                ),
                id=f"task-{task_id}",
            )
        except ChildWorkflowError as exc:
            return False, failure_message(exc)
        if completion is None or completion.outcome == "could_not_complete":
            return False, f"could not complete: {completion.note if completion else 'cancelled'}"
        return True, f"{completion.outcome} by {completion.actor}: {completion.note}"

    async def _record(
        self,
        step_id: str,
        kind: str,
        app: str | None,
        detail: dict[str, Any],
        actor: str = "offboard",
    ) -> None:
        event = AuditEventIn(
            subject=Subject.person(self._inp.person_id),
            workflow_id=workflow.info().workflow_id,
            step_id=step_id,
            kind=kind,
            at=workflow.now().isoformat(),
            actor=actor,
            app=app,
            detail={"run_id": self._inp.run_id, **detail},
        )
        await workflow.execute_activity_method(
            RecordActivities.record_events, [event], start_to_close_timeout=_QUICK
        )

    # -- messages ------------------------------------------------------------------------

    @workflow.query
    def state(self) -> RestoreState:
        return RestoreState(
            run_id=self._inp.run_id,
            status=self._status,
            approved_by=self._approved_by,
            apps=dict(self._apps),
        )

    @workflow.update
    def approve_restore(self, request: ApprovalRequest) -> str:
        """An admin approves the offered plan (audited as ``restore.approved``)."""
        self._approved_by = request.actor
        return "approved"

    @approve_restore.validator
    def _validate_approval(self, request: ApprovalRequest) -> None:
        if self._status == "planning":
            raise ValueError("the restore plan is not ready yet (the run is still settling)")
        if self._approved_by is not None:
            raise ValueError(f"this restore is already approved by {self._approved_by}")
        if self._status == "expired":
            raise ValueError("this restore offer has expired")
        if not request.actor.strip():
            raise ValueError("an approval needs the approver's identity")
