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
Connector = Literal["scim", "manual", "okta", "entra", "google"]
IDP_CONNECTORS: frozenset[str] = frozenset({"okta", "entra", "google"})

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
    person_id: str
    person_email: str
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


# -- access-review campaigns -----------------------------------------------------------------

ReviewerMode = Literal["manager", "app_owner"]
NoDecision = Literal["keep", "revoke"]
CampaignStatus = Literal["collecting", "reviewing", "revoking", "completed", "failed"]
Classification = Literal["active_employee", "terminated_but_active", "orphan", "service_account"]
Decision = Literal["pending", "keep", "revoke"]
RevocationStatus = Literal["pending", "verified", "done", "failed"]
AppCollection = Literal["collecting", "waiting_upload", "classifying", "collected", "failed"]
CampaignNotifyKind = Literal["review_assigned", "review_reminder", "review_escalation"]


class CampaignTemplate(BaseModel):
    """What a campaign reviews and how; a Schedule starts campaigns from one of these."""

    name: str = Field(min_length=1, max_length=200)
    apps: list[str] | None = None  # None: every app in the catalog
    due_in_days: float = Field(default=14, gt=0, le=365)
    reviewer: ReviewerMode = "manager"
    on_no_decision: NoDecision = "keep"


class CampaignResume(BaseModel):
    """Carried over continue-as-new: the review is closed and SCIM revocations are under way."""

    started_at: datetime
    due_at: datetime
    after_item: int = 0
    failed_apps: list[str] = Field(default_factory=list)
    # The status mirror's version keeps growing across runs, so no write is mistaken for stale.
    version: int = 0


class CampaignInput(BaseModel):
    template: CampaignTemplate
    # The API and the CLI create the row first (read-your-writes) and pass its id and due time;
    # a Schedule passes neither: the workflow id is then the campaign id.
    campaign_id: str | None = None
    due_at: datetime | None = None
    trigger: Literal["api", "cli", "schedule"] = "api"
    actor: str = "offboard"
    resume: CampaignResume | None = None
    # The revocation loop continues as new past this many history events (well under
    # Temporal's 50k); lower only to exercise continue-as-new.
    history_limit: int = Field(default=4000, ge=50)


class CampaignBeginInput(BaseModel):
    campaign_id: str
    workflow_id: str
    template: CampaignTemplate
    started_at: datetime
    due_at: datetime
    trigger: str
    actor: str


class CampaignAppPlan(BaseModel):
    app: str
    name: str
    connector: Literal["scim", "manual"]
    # Who uploads a manual app's CSV export (the app's owners, else its manual assignees).
    uploaders: list[str] = Field(default_factory=list)
    escalate_to: list[str] = Field(default_factory=list)
    sla_hours: float = 24


class CampaignPlan(BaseModel):
    apps: list[CampaignAppPlan]


class CollectInput(BaseModel):
    campaign_id: str
    workflow_id: str
    app: str


class CollectResult(BaseModel):
    """Counts only: the accounts themselves go to the DB in batches, never into history."""

    app: str
    accounts: int
    skipped_inactive: int = 0


class CampaignAppState(BaseModel):
    status: AppCollection = "collecting"
    accounts: int = 0
    detail: str = ""


class CampaignSyncInput(BaseModel):
    """The campaign row's status for the API, plus audit events, in one write."""

    campaign_id: str
    status: CampaignStatus
    apps: dict[str, CampaignAppState] = Field(default_factory=dict)
    completed_at: datetime | None = None
    events: list[AuditEventIn] = Field(default_factory=list)
    version: int = 0


class CampaignNotifyInput(BaseModel):
    campaign_id: str
    workflow_id: str
    kind: CampaignNotifyKind
    # Makes the audit write idempotent per notification moment.
    step_id: str
    at: datetime
    due_at: datetime


class CloseReviewInput(BaseModel):
    campaign_id: str
    workflow_id: str
    on_no_decision: NoDecision
    actor: str
    reason: str
    at: datetime


class CloseReviewResult(BaseModel):
    items: int
    keep: int
    revoke: int
    auto_decided: int
    scim_revocations: int
    manual_apps: list[str] = Field(default_factory=list)


class CloseRequest(BaseModel):
    actor: str
    reason: str = ""


class RevocationBatchInput(BaseModel):
    campaign_id: str
    workflow_id: str
    after_item: int
    limit: int


class RevocationRef(BaseModel):
    item_id: int
    app: str
    account_id: str
    account: str
    person_id: str
    mode: Literal["deactivate", "delete"]


class RevocationBatch(BaseModel):
    items: list[RevocationRef]


class RevocationOutcome(BaseModel):
    item_id: int
    status: Literal["verified", "failed"]
    detail: str


class RevocationOutcomes(BaseModel):
    campaign_id: str
    workflow_id: str
    outcomes: list[RevocationOutcome]


class RevocationTaskPlan(BaseModel):
    """A human task for one app: revoke its manual items, or resolve failed SCIM revocations."""

    app: str
    kind: Literal["manual_step", "exception"]
    count: int
    assignees: list[str]
    escalate_to: list[str] = Field(default_factory=list)
    sla_hours: float = 24
    instructions: str


class RevocationTaskPlans(BaseModel):
    tasks: list[RevocationTaskPlan]


class RevocationTasksInput(BaseModel):
    campaign_id: str
    kind: Literal["manual_step", "exception"]
    app: str | None = None


class ResolveRevocationsInput(BaseModel):
    """A human finished an app's revocation task: its items become done (or stay failed)."""

    campaign_id: str
    workflow_id: str
    app: str
    kind: Literal["manual_step", "exception"]
    task_id: str
    completion: TaskCompletion


class CampaignFinishInput(BaseModel):
    campaign_id: str
    workflow_id: str
    failed_apps: list[str] = Field(default_factory=list)
    at: datetime


class CampaignOutcome(BaseModel):
    campaign_id: str
    status: CampaignStatus
    counts: dict[str, int] = Field(default_factory=dict)
