"""The audit event a workflow or a use case appends, and whose trail it lands on."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SubjectKind = Literal["person", "campaign"]


class Subject(BaseModel):
    """Whose trail: a person (HR id, else the lower-cased email) or a campaign (its id).

    Each subject has its own hash chain.
    """

    model_config = ConfigDict(frozen=True)

    kind: SubjectKind
    id: str

    @classmethod
    def person(cls, person_id: str) -> Subject:
        return cls(kind="person", id=person_id)

    @classmethod
    def campaign(cls, campaign_id: str) -> Subject:
        return cls(kind="campaign", id=campaign_id)

    def __str__(self) -> str:
        return self.id if self.kind == "person" else f"{self.kind}:{self.id}"


class AuditEventIn(BaseModel):
    """An event to append; (workflow_id, step_id, kind) makes a retried write a no-op."""

    # Always set: given, or made from a legacy person_id by the validator below. The default
    # only lets callers that still pass person_id= type-check.
    subject: Subject = Field(default=None, validate_default=False)  # type: ignore[assignment]
    workflow_id: str
    step_id: str
    kind: str
    at: str
    actor: str = "offboard"
    app: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _person_id(cls, data: Any) -> Any:
        # Events recorded before the subject existed (saved histories, activities in flight
        # during a deploy) name a person_id: they belong to that person.
        if isinstance(data, dict) and "subject" not in data and "person_id" in data:
            data = dict(data)
            data["subject"] = {"kind": "person", "id": data.pop("person_id")}
        return data

    @model_validator(mode="after")
    def _has_subject(self) -> AuditEventIn:
        if getattr(self, "subject", None) is None:
            raise ValueError("an audit event needs a subject (or a person_id)")
        return self
