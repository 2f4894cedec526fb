"""Restore one SCIM account an offboarding took away: reactivate, add back to its groups, and
read back. Restored only when the app itself shows the account active and in every group.

Every side effect goes on the person's trail as it happens (``scim.reactivated``,
``scim.groups_added``), then the outcome: ``restore.app_restored`` or ``restore.app_failed``
with what the app shows. Transient app failures are raised for Temporal to retry.
"""

from __future__ import annotations

import asyncio

from temporalio import activity

from activities.base import AppActivities
from activities.errors import to_application_error
from activities.step_evidence import StepTrail
from connectors.base import Connector, ConnectorError, GroupRef, ReadBack
from workflows.types import RestoreAppInput, RestoreAppResult

READ_BACK_TRIES = 5


def read_back_problems(read: ReadBack, expected: list[GroupRef]) -> list[str]:
    """Why a read-back does not show the account restored (empty: restored).

    Anything the app does not say plainly (an unreadable ``active``, a membership it cannot
    show) is a problem, never taken as restored.
    """
    problems = []
    if read.state == "gone":
        problems.append("the account is gone")
    elif read.state == "unknown":
        problems.append(f"the app shows active = {read.active_value}, which is not a boolean")
    elif read.state == "inactive":
        problems.append("the account is still inactive")
    missing = [g.name for g in expected if g.name not in read.groups]
    unknown = [n for n in missing if n in read.unknown_groups]
    absent = [n for n in missing if n not in read.unknown_groups]
    if absent:
        problems.append(f"not in {', '.join(absent)}")
    if unknown:
        problems.append(f"membership in {', '.join(unknown)} could not be checked")
    return problems


class RestoreActivities(AppActivities):
    @activity.defn(name="restore_scim")
    async def restore_scim(self, inp: RestoreAppInput) -> RestoreAppResult:
        """Reactivate ``inp.account_id`` (PATCH active=true, RFC 7644 3.5.2), add it back to
        ``inp.groups`` (PATCH add members, 3.5.2.1), read back.

        Returns restored=False with the reason for what cannot heal (the account is gone, the
        app refuses, the read-back does not show it restored); raises ApplicationError for
        transient failures (the workflow retries).
        """
        trail = StepTrail(self._sessions, inp)
        try:
            result = await self._restore(inp, trail)
        except ConnectorError as exc:
            if exc.retryable:
                raise to_application_error(inp.app, exc) from exc
            result = RestoreAppResult(restored=False, detail=exc.message)
        kind = "restore.app_restored" if result.restored else "restore.app_failed"
        key = {"read_back": result.detail} if result.restored else {"error": result.detail}
        await trail.write(trail.event(kind, key))
        return result

    async def _restore(self, inp: RestoreAppInput, trail: StepTrail) -> RestoreAppResult:
        connector: Connector = self._registry.scim(inp.app)
        if await connector.reactivate(inp.account_id) == "gone":
            return RestoreAppResult(
                restored=False,
                detail="the account is gone (deleted); it cannot be restored: recreate it by hand",
            )
        await trail.write(trail.event("scim.reactivated", {}))
        groups = [GroupRef(id=g.id, name=g.name) for g in inp.groups]
        outcomes = await asyncio.gather(
            *(connector.add_member(g, inp.account_id) for g in groups), return_exceptions=True
        )
        added = [g for g, o in zip(groups, outcomes, strict=True) if o == "added"]
        vanished = [g.name for g, o in zip(groups, outcomes, strict=True) if o == "gone"]
        if added:  # on the trail even when another group failed: it happened
            detail = {"groups": [g.name for g in added], "group_ids": [g.id for g in added]}
            await trail.write(trail.event("scim.groups_added", detail))
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        problems: list[str] = []
        for attempt in range(READ_BACK_TRIES):
            read = await connector.read_back(inp.account_id, added)
            problems = read_back_problems(read, added)
            if not problems or read.state in ("gone", "unknown") or read.unknown_groups:
                break  # restored, or re-reading cannot produce what the app does not show
            await asyncio.sleep(0.1 * (attempt + 1))
        gone = f"; groups that no longer exist: {', '.join(vanished)}" if vanished else ""
        if problems:
            return RestoreAppResult(
                restored=False, detail="read back: " + "; ".join(problems) + gone
            )
        groups_text = f", in {', '.join(g.name for g in added)}" if added else ""
        return RestoreAppResult(restored=True, detail=f"active{groups_text}{gone}")
