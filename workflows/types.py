"""Inputs, outputs and state of the offboarding and human-task workflows (what crosses Temporal)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

# The vocabulary lives in domain/; these names stay importable from here (explicit re-exports).
from domain.audit import AuditEventIn as AuditEventIn
from domain.audit import SubjectKind
from domain.status import IDP_CONNECTORS as IDP_CONNECTORS
from domain.status import TERMINAL_STEPS as TERMINAL_STEPS
from domain.status import Connector as Connector
from domain.status import Outcome as Outcome
from domain.status import RunStatus as RunStatus
from domain.status import StepStatus as StepStatus
from domain.status import TaskKind as TaskKind
from domain.status import TaskStatus


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
    # The starting request also arrives as a join signal (signal-with-start); this tells it apart.
    start_token: str = ""
    # OFFBOARD_IDP_WAIT_SECONDS: how long the apps wait for the IdP steps at most.
    idp_wait_seconds: float = 60.0


class JoinRequest(BaseModel):
    """A second termination for a person whose run is live: it joins instead of starting."""

    source: str
    event_id: str | None = None
    reason: str = ""
    token: str = ""


class PlanInput(BaseModel):
    person_id: str
    email: str
    apps: list[str] | None = None


class ManualPlan(BaseModel):
    assignees: list[str]
    escalate_to: list[str] = Field(default_factory=list)
    sla_hours: float
    instructions: str
    reminder_fractions: list[float] = Field(default_factory=lambda: [0.5])
    repeat_every_hours: float = 24


class AppPlan(BaseModel):
    app: str
    name: str
    connector: Connector
    # An identity provider: its step starts first, the other apps after it (or a wait).
    idp: bool = False
    action: Literal["deprovision", "manual_task", "skip", "exception"]
    account: str | None = None
    account_id: str | None = None
    reason: str = ""
    owners: list[str] = Field(default_factory=list)
    deprovision: Literal["deactivate", "delete", "deactivate_then_delete"] = "deactivate"
    delete_after_days: int | None = None
    manual: ManualPlan | None = None
    # The app's own activity task queue (rate-limited SCIM apps: admission), and how long one
    # step may take.
    task_queue: str | None = None
    step_timeout_seconds: float = 120.0
    # A person's handover task for the app, beside its step (catalog ``handover:``).
    handover: ManualPlan | None = None


class Plan(BaseModel):
    apps: list[AppPlan]


class PlanBatch(BaseModel):
    """Plans made together (``plan_apps``); the ``unplanned`` apps could not be asked at once
    and are each planned by an activity of their own."""

    apps: list[AppPlan]
    unplanned: list[str] = Field(default_factory=list)


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
    trigger: str = "api"
    reason: str = ""
    effective_at: datetime | None = None
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
    # False: the events come back in the result, for the caller to write together with the
    # step's new status (one transaction instead of two).
    write_audit: bool = True


class ScimStepResult(BaseModel):
    outcome: Literal["deactivated", "deleted", "gone"]
    groups_removed: list[str] = Field(default_factory=list)
    state: Literal["inactive", "gone"]
    events: list[AuditEventIn] = Field(default_factory=list)


class IdpStepInput(BaseModel):
    """Disable one IdP account and revoke its sessions (the activity ``deprovision_idp``)."""

    app: str
    account_id: str
    account: str | None
    person_id: str
    workflow_id: str
    step_id: str


class IdpStepResult(BaseModel):
    outcome: Literal["disabled", "already_disabled", "gone"]
    sessions: Literal["revoked", "gone"]
    read_back: str  # the IdP's own word: SUSPENDED, accountEnabled=false, ...
    # Written by the workflow together with the step's new status.
    events: list[AuditEventIn] = Field(default_factory=list)


class SignalInput(BaseModel):
    """A CAEP session-revoked SET for ``email`` to every Shared Signals receiver."""

    person_id: str
    email: str
    workflow_id: str
    run_id: str
    at: datetime  # when the sessions were revoked (the IdP steps settled)


class SignalResult(BaseModel):
    delivered: int
    failed: int


class HumanTaskInput(BaseModel):
    task_id: str
    kind: TaskKind
    app: str
    run_id: str
    parent_workflow_id: str
    # Whose trail the task's events land on: person_id names a person, or a campaign.
    person_id: str
    person_email: str
    subject_kind: SubjectKind = "person"
    assignees: list[str]
    escalate_to: list[str] = Field(default_factory=list)
    sla_hours: float = 24
    instructions: str = ""
    reminder_fractions: list[float] = Field(default_factory=lambda: [0.5])
    repeat_every_hours: float = 24
    # Signal the parent (task_opened) once the task row exists.
    notify_parent: bool = False


class TaskOpened(BaseModel):
    task_id: str
    app: str
    kind: TaskKind


class TaskCompletion(BaseModel):
    outcome: Outcome
    note: str
    actor: str
    evidence_sha256: str | None = None


class TaskRecord(BaseModel):
    """Task row writes from the HumanTaskWorkflow."""

    task: HumanTaskInput
    status: TaskStatus
    due_at: datetime | None = None
    completion: TaskCompletion | None = None
    event: AuditEventIn


class NotifyInput(BaseModel):
    task_id: str
    kind: Literal["assigned", "reminder", "escalation", "cancelled"]
    # What the task asks: a restore reads "restore ... access", every other kind "remove".
    task_kind: TaskKind = "manual_step"
    recipients: list[str]
    app: str
    person_email: str
    instructions: str
    due_at: datetime | None = None


class ApprovalRequest(BaseModel):
    """An admin lets a run held by the burst guard go ahead."""

    actor: str


class RetryRequest(BaseModel):
    app: str
    actor: str


# -- restores (RestoreWorkflow) -------------------------------------------------------------

RestoreAction = Literal["reactivate", "cannot_restore", "human_task"]
RestoreStatus = Literal["planning", "offered", "restoring", "completed", "expired"]


class RestoreGroup(BaseModel):
    """A group the run took the account out of (``scim.groups_removed``), to put it back."""

    id: str
    name: str


class RestoreApp(BaseModel):
    """One app of a restore plan: what the run changed there and how it is undone."""

    app: str
    name: str
    connector: str
    action: RestoreAction
    account: str | None = None
    account_id: str | None = None
    groups: list[RestoreGroup] = Field(default_factory=list)
    reason: str = ""
    # human_task: who restores it by hand (the manual app's assignees, else its owners).
    task: ManualPlan | None = None


class RestorePlan(BaseModel):
    apps: list[RestoreApp]


class RestoreInput(BaseModel):
    """Offer to undo what an offboarding run did (``restore-<run id>``)."""

    run_id: str
    run_workflow_id: str
    person_id: str
    email: str
    reason: str
    actor: str
    # How long the offer waits for an admin (OFFBOARD_RESTORE_OFFER_DAYS).
    offer_days: float = 30


class RestoreAppInput(BaseModel):
    """Restore one SCIM account (the activity ``restore_scim``); events keyed by step_id."""

    person_id: str
    workflow_id: str
    step_id: str
    app: str
    account: str | None
    account_id: str
    groups: list[RestoreGroup] = Field(default_factory=list)


class RestoreAppResult(BaseModel):
    restored: bool
    detail: str


class RestoreState(BaseModel):
    run_id: str
    status: RestoreStatus
    approved_by: str | None = None
    apps: dict[str, str] = Field(default_factory=dict)  # app -> restored | failed | ...
