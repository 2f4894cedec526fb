"""Response models: the shapes the outside relies on (DESIGN.md), shown at /docs.

Every route declares one of these as its ``response_model``; the services hand back plain
views that these validate. Times are ISO-8601 as Python writes them (``+00:00``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, PlainSerializer

from domain.status import (
    AppCollection,
    CampaignStatus,
    Classification,
    Decision,
    Outcome,
    ReviewerMode,
    RevocationStatus,
    RunStatus,
    StepStatus,
    TaskKind,
    TaskStatus,
    Verdict,
)

# The deepest page a list endpoint serves; far beyond any real list, and far below the
# database's integer range (a larger offset is a 422, not an overflow).
MAX_OFFSET = 1_000_000


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorBody(BaseModel):
    """Every error: ``{"error": {"code", "message", "details"}}``."""

    error: ErrorDetail


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


# The error answers every /api/v1 route may give, documented once for all of them.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error("a request that cannot be read"),
    401: _error("no token, or an unknown or revoked one (webhook: a bad signature)"),
    403: _error("the token's role or email may not do this"),
    404: _error("no such object"),
    408: _error("the body stalled longer than OFFBOARD_BODY_READ_TIMEOUT_SECONDS"),
    409: _error("the object's state forbids it (finished run, event being handled, ...)"),
    413: _error("the body is over OFFBOARD_MAX_BODY_BYTES"),
    415: _error("a body that is not application/json (text/csv for CSV uploads)"),
    422: _error("a field failed validation; details name each field"),
    500: _error("an unexpected error; details carry the correlation id, also logged"),
}

Instant = Annotated[datetime, PlainSerializer(lambda v: v.isoformat(), return_type=str)]


class PersonRef(BaseModel):
    id: str
    email: str


# -- offboardings ---------------------------------------------------------------------------


class StepView(BaseModel):
    app: str
    connector: str
    status: StepStatus
    account: str | None
    detail: str
    updated_at: Instant | None


class LicensesReclaimed(BaseModel):
    seats: int
    monthly_cost: dict[str, float]  # currency -> amount per month


class RunView(BaseModel):
    run_id: str
    workflow_id: str
    person: PersonRef
    status: RunStatus
    reason: str
    trigger: str
    effective_at: Instant | None
    apps: list[StepView]
    created_at: Instant
    completed_at: Instant | None
    licenses: LicensesReclaimed | None = None


class CampaignLicenses(LicensesReclaimed):
    """What an access review's revocations reclaimed, in total and per licensed app."""

    by_app: dict[str, LicensesReclaimed]


class RunStarted(BaseModel):
    run_id: str
    joined: bool


class PlannedApp(BaseModel):
    app: str
    action: Literal["deprovision", "manual_task", "skip", "exception"]
    account: str | None
    reason: str


class DryRun(BaseModel):
    dry_run: Literal[True]
    person: PersonRef
    apps: list[PlannedApp]


class RunCancelling(BaseModel):
    run_id: str
    status: Literal["cancelling"]


class RunApproved(BaseModel):
    run_id: str
    approved_by: str
    at: Instant


class RestoreAppView(BaseModel):
    app: str
    action: Literal["reactivate", "cannot_restore", "human_task"]
    account: str | None
    account_id: str | None
    groups: list[str]
    reason: str
    status: Literal["planned", "restored", "failed", "cannot_restore"]
    detail: str


class RestoreView(BaseModel):
    """A run's restore plan (rescind after effect, rehire) and how far it got."""

    run_id: str
    status: Literal["offered", "restoring", "completed", "expired"]
    reason: str
    offered_at: str
    approved_by: str | None
    approved_at: str | None
    apps: list[RestoreAppView]


class RestoreApproved(BaseModel):
    run_id: str
    approved_by: str
    status: Literal["restoring"]


class StepRetrying(BaseModel):
    run_id: str
    app: str
    status: Literal["retrying"]


# -- tasks ----------------------------------------------------------------------------------


