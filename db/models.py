"""The tables. Alembic migrations in db/migrations must match these (a test checks)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import AutoString, Field, SQLModel

from domain.audit import SubjectKind
from domain.status import (
    CampaignStatus,
    Classification,
    Decision,
    Outcome,
    PersonStatus,
    ReviewerMode,
    RevocationStatus,
    Role,
    RunStatus,
    StepStatus,
    TaskKind,
    TaskStatus,
    Verdict,
)


def utcnow() -> datetime:
    """Now, timezone-aware (UTC): the one clock of the code outside workflows."""
    return datetime.now(UTC)


def aware(value: datetime) -> datetime:
    """A stored time as UTC (SQLite hands back naive datetimes)."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class Person(SQLModel, table=True):
    __tablename__ = "people"
    id: str = Field(primary_key=True)
    email: str = Field(index=True)
    name: str = ""
    manager_email: str | None = None
    department: str | None = None
    status: PersonStatus = Field(default="active", sa_type=AutoString)
    terminated_at: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)
    # The latest HR event applied to this person (its details), and the latest that set the
    # status: an older event arriving late is ignored (``domain.hr_order``).
    hr_event_id: str | None = None
    hr_event_type: str | None = None
    hr_event_at: datetime | None = None
    hr_status_event_id: str | None = None
    hr_status_at: datetime | None = None
    # The termination date the latest rescind cancelled (and that rescind's event id): a
    # termination for that date with no ``occurred_at`` of its own, arriving after it, is the
    # one it cancelled.
    rescinded_effective_at: datetime | None = None
    rescinded_by: str | None = None


class OffboardingRun(SQLModel, table=True):
    __tablename__ = "offboarding_runs"
    run_id: str = Field(primary_key=True)
    workflow_id: str = Field(index=True)
    person_id: str = Field(index=True)
    email: str
    status: RunStatus = Field(default="scheduled", index=True, sa_type=AutoString)
    reason: str = ""
    trigger: str = "api"
    effective_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    completed_at: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)
    state_version: int = 0


class Step(SQLModel, table=True):
    __tablename__ = "steps"
    __table_args__ = (UniqueConstraint("run_id", "app"),)
    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(index=True)
    app: str
    connector: str
    status: StepStatus = Field(default="pending", sa_type=AutoString)
    account: str | None = None
    detail: str = ""
    updated_at: datetime = Field(default_factory=utcnow)


class HumanTask(SQLModel, table=True):
    __tablename__ = "human_tasks"
    id: str = Field(primary_key=True)
    workflow_id: str
    kind: TaskKind = Field(sa_type=AutoString)
    app: str
    run_id: str = Field(index=True)
    person_id: str
    person_email: str
    assignees: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    status: TaskStatus = Field(default="open", index=True, sa_type=AutoString)
    due_at: datetime | None = None
    instructions: str = ""
    outcome: Outcome | None = Field(default=None, sa_type=AutoString)
    note: str | None = None
    completed_by: str | None = None
    completed_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_tokens"
    id: int | None = Field(default=None, primary_key=True)
    name: str
    role: Role = Field(sa_type=AutoString)
    email: str | None = None
    token_hash: str = Field(unique=True, index=True)
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None


class WebhookEvent(SQLModel, table=True):
    """An HR event's claim, written before anything else happens (the dedupe record).

    ``claimed`` while its handler works, ``done`` once the run it started, joined or cancelled
    is known, ``stale`` when it arrived after a newer event for the person and was ignored
    (``detail`` says which). A claim left ``claimed`` past its lease belongs to a handler that
    died; the next delivery takes it over and finds the run its ``start_token`` started, if any.
    """

    __tablename__ = "webhook_events"
    event_id: str = Field(primary_key=True)
    type: str
    person_id: str
    run_id: str | None = None
    received_at: datetime = Field(default_factory=utcnow)
    status: str = Field(default="done", sa_type=AutoString)
    start_token: str | None = None
    claimed_at: datetime | None = None
    # When it happened, as HR says (``occurred_at``), else when it was received.
    occurred_at: datetime | None = None
    detail: str = ""


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_events"
    __table_args__ = (
        # One hash chain per subject (a person or a campaign).
        UniqueConstraint("subject_kind", "subject_id", "seq", name="uq_audit_chain"),
        UniqueConstraint("workflow_id", "step_id", "kind", name="uq_audit_idempotency"),
    )
    id: int | None = Field(default=None, primary_key=True)
    subject_kind: SubjectKind = Field(default="person", sa_type=AutoString)
    subject_id: str = Field(index=True)
    seq: int
    # ISO-8601 text, not a datetime column: the hash covers it, so it must round-trip exactly.
    at: str
    kind: str
    app: str | None = None
    actor: str
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    workflow_id: str
    step_id: str
    hash: str
    prev_hash: str


class Campaign(SQLModel, table=True):
    """An access-review campaign; its id is also its workflow id."""

    __tablename__ = "campaigns"
    id: str = Field(primary_key=True)
    workflow_id: str
    name: str
    apps: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    reviewer_mode: ReviewerMode = Field(default="manager", sa_type=AutoString)
    on_no_decision: Verdict = Field(default="keep", sa_type=AutoString)
    due_in_days: float = 14
    status: CampaignStatus = Field(default="collecting", index=True, sa_type=AutoString)
    trigger: str = "api"
    created_by: str = "offboard"
    created_at: datetime = Field(default_factory=utcnow)
    due_at: datetime
    closed_at: datetime | None = None
    closed_by: str | None = None
    completed_at: datetime | None = None
    # Per app: {status, accounts, detail} (collection progress, mirrored by the workflow).
    app_state: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    state_version: int = 0


class CampaignItem(SQLModel, table=True):
    """One account in one app under review, with its decision and the revocation's outcome."""

    __tablename__ = "campaign_items"
    __table_args__ = (
        UniqueConstraint("campaign_id", "app", "account_id", name="uq_campaign_item_account"),
        Index("ix_campaign_items_reviewer", "campaign_id", "reviewer"),
        Index("ix_campaign_items_order", "campaign_id", "risk", "app", "account"),
        Index("ix_campaign_items_revocation", "campaign_id", "revocation"),
    )
    id: int | None = Field(default=None, primary_key=True)
    campaign_id: str
    app: str
    account: str
    account_id: str
    account_email: str | None = None
    display_name: str | None = None
    last_sign_in: str | None = None
    groups: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # Set when classified (SCIM items at once, uploaded CSV rows right after the upload).
    classification: Classification | None = Field(default=None, sa_type=AutoString)
    risk: int = 9
    person_id: str | None = None
    person_email: str | None = None
    person_name: str | None = None
    # Whose audit trail the item's revocation lands on: HR id, else the lower-cased email.
    trail_id: str = ""
    reviewer: str | None = None
    # Why this reviewer: "manager", "app owner: <why the manager is not>", a move or reassignment.
    reviewer_reason: str = ""
    decision: Decision = Field(default="pending", sa_type=AutoString)
    justification: str = ""
    decided_by: str | None = None
    decided_at: datetime | None = None
    auto_decided: bool = False
    revocation: RevocationStatus | None = Field(default=None, sa_type=AutoString)
    revocation_detail: str = ""
    verified_at: datetime | None = None
