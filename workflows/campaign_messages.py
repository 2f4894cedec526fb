"""Inputs and outputs of AccessReviewCampaignWorkflow and its activities."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from domain.audit import AuditEventIn
from domain.status import AppCollection, CampaignStatus, ReviewerMode, Verdict
from workflows.types import TaskCompletion

CampaignNotifyKind = Literal["review_assigned", "review_reminder", "review_escalation"]


class CampaignTemplate(BaseModel):
    """What a campaign reviews and how; a Schedule starts campaigns from one of these."""

    name: str = Field(min_length=1, max_length=200)
    apps: list[str] | None = None  # None: every app in the catalog
    due_in_days: float = Field(default=14, gt=0, le=365)
    reviewer: ReviewerMode = "manager"
    on_no_decision: Verdict = "keep"


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
    # Evidence of a complete population: what the listing returned, what the app said its
    # size was (totalResults; None when it did not say), and the query that listed it.
    listed: int = 0
    reported: int | None = None
    query: str = ""

    def population(self) -> str:
        """e.g. ``; 250 listed by GET /Users (the app reported 250)``."""
        if not self.query:
            return ""
        reported = (
            "did not report a total" if self.reported is None else f"reported {self.reported}"
        )
        return f"; {self.listed} listed by {self.query} (the app {reported})"


class CampaignAppState(BaseModel):
    status: AppCollection = "collecting"
    accounts: int = 0
    detail: str = ""
    # The population as evidence (SCIM apps, once collected): see CollectResult.
    listed: int | None = None
    reported: int | None = None
    query: str = ""
    skipped_inactive: int = 0
    collected_at: str | None = None


class CampaignSyncInput(BaseModel):
    """The campaign row's status for the API, plus audit events, in one write."""

    campaign_id: str
    status: CampaignStatus
    apps: dict[str, CampaignAppState] = Field(default_factory=dict)
    completed_at: datetime | None = None
    events: list[AuditEventIn] = Field(default_factory=list)
    version: int = 0


class CampaignRef(BaseModel):
    campaign_id: str
    workflow_id: str


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
    on_no_decision: Verdict
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
