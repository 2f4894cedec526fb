"""Writes the workflows need: audit events (hash chain) and the state mirror the API reads."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlmodel import Session, select
from temporalio import activity

from db import audit
from db.models import HumanTask, OffboardingRun, Step
from metrics import RUNS_FINISHED, STEP_SECONDS
from workflows.types import TERMINAL_STEPS, AuditEventIn, RecordInput, StepState, TaskRecord

ACTIVE_STEPS = ("running", "waiting_human")


def observe_step(row: Step, state: StepState) -> None:
    """A step leaving running/waiting for an outcome: its duration, by app and outcome."""
    ended = state.status in TERMINAL_STEPS or state.status == "failed"
    if row.status in ACTIVE_STEPS and ended and state.updated_at is not None:
        seconds = (state.updated_at - row.updated_at).total_seconds()
        STEP_SECONDS.labels(state.app, state.status).observe(max(seconds, 0.0))


class RecordActivities:
    def __init__(self, session_factory: Callable[[], Session]) -> None:
        self._sessions = session_factory

    @activity.defn(name="record_events")
    def record_events(self, events: list[AuditEventIn]) -> int:
        return audit.append(self._sessions, events)

    @activity.defn(name="record_run")
    def record_run(self, inp: RecordInput) -> int:
        def mirror(session: Session) -> None:
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
            run.updated_at = datetime.now(UTC)
            run.completed_at = inp.completed_at
            session.add(run)
            existing = {
                s.app: s for s in session.exec(select(Step).where(Step.run_id == inp.run_id))
            }
            if inp.completed_at is not None:
                RUNS_FINISHED.labels(inp.run_status).inc()
            for state in inp.steps:
                row = existing.get(state.app) or Step(
                    run_id=inp.run_id, app=state.app, connector=state.connector
                )
                observe_step(row, state)
                row.status = state.status
                row.account = state.account
                row.detail = state.detail
                row.updated_at = state.updated_at or datetime.now(UTC)
                session.add(row)

        return audit.append(self._sessions, inp.events, extra=mirror)

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
                row.completed_at = datetime.now(UTC)
            session.add(row)

        return audit.append(self._sessions, [inp.event], extra=upsert)