class TaskView(BaseModel):
    id: str
    kind: TaskKind
    app: str
    run_id: str
    person: PersonRef
    assignees: list[str]
    status: TaskStatus
    due_at: Instant | None
    instructions: str
    outcome: Outcome | None
    note: str | None
    completed_by: str | None
    completed_at: Instant | None


# -- campaigns ------------------------------------------------------------------------------


class Counts(BaseModel):
    items: int
    decided: int
    keep: int
    revoke: int
    pending: int


class AppCollectionState(BaseModel):
    status: AppCollection
    accounts: int = 0
    detail: str = ""
    # The population evidence of a SCIM listing (None until it completed).
    listed: int | None = None
    reported: int | None = None
    query: str | None = None
    collected_at: str | None = None


class AppPopulation(BaseModel):
    """What an app's review covered: accounts stored, listed, the app's own total, the query."""

    accounts: int | None
    listed: int | None
    reported: int | None
    query: str | None
    skipped_inactive: int | None
    collected_at: str | None
    detail: str


class CampaignView(BaseModel):
    id: str
    name: str
    status: CampaignStatus
    apps: list[str]
    reviewer: ReviewerMode
    on_no_decision: Verdict
    trigger: str
    created_by: str
    created_at: str | None
    due_at: str | None
    closed_at: str | None
    completed_at: str | None
    collection: dict[str, AppCollectionState]
    counts: Counts
    licenses: CampaignLicenses | None = None


class CloseOutcome(BaseModel):
    items: int
    keep: int
    revoke: int
    auto_decided: int
    scim_revocations: int
    manual_apps: list[str]


class CampaignClosed(CampaignView):
    closed: CloseOutcome


class ItemPerson(BaseModel):
    id: str
    email: str | None
    name: str | None


class ReviewFields(BaseModel):
    classification: Classification | None
    last_sign_in: str | None
    groups: list[str]
    reviewer: str | None
    reviewer_reason: str
    decision: Decision
    justification: str
    decided_by: str | None
    decided_at: str | None
    auto_decided: bool
    revocation: RevocationStatus | None
    revocation_detail: str | None
    verified_at: str | None


class ItemView(ReviewFields):
    id: int
    app: str
    account: str
    account_id: str
    person: ItemPerson | None


class BulkDecided(BaseModel):
    decided: int
    items: list[ItemView]


class Reassigned(BaseModel):
    reassigned: int
    items: list[ItemView]


class UploadAccepted(BaseModel):
    campaign: str
    app: str
    accepted: int
    skipped_inactive: int
    sha256: str
    task_id: str


class ReportRow(ReviewFields):
    app: str
    account: str
    account_id: str
    person_id: str | None
    person_email: str | None
    person_name: str | None


class ReportSummary(BaseModel):
    items: int
    by_decision: dict[str, int]
    by_classification: dict[str, int]
    auto_decided: int
    revocations: dict[str, int]
    apps: dict[str, AppCollectionState]
    population: dict[str, AppPopulation]
    created_at: str | None
    closed_at: str | None
    completed_at: str | None
    time_to_close_seconds: float | None
    time_to_complete_seconds: float | None
    licenses: CampaignLicenses


class CampaignReport(BaseModel):
    campaign: CampaignView
    summary: ReportSummary
    rows: list[ReportRow]


# -- audit, people, webhooks, health --------------------------------------------------------


class AuditEventOut(BaseModel):
    seq: int
    at: str
    kind: str
    app: str | None
    actor: str
    detail: dict[str, Any]
    hash: str
    prev_hash: str


class PersonTrail(BaseModel):
    person: str
    events: list[AuditEventOut]
    chain_valid: bool


class CampaignTrail(BaseModel):
    campaign: str
    events: list[AuditEventOut]
    chain_valid: bool


class Imported(BaseModel):
    imported: int


class HrAccepted(BaseModel):
    run_id: str | None
    event_id: str
    # Set when the event was late (older than what the person's record already took): why
    # it changed nothing.
    ignored: str | None = None


class HrDuplicate(BaseModel):
    run_id: str | None
    duplicate: Literal[True]


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, str]
