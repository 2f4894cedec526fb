"""What a SCIM step has done so far, recorded in the trail as it happens and read back from it.

Each side effect (deactivated, deleted, groups removed) is recorded the moment the app confirms
it, and is on the person's audit chain before the step sends anything a crash could hide (the
intent to remove groups goes out with what is already done, in one transaction) and before the
step ends, whether it fails or verifies (then it rides with the verification). So a later
failure or a worker crash cannot erase it, and a retried step resumes from the trail instead of
starting over. What a crash can lose is only the last write the app confirmed, which every
retry repeats anyway (a deactivation, a delete: both idempotent). The trail is the durable
state here: it survives what heartbeat details may not (a crash before they were sent).
Under a burst this is one trail transaction per step instead of one per side effect: SQLite
has a single writer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import or_
from sqlmodel import Session, col, select

from connectors.base import GroupRef
from db import audit
from db.models import AuditEvent
from workflows.types import AuditEventIn, ScimStepInput

DEACTIVATED = "scim.deactivated"
GROUPS_REMOVED = "scim.groups_removed"
# Written before the removals are sent: a retry after a crash confirms what they did.
GROUPS_REMOVING = "scim.groups_removing"


@dataclass
class StepProgress:
    """Side effects a step already caused (this attempt or an earlier one)."""

    cut_at: str | None = None  # when the account was deactivated (ISO-8601, UTC)
    outcome: str | None = None  # deactivated | deleted | gone
    removed: list[GroupRef] = field(default_factory=list)
    intended: list[GroupRef] = field(default_factory=list)  # removals sent, maybe unrecorded

    def unconfirmed(self) -> list[GroupRef]:
        """Groups an earlier attempt was taking the account out of, with no record since."""
        done = {g.id for g in self.removed}
        return [g for g in self.intended if g.id not in done]

    def summary(self, still_active: bool = False) -> str:
        """What is already done, in words for a person ("access cut at 10:02 UTC ...").

        ``still_active``: the read-back shows the account active, so the app accepted the
        deactivation without applying it; it is not called a cut then.
        """
        parts = []
        if self.outcome in ("deleted", "gone"):
            parts.append(f"account {self.outcome}")
        elif self.cut_at and still_active:
            parts.append(f"the app accepted the deactivation at {self.cut_at[11:19]} UTC")
        elif self.cut_at:
            parts.append(f"access cut at {self.cut_at[11:19]} UTC (account deactivated)")
        if self.removed:
            parts.append(f"removed from {', '.join(g.name for g in self.removed)}")
        return "; ".join(parts) if parts else "nothing changed in the app yet"


class StepRef(Protocol):
    """What identifies a step's events: whose, which run and step, which app and account."""

    @property
    def person_id(self) -> str: ...
    @property
    def workflow_id(self) -> str: ...
    @property
    def step_id(self) -> str: ...
    @property
    def app(self) -> str: ...
    @property
    def account(self) -> str | None: ...
    @property
    def account_id(self) -> str: ...


class StepTrail:
    """Appends one step's events to the trail, keyed so a retry never duplicates them."""

    def __init__(self, sessions: Callable[[], Session], inp: StepRef) -> None:
        self._sessions = sessions
        self._ref = inp

    def event(self, kind: str, detail: dict[str, Any], step_id: str | None = None) -> AuditEventIn:
        inp = self._ref
        return AuditEventIn(
            person_id=inp.person_id,
            workflow_id=inp.workflow_id,
            step_id=step_id or inp.step_id,
            kind=kind,
            at=datetime.now(UTC).isoformat(),
            app=inp.app,
            detail={"account": inp.account, "account_id": inp.account_id, **detail},
        )

    async def write(self, *events: AuditEventIn) -> None:
        await asyncio.to_thread(audit.append, self._sessions, events)


class StepRecorder(StepTrail):
    """A SCIM step's side effects: deactivated/deleted/gone, groups removed."""

    def __init__(self, sessions: Callable[[], Session], inp: ScimStepInput, attempt: int) -> None:
        super().__init__(sessions, inp)
        self._inp = inp
        self._attempt = attempt
        self.progress = StepProgress()
        # Recorded side effects not on the trail yet, in the order they happened.
        self._pending: list[AuditEventIn] = []

    def account_changed(self, outcome: str) -> None:
        """The account was deactivated, deleted, or found gone (on the trail with the next
        intent, or when the step ends)."""
        event = self.event(f"scim.{outcome}", {"mode": self._inp.mode})
        if outcome == "deactivated":
            self.progress.cut_at = event.at
        self.progress.outcome = outcome
        # One deactivation per step, whatever the attempt; removals are per attempt, since a
        # retry may take the account out of groups an earlier attempt could not reach.
        self._pending.append(event)

    async def groups_removing(self, groups: list[GroupRef]) -> None:
        """On the trail (with what is done so far) before the removals go out, so a crash
        cannot hide them."""
        self._groups_event(GROUPS_REMOVING, groups)
        if groups:
            await self.flush()

    def groups_removed(self, groups: list[GroupRef]) -> None:
        self.progress.removed += [g for g in groups if g not in self.progress.removed]
        self._groups_event(GROUPS_REMOVED, groups)

    def groups_confirmed(self, groups: list[GroupRef]) -> None:
        """Removals an earlier attempt sent but could not record, now seen done in the app."""
        self.progress.removed += groups
        self._groups_event(GROUPS_REMOVED, groups, ":confirmed", confirmed_after_retry=True)

    def _groups_event(
        self, kind: str, groups: list[GroupRef], suffix: str = "", **detail: object
    ) -> None:
        if not groups:
            return
        step_id = f"{self._inp.step_id}:groups@{self._attempt}{suffix}"
        names, ids = [g.name for g in groups], [g.id for g in groups]
        self._pending.append(
            self.event(kind, {"groups": names, "group_ids": ids, **detail}, step_id=step_id)
        )

    async def flush(self) -> None:
        """Put every recorded side effect on the trail (one transaction); a failing step
        calls this before it raises, so a retry or a person sees what is already done."""
        if self._pending:
            events, self._pending = self._pending, []
            await self.write(*events)

    def take(self, last: AuditEventIn) -> list[AuditEventIn]:
        """The events still to write, ``last`` after them, for one write with the step's
        outcome (the caller's, or the run's state write)."""
        events, self._pending = [*self._pending, last], []
        return events

    async def resume(self) -> None:
        """Load what earlier attempts of this step recorded (a retry, maybe after a crash)."""
        self.progress = await asyncio.to_thread(self._earlier)

    def _earlier(self) -> StepProgress:
        inp = self._inp
        progress = StepProgress()
        with self._sessions() as session:
            rows = session.exec(
                select(AuditEvent).where(
                    AuditEvent.workflow_id == inp.workflow_id,
                    or_(
                        col(AuditEvent.step_id) == inp.step_id,
                        col(AuditEvent.step_id).startswith(f"{inp.step_id}:groups@"),
                    ),
                )
            ).all()
        for row in sorted(rows, key=lambda r: r.seq):
            if row.kind == DEACTIVATED:
                progress.cut_at, progress.outcome = row.at, "deactivated"
            elif row.kind in ("scim.deleted", "scim.gone"):
                progress.outcome = row.kind.removeprefix("scim.")
            elif row.kind in (GROUPS_REMOVED, GROUPS_REMOVING):
                names = row.detail.get("groups") or []
                into = progress.removed if row.kind == GROUPS_REMOVED else progress.intended
                for gid, name in zip(row.detail.get("group_ids") or [], names, strict=False):
                    into.append(GroupRef(id=str(gid), name=str(name)))
        return progress
