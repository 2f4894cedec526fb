"""Disable a leaver at their identity provider and end their sessions; verified by read-back.

Order: disable first (suspend / deactivate / accountEnabled false / suspended), so no new
session can start; then revoke the sessions and refresh tokens already issued; then read the
account back. Verified only when the IdP shows it disabled (or gone). Each side effect lands
in the trail as it happens (``idp.disabled``, ``idp.sessions_revoked``); a retry resumes
from there. Failures say what is already done, like SCIM steps (activities/deprovision.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from sqlmodel import Session, col, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.base import AppActivities
from activities.deprovision import READ_BACK_TRIES, VERIFY_ATTEMPTS
from activities.errors import step_failure, to_application_error
from activities.step_evidence import StepTrail
from connectors.base import ConnectorError
from connectors.idp import Disabled, IdpConnector, IdpReadBack, Revoked
from db.models import AuditEvent
from workflows.types import IdpStepInput, IdpStepResult

DISABLED = "idp.disabled"
SESSIONS_REVOKED = "idp.sessions_revoked"


@dataclass
class IdpProgress:
    disabled: Disabled | None = None
    disabled_at: str | None = None
    sessions: Revoked | None = None

    def summary(self) -> str | None:
        """What is already done, in words; None when nothing is."""
        parts = []
        if self.disabled == "gone":
            parts.append("account gone")
        elif self.disabled and self.disabled_at:
            parts.append(f"sign-in disabled at {self.disabled_at[11:19]} UTC")
        if self.sessions == "revoked":
            parts.append("sessions revoked")
        return "; ".join(parts) or None


class IdpRecorder(StepTrail):
    """An IdP step's side effects, on the trail as they happen; read back on a retry."""

    def __init__(self, sessions: Callable[[], Session], inp: IdpStepInput) -> None:
        super().__init__(sessions, inp)
        self._inp = inp
        self.progress = IdpProgress()

    async def disabled(self, outcome: Disabled, verb: str) -> None:
        event = self.event(DISABLED, {"outcome": outcome, "action": verb})
        self.progress.disabled, self.progress.disabled_at = outcome, event.at
        await self.write(event)

    async def sessions_revoked(self, outcome: Revoked) -> None:
        self.progress.sessions = outcome
        await self.write(self.event(SESSIONS_REVOKED, {"outcome": outcome}))

    async def resume(self) -> None:
        rows = await asyncio.to_thread(self._earlier)
        for row in rows:
            if row.kind == DISABLED:
                self.progress.disabled = cast(Disabled, row.detail.get("outcome"))
                self.progress.disabled_at = row.at
            elif row.kind == SESSIONS_REVOKED:
                self.progress.sessions = cast(Revoked, row.detail.get("outcome"))

    def _earlier(self) -> list[AuditEvent]:
        with self._sessions() as session:
            return list(
                session.exec(
                    select(AuditEvent)
                    .where(
                        AuditEvent.workflow_id == self._inp.workflow_id,
                        AuditEvent.step_id == self._inp.step_id,
                    )
                    .order_by(col(AuditEvent.seq))
                ).all()
            )


class NotVerified(Exception):
    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


class IdpActivities(AppActivities):
    @activity.defn(name="deprovision_idp")
    async def deprovision_idp(self, inp: IdpStepInput) -> IdpStepResult:
        """Disable ``inp.account_id`` at the IdP ``inp.app``, revoke its sessions, read back.

        Returns the outcome with the ``step.verified`` event for the workflow to write with
        the step's status. Raises ApplicationError: type ``verify`` (the IdP does not show
        the account disabled), or the connector error's kind (``auth``, ``transient``,
        ``rate_limited``, ...), its message starting with the app and what is already done.
        """
        info = activity.info()
        recorder = IdpRecorder(self._sessions, inp)
        if info.attempt > 1:
            await recorder.resume()
        try:
            return await self._deprovision(inp, recorder, info.attempt)
        except ConnectorError as exc:
            error = to_application_error(inp.app, exc)
            cause: Exception | None = exc
        except NotVerified as exc:
            error = ApplicationError(
                f"{inp.app}: {exc.message}", type="verify", non_retryable=not exc.retryable
            )
            cause = None
        done = recorder.progress.summary()
        raise step_failure(inp.app, error, done, info.scheduled_time, self._budget) from cause

    async def _deprovision(
        self, inp: IdpStepInput, recorder: IdpRecorder, attempt: int
    ) -> IdpStepResult:
        idp = self._registry.idp(inp.app)
        progress = recorder.progress
        if progress.disabled is None:
            await recorder.disabled(await idp.disable(inp.account_id), idp.verb)
        if progress.sessions is None:
            await recorder.sessions_revoked(await idp.revoke_sessions(inp.account_id))
        back = await _read_back(idp, inp.account_id, attempt)
        assert progress.disabled is not None and progress.sessions is not None
        event = recorder.event("step.verified", {"read_back": back.raw, "state": back.state})
        return IdpStepResult(
            outcome=progress.disabled,
            sessions=progress.sessions,
            read_back=back.raw,
            events=[event],
        )


async def _read_back(idp: IdpConnector, account_id: str, attempt: int) -> IdpReadBack:
    """Read until the IdP shows the account disabled; directories apply writes lazily
    (Graph replicates for seconds). Raises NotVerified naming what the IdP shows."""
    back = IdpReadBack(state="unknown")
    for n in range(READ_BACK_TRIES):
        back = await idp.read_back(account_id)
        if back.verified or back.state == "unknown":
            break
        await asyncio.sleep(0.2 * (n + 1))
    if back.verified:
        return back
    if back.state == "unknown":
        raise NotVerified(
            f"read back: the IdP shows {back.raw}, neither enabled nor disabled", retryable=False
        )
    raise NotVerified(
        f"read back: the account is still enabled ({back.raw})",
        retryable=attempt < VERIFY_ATTEMPTS,
    )
