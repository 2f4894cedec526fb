"""OffboardingWorkflow (id ``offboard-<person id>``): plan, wait until effective, then every app.

SCIM apps are deprovisioned and read back concurrently; manual apps become a HumanTaskWorkflow.
A step that needs a person (ambiguous match, auth failure, exhausted retries, a manual step that
could not be completed) ends ``failed`` with an exception task; the run finishes only once that
is resolved by hand or a retry succeeds.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.records import RecordActivities
    from domain.audit import Subject
    from workflows.human_task import HumanTaskWorkflow
    from workflows.run_state import LIVE_STATUSES, derive_status
    from workflows.steps import SCIM_RETRY, SSF_RETRY, failure_message, verified_detail
    from workflows.types import (
        IDP_CONNECTORS,
        TERMINAL_STEPS,
        AppPlan,
        AuditEventIn,
        HumanTaskInput,
        IdpStepInput,
        IdpStepResult,
        JoinRequest,
        ManualPlan,
        OffboardingInput,
        Plan,
        PlanInput,
        RecordInput,
        RetryRequest,
        RunState,
        RunStatus,
        ScimStepInput,
        ScimStepResult,
        SignalInput,
        StepState,
        StepStatus,
        TaskCompletion,
        TaskKind,
        TaskOpened,
    )

_QUICK = timedelta(seconds=30)
# Since this patch a SCIM step's audit events come back with its result and are written with
# the step's new status, in one transaction (one write per step fewer under a burst). Writes
# stay regular activities: as local ones they held workflow tasks open while queueing for the
# database, and under a burst of 1,000 those tasks timed out and were replayed.
STEP_EVENTS_WITH_STATUS = "step-events-with-status"
# Since this patch: each app is planned by its own activity (one app's pause or outage never
# holds up the others), SCIM steps' audit keys carry the run id (a later run for the same person
# keeps its own evidence), and an open exception shows the run as waiting_human at once.
VERIFIED_SOUNDNESS = "verified-soundness"
# Since this patch a rate-limited app's plan and steps run on its own task queue (admission:
# they wait there for their turn, durably, instead of inside a step's timeout), with the
# catalog's step timeout.
APP_ADMISSION = "app-admission"
# Since this patch: IdP steps (catalog idp: true) start first; the other apps start once every
# IdP step has settled (verified, or failed with an exception task) or after the input's
# idp_wait_seconds, whichever comes first.
IDP_FIRST = "idp-first"
# How long planning keeps asking an app (429, outage) before that app's step becomes an
# exception task; the other apps go ahead meanwhile.
PLAN_BUDGET = timedelta(minutes=5)


@workflow.defn
class OffboardingWorkflow:
    @workflow.init
    def __init__(self, inp: OffboardingInput) -> None:
        # Set here, not in run(): a signal-with-start's join is handled before run() starts.
        self._inp = inp
        self._steps: dict[str, StepState] = {}
        self._status: RunStatus = "scheduled"
        self._cancel_reason: str | None = None
        self._approved = False
        self._retry: set[str] = set()
        self._open_exceptions: set[str] = set()
        self._pending_events: list[AuditEventIn] = []
        self._version = 0
        self._dirty = False
        self._closing = False
        self._completed_at: datetime | None = None
        self._events_with_status = False
        self._sound = False
        self._admission = False
        self._idp_first = False

    # -- run -------------------------------------------------------------------------------

    @workflow.run
    async def run(self, inp: OffboardingInput) -> RunState:
        self._events_with_status = workflow.patched(STEP_EVENTS_WITH_STATUS)
        self._sound = workflow.patched(VERIFIED_SOUNDNESS)
        self._admission = workflow.patched(APP_ADMISSION)
        self._idp_first = workflow.patched(IDP_FIRST)
        self._mirror_task = asyncio.create_task(self._mirror())
        plan = await self._plan(inp.apps)
        for p in plan.apps:
            status: StepStatus = "skipped" if p.action == "skip" else "pending"
            self._steps[p.app] = StepState(
                app=p.app, connector=p.connector, status=status, account=p.account, detail=p.reason
            )
        self._event(
            "run",
            "run.planned",
            None,
            {
                "trigger": inp.trigger,
                "reason": inp.reason,
                "apps": [
                    p.model_dump(include={"app", "action", "account", "reason"}) for p in plan.apps
                ],
            },
            actor=inp.actor,
        )

        if not await self._wait_until_effective():
            return await self._finish_cancelled()

        self._status = "running"
        self._event("run", "run.started", None, {})
        runnable = [p for p in plan.apps if p.action != "skip"]
        if self._idp_first:
            tasks = await self._idp_then_apps(runnable)
        else:
            tasks = [asyncio.create_task(self._run_app(p)) for p in runnable]
        await workflow.wait_condition(
            lambda: self._cancel_reason is not None or all(t.done() for t in tasks)
        )
        if self._cancel_reason is not None:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            return await self._finish_cancelled()
        await asyncio.gather(*tasks)
        self._status = self._derive_status()
        self._event("run", f"run.{self._status}", None, self._summary())
        await self._finish()
        return self.state()

    async def _idp_then_apps(self, runnable: list[AppPlan]) -> list[asyncio.Task[None]]:
        """Start the IdP steps, wait until they settle or the wait runs out, then the apps.

        An IdP that is down or still retrying never holds the apps back longer than the wait;
        its step goes on (and the run is not completed until it is verified or resolved).
        """
        idps = [p for p in runnable if p.idp]
        tasks = [asyncio.create_task(self._run_app(p)) for p in idps]
        apps = [p for p in runnable if not p.idp]
        if not idps:
            return tasks + [asyncio.create_task(self._run_app(p)) for p in apps]
        for p in apps:
            self._steps[p.app].detail = "waiting for the identity provider steps"

        def settled() -> bool:
            return all(self._steps[p.app].status not in ("pending", "running") for p in idps)

        wait = timedelta(seconds=self._inp.idp_wait_seconds)
        try:
            if wait > timedelta(0):
                await workflow.wait_condition(
                    lambda: self._cancel_reason is not None or settled(), timeout=wait
                )
        except TimeoutError:
            pass
        if self._cancel_reason is not None:
            return tasks
        detail = {
            "after": "idp_settled" if settled() else "idp_wait_elapsed",
            "idp": {p.app: self._steps[p.app].status for p in idps},
        }
        self._event("run", "run.apps_started", None, detail)
        tasks.append(asyncio.create_task(self._share_signals()))
        return tasks + [asyncio.create_task(self._run_app(p)) for p in apps]

    async def _share_signals(self) -> None:
        """CAEP session-revoked to the Shared Signals receivers; the activity audits each
        answer, so only a failure to run it at all is recorded here."""
        signal = SignalInput(
            person_id=self._inp.person_id,
            email=self._inp.email,
            workflow_id=workflow.info().workflow_id,
            run_id=workflow.info().run_id,
            at=workflow.now(),
        )
        try:
            await workflow.execute_activity(
                "share_session_revoked",
                signal,
                start_to_close_timeout=timedelta(minutes=2),
                retry_policy=SSF_RETRY,
            )
        except ActivityError as exc:
            self._event("ssf", "ssf.failed", None, {"error": failure_message(exc)})

    async def _wait_until_effective(self) -> bool:
        """Hold for approval (burst guard) and until effective_at; False when cancelled first."""
        if self._inp.hold_for_approval:
            self._event("run", "run.held_for_approval", None, {})
            await workflow.wait_condition(lambda: self._approved or self._cancel_reason is not None)
        effective = self._inp.effective_at
        if effective is not None and effective > workflow.now():
            self._event("run", "run.waiting", None, {"until": effective.isoformat()})
            try:
                await workflow.wait_condition(
                    lambda: self._cancel_reason is not None, timeout=effective - workflow.now()
                )
            except TimeoutError:
                pass
        return self._cancel_reason is None

    async def _finish_cancelled(self) -> RunState:
        for step in self._steps.values():
            if step.status not in TERMINAL_STEPS:
                step.status = "cancelled"
                step.updated_at = workflow.now()
        self._status = "cancelled"
        self._event("run", "run.cancelled", None, {"reason": self._cancel_reason})
        await self._finish()
        return self.state()

    # -- one app ----------------------------------------------------------------------------

    async def _run_app(self, p: AppPlan) -> None:
        attempt = 1
        try:
            while True:
                if await self._attempt(p, attempt):
                    return
                if not await self._exception(p):
                    return
                attempt += 1
                p = await self._replan(p)
        except asyncio.CancelledError:
            self._set(p.app, "cancelled", "run cancelled")
            raise

    async def _attempt(self, p: AppPlan, attempt: int) -> bool:
        """One try at an app's step; True when it ended well (verified/done/skipped)."""
        if p.action == "skip":
            self._set(p.app, "skipped", p.reason)
            return True
        if p.action == "exception":
            self._set(p.app, "failed", p.reason)
            self._event(f"{p.app}#{attempt}", "step.failed", p.app, {"error": p.reason})
            return False
        if p.connector == "manual":
            return await self._manual(p)
        if p.connector in IDP_CONNECTORS:
            return await self._idp(p, attempt)
        return await self._scim(p, attempt)

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
        try:
            result: IdpStepResult = await workflow.execute_activity(
                "deprovision_idp",
                inp,
                result_type=IdpStepResult,
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
        result: ScimStepResult = await workflow.execute_activity(
            "deprovision_scim",
            inp,
            result_type=ScimStepResult,
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
        await workflow.sleep(delete_at - workflow.now())
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

    async def _human_task(self, p: AppPlan, kind: TaskKind, spec: ManualPlan) -> TaskCompletion:
        task_id = f"{p.app}-{workflow.uuid4().hex[:12]}"
        if kind == "manual_step":
            # waiting_human only once the task row exists (task_opened), so the inbox has it.
            self._set(p.app, "running", f"opening task {task_id}")
        result = await workflow.execute_child_workflow(
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
        assert result is not None
        return result

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
        task = asyncio.create_task(self._human_task(p, "exception", spec))
        await workflow.wait_condition(lambda: p.app in self._retry or task.done())
        self._open_exceptions.discard(p.app)
        if p.app in self._retry:
            self._retry.discard(p.app)
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
            bases: list[AppPlan] = await workflow.execute_local_activity(
                "catalog_apps",
                PlanInput(person_id=self._inp.person_id, email=self._inp.email, apps=apps),
                result_type=list[AppPlan],
                start_to_close_timeout=timedelta(seconds=10),
            )
            return Plan(apps=list(await asyncio.gather(*(self._plan_app(b) for b in bases))))
        plan: Plan = await workflow.execute_activity(
            "plan_offboarding",
            PlanInput(person_id=self._inp.person_id, email=self._inp.email, apps=apps),
            result_type=Plan,
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=SCIM_RETRY,
        )
        return plan

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
        try:
            plan: AppPlan = await workflow.execute_activity(
                "plan_app",
                PlanInput(person_id=self._inp.person_id, email=self._inp.email, apps=[base.app]),
                result_type=AppPlan,
                retry_policy=SCIM_RETRY,
                **options,
            )
        except ActivityError as exc:
            reason = f"could not look up the account: {failure_message(exc)}"
            return base.model_copy(update={"action": "exception", "reason": reason})
        return plan

    # -- state ---------------------------------------------------------------------------

    def _set(self, app: str, status: StepStatus, detail: str) -> None:
        step = self._steps[app]
        step.status = status
        step.detail = detail
        step.updated_at = workflow.now()
        self._refresh_status()

    def _refresh_status(self) -> None:
        derived = self._derive_status()
        # Terminal statuses are set once, by the run's end, together with completed_at.
        if self._status not in ("scheduled", "cancelled") and derived in LIVE_STATUSES:
            self._status = derived
        self._dirty = True

    def _derive_status(self) -> RunStatus:
        return derive_status((s.status for s in self._steps.values()), bool(self._open_exceptions))

    def _summary(self) -> dict[str, Any]:
        return {s.app: s.status for s in self._steps.values()}

    def _event(
        self,
        step_id: str,
        kind: str,
        app: str | None,
        detail: dict[str, Any],
        actor: str = "offboard",
    ) -> None:
        self._pending_events.append(
            AuditEventIn(
                subject=Subject.person(self._inp.person_id),
                workflow_id=workflow.info().workflow_id,
                step_id=f"{workflow.info().run_id}:{step_id}",
                kind=kind,
                at=workflow.now().isoformat(),
                actor=actor,
                app=app,
                detail=detail,
            )
        )
        self._dirty = True

    async def _mirror(self) -> None:
        """Write state + pending audit events whenever they changed, one write at a time.

        Runs beside the steps, so an app's SCIM call never waits for a status write, and
        changes made while a write is in flight coalesce into the next one (fewer activities
        under a burst). Writes are sequential, so the DB never sees an older snapshot last.
        """
        while True:
            await workflow.wait_condition(lambda: self._dirty or self._closing)
            if not self._dirty:
                return
            self._dirty = False
            self._version += 1
            events, self._pending_events = self._pending_events, []
            record = RecordInput(
                run_id=workflow.info().run_id,
                workflow_id=workflow.info().workflow_id,
                person_id=self._inp.person_id,
                email=self._inp.email,
                run_status=self._status,
                steps=[s.model_copy() for s in self._steps.values()],
                events=events,
                completed_at=self._completed_at,
                trigger=self._inp.trigger,
                reason=self._inp.reason,
                effective_at=self._inp.effective_at,
                version=self._version,
            )
            await workflow.execute_activity_method(
                RecordActivities.record_run, record, start_to_close_timeout=_QUICK
            )

    async def _finish(self) -> None:
        """The last write: final status and completed_at, after every earlier one."""
        self._completed_at = workflow.now()
        self._dirty = True
        self._closing = True
        await self._mirror_task

    # -- messages ------------------------------------------------------------------------

    @workflow.query
    def state(self) -> RunState:
        return RunState(
            run_id=workflow.info().run_id,
            person_id=self._inp.person_id,
            status=self._status,
            steps=list(self._steps.values()),
        )

    @workflow.signal
    async def join(self, request: JoinRequest) -> None:
        if request.token and request.token == self._inp.start_token:
            return  # the request that started this run, not a second termination
        key = request.event_id or f"{request.source}-{workflow.uuid4().hex[:8]}"
        self._event(f"join:{key}", "run.joined", None, request.model_dump())

    @workflow.signal
    def task_opened(self, opened: TaskOpened) -> None:
        step = self._steps.get(opened.app)
        if opened.kind == "manual_step" and step is not None and step.status == "running":
            self._set(opened.app, "waiting_human", f"task {opened.task_id}")

    @workflow.signal
    def cancel(self, reason: str) -> None:
        if self._cancel_reason is None:
            self._cancel_reason = reason or "cancelled"

    @workflow.signal
    def approve(self, actor: str) -> None:
        self._approved = True

    @workflow.update
    async def retry_step(self, request: RetryRequest) -> str:
        self._event(
            f"{request.app}:retry:{workflow.uuid4().hex[:8]}",
            "step.retry_requested",
            request.app,
            {},
            actor=request.actor,
        )
        self._retry.add(request.app)
        return "retrying"

    @retry_step.validator
    def _validate_retry(self, request: RetryRequest) -> None:
        if request.app not in self._steps:
            raise ValueError(f"app {request.app!r} is not part of this run")
        if request.app not in self._open_exceptions:
            raise ValueError(f"step {request.app!r} is not failed; nothing to retry")
