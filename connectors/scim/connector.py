"""SCIM 2.0 connector: deprovisioning operations for one app, written for servers in the field.

PATCH in two shapes or PUT, 200-with-body or 204, ``active`` as strings, groups that
``User.groups`` does not list, listings without members, pagination that lies, ETags that are
required, 429 with Retry-After, tokens that expire: see ../shared/context/scim-field-notes.md.
Transport (retries, pacing, errors) is in ``transport.py``, paging in ``pager.py``, group
membership in ``membership.py``.

The one rule every write follows: it changes only the leaver. A group is rewritten (PUT) only
when its member list is proven complete; otherwise it is left for a person.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal
from urllib.parse import quote

import httpx
import structlog
from pydantic import SecretStr
from scim2_models import Group, User

from config import ScimSettings
from connectors.auth import BearerToken, Credentials
from connectors.base import (
    Account,
    GroupRef,
    GroupRemoval,
    Lookup,
    Memberships,
    ProtocolError,
    ReadBack,
    RejectedError,
    TransientError,
)
from connectors.scim.gate import RateGate
from connectors.scim.membership import MembershipReader, group_path
from connectors.scim.pager import Pager
from connectors.scim.payloads import (
    account_from,
    escape_filter_value,
    member_ids,
    parse_active,
    resource_version,
)
from connectors.scim.transport import ScimTransport
from connectors.scim.writes import ScimWrites

log = structlog.get_logger("offboard.scim")

PatchResult = Literal["ok", "gone", "unsupported"]
MatchAttribute = Literal["userName", "email", "externalId"]
_FILTER_ATTRIBUTE = {"userName": "userName", "email": "emails.value", "externalId": "externalId"}
_ALTERNATE: dict[MatchAttribute, MatchAttribute] = {"email": "userName", "userName": "email"}


def _matches(account: Account, attribute: MatchAttribute, value: str) -> bool:
    # userName and emails compare case-insensitively (RFC 7643 caseExact=false);
    # externalId is caseExact.
    if attribute == "externalId":
        return account.external_id == value
    wanted = value.casefold()
    if attribute == "userName":
        return account.user_name.casefold() == wanted
    return any(e.casefold() == wanted for e in account.emails)


class ScimConnector:
    """One app's SCIM operations; shared by every run on the worker."""

    def __init__(
        self,
        app_id: str,
        settings: ScimSettings,
        client: httpx.AsyncClient,
        credentials: Credentials | str,
        gate: RateGate | None = None,
    ) -> None:
        self.app_id = app_id
        self.settings = settings
        self._client = client
        if isinstance(credentials, str):
            credentials = BearerToken(SecretStr(credentials), settings.token_env or "?")
        self.credentials: Credentials = credentials
        self.gate = gate or RateGate(
            settings.rate_limit_per_minute,
            settings.max_concurrent_requests,
            max_wait=settings.max_pause_in_step_seconds,
        )
        self.transport = ScimTransport(app_id, settings, client, credentials, self.gate)
        self.memberships = MembershipReader(self.transport)
        self.writes = ScimWrites(self.transport)

    def variant(self, **settings: Any) -> ScimConnector:
        """The same app with some settings changed, sharing client, credentials and gate."""
        return ScimConnector(
            self.app_id,
            self.settings.model_copy(update=settings),
            self._client,
            self.credentials,
            self.gate,
        )

    async def get_json(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """GET one resource or endpoint (e.g. ``/ServiceProviderConfig``); read only."""
        return await self.transport.get_json(path, params)

    def pager(self, path: str, params: dict[str, Any] | None = None) -> Pager:
        """Every resource of a listing (``.listing`` holds collected vs reported afterwards)."""
        return Pager(self.transport, path, params or {})

    # -- users -----------------------------------------------------------------------------

    @staticmethod
    def _user_path(account_id: str) -> str:
        return f"/Users/{quote(account_id, safe='')}"

    def _lookups(self, value: str) -> list[tuple[MatchAttribute, str]]:
        """The queries to try, in order: the configured attribute with the normalised value,
        then as given, then the alternate attribute (email <-> userName) the same way."""
        match: MatchAttribute = self.settings.match
        if match == "externalId":
            return [("externalId", value)]
        forms = list(dict.fromkeys([value.strip().lower(), value.strip()]))
        return [(attr, form) for attr in (match, _ALTERNATE[match]) for form in forms]

    async def lookup(self, value: str) -> Lookup:
        """Accounts matching ``value``, re-checked here so a lax server cannot widen a match.

        Tries each query of ``_lookups`` until one finds an account; ``tried`` names them all.
        """
        result = Lookup()
        for attribute, form in self._lookups(value):
            scim_filter = f"{_FILTER_ATTRIBUTE[attribute]} eq {escape_filter_value(form)}"
            result.tried.append(scim_filter)
            accounts = [
                account_from(r) async for r in self.pager("/Users", {"filter": scim_filter})
            ]
            result.accounts = [a for a in accounts if _matches(a, attribute, value.strip())]
            if result.accounts:
                break
        return result

    async def find(self, value: str) -> list[Account]:
        """Accounts matching ``value`` (see ``lookup``)."""
        return (await self.lookup(value)).accounts

    async def list_users(self, pager: Pager | None = None) -> AsyncIterator[Account]:
        """Every account in the app (access reviews); pass a ``pager`` to keep its evidence."""
        async for resource in pager or self.pager("/Users"):
            yield account_from(resource)

    async def get(self, account_id: str) -> dict[str, Any] | None:
        _, resource = await self.transport.read(self._user_path(account_id), missing_ok=True)
        return resource

    async def deactivate(self, account_id: str) -> Literal["deactivated", "gone"]:
        """Set ``active`` to false in the configured way; "gone" when the app 404s."""
        return "deactivated" if await self._set_active(account_id, False) else "gone"

    async def reactivate(self, account_id: str) -> Literal["reactivated", "gone"]:
        """Set ``active`` back to true (a restore, RFC 7644 3.5.2.3 replace); "gone" when the
        app 404s: a deleted account cannot be brought back over SCIM."""
        return "reactivated" if await self._set_active(account_id, True) else "gone"

    async def _set_active(self, account_id: str, value: bool) -> bool:
        """PATCH ``active`` (RFC 7644 3.5.2) in the configured form, then the other one, else
        GET + PUT (3.5.1); False when the account is gone."""
        path = self._user_path(account_id)
        style = self.settings.patch_style
        if style != "put_fallback":
            forms: dict[str, dict[str, Any]] = {
                "path": {"op": "replace", "path": "active", "value": value},
                "pathless": {"op": "replace", "value": {"active": value}},
            }
            other = "pathless" if style == "path" else "path"
            result = await self.writes.patch_forms(
                path, User, [(style, forms[style]), (other, forms[other])], "patch_style"
            )
            if result != "unsupported":
                return result != "gone"

        def set_active(user: dict[str, Any]) -> None:
            user["active"] = value
            user.pop("groups", None)  # read-only; some servers reject it in a PUT

        return await self.writes.put_modified(path, set_active) == "ok"

    async def delete(self, account_id: str) -> Literal["deleted", "gone"]:
        path = self._user_path(account_id)
        response = await self.writes.conditional("DELETE", path, None, allow=(404, 405, 501))
        if response is None or response.status_code == 404:
            return "gone"
        if response.status_code in (405, 501):
            raise RejectedError(
                f"{self.app_id}: DELETE {path}: HTTP {response.status_code}: the app does not "
                "delete users over SCIM; set deprovision: deactivate",
                status=response.status_code,
            )
        return "deleted"

    # -- groups ----------------------------------------------------------------------------

    @property
    def membership_route(self) -> str:
        return self.memberships.route

    async def groups_of(self, account_id: str) -> Memberships:
        """The account's groups, and those whose membership could not be read."""
        return await self.memberships.groups_of(account_id)

    async def remove_member(self, group: GroupRef, account_id: str) -> str | None:
        """Take the account out of one group; None when done, else why it was not written.

        PATCH (RFC 7644 3.5.2.2) in the configured form, then the other form; a group whose
        PATCH is unsupported is rewritten with PUT only if its member list is proven complete.
        """
        path = group_path(group.id)
        if self.settings.patch_style != "put_fallback":
            forms: dict[str, dict[str, Any]] = {
                "filter_path": {
                    "op": "remove",
                    "path": f"members[value eq {escape_filter_value(account_id)}]",
                },
                "value_array": {
                    "op": "remove",
                    "path": "members",
                    "value": [{"value": account_id}],
                },
            }
            first = self.settings.group_member_removal
            other = "value_array" if first == "filter_path" else "filter_path"
            result = await self.writes.patch_forms(
                path, Group, [(first, forms[first]), (other, forms[other])], "group_member_removal"
            )
            if result != "unsupported":
                return None
        return await self._put_group_members(group, account_id, member=False)

    async def add_member(self, group: GroupRef, account_id: str) -> Literal["added", "gone"]:
        """Put the account back into one group (a restore); "gone" when the group is.

        PATCH ``add`` of a ``members`` value (RFC 7644 3.5.2.1: adding a member already there
        changes nothing); an app without PATCH on groups gets GET + PUT with the member added.
        """
        path = group_path(group.id)
        if self.settings.patch_style != "put_fallback":
            add = {"op": "add", "path": "members", "value": [{"value": account_id}]}
            result = await self.writes.patch_forms(
                path, Group, [("add", add)], "group_member_removal"
            )
            if result != "unsupported":
                return "added" if result == "ok" else "gone"

        # A PUT replaces the member list: only a list proven complete may be written back,
        # as for removal, or whoever the app did not show would lose access.
        refused = await self._put_group_members(group, account_id, member=True)
        if refused is not None:
            raise ProtocolError(f"{self.app_id}: {refused}")
        return "added"

    async def remove_groups(self, account_id: str) -> GroupRemoval:
        """Take the account out of every group it is known to be in."""
        found = await self.groups_of(account_id)
        reasons = await asyncio.gather(*(self.remove_member(g, account_id) for g in found.member))
        removal = GroupRemoval(unknown=found.unknown)
        for group, reason in zip(found.member, reasons, strict=True):
            if reason is None:
                removal.removed.append(group)
            else:
                removal.refused[group.name] = reason
        return removal

    async def _put_group_members(
        self, group: GroupRef, account_id: str, member: bool
    ) -> str | None:
        """Rewrite the group (GET + PUT, RFC 7644 3.5.1) with the account in it (``member``)
        or without it; returns why it was not rewritten, or None when done (or the group is
        gone). Only a member list proven complete is written back, and after the PUT every
        other member must still be listed (else ProtocolError)."""
        path = group_path(group.id)
        for _ in range(2):
            read, resource = await self.transport.read(path, missing_ok=True)
            if resource is None:
                return None
            before = member_ids(resource)
            if member and account_id in before:
                return None
            if not member and account_id not in before:
                # The app said the account is in this group, but its read does not show it:
                # the member list is partial, and a rewrite would drop whoever is missing.
                return (
                    f"not rewritten: {group.name}'s member list as read does not show the "
                    "account the app says is in it (the list is partial); remove by hand"
                )
            unproven = await self._unproven_complete(group, resource)
            if unproven is not None:
                return f"{unproven}; {'add the account back' if member else 'remove'} by hand"
            version = resource_version(read, resource)
            others = [
                m
                for m in resource.get("members") or []
                if not (isinstance(m, dict) and str(m.get("value")) == account_id)
            ]
            resource["members"] = [*others, {"value": account_id}] if member else others
            resource.pop("meta", None)
            headers = {"If-Match": version} if version else {}
            put = await self.transport.request(
                "PUT", path, body=resource, headers=headers, allow=(404, 412)
            )
            if put.status_code == 404:
                return None
            if put.status_code == 412:
                continue
            _, after = await self.transport.read(path, missing_ok=True)
            lost = set(before) - {account_id} - set(member_ids(after or {}))
            if lost:
                raise ProtocolError(
                    f"{self.app_id}: PUT {path} ({group.name}): {len(lost)} other members are "
                    "no longer listed after the rewrite; check the group by hand"
                )
            return None
        raise TransientError(
            f"{self.app_id}: PUT {path}: HTTP 412: version conflict twice; will retry", status=412
        )

    async def _unproven_complete(self, group: GroupRef, resource: dict[str, Any]) -> str | None:
        """Why the group's member list cannot be trusted for a rewrite, or None when it can.

        The proof is a second route: the users whose ``groups`` list the group (RFC 7643
        4.1.2), counted by the app, must equal the user members the group read shows.
        """
        users = [
            m
            for m in resource.get("members") or []
            if isinstance(m, dict) and str(m.get("type") or "User") == "User"
        ]
        unsafe = (
            f"not rewritten: the app does not accept PATCH on groups, and {group.name}'s "
            "member list"
        )
        query = {"filter": f"groups.value eq {escape_filter_value(group.id)}", "count": 1}
        try:
            _, page = await self.transport.read("/Users", query)
        except RejectedError:
            return f"{unsafe} cannot be proven complete (no groups.value query)"
        total = (page or {}).get("totalResults")
        if not isinstance(total, int) or total != len(users):
            return (
                f"{unsafe} shows {len(users)} users but the app counts {total}: a rewrite "
                "would drop the others"
            )
        return None

    # -- read back -------------------------------------------------------------------------

    async def read_back(
        self,
        account_id: str,
        removed_from: Sequence[GroupRef] = (),
        unknown: Sequence[GroupRef] = (),
    ) -> ReadBack:
        """What the app says now: active, inactive, gone or unknown, which of the groups we
        took the account out of still list it, and which groups' membership is unreadable."""
        resource = await self.get(account_id)
        still, unreadable = await self.memberships.still_in(removed_from, account_id)
        unreadable += [g.name for g in unknown if g.name not in unreadable]
        if resource is None:
            return ReadBack(state="gone", groups=still, unknown_groups=unreadable)
        active = parse_active(resource.get("active"))
        if active is None:
            return ReadBack(
                state="unknown",
                groups=still,
                unknown_groups=unreadable,
                active_value=repr(resource.get("active"))[:40],
            )
        state: Literal["active", "inactive"] = "active" if active else "inactive"
        return ReadBack(state=state, groups=still, unknown_groups=unreadable)
