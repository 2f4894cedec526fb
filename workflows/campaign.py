"""AccessReviewCampaignWorkflow (id = the campaign id): collect, review, close, revoke, prove.

1. Collect every app concurrently: a SCIM app is paged by one activity that stores classified
   accounts in the DB and returns a count; a manual app gets a ``csv_upload`` HumanTaskWorkflow
   asking its owner for a CSV export (the API stores the rows, the task's completion lets the
   workflow classify them).
2. Review until the deadline (or an admin's ``close`` Update): reminders at 50% of the window and
   one day before the deadline, the owners' escalation on the last day.
3. Close: ``on_no_decision`` for whatever is pending; every ``revoke`` item goes through the same
   ``deprovision_scim`` activity as offboarding (SCIM, read back, audited on the person's trail),
   in batches, continuing as new when the history grows; a manual app's revocations become one
   human task, a failed SCIM revocation an exception task for the app's owners.
4. Finish ``completed`` only when every revocation is verified or its task done.

Accounts never enter this history: activities take and return ids and counts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from activities.campaign_close import CampaignCloseActivities
    from activities.campaign_collect import CampaignCollectActivities
    from activities.campaign_notify import CampaignNotifyActivities
    from domain.audit import AuditEventIn, Subject
    from domain.status import AppCollection, CampaignStatus
    from workflows.campaign_messages import (
        CampaignAppPlan,
        CampaignAppState,
        CampaignBeginInput,
        CampaignInput,
        CampaignNotifyInput,
        CampaignNotifyKind,
        CampaignOutcome,
        CampaignPlan,
        CampaignRef,
        CampaignSyncInput,
        CampaignTemplate,
        CloseRequest,
        CloseReviewInput,
        CloseReviewResult,
        CollectInput,
        CollectResult,
    )
    from workflows.campaign_revoke import CampaignRevocations
    from workflows.steps import failure_message

_QUICK = timedelta(seconds=60)
_DB = timedelta(minutes=10)
# Listing a big app takes minutes; the activity heartbeats per stored batch.
COLLECT_TIMEOUT = timedelta(hours=2)
COLLECT_HEARTBEAT = timedelta(minutes=2)
_NOTIFY_RETRY = RetryPolicy(maximum_attempts=5, initial_interval=timedelta(seconds=2))
COLLECT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=2),
    maximum_attempts=8,
)
REMINDER_BEFORE_DUE = timedelta(days=1)
# A reviewer who leaves mid-campaign hands their pending items on within this long (and before
# every notice). Runs started before the check existed carry no marker and wait as they did.
REVIEWER_CHECK_PATCH = "campaign-reviewer-check"
REVIEWER_CHECK_EVERY = timedelta(hours=6)
ESCALATION_BEFORE_DUE = timedelta(hours=4)


def quarter_label(at: datetime) -> str:
    return f"{at.year}-Q{(at.month - 1) // 3 + 1}"


def upload_instructions(campaign_id: str, name: str, app: CampaignAppPlan, due: datetime) -> str:
    return (
        f"Access review '{name}': export every account of {app.name} as a CSV file and upload "
        f"it to POST /api/v1/campaigns/{campaign_id}/apps/{app.app}/accounts "
        "(Content-Type: text/csv). Header row required; columns: account (required: the login "
        "or userName), email, display_name, last_sign_in (ISO-8601), account_id (defaults to "
        "account), active (true/false; inactive rows are skipped). The review closes "
        f"{due.strftime('%Y-%m-%d %H:%M UTC')}."
    )


@workflow.defn
class AccessReviewCampaignWorkflow(CampaignRevocations):
    def __init__(self) -> None:
        self._status: CampaignStatus = "collecting"
        self._apps: dict[str, CampaignAppState] = {}
        self._close: CloseRequest | None = None
        self._closed: CloseReviewResult | None = None
        self._failed_apps: list[str] = []
        self._version = 0
        self._check_reviewers = False

    # -- run -------------------------------------------------------------------------------

    @workflow.run
    async def run(self, inp: CampaignInput) -> CampaignOutcome:
        self._inp = inp
        self._id = inp.campaign_id or workflow.info().workflow_id
        if inp.resume is not None:
            self._status = "revoking"
            self._started, self._due = inp.resume.started_at, inp.resume.due_at
            self._failed_apps = list(inp.resume.failed_apps)
            self._version = inp.resume.version
            return await self._revoke(inp.resume.after_item)

        self._started = workflow.now()
        self._due = inp.due_at or self._started + timedelta(days=inp.template.due_in_days)
        self._template = inp.template
        if inp.trigger == "schedule":
            name = f"{inp.template.name} {quarter_label(self._started)}"
            self._template = inp.template.model_copy(update={"name": name})
        plan: CampaignPlan = await workflow.execute_activity_method(
            CampaignCollectActivities.begin,
            CampaignBeginInput(
                campaign_id=self._id,
                workflow_id=workflow.info().workflow_id,
                template=self._template,
                started_at=self._started,
                due_at=self._due,
                trigger=inp.trigger,
                actor=inp.actor,
            ),
            start_to_close_timeout=_QUICK,
        )
        for p in plan.apps:
            status: AppCollection = "collecting" if p.connector == "scim" else "waiting_upload"
            self._apps[p.app] = CampaignAppState(status=status)
        await self._sync()

        collectors = {p.app: asyncio.create_task(self._collect(p)) for p in plan.apps}
        await self._wait_until(self._due, lambda: all(t.done() for t in collectors.values()))
        for app, task in collectors.items():
            # At the deadline (or on close) a manual app still waiting for its CSV gives up;
            # a SCIM listing under way is allowed to finish.
            if not task.done() and self._apps[app].status == "waiting_upload":
                task.cancel()
        await asyncio.gather(*collectors.values())

        if self._close is None and workflow.now() < self._due:
            self._status = "reviewing"
            await self._sync()
            await self._notify("review_assigned", "assigned")
            await self._review()
        await self._close_review()
        return await self._revoke(0)

    async def _wait_until(self, at: datetime, done: Callable[[], bool] = lambda: False) -> bool:
        """Wait until ``at``, an admin's close, or ``done()``; True when closed by an admin."""
        try:
            await workflow.wait_condition(
                lambda: self._close is not None or done(),
                timeout=max(at - workflow.now(), timedelta(0)),
            )
        except TimeoutError:
            pass
        return self._close is not None

    # -- collect ---------------------------------------------------------------------------

    def _set_app(
        self, app: str, status: AppCollection, accounts: int | None = None, detail: str = ""
    ) -> None:
        state = self._apps[app]
        state.status = status
        state.detail = detail
        if accounts is not None:
            state.accounts = accounts
        if status == "failed" and app not in self._failed_apps:
            self._failed_apps.append(app)

    async def _collect(self, p: CampaignAppPlan) -> None:
        try:
            if p.connector == "scim":
                result: CollectResult = await workflow.execute_activity_method(
                    CampaignCollectActivities.collect_scim,
                    self._collect_input(p.app),
                    start_to_close_timeout=COLLECT_TIMEOUT,
                    heartbeat_timeout=COLLECT_HEARTBEAT,
                    retry_policy=COLLECT_RETRY,
                )
                skipped = (
                    f"; {result.skipped_inactive} inactive skipped"
                    if result.skipped_inactive
                    else ""
                )
                self._set_app(
                    p.app,
                    "collected",
                    result.accounts,
                    f"{result.accounts} accounts{skipped}{result.population()}",
                )
                # The population rides with the app's state: one writer for the row.
                self._apps[p.app] = self._apps[p.app].model_copy(
                    update={
                        **result.model_dump(
                            include={"listed", "reported", "query", "skipped_inactive"}
                        ),
                        "collected_at": workflow.now().isoformat(),
                    }
                )
            else:
                await self._collect_manual(p)
        except ActivityError as exc:
            self._set_app(p.app, "failed", detail=failure_message(exc))
        state = self._apps[p.app]
        kind = "campaign.app_failed" if state.status == "failed" else "campaign.app_collected"
        event = AuditEventIn(
            subject=Subject.campaign(self._id),
            workflow_id=workflow.info().workflow_id,
            step_id=f"collect-{p.app}",
            kind=kind,
            at=workflow.now().isoformat(),
            app=p.app,
            detail={"campaign": self._id, **state.model_dump()},
        )
        await self._sync([event])

    def _collect_input(self, app: str) -> CollectInput:
        return CollectInput(campaign_id=self._id, workflow_id=workflow.info().workflow_id, app=app)

    async def _collect_manual(self, p: CampaignAppPlan) -> None:
        task_id = f"{self._id}-{p.app}-upload"
        self._set_app(p.app, "waiting_upload", detail=f"task {task_id}")
        await self._sync()
        window_hours = (self._due - self._started).total_seconds() / 3600
        try:
            completion = await self._campaign_task(
                task_id,
                "csv_upload",
                p.app,
                p.uploaders,
                p.escalate_to,
                max(window_hours / 2, 0.001),
                upload_instructions(self._id, self._template.name, p, self._due),
            )
        except asyncio.CancelledError:
            self._set_app(p.app, "failed", detail="no CSV export was uploaded before the close")
            return
        except ChildWorkflowError as exc:
            self._set_app(p.app, "failed", detail=failure_message(exc))
            return
        if completion is None or completion.outcome == "could_not_complete":
            note = completion.note if completion else "task ended without a completion"
            self._set_app(p.app, "failed", detail=f"no export: {note}")
        elif completion.outcome == "not_applicable":
            self._set_app(p.app, "collected", 0, f"not applicable: {completion.note}")
        else:
            self._set_app(p.app, "classifying", detail=f"uploaded by {completion.actor}")
            await self._sync()
            result: CollectResult = await workflow.execute_activity_method(
                CampaignCollectActivities.classify,
                self._collect_input(p.app),
                start_to_close_timeout=_DB,
            )
            self._set_app(p.app, "collected", result.accounts, f"{result.accounts} accounts")

    # -- review ----------------------------------------------------------------------------

    async def _review(self) -> None:
        window = self._due - self._started
        halfway = self._started + window / 2
        moments: list[tuple[datetime, CampaignNotifyKind, str]] = [
            (halfway, "review_reminder", "reminder-50pct")
        ]
        if self._due - REMINDER_BEFORE_DUE > halfway:
            moments.append((self._due - REMINDER_BEFORE_DUE, "review_reminder", "reminder-1d"))
        escalation = max(self._due - ESCALATION_BEFORE_DUE, self._started + window * 3 / 4)
        moments.append((escalation, "review_escalation", "escalation"))
        self._check_reviewers = workflow.patched(REVIEWER_CHECK_PATCH)
        for at, kind, step in sorted(moments):
            if at <= workflow.now():
                continue
            if await self._wait_reviewing(at):
                return
            await self._notify(kind, step)
        await self._wait_reviewing(self._due)

    async def _wait_reviewing(self, at: datetime) -> bool:
        """``_wait_until(at)``, moving departed reviewers' items every REVIEWER_CHECK_EVERY."""
        while self._check_reviewers and workflow.now() + REVIEWER_CHECK_EVERY < at:
            if await self._wait_until(workflow.now() + REVIEWER_CHECK_EVERY):
                return True
            try:
                await workflow.execute_activity_method(
                    CampaignNotifyActivities.move_departed,
                    CampaignRef(campaign_id=self._id, workflow_id=workflow.info().workflow_id),
                    start_to_close_timeout=_DB,
                    retry_policy=_NOTIFY_RETRY,
                )
            except ActivityError:
                pass  # the next check, or the next notice, tries again
        return await self._wait_until(at)

    async def _notify(self, kind: CampaignNotifyKind, step: str) -> None:
        """Tell reviewers (or owners); a notification that keeps failing is audited and given
        up, it never fails the campaign."""
        try:
            await workflow.execute_activity_method(
                CampaignNotifyActivities.notify,
                CampaignNotifyInput(
                    campaign_id=self._id,
                    workflow_id=workflow.info().workflow_id,
                    kind=kind,
                    step_id=f"notify-{step}",
                    at=workflow.now(),
                    due_at=self._due,
                ),
                start_to_close_timeout=_DB,
                retry_policy=_NOTIFY_RETRY,
            )
        except ActivityError as exc:
            failed = AuditEventIn(
                subject=Subject.campaign(self._id),
                workflow_id=workflow.info().workflow_id,
                step_id=f"notify-{step}",
                kind=f"notify.{kind}.failed",
                at=workflow.now().isoformat(),
                detail={"campaign": self._id, "error": failure_message(exc)},
            )
            await self._sync([failed])

    async def _close_review(self) -> None:
        request = self._close
        if request is None:
            actor, reason = "offboard", "deadline"
        else:
            actor = request.actor
            reason = f"closed by {request.actor}" + (
                f": {request.reason}" if request.reason else ""
            )
        self._closed = await workflow.execute_activity_method(
            CampaignCloseActivities.close_review,
            CloseReviewInput(
                campaign_id=self._id,
                workflow_id=workflow.info().workflow_id,
                on_no_decision=self._inp.template.on_no_decision,
                actor=actor,
                reason=reason,
                at=workflow.now(),
            ),
            start_to_close_timeout=_DB,
        )
        self._status = "revoking"
        await self._sync()

    # -- state -----------------------------------------------------------------------------

    async def _sync(self, events: list[AuditEventIn] | None = None) -> None:
        self._version += 1
        await workflow.execute_activity_method(
            CampaignCollectActivities.sync,
            CampaignSyncInput(
                campaign_id=self._id,
                status=self._status,
                apps={k: v.model_copy() for k, v in self._apps.items()},
                events=events or [],
                version=self._version,
            ),
            start_to_close_timeout=_QUICK,
        )

    @workflow.query
    def state(self) -> dict[str, Any]:
        return {
            "id": self._id,
            "status": self._status,
            "apps": {k: v.model_dump() for k, v in self._apps.items()},
            "closed": self._closed.model_dump() if self._closed else None,
        }

    @workflow.update
    async def close(self, request: CloseRequest) -> CloseReviewResult:
        """End the review now (admin): the same path the deadline takes."""
        self._close = request
        # Answer once pending items are decided, so the API reads its own write.
        await workflow.wait_condition(lambda: self._closed is not None)
        assert self._closed is not None
        return self._closed

    @close.validator
    def _validate_close(self, request: CloseRequest) -> None:
        if self._close is not None or self._status not in ("collecting", "reviewing"):
            raise ValueError(f"the review is already closed (campaign is {self._status})")


__all__ = ["AccessReviewCampaignWorkflow", "CampaignTemplate", "quarter_label"]
