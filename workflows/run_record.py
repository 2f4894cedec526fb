"""The run's record: step states, the derived run status, audit events, and the mirror that
writes them (state + events) to the DB for the API, one write at a time.

A base of ``OffboardingWorkflow``: deterministic workflow code, no I/O of its own.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.records import RecordActivities
    from domain.audit import Subject
    from workflows.run_state import LIVE_STATUSES, derive_status
    from workflows.types import (
        AuditEventIn,
        OffboardingInput,
        RecordInput,
        RunStatus,
        StepState,
        StepStatus,
    )


_QUICK = timedelta(seconds=30)
# How long the mirror lets running steps' results gather before it writes anyway.
SETTLE = timedelta(seconds=10)


class RunRecord:
    """State every part of the run reads and writes (set in ``OffboardingWorkflow.__init__``)."""

    _inp: OffboardingInput
    _steps: dict[str, StepState]
    _status: RunStatus
    _cancel_reason: str | None
    _approved: bool
    _retry: set[str]
    _open_exceptions: set[str]
    _pending_events: list[AuditEventIn]
    _version: int
    _written: int  # the version of the last completed mirror write
    _dirty: bool
    _closing: bool
    _completed_at: datetime | None
    _mirror_task: asyncio.Task[None]
    # Patches in force for this run (see workflows/offboarding.py).
    _events_with_status: bool
    _sound: bool
    _admission: bool
    _idp_first: bool
    _cancel_after_start: bool
    _handovers: bool
    _ordered_trail: bool
    _delete_cancellable: bool
    _lean: bool
    _fewer: bool
    _local_records: bool
    _flushes: int  # how many are waiting in _flush
    _open_handovers: set[str]

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
        return derive_status(
            (s.status for s in self._steps.values()),
            bool(self._open_exceptions or self._open_handovers),
        )

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
            if self._fewer and not self._write_now():
                try:
                    await workflow.wait_condition(self._write_now, timeout=SETTLE)
                except TimeoutError:
                    pass
            if self._lean:
                # Conditions are checked once nothing else is ready to run: so the
                # coroutines this activation woke go first, and when the last step settles,
                # the run's end (run.completed, completed_at) joins this write.
                await workflow.wait_condition(lambda: True)
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
            if self._local_records:
                await workflow.execute_local_activity_method(
                    RecordActivities.record_run, record, start_to_close_timeout=_QUICK
                )
            else:
                await workflow.execute_activity_method(
                    RecordActivities.record_run, record, start_to_close_timeout=_QUICK
                )
            self._written = record.version

    def _write_now(self) -> bool:
        """Whether a change should be written without waiting for running steps to settle:
        at the run's end, when a direct write waits for it, or when no step is running (a plan,
        a held or scheduled run, a task opened show at once)."""
        busy = any(s.status == "running" for s in self._steps.values())
        return self._closing or self._flushes > 0 or not busy

    async def _flush(self) -> None:
        """Wait until every change so far is written (state and audit events)."""
        self._flushes += 1
        try:
            await workflow.wait_condition(
                lambda: not self._dirty and self._written == self._version
            )
        finally:
            self._flushes -= 1

    async def _before_direct_writes(self) -> None:
        """Before starting an activity or task that writes to the trail itself: everything
        recorded so far goes first (runs since the lean-history patch; the others flushed
        once, before the apps started)."""
        if self._lean:
            await self._flush()

    async def _finish(self) -> None:
        """The last write: final status and completed_at, after every earlier one."""
        self._completed_at = workflow.now()
        self._dirty = True
        self._closing = True
        await self._mirror_task
