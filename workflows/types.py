"""Inputs, outputs and state of the workflows; everything that crosses Temporal is one of these."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

StepStatus = Literal[
    "pending", "running", "verified", "waiting_human", "done", "skipped", "failed", "cancelled"
]
RunStatus = Literal["scheduled", "running", "waiting_human", "completed", "failed", "cancelled"]
Outcome = Literal["done", "not_applicable", "could_not_complete"]
TaskKind = Literal["manual_step", "exception", "csv_upload"]

TERMINAL_STEPS: frozenset[str] = frozenset({"verified", "done", "skipped", "cancelled"})


class AuditEventIn(BaseModel):
    """An event to append; (workflow_id, step_id, kind) makes a retried write a no-op."""

    person_id: str
    workflow_id: str
    step_id: str
    kind: str
    at: str
    actor: str = "offboard"
    app: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class OffboardingInput(BaseModel):
    person_id: str
    email: str
    name: str = ""
    reason: str = ""
    effective_at: datetime | None = None
    apps: list[str] | None = None
    trigger: str = "api"
    actor: str = "offboard"
    hold_for_approval: bool = False


class JoinRequest(BaseModel):
    """A second termination for a person whose run is live: it joins instead of starting."""

    source: str
    event_id: str | None = None
    reason: str = ""


class PlanInput(BaseModel):
    person_id: str
    email: str
    apps: list[str] | None = None


class ManualPlan(BaseModel):
    assignees: list[str]
    escalate_to: list[str] = Field(default_factory=list)
    sla_hours: float
    instructions: str


class AppPlan(BaseModel):
    app: str
    name: str
    connector: Literal["scim", "manual"]
    action: Literal["deprovision", "manual_task", "skip", "exception"]
    account: str | None = None
    account_id: str | None = None
    reason: str = ""
    owners: list[str] = Field(default_factory=list)
    deprovision: Literal["deactivate", "delete", "deactivate_then_delete"] = "deactivate"
    delete_after_days: int | None = None
    manual: ManualPlan | None = None


class Plan(BaseModel):
    apps: list[AppPlan]


class StepState(BaseModel):
    app: str
    connector: str
    status: StepStatus = "pending"
    account: str | None = None
    detail: str = ""
    updated_at: datetime | None = None


class RunState(BaseModel):
    run_id: str
    person_id: str
    status: RunStatus
    steps: list[StepState]


class RecordInput(BaseModel):
    """State mirror for the API plus audit events, written in one transaction."""

    run_id: str
    workflow_id: str
    person_id: str
    email: str
    run_status: RunStatus
    steps: list[StepState] = Field(default_factory=list)
    events: list[AuditEventIn] = Field(default_factory=list)
    completed_at: datetime | None = None
    # Concurrent app steps sync independently; the DB keeps only the newest snapshot.
    version: int = 0


class ScimStepInput(BaseModel):
    app: str
    account_id: str
    account: str | None
    person_id: str
    workflow_id: str
    step_id: str
    mode: Literal["deactivate", "delete"]


class ScimStepResult(BaseModel):
    outcome: Literal["deactivated", "deleted", "gone"]
    groups_removed: list[str] = Field(default_factory=list)
    state: Literal["inactive", "gone"]


class HumanTaskInput(BaseModel):
    task_id: str
    kind: TaskKind
    app: str
    run_id: str
    parent_workflow_id: str
    person_id: str
    person_email: str
    assignees: list[str]
    escalate_to: list[str] = Field(default_factory=list)
    sla_hours: float = 24
    instructions: str = ""
    reminder_fractions: list[float] = Field(default_factory=lambda: [0.5, 1.0])
    repeat_every_hours: float = 24


class TaskCompletion(BaseModel):
    outcome: Outcome
    note: str
    actor: str
    evidence_sha256: str | None = None


class TaskRecord(BaseModel):
    """Task row writes from the HumanTaskWorkflow."""

    task: HumanTaskInput
    status: Literal["open", "done", "cancelled"]
    due_at: datetime | None = None
    completion: TaskCompletion | None = None
    event: AuditEventIn


class NotifyInput(BaseModel):
    task_id: str
    kind: Literal["assigned", "reminder", "escalation", "cancelled"]
    recipients: list[str]
    app: str
    person_email: str
    instructions: str
    due_at: datetime | None = None


class RetryRequest(BaseModel):
    app: str
    actor: str
