"""One app's step in a run: planning it, SCIM and IdP deprovisioning, manual tasks and
exception tasks. A base of ``OffboardingWorkflow`` (deterministic workflow code)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import Priority, RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.deprovision import DeprovisionActivities
    from activities.idp import IdpActivities
    from activities.planning import PlanActivities
    from workflows.human_task import HumanTaskWorkflow
    from workflows.run_record import RunRecord
    from workflows.steps import SCIM_RETRY, failure_message, verified_detail
    from workflows.types import (
        AppPlan,
        HumanTaskInput,
        IdpStepInput,
        IdpStepResult,
        ManualPlan,
        Plan,
        PlanBatch,
        PlanInput,
        ScimStepInput,
        ScimStepResult,
        TaskCompletion,
        TaskKind,
    )

# How long planning keeps asking an app (429, outage) before that app's step becomes an
# exception task; the other apps go ahead meanwhile.
PLAN_BUDGET = timedelta(minutes=5)
# Temporal task queue priority (1 highest; unset is 3) of a plan on an app's own queue.
PLAN_FIRST = Priority(priority_key=1)


class AppSteps(RunRecord):
    async def _scim(self, p: AppPlan, attempt: int) -> bool:
        assert p.account_id is not None
        step_id = f"{p.app}#{attempt}"
        self._set(p.app, "running", "deprovisioning")
        self._event(step_id, "step.started", p.app, {"account": p.account})
        mode = "delete" if p.deprovision == "delete" else "deactivate"
        try:
            result = await self._deprovision(p, step_id, mode)
            self._set(p.app, "verified", verified_detail(result))
            if p.deprovision == "deactivate_then_delete" and result.state != "gone":
                await self._delete_later(p, step_id)
        except ActivityError as exc:
            return self._failed(p, step_id, exc)
        return True

    def _failed(self, p: AppPlan, step_id: str, exc: ActivityError) -> bool:
        error = failure_message(exc)
        self._set(p.app, "failed", error)
        self._event(step_id, "step.failed", p.app, {"error": error})
        return False

    async def _idp(self, p: AppPlan, attempt: int) -> bool:
        """Disable the IdP account and revoke its sessions; verified by read-back."""
        assert p.account_id is not None
        step_id = f"{p.app}#{attempt}"
        self._set(p.app, "running", "disabling sign-in and revoking sessions")
        self._event(step_id, "step.started", p.app, {"account": p.account})
        inp = IdpStepInput(
            app=p.app,
            account_id=p.account_id,
            account=p.account,
            person_id=self._inp.person_id,
            workflow_id=workflow.info().workflow_id,
            step_id=f"{workflow.info().run_id}:{step_id}:idp",
        )
        await self._before_direct_writes()
        try:
            result: IdpStepResult = await workflow.execute_activity_method(
                IdpActivities.deprovision_idp,
                inp,
                start_to_close_timeout=timedelta(seconds=120),
                retry_policy=SCIM_RETRY,
            )
        except ActivityError as exc:
            return self._failed(p, step_id, exc)
        self._pending_events.extend(result.events)
        sessions = "sessions revoked" if result.sessions == "revoked" else "account gone"
        outcome = result.outcome.replace("_", " ")
        self._set(p.app, "verified", f"{outcome}; {sessions}; read back {result.read_back}")
        return True

    async def _deprovision(self, p: AppPlan, step_id: str, mode: str) -> ScimStepResult:
        assert p.account_id is not None
        inp = ScimStepInput(
            app=p.app,
            account_id=p.account_id,
            account=p.account,
            person_id=self._inp.person_id,
            workflow_id=workflow.info().workflow_id,
            step_id=(
                f"{workflow.info().run_id}:{step_id}:{mode}" if self._sound else f"{step_id}:{mode}"
            ),
            mode=mode,
            write_audit=not self._events_with_status,
        )
        await self._before_direct_writes()
        result: ScimStepResult = await workflow.execute_activity_method(
            DeprovisionActivities.deprovision_scim,
            inp,
            retry_policy=SCIM_RETRY,
            **self._app_options(
                p, timedelta(seconds=p.step_timeout_seconds if self._admission else 120)
            ),
        )
        self._pending_events.extend(result.events)
        return result

    async def _delete_later(self, p: AppPlan, step_id: str) -> None:
        delete_at = workflow.now() + timedelta(days=p.delete_after_days or 0)
        self._set(p.app, "verified", f"deactivated; delete due {delete_at.isoformat()}")
        self._event(step_id, "step.delete_scheduled", p.app, {"at": delete_at.isoformat()})
        try:
            await workflow.sleep(delete_at - workflow.now())
        except asyncio.CancelledError:
            if not self._delete_cancellable:
                raise
            # Access was cut and stays cut; only the delete is called off (rescind, rehire).
            reason = self._cancel_reason or "run cancelled"
            self._set(p.app, "verified", f"deactivated; delete cancelled: {reason}")
            self._event(step_id, "step.delete_cancelled", p.app, {"reason": reason})
            return
        result = await self._deprovision(p, step_id, "delete")
        self._set(p.app, "verified", verified_detail(result))

    async def _manual(self, p: AppPlan) -> bool:
        assert p.manual is not None
        completion = await self._human_task(p, "manual_step", p.manual)
        if completion.outcome == "could_not_complete":
            self._set(p.app, "failed", f"could not complete: {completion.note}")
            return False
        self._set(p.app, "done", f"{completion.outcome} by {completion.actor}: {completion.note}")
        return True

    async def _human_task(
        self,
        p: AppPlan,
        kind: TaskKind,
        spec: ManualPlan,
        started: Callable[[], None] | None = None,
    ) -> TaskCompletion:
        """Run a HumanTaskWorkflow child to its completion; ``started()`` once it has started."""
        task_id = f"{p.app}-{workflow.uuid4().hex[:12]}"
        if kind == "manual_step":
            # waiting_human only once the task row exists (task_opened), so the inbox has it.
            self._set(p.app, "running", f"opening task {task_id}")
        await self._before_direct_writes()
        handle = await workflow.start_child_workflow(
            HumanTaskWorkflow.run,
            HumanTaskInput(
                task_id=task_id,
                kind=kind,
                app=p.app,
                run_id=workflow.info().run_id,
                parent_workflow_id=workflow.info().workflow_id,
                person_id=self._inp.person_id,
                person_email=self._inp.email,
                assignees=spec.assignees,
                escalate_to=spec.escalate_to,
                sla_hours=spec.sla_hours,
                instructions=spec.instructions,
                reminder_fractions=spec.reminder_fractions,
                repeat_every_hours=spec.repeat_every_hours,
                notify_parent=True,
            ),
            id=f"task-{task_id}",
        )
        if started is not None:
            started()
        result = await handle
        assert result is not None
        return result

    async def _handover(self, p: AppPlan) -> None:
        """The handover task beside the app's step; the task itself audits its outcome."""
        assert p.handover is not None
        self._open_handovers.add(p.app)
        self._refresh_status()
        try:
            await self._human_task(p, "handover", p.handover)
        finally:
            self._open_handovers.discard(p.app)
            self._refresh_status()

    async def _exception(self, p: AppPlan) -> bool:
        """Open an exception task; True when an admin asked to retry, False when resolved."""
        step = self._steps[p.app]
        instructions = (
            f"{p.name}: the step for {self._inp.email} failed: {step.detail}. "
            "Retry the step, or fix it by hand and complete this task with a note."
        )
        self._open_exceptions.add(p.app)
        if self._sound:
            self._refresh_status()
        spec = ManualPlan(assignees=p.owners, sla_hours=24, instructions=instructions)
        started: list[bool] = []
        task = asyncio.create_task(
            self._human_task(p, "exception", spec, lambda: started.append(True))
        )
        await workflow.wait_condition(lambda: p.app in self._retry or task.done())
        self._open_exceptions.discard(p.app)
        if p.app in self._retry:
            self._retry.discard(p.app)
            if self._cancel_after_start:
                # A cancel sent while the child is still being started can be lost (the child
                # starts anyway, open in the inbox, and this run waits for it forever).
                await workflow.wait_condition(lambda: bool(started) or task.done())
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return True
        completion = task.result()
        if completion.outcome == "could_not_complete":
            self._set(p.app, "failed", f"unresolved: {completion.note}")
        else:
            self._set(p.app, "done", f"resolved by hand by {completion.actor}: {completion.note}")
        return False

    async def _replan(self, p: AppPlan) -> AppPlan:
        if self._sound:
            return await self._plan_app(p)
        plan = await self._plan([p.app])
        return plan.apps[0]

    async def _plan(self, apps: list[str] | None) -> Plan:
        if self._sound:
            bases: list[AppPlan] = await workflow.execute_local_activity_method(
                PlanActivities.catalog_apps,
                PlanInput(person_id=self._inp.person_id, email=self._inp.email, apps=apps),
                start_to_close_timeout=timedelta(seconds=10),
            )
            if self._fewer:
                return Plan(apps=await self._plan_together(bases))
            return Plan(apps=list(await asyncio.gather(*(self._plan_app(b) for b in bases))))
        plan: Plan = await workflow.execute_activity_method(
            PlanActivities.plan_offboarding,
            PlanInput(person_id=self._inp.person_id, email=self._inp.email, apps=apps),
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=SCIM_RETRY,
        )
        return plan

    async def _plan_together(self, bases: list[AppPlan]) -> list[AppPlan]:
        """Apps without a queue of their own planned in one activity (the fewest activities
        per person under a burst); apps on their own queue keep theirs (admission), and an app
        the shared activity could not ask at once gets its own, with its retries and budget."""
        together = [b.app for b in bases if not b.task_queue]
        if len(together) < 2:
            return list(await asyncio.gather(*(self._plan_app(b) for b in bases)))
        own = {
            b.app: asyncio.create_task(self._plan_app(b)) for b in bases if b.app not in together
        }
        planned: dict[str, AppPlan] = {}
        try:
            batch: PlanBatch = await workflow.execute_activity_method(
                PlanActivities.plan_apps,
                PlanInput(person_id=self._inp.person_id, email=self._inp.email, apps=together),
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=RetryPolicy(maximum_attempts=1),
            )
            planned = {p.app: p for p in batch.apps}
        except ActivityError:
            pass  # e.g. the worker died meanwhile: each app is asked by its own activity
        own |= {
            b.app: asyncio.create_task(self._plan_app(b))
            for b in bases
            if b.app in together and b.app not in planned
        }
        await asyncio.gather(*own.values())
        return [planned[b.app] if b.app in planned else own[b.app].result() for b in bases]

    def _app_options(self, p: AppPlan, timeout: timedelta) -> dict[str, Any]:
        """Task queue and timeout for an app's activity: its own queue when it has one."""
        options: dict[str, Any] = {"start_to_close_timeout": timeout}
        if self._admission and p.task_queue:
            options["task_queue"] = p.task_queue
        return options

    async def _plan_app(self, base: AppPlan) -> AppPlan:
        """One app's plan; an app that cannot be asked within PLAN_BUDGET becomes an exception
        (with a retry) instead of holding up the other apps."""
        options = self._app_options(base, timedelta(seconds=60))
        if "task_queue" not in options:
            # On an app's own queue, waiting for admission is not the app failing: there the
            # activity itself gives up after PLAN_ATTEMPTS.
            options["schedule_to_close_timeout"] = PLAN_BUDGET
        elif self._fewer:
            # Every app's steps of a run wait for all its plans: on a slow app's queue, plans
            # go before the steps already waiting there, or the fast apps idle behind them.
            options["priority"] = PLAN_FIRST
        try:
            plan: AppPlan = await workflow.execute_activity_method(
                PlanActivities.plan_app,
                PlanInput(person_id=self._inp.person_id, email=self._inp.email, apps=[base.app]),
                retry_policy=SCIM_RETRY,
                **options,
            )
        except ActivityError as exc:
            reason = f"could not look up the account: {failure_message(exc)}"
            return base.model_copy(update={"action": "exception", "reason": reason})
        return plan
