"""Which groups list an account, answered member / not a member / unknown per group.

``User.groups`` is often missing or stale, listings often leave out ``members``, and some apps
accept ``members.value eq`` only next to an ``id`` filter. So membership is found by routes,
each used only where it gives evidence (``group_membership`` in the catalog; ``auto`` tries
them in this order and learns what the app rejects):

1. ``member_filter``: ``GET /Groups?filter=members.value eq "<id>"`` (one request);
2. ``group_filter``: per group, ``filter=id eq "<g>" and members.value eq "<id>"``;
3. ``group_reads``: per group, ``GET /Groups/<g>`` and its member list.

A filter's answer is the app's word (a group it returns holds the account, whatever member
list it shows: apps cap those). A group whose membership no route shows stays ``unknown``: it
is reported, never read as "not a member", because "verified" must not rest on missing data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import structlog

from connectors.base import GroupRef, Memberships, RejectedError
from connectors.scim.pager import Pager
from connectors.scim.payloads import Membership, escape_filter_value, group_name, membership
from connectors.scim.transport import ScimTransport

log = structlog.get_logger("offboard.scim")

# Group ids per re-read query: keeps the filter (and the URL) short for people in many groups.
STILL_IN_BATCH = 10


def group_path(group_id: str) -> str:
    return f"/Groups/{quote(group_id, safe='')}"


def _ref(group: dict[str, Any]) -> GroupRef:
    return GroupRef(id=str(group["id"]), name=group_name(group))


class MembershipReader:
    """Membership questions for one app; learns once what the app rejects (shared by runs)."""

    def __init__(self, transport: ScimTransport) -> None:
        self._transport = transport
        strategy = transport.settings.group_membership
        self.member_filter_ok = strategy in ("auto", "member_filter")
        self.group_filter_ok = strategy in ("auto", "member_filter", "group_filter")
        self.group_reads_ok = strategy in ("auto", "group_reads")
        # Set once a GET /Groups/<id> shows a member list: from then on, a read without one
        # is an empty group (scim2-server drops the key with the last member).
        self._reads_show_members = False

    @property
    def route(self) -> str:
        """The route this app's memberships are found by now, for messages and `apps check`."""
        if self.member_filter_ok:
            return "member_filter"
        if self.group_filter_ok:
            return "group_filter"
        return "group_reads" if self.group_reads_ok else "none"

    async def groups_of(self, account_id: str) -> Memberships:
        """The account's groups. Raises ConnectorError when the app cannot be read at all.

        A member filter's answer is taken as the app's word: a group it returns holds the
        account even when the member list it shows does not (apps cap member lists).
        """
        member = f"members.value eq {escape_filter_value(account_id)}"
        if self.member_filter_ok:
            try:
                found = await self._where(member)
            except RejectedError as exc:
                self.member_filter_ok = False
                log.warning(
                    "scim.member_filter_rejected", app=self._transport.app_id, error=exc.message
                )
            else:
                return Memberships(
                    member=[_ref(g) for g in found if "id" in g], route="member_filter"
                )
        groups = [g async for g in Pager(self._transport, "/Groups", {})]
        return await self._settle(groups, account_id)

    async def _where(self, scim_filter: str) -> list[dict[str, Any]]:
        # Only names: big groups' member lists are most of the bytes (and server time).
        query = {"filter": scim_filter, "attributes": "displayName"}
        return [g async for g in Pager(self._transport, "/Groups", query)]

    async def _settle(self, groups: list[dict[str, Any]], account_id: str) -> Memberships:
        """Memberships from a listing of every group, checking each group whose list is
        missing: when some groups in the listing carry members, one without is empty."""
        shows_members = any("members" in g for g in groups)
        result = Memberships(route=self.route)
        for group in groups:
            if "id" not in group:
                continue
            state = membership(group, account_id)
            if state == "unknown" and shows_members:
                state = "not_member"
            if state == "unknown":
                state = await self.check(str(group["id"]), account_id)
            if state == "member":
                result.member.append(_ref(group))
            elif state == "unknown":
                result.unknown.append(_ref(group))
        return result

    async def check(self, group_id: str, account_id: str) -> Membership:
        """One group: is the account in it? By an id+member filter, else by reading it."""
        if self.group_filter_ok:
            query = (
                f"id eq {escape_filter_value(group_id)} and "
                f"members.value eq {escape_filter_value(account_id)}"
            )
            try:
                found = [
                    g
                    async for g in Pager(self._transport, "/Groups", {"filter": query})
                    if str(g.get("id")) == group_id
                ]
            except RejectedError:
                self.group_filter_ok = False
            else:
                return "member" if found else "not_member"
        if not self.group_reads_ok:
            return "unknown"
        _, group = await self._transport.read(group_path(group_id), missing_ok=True)
        if group is None:
            return "not_member"  # the group is gone, and its memberships with it
        state = membership(group, account_id)
        if state != "unknown":
            self._reads_show_members = True
            return state
        return "not_member" if self._reads_show_members else "unknown"

    async def still_in(
        self, groups: Sequence[GroupRef], account_id: str
    ) -> tuple[list[str], list[str]]:
        """Of ``groups``, the names of those still listing the account, and of those unknown.

        Re-reads just those groups (``(id eq .. or ..) and members.value eq ..``): a member
        query over every group costs a big app far more. An app that rejects it is asked
        the plain member query, then group by group.
        """
        wanted = {g.id: g for g in groups}
        if not wanted:
            return [], []
        member = f"members.value eq {escape_filter_value(account_id)}"
        if self.member_filter_ok and self.group_filter_ok:
            ids = sorted(wanted)
            try:
                found: list[dict[str, Any]] = []
                for i in range(0, len(ids), STILL_IN_BATCH):
                    any_id = " or ".join(
                        f"id eq {escape_filter_value(g)}" for g in ids[i : i + STILL_IN_BATCH]
                    )
                    found += await self._where(f"({any_id}) and {member}")
            except RejectedError:
                self.group_filter_ok = False
            else:
                listed = {str(g.get("id")) for g in found}
                return [wanted[i].name for i in ids if i in listed], []
        if self.member_filter_ok:
            now = await self.groups_of(account_id)
            still = {g.id for g in now.member}
            unknown = {g.id for g in now.unknown}
            return (
                [g.name for g in groups if g.id in still],
                [g.name for g in groups if g.id in unknown],
            )
        present: list[str] = []
        unknown_names: list[str] = []
        for group in groups:
            state = await self.check(group.id, account_id)
            if state == "member":
                present.append(group.name)
            elif state == "unknown":
                unknown_names.append(group.name)
        return present, unknown_names
