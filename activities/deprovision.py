"""Deprovision one SCIM account and read it back; the audit events land with the outcome."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Literal

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.base import AppActivities
from activities.errors import to_application_error
from connectors.base import ConnectorError, GroupRef, ReadBack
from connectors.scim import ScimConnector
from db import audit
from workflows.types import AuditEventIn, ScimStepInput, ScimStepResult

READ_BACK_TRIES = 5


class DeprovisionActivities(AppActivities):
    @activity.defn(name="deprovision_scim")
    async def deprovision_scim(self, inp: ScimStepInput) -> ScimStepResult:
        try:
            return await self._deprovision(inp)
        except ConnectorError as exc:
            raise to_application_error(inp.app, exc) from exc

    async def _deprovision(self, inp: ScimStepInput) -> ScimStepResult:
        scim = self._catalog.app(inp.app).scim
        assert scim is not None
        connector = self._registry.scim(inp.app)
        outcome: Literal["deactivated", "deleted", "gone"]
        removed: list[GroupRef] = []
        if inp.mode == "delete":
            # Groups first, while the account still resolves: some apps keep deleted users in
            # their groups' member lists, others refuse member changes for a deleted user.
            if scim.remove_groups:
                removed = await connector.remove_groups(inp.account_id)
            outcome = await connector.delete(inp.account_id)
        else:
            outcome = await connector.deactivate(inp.account_id)
            # Even when the account is already gone: stale memberships still grant access
            # if the account is ever restored, and some apps list deleted users in groups.
            if scim.remove_groups:
                removed = await connector.remove_groups(inp.account_id)
        gone_expected = scim.gone_after_deactivate_ok or inp.mode == "delete" or outcome == "gone"
        state = await self._read_back(connector, inp, removed, gone_expected)
        now = datetime.now(UTC).isoformat()

        def event(kind: str, detail: dict[str, object]) -> AuditEventIn:
            return AuditEventIn(
                person_id=inp.person_id,
                workflow_id=inp.workflow_id,
                step_id=inp.step_id,
                kind=kind,
                at=now,
                app=inp.app,
                detail={"account": inp.account, "account_id": inp.account_id, **detail},
            )

        events = [event(f"scim.{outcome}", {"mode": inp.mode})]
        names = [g.name for g in removed]
        if names:
            events.append(event("scim.groups_removed", {"groups": names}))
        verified: dict[str, object] = {"read_back": state}
        if inp.mode == "delete" and state == "inactive":
            verified["note"] = "the app keeps deleted accounts, deactivated"
        events.append(event("step.verified", verified))
        result = ScimStepResult(outcome=outcome, groups_removed=names, state=state)
        if not inp.write_audit:
            return result.model_copy(update={"events": events})
        await asyncio.to_thread(audit.append, self._sessions, events)
        return result

    async def _read_back(
        self,
        connector: ScimConnector,
        inp: ScimStepInput,
        removed: list[GroupRef],
        gone_expected: bool,
    ) -> Literal["inactive", "gone"]:
        """Read the account until the app confirms it; a server may apply writes lazily.

        Verified means: gone (404; after a deactivation only if the app is known to
        soft-delete), or inactive -- also after a DELETE, for apps whose DELETE only
        deactivates -- and no longer listed by any group we took it out of.
        """
        last = ReadBack(state="active")
        for attempt in range(READ_BACK_TRIES):
            last = await connector.read_back(inp.account_id, removed)
            if last.state == "gone" and not gone_expected:
                raise ApplicationError(
                    f"{inp.app}: account {inp.account_id} vanished after deactivation; "
                    "set gone_after_deactivate_ok: true if the app soft-deletes",
                    type="verify",
                    non_retryable=True,
                )
            if last.state != "active" and not last.groups:
                return last.state
            await asyncio.sleep(0.1 * (attempt + 1))
        if last.state == "active":
            still = "still active"
        else:
            still = f"{last.state} but still in {', '.join(last.groups)}"
        raise ApplicationError(f"{inp.app}: read back: account {still}", type="verify")
