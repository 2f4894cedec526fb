"""The tables. Alembic migrations in db/migrations must match these (a test checks)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class Person(SQLModel, table=True):
    __tablename__ = "people"
    id: str = Field(primary_key=True)
    email: str = Field(index=True)
    name: str = ""
    manager_email: str | None = None
    department: str | None = None
    status: str = "active"
    terminated_at: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)


class OffboardingRun(SQLModel, table=True):
    __tablename__ = "offboarding_runs"
    run_id: str = Field(primary_key=True)
    workflow_id: str = Field(index=True)
    person_id: str = Field(index=True)
    email: str
    status: str = Field(default="scheduled", index=True)
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
    status: str = "pending"
    account: str | None = None
    detail: str = ""
    updated_at: datetime = Field(default_factory=utcnow)


class HumanTask(SQLModel, table=True):
    __tablename__ = "human_tasks"
    id: str = Field(primary_key=True)
    workflow_id: str
    kind: str
    app: str
    run_id: str = Field(index=True)
    person_id: str
    person_email: str
    assignees: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    status: str = Field(default="open", index=True)
    due_at: datetime | None = None
    instructions: str = ""
    outcome: str | None = None
    note: str | None = None
    completed_by: str | None = None
    completed_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_tokens"
    id: int | None = Field(default=None, primary_key=True)
    name: str
    role: str
    email: str | None = None
    token_hash: str = Field(unique=True, index=True)
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None


class WebhookEvent(SQLModel, table=True):
    __tablename__ = "webhook_events"
    event_id: str = Field(primary_key=True)
    type: str
    person_id: str
    run_id: str | None = None
    received_at: datetime = Field(default_factory=utcnow)


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_events"
    __table_args__ = (
        UniqueConstraint("person_id", "seq"),
        UniqueConstraint("workflow_id", "step_id", "kind", name="uq_audit_idempotency"),
    )
    id: int | None = Field(default=None, primary_key=True)
    person_id: str = Field(index=True)
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
