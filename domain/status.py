"""Every status the product speaks, as Literals, and the sets derived from them.

The Literals are the source of truth: the DB columns, the API schemas and the workflows all
use them, so a status is spelled in one place.
"""

from __future__ import annotations

from typing import Literal, get_args

StepStatus = Literal[
    "pending", "running", "verified", "waiting_human", "done", "skipped", "failed", "cancelled"
]
RunStatus = Literal["scheduled", "running", "waiting_human", "completed", "failed", "cancelled"]
TaskStatus = Literal["open", "done", "cancelled"]
TaskKind = Literal["manual_step", "exception", "csv_upload", "handover", "restore"]
Outcome = Literal["done", "not_applicable", "could_not_complete"]
PersonStatus = Literal["active", "terminated"]
Role = Literal["admin", "app-admin", "reviewer"]

CampaignStatus = Literal["collecting", "reviewing", "revoking", "completed", "failed"]
Classification = Literal["active_employee", "terminated_but_active", "orphan", "service_account"]
Decision = Literal["pending", "keep", "revoke"]
Verdict = Literal["keep", "revoke"]
RevocationStatus = Literal["pending", "verified", "done", "failed"]
AppCollection = Literal["collecting", "waiting_upload", "classifying", "collected", "failed"]
ReviewerMode = Literal["manager", "app_owner"]

STEP_STATUSES: tuple[StepStatus, ...] = get_args(StepStatus)
RUN_STATUSES: tuple[RunStatus, ...] = get_args(RunStatus)
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)
PERSON_STATUSES: tuple[PersonStatus, ...] = get_args(PersonStatus)
ROLES: tuple[Role, ...] = get_args(Role)
DECISIONS: tuple[Decision, ...] = get_args(Decision)
REVOCATION_STATUSES: tuple[RevocationStatus, ...] = get_args(RevocationStatus)

# A step that ended well (or was ended): the run no longer waits for it.
TERMINAL_STEPS: frozenset[StepStatus] = frozenset({"verified", "done", "skipped", "cancelled"})
# A step someone or something is working on (its duration is measured when it leaves).
ACTIVE_STEPS: frozenset[StepStatus] = frozenset({"running", "waiting_human"})
# A run that can still be cancelled, joined, approved or retried.
LIVE_RUNS: tuple[RunStatus, ...] = ("scheduled", "running", "waiting_human")
# Who may see runs at all (app admins only those of the apps they own).
STAFF_ROLES: tuple[Role, ...] = ("admin", "app-admin")
# A campaign whose review still takes decisions.
OPEN_CAMPAIGNS: tuple[CampaignStatus, ...] = ("collecting", "reviewing")

# The kinds of system an app is reached through; identity providers' steps run first.
Connector = Literal["scim", "manual", "okta", "entra", "google"]
IDP_CONNECTORS: frozenset[str] = frozenset({"okta", "entra", "google"})
