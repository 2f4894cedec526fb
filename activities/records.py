"""Writes the workflows need: audit events (hash chain) and the state mirror the API reads."""

from __future__ import annotations

from collections.abc import Callable

from sqlmodel import Session, select
from temporalio import activity

from config import RECLAIMED_STEPS, Catalog
from db import audit
from db.models import HumanTask, OffboardingRun, Step, utcnow
from domain.audit import AuditEventIn
from domain.status import ACTIVE_STEPS, TERMINAL_STEPS
from metrics import RUNS_FINISHED, STEP_SECONDS, count_licenses_reclaimed
from workflows.types import RecordInput, StepState, TaskRecord


def step_seconds(row: Step, state: StepState) -> float | None:
    """How long a step that leaves running/waiting for an outcome took (None: it did not)."""
    ended = state.status in TERMINAL_STEPS or state.status == "failed"
    if row.status in ACTIVE_STEPS and ended and state.updated_at is not None:
        return max((state.updated_at - row.updated_at).total_seconds(), 0.0)
    return None


class RecordActivities:
    def __init__(
        self, session_factory: Callable[[], Session], catalog: Catalog | None = None
    ) -> None:
        self._sessions = session_factory
        self._catalog = catalog

    @activity.defn(name="record_events")
    def record_events(self, events: list[AuditEventIn]) -> int:
        return audit.append(self._sessions, events)

    @activity.defn(name="record_run")
    def record_run(self, inp: RecordInput) -> int:
        # What to count once the write has committed: the transaction may be retried.
        durations: list[tuple[str, str, float]] = []
        finished: list[str] = []
        reclaimed: list[tuple[str, str]] = []

        def mirror(session: Session) -> None:
            durations.clear()
            finished.clear()
            reclaimed.clear()
            # FOR UPDATE: a concurrent snapshot of this run waits here and then reads the
            # committed version, so an older one can't overwrite a newer one (PostgreSQL's READ
            # COMMITTED would otherwise let it); SQLite serialises writers and ignores the clause.
            run = session.get(OffboardingRun, inp.run_id, with_for_update=True)
            if run is None:
                run = OffboardingRun(
                    run_id=inp.run_id,
                    workflow_id=inp.workflow_id,
                    person_id=inp.person_id,
                    email=inp.email,
                    trigger=inp.trigger,
                    reason=inp.reason,
                    effective_at=inp.effective_at,
                )
            elif run.state_version >= inp.version:
                return  # a newer snapshot already landed
            run.status = inp.run_status
            run.state_version = inp.version
            run.updated_at = utcnow()
            run.completed_at = inp.completed_at
            session.add(run)
            existing = {
                s.app: s for s in session.exec(select(Step).where(Step.run_id == inp.run_id))
            }
            if inp.completed_at is not None:
                finished.append(inp.run_status)
            for state in inp.steps:
                row = existing.get(state.app) or Step(
                    run_id=inp.run_id, app=state.app, connector=state.connector
                )
                seconds = step_seconds(row, state)
                if seconds is not None:
                    durations.append((state.app, state.status, seconds))
                if state.status in RECLAIMED_STEPS and row.status not in RECLAIMED_STEPS:
                    reclaimed.append((state.app, state.status))
                row.status = state.status
                row.account = state.account
                row.detail = state.detail
                row.updated_at = state.updated_at or utcnow()
                session.add(row)

        written = audit.append(self._sessions, inp.events, extra=mirror)
        for status in finished:
            RUNS_FINISHED.labels(status).inc()
        for app, outcome, seconds in durations:
            STEP_SECONDS.labels(app, outcome).observe(seconds)
        if self._catalog is not None:
            for app, status in reclaimed:
                seat = self._catalog.licenses_reclaimed([(app, status)])
                count_licenses_reclaimed("run", app, seat.monthly_cost)
        return written

    @activity.defn(name="record_task")
    def record_task(self, inp: TaskRecord) -> int:
        task = inp.task

        def upsert(session: Session) -> None:
            row = session.get(HumanTask, task.task_id) or HumanTask(
                id=task.task_id,
                workflow_id=f"task-{task.task_id}",
                kind=task.kind,
                app=task.app,
                run_id=task.run_id,
                person_id=task.person_id,
                person_email=task.person_email,
                assignees=task.assignees,
                instructions=task.instructions,
            )
            if row.status != "open":
                # A closed task stays closed. The "open" write can land after the "cancelled"
                # one: a cancel that arrives while the task is being created stops the
                # workflow waiting for that write, not the write itself.
                return
            row.status = inp.status
            row.due_at = inp.due_at
            if inp.completion is not None:
                row.outcome = inp.completion.outcome
                row.note = inp.completion.note
                row.completed_by = inp.completion.actor
                row.completed_at = utcnow()
            session.add(row)

        return audit.append(self._sessions, [inp.event], extra=upsert)
