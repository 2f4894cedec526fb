"""HumanTaskWorkflow: one task for a person (manual app step or exception), durable for days.

It owns the task row, the notifications, reminders at fractions of the SLA, escalation once the
SLA has passed, and repeated reminders until the task is completed (an Update) or cancelled.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from activities.notify import NotifyActivities
    from activities.records import RecordActivities
    from domain.audit import Subject
    from workflows.types import (
        AuditEventIn,
        HumanTaskInput,
        NotifyInput,
        TaskCompletion,
        TaskOpened,
        TaskRecord,
    )

NOTIFY_CHANNELS = (("email", NotifyActivities.notify_email), ("chat", NotifyActivities.notify_chat))
_QUICK = timedelta(seconds=30)
# A notification that keeps failing is audited and given up; it never fails the task.
_NOTIFY_RETRY = RetryPolicy(maximum_attempts=5, initial_interval=timedelta(seconds=2))


@workflow.defn
class HumanTaskWorkflow:
    def __init__(self) -> None:
        self._completion: TaskCompletion | None = None
        self._recorded = False
        self._seq = 0

    @workflow.run
    async def run(self, task: HumanTaskInput) -> TaskCompletion | None:
        self._task = task
        created = workflow.now()
        due = created + timedelta(hours=task.sla_hours)
        try:
            await self._record("open", due, "task.created", {"assignees": task.assignees})
            if task.notify_parent:
                await self._tell_parent()
            await self._notify("assigned", task.assignees, due)
            await self._remind_until_done(created, due)
        except BaseException as exc:
            # A cancel may land in any await (a retry cancels an exception task at once):
            # wherever it lands, the row must end cancelled and the assignees be told.
            if not is_cancelled_exception(exc):
                raise
            await asyncio.shield(self._cancelled(due))
            raise
        assert self._completion is not None
        detail = {"outcome": self._completion.outcome, "note": self._completion.note}
        if self._completion.evidence_sha256:
            detail["evidence_sha256"] = self._completion.evidence_sha256
        await self._record("done", due, "task.completed", detail, self._completion)
        self._recorded = True
        return self._completion

    async def _remind_until_done(self, created: datetime, due: datetime) -> None:
        task = self._task
        sla = due - created
        moments = sorted({created + sla * f for f in task.reminder_fractions if 0 < f < 1})
        plan: list[tuple[datetime, str]] = [(m, "reminder") for m in moments]
        plan.append((due, "escalation"))
        every = timedelta(hours=task.repeat_every_hours)
        index = 0
        while True:
            if index < len(plan):
                at, kind = plan[index]
            else:
                at, kind = plan[-1][0] + every * (index - len(plan) + 1), "reminder"
            timeout = max(at - workflow.now(), timedelta(0))
            if await self._wait_done(timeout):
                return
            recipients = task.assignees + (task.escalate_to if at >= due else [])
            await self._notify(kind if kind == "escalation" else "reminder", recipients, due)
            index += 1

    async def _wait_done(self, timeout: timedelta) -> bool:
        try:
            await workflow.wait_condition(lambda: self._completion is not None, timeout=timeout)
        except TimeoutError:
            return False
        return True

    async def _tell_parent(self) -> None:
        """Signal task_opened to the parent; a cancel landing meanwhile still ends the task.

        The SDK drops a cancel that lands on a signal to another workflow once that signal is
        delivered, so the task lived on, open and reminding people, after a retry had cancelled
        it (and the parent waited for it forever). Shielded, the cancel is raised here at once
        and the signal is left to complete on its own (the parent ignores it for a step that
        is no longer running).
        """
        task = self._task
        parent = workflow.get_external_workflow_handle(task.parent_workflow_id)
        opened = TaskOpened(task_id=task.task_id, app=task.app, kind=task.kind)
        await asyncio.shield(asyncio.ensure_future(parent.signal("task_opened", opened)))

    async def _cancelled(self, due: datetime) -> None:
        await self._record("cancelled", due, "task.cancelled", {})
        await self._notify("cancelled", self._task.assignees, due)

    def _event(self, kind: str, detail: dict[str, Any], actor: str = "offboard") -> AuditEventIn:
        self._seq += 1
        return AuditEventIn(
            subject=Subject(kind=self._task.subject_kind, id=self._task.person_id),
            workflow_id=workflow.info().workflow_id,
            step_id=f"{self._seq}",
            kind=kind,
            at=workflow.now().isoformat(),
            actor=actor,
            app=self._task.app,
            detail={"task_id": self._task.task_id, "kind": self._task.kind, **detail},
        )

    async def _record(
        self,
        status: str,
        due: datetime,
        kind: str,
        detail: dict[str, Any],
        completion: TaskCompletion | None = None,
    ) -> None:
        actor = completion.actor if completion else "offboard"
        record = TaskRecord(
            task=self._task,
            status=status,
            due_at=due,
            completion=completion,
            event=self._event(kind, detail, actor),
        )
        await workflow.execute_activity_method(
            RecordActivities.record_task, record, start_to_close_timeout=_QUICK
        )

    async def _notify(self, kind: str, recipients: list[str], due: datetime) -> None:
        message = NotifyInput(
            task_id=self._task.task_id,
            kind=kind,
            recipients=recipients,
            app=self._task.app,
            person_email=self._task.person_email,
            instructions=self._task.instructions,
            due_at=due,
            task_kind=self._task.kind,
        )
        events = []
        for channel, send in NOTIFY_CHANNELS:
            event = self._event(f"notify.{kind}", {"recipients": recipients, "channel": channel})
            try:
                outcome = await workflow.execute_activity_method(
                    send,
                    message,
                    start_to_close_timeout=_QUICK,
                    retry_policy=_NOTIFY_RETRY,
                )
                event.detail["outcome"] = outcome
            except ActivityError as exc:
                if is_cancelled_exception(exc):
                    raise
                event.kind = f"notify.{kind}.failed"
                event.detail["error"] = str(exc.cause or exc)
            events.append(event)
        await workflow.execute_activity_method(
            RecordActivities.record_events, events, start_to_close_timeout=_QUICK
        )

    @workflow.update
    async def complete(self, completion: TaskCompletion) -> str:
        self._completion = completion
        # Answer only once the row says done, so the API can read its own write.
        await workflow.wait_condition(lambda: self._recorded)
        return "done"

    @complete.validator
    def _validate_complete(self, completion: TaskCompletion) -> None:
        if self._completion is not None:
            raise ValueError("task is already completed")
        if not completion.note.strip():
            raise ValueError("a note is required")

    @workflow.query
    def completed(self) -> bool:
        return self._completion is not None
