"""Deprovision one SCIM account and prove it: verified only when the app shows access gone.

Order: cut access first (deactivate), then group memberships, then read back. In ``delete``
mode the groups go first and a DELETE the app refuses still leaves access cut (deactivated)
before the step asks a person about the delete. Every side effect is on the trail before the
next write that a crash could hide, and before the step ends (``step_evidence``); a retry
resumes from there.

Failures are raised as ``ApplicationError`` whose message says what is already done and what
is not known. Transient ones are retried by the workflow until the step's retry budget
(``OFFBOARD_STEP_RETRY_BUDGET_SECONDS``, counted from the first attempt) is spent; then they,
like permanent ones, become an exception task.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.base import AppActivities
from activities.errors import step_failure, to_application_error
from activities.step_evidence import StepRecorder
from connectors.base import Connector, ConnectorError, GroupRef, ReadBack
from workflows.types import ScimStepInput, ScimStepResult

READ_BACK_TRIES = 5
# A write the app accepted but does not show: re-read a few times (lazy apps), retry the
# step this many times in all, then ask a person. It is not a fault that time heals.
VERIFY_ATTEMPTS = 3
_OUTCOMES: dict[str, Literal["deactivated", "deleted", "gone"]] = {
    "deleted": "deleted",
    "gone": "gone",
}


class StepFailed(Exception):
    """The step cannot be verified; ``retryable`` when trying again may still help."""

    def __init__(self, message: str, *, retryable: bool, still_active: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.still_active = still_active


class DeprovisionActivities(AppActivities):
    @activity.defn(name="deprovision_scim")
    async def deprovision_scim(self, inp: ScimStepInput) -> ScimStepResult:
        """Deactivate or delete ``inp.account_id`` in ``inp.app``, remove its groups, read back.

        Raises ApplicationError: type ``verify`` (the app does not show access gone, or cannot
        say), or the connector error's kind (``auth``, ``transient``, ``rate_limited``, ...).
        Its message starts with the app and says what was already done.
        """
        info = activity.info()
        recorder = StepRecorder(self._sessions, inp, info.attempt)
        if info.attempt > 1:
            await recorder.resume()
        try:
            return await self._deprovision(inp, recorder)
        except ConnectorError as exc:
            error = to_application_error(inp.app, exc)
            cause, still_active = exc, False
        except StepFailed as exc:
            error = ApplicationError(
                f"{inp.app}: {exc.message}", type="verify", non_retryable=not exc.retryable
            )
            cause, still_active = None, exc.still_active
        except BaseException:
            await recorder.flush()  # cancelled or a bug: what was done is still on the trail
            raise
        await recorder.flush()
        done = recorder.progress.summary(still_active) if recorder.progress.outcome else None
        raise step_failure(inp.app, error, done, info.scheduled_time, self._budget) from cause

    async def _deprovision(self, inp: ScimStepInput, recorder: StepRecorder) -> ScimStepResult:
        scim = self._catalog.app(inp.app).scim
        assert scim is not None
        connector: Connector = self._registry.scim(inp.app)
        progress = recorder.progress
        unknown: list[GroupRef] = []
        refused: dict[str, str] = {}
        if inp.mode == "delete":
            # Groups first, while the account still resolves: some apps keep deleted users in
            # their groups' member lists, others refuse member changes for a deleted user.
            if scim.remove_groups and progress.outcome not in ("deleted", "gone"):
                unknown, refused = await self._remove_groups(connector, inp, recorder)
            if progress.outcome not in ("deleted", "gone"):
                await self._delete_or_cut(connector, inp, recorder)
        else:
            if progress.outcome is None:
                recorder.account_changed(await connector.deactivate(inp.account_id))
            # Even when the account is already gone: stale memberships still grant access
            # if the account is ever restored, and some apps list deleted users in groups.
            if scim.remove_groups:
                unknown, refused = await self._remove_groups(connector, inp, recorder)
        gone_expected = (
            scim.gone_after_deactivate_ok or inp.mode == "delete" or progress.outcome == "gone"
        )
        state = await self._read_back(connector, inp, progress.removed, unknown, gone_expected)
        problems = [f"{name}: {why}" for name, why in refused.items()]
        if problems:
            raise StepFailed("still in " + "; ".join(problems), retryable=False)
        verified: dict[str, object] = {"read_back": state}
        if inp.mode == "delete" and state == "inactive":
            verified["note"] = "the app keeps deleted accounts, deactivated"
        events = recorder.take(recorder.event("step.verified", verified))
        outcome = _OUTCOMES.get(progress.outcome or "", "deactivated")
        result = ScimStepResult(
            outcome=outcome, groups_removed=[g.name for g in progress.removed], state=state
        )
        if not inp.write_audit:
            # Written by the run with the step's new status: durable meanwhile, since the
            # result is in the workflow's history once this returns.
            return result.model_copy(update={"events": events})
        await recorder.write(*events)
        return result

    async def _remove_groups(
        self, connector: Connector, inp: ScimStepInput, recorder: StepRecorder
    ) -> tuple[list[GroupRef], dict[str, str]]:
        """Remove every known membership; each one recorded as it is confirmed.

        Returns the groups whose membership could not be read, and those not written (why).
        """
        found = await connector.groups_of(inp.account_id)
        # An earlier attempt may have taken the account out of groups and died before it could
        # record that: those no longer list the account; the trail gets them now.
        listed = {g.id for g in [*found.member, *found.unknown]}
        confirmed = [g for g in recorder.progress.unconfirmed() if g.id not in listed]
        recorder.groups_confirmed(confirmed)
        await recorder.groups_removing(found.member)
        outcomes = await asyncio.gather(
            *(connector.remove_member(g, inp.account_id) for g in found.member),
            return_exceptions=True,
        )
        removed = [g for g, o in zip(found.member, outcomes, strict=True) if o is None]
        recorder.groups_removed(removed)
        refused = {
            g.name: o for g, o in zip(found.member, outcomes, strict=True) if isinstance(o, str)
        }
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return found.unknown, refused

    async def _delete_or_cut(
        self, connector: Connector, inp: ScimStepInput, recorder: StepRecorder
    ) -> None:
        """DELETE; if the app refuses, deactivate at once so access is cut, then re-raise."""
        try:
            recorder.account_changed(await connector.delete(inp.account_id))
        except ConnectorError as refused:
            if recorder.progress.outcome is None:
                recorder.account_changed(await connector.deactivate(inp.account_id))
            raise refused

    async def _read_back(
        self,
        connector: Connector,
        inp: ScimStepInput,
        removed: list[GroupRef],
        unknown: list[GroupRef],
        gone_expected: bool,
    ) -> Literal["inactive", "gone"]:
        """Read the account until the app confirms access is gone; a server may apply writes
        lazily. Only gone (404; after a deactivation only if the app soft-deletes) or
        inactive, with no group we took it out of still listing it and no group unreadable,
        is verified. Raises StepFailed naming what the app still shows or cannot say.
        """
        last = ReadBack(state="active")
        for attempt in range(READ_BACK_TRIES):
            last = await connector.read_back(inp.account_id, removed, unknown)
            if last.state == "gone" and not gone_expected:
                raise StepFailed(
                    f"account {inp.account_id} vanished after deactivation; set "
                    "gone_after_deactivate_ok: true if the app soft-deletes",
                    retryable=False,
                )
            if last.access_gone:
                assert last.state in ("inactive", "gone")
                return last.state
            if last.state == "unknown" or last.unknown_groups:
                break  # re-reading cannot produce data the app does not give
            await asyncio.sleep(0.1 * (attempt + 1))
        problems = []
        if last.state == "unknown":
            problems.append(f"the app shows active = {last.active_value}, which is not a boolean")
        elif last.state == "active":
            problems.append("account still active")
        if last.groups:
            problems.append(f"still in {', '.join(last.groups)}")
        if last.unknown_groups:
            problems.append(
                f"membership in {', '.join(last.unknown_groups)} could not be checked "
                f"(the app shows no member lists by {connector.membership_route})"
            )
        lazy = last.state == "active" or (last.groups and last.state != "unknown")
        retry = bool(lazy) and not last.unknown_groups and activity.info().attempt < VERIFY_ATTEMPTS
        raise StepFailed(
            "read back: " + "; ".join(problems),
            retryable=retry,
            still_active=last.state == "active",
        )
