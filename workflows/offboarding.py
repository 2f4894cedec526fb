"""OffboardingWorkflow (id ``offboard-<person id>``): plan, wait until effective, then every app.

SCIM apps are deprovisioned and read back concurrently; manual apps become a HumanTaskWorkflow.
A step that needs a person (ambiguous match, auth failure, exhausted retries, a manual step that
could not be completed) ends ``failed`` with an exception task; the run finishes only once that
is resolved by hand or a retry succeeds.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.signals import SignalActivities
    from workflows.app_steps import AppSteps
    from workflows.steps import SSF_RETRY, failure_message
    from workflows.types import (
        IDP_CONNECTORS,
        TERMINAL_STEPS,
        AppPlan,
        ApprovalRequest,
        AuditEventIn,
        JoinRequest,
        OffboardingInput,
        RetryRequest,
        RunState,
        RunStatus,
        SignalInput,
        StepState,
        StepStatus,
        TaskOpened,
    )

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
# Since this patch a retry cancels the step's exception task only once that task has started.
CANCEL_AFTER_START = "cancel-after-start"
# Since this patch apps with a catalog ``handover:`` get a handover task beside their step; the
# run waits for it (waiting_human) before it completes.
HANDOVER = "handover"
# Since this patch the plan and run.started are on the trail before any app's step or task
# writes its own events (those write directly, and under load could land first).
ORDERED_TRAIL = "ordered-trail"
# Since this patch a cancel during an app's grace period (deactivate_then_delete: a rescind,
# a rehire, an admin) cancels only the pending delete: the step stays verified (it was
# deactivated) and says "delete cancelled: <reason>", with step.delete_cancelled on the trail.
DELETE_CANCELLABLE = "delete-cancellable"
# Since this patch a new run records this one patch marker, standing for every patch above
# (each ``patched`` call on a new run records a marker and upserts the TemporalChangeVersion
# search attribute: 14 history events and 7 visibility writes per run under a burst); runs
# without it still ask for the others one by one. And fewer state writes: the mirror lets the
# rest of a workflow activation run before it takes its snapshot (so the last step's status
# and the run's end go out in one write), and the trail is flushed just before each
# activity or task that writes to it directly starts, instead of once before the apps start
# (so the plan, run.started and every app's step.started go out in one write).
LEAN_HISTORY = "lean-history"
# Since this patch, fewer activities per run under a burst: the apps without a task queue of
# their own are planned together in one activity (plan_apps; an app it cannot ask at once is
# planned by its own activity as before), and while steps are still running the mirror lets
# their results gather for up to 10 s, so a burst's step results and the run's end go
# out in one state write. With 5 such apps: 4 plan activities and 2 state writes fewer per
# person. And on a rate-limited app's own queue, plans go first (task queue priority), so the
# other apps' steps never wait behind that app's backlog of steps for their run's plan. Its
# marker stands for every patch above, lean-history included.
FEWER_ACTIVITIES = "fewer-activities"
# Since this patch the run's state writes (record_run) are local activities: run by the worker
# that runs the workflow, within its workflow task, with no activity task for the server to
# dispatch and no workflow task to hand back the result. Under a burst they had queued on the
# main task queue behind other runs' steps, with the plan's write on every run's critical path
# (its apps start only once it landed); and they were 2 of a person's 8 activity tasks. Its
# marker stands for every patch above.
LOCAL_RECORDS = "local-records"


@workflow.defn
class OffboardingWorkflow(AppSteps):
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
        self._written = 0
        self._dirty = False
        self._closing = False
        self._completed_at: datetime | None = None
        self._events_with_status = False
        self._sound = False
        self._admission = False
        self._idp_first = False
        self._cancel_after_start = False
        self._handovers = False
        self._ordered_trail = False
        self._delete_cancellable = False
        self._lean = False
        self._fewer = False
        self._local_records = False
        self._flushes = 0
        self._open_handovers: set[str] = set()

    # -- run -------------------------------------------------------------------------------

    @workflow.run
    async def run(self, inp: OffboardingInput) -> RunState:
        self._local_records = workflow.patched(LOCAL_RECORDS)
        self._fewer = self._local_records or workflow.patched(FEWER_ACTIVITIES)
        self._lean = self._fewer or workflow.patched(LEAN_HISTORY)
        self._events_with_status = self._lean or workflow.patched(STEP_EVENTS_WITH_STATUS)
        self._sound = self._lean or workflow.patched(VERIFIED_SOUNDNESS)
        self._admission = self._lean or workflow.patched(APP_ADMISSION)
        self._idp_first = self._lean or workflow.patched(IDP_FIRST)
        self._cancel_after_start = self._lean or workflow.patched(CANCEL_AFTER_START)
        self._handovers = self._lean or workflow.patched(HANDOVER)
        self._ordered_trail = self._lean or workflow.patched(ORDERED_TRAIL)
        self._delete_cancellable = self._lean or workflow.patched(DELETE_CANCELLABLE)
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
        if self._ordered_trail and not self._lean:
            await self._flush()  # lean runs flush per app, just before its first write
        runnable = [p for p in plan.apps if p.action != "skip"]
        if self._idp_first:
            tasks = await self._idp_then_apps(runnable)
        else:
            tasks = [asyncio.create_task(self._run_app(p)) for p in runnable]
        if self._handovers:
            tasks += [asyncio.create_task(self._handover(p)) for p in runnable if p.handover]
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
        await self._before_direct_writes()
        try:
            await workflow.execute_activity_method(
                SignalActivities.share_session_revoked,
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
        """Runs started before approvals were Updates; kept so they can still be approved."""
        self._approved = True

    @workflow.update
    def approve_run(self, request: ApprovalRequest) -> str:
        """Approve a run the burst guard holds; audited with the approver (``run.approved``)."""
        self._approved = True
        self._event("run:approved", "run.approved", None, {}, actor=request.actor)
        return "approved"

    @approve_run.validator
    def _validate_approval(self, request: ApprovalRequest) -> None:
        if not self._inp.hold_for_approval:
            raise ValueError("this run is not held for approval")
        if self._approved:
            raise ValueError("this run is already approved")
        if self._cancel_reason is not None:
            raise ValueError("this run is cancelled")

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
