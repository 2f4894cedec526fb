"""SCIM 2.0 connector: one small client per app over an injected ``httpx.AsyncClient``.

It is written for the servers in the field, not only the RFC: PATCH in two shapes or PUT,
200-with-body or 204, booleans as strings, groups that ``User.groups`` does not list, pagination
that lies, 429 with Retry-After. See ../shared/context/scim-field-notes.md.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

import httpx

from config import ScimSettings
from connectors.base import Account, ConnectorError, ReadBack

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SCIM_JSON = "application/scim+json"
MAX_PAGES = 1000
PAGE_SIZE = 100


def escape_filter_value(value: str) -> str:
    """Quote a value for a SCIM filter (RFC 7644 3.4.2.2): it can never widen the match."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def as_bool(value: Any) -> bool:
    """``active`` arrives as true/false or, from Entra-style servers, as "True"/"False"."""
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class RateGate:
    """Per-app request pacing shared by every run on this worker.

    A 429 pauses all requests to the app until Retry-After has passed.
    """

    def __init__(self, per_minute: int | None, max_concurrent: int) -> None:
        self._interval = 60.0 / per_minute if per_minute else 0.0
        self._sem = asyncio.Semaphore(max_concurrent)
        self._lock = asyncio.Lock()
        self._next_slot = 0.0
        self._paused_until = 0.0

    def pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    async def __aenter__(self) -> None:
        await self._sem.acquire()
        async with self._lock:
            now = time.monotonic()
            start = max(now, self._next_slot, self._paused_until)
            self._next_slot = start + self._interval
        if start > now:
            await asyncio.sleep(start - now)

    async def __aexit__(self, *_: object) -> None:
        self._sem.release()


def _account(resource: dict[str, Any]) -> Account:
    emails = [str(e.get("value")) for e in resource.get("emails") or [] if isinstance(e, dict)]
    meta = resource.get("meta") or {}
    return Account(
        id=str(resource["id"]),
        user_name=str(resource.get("userName", "")),
        emails=emails,
        external_id=resource.get("externalId"),
        active=as_bool(resource.get("active", True)),
        display_name=resource.get("displayName"),
        last_sign_in=meta.get("lastLogin") if isinstance(meta, dict) else None,
    )


class ScimConnector:
    def __init__(
        self,
        app_id: str,
        settings: ScimSettings,
        client: httpx.AsyncClient,
        token: str,
        gate: RateGate | None = None,
    ) -> None:
        self.app_id = app_id
        self.settings = settings
        self._client = client
        self._base = settings.base_url.rstrip("/")
        self._auth = {"Authorization": f"Bearer {token}"}
        self._gate = gate or RateGate(
            settings.rate_limit_per_minute, settings.max_concurrent_requests
        )

    # -- transport -----------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        allow: tuple[int, ...] = (),
    ) -> httpx.Response:
        """Send one request; returns 2xx responses and those whose status is in ``allow``."""
        send_headers = {"Accept": SCIM_JSON, **self._auth, **(headers or {})}
        content = None
        if body is not None:
            send_headers["Content-Type"] = SCIM_JSON
            content = json.dumps(body)
        async with self._gate:
            try:
                response = await self._client.request(
                    method,
                    self._base + path,
                    params=params,
                    content=content,
                    headers=send_headers,
                )
            except httpx.TimeoutException as exc:
                raise ConnectorError(
                    "transient",
                    f"{method} {path}: timed out ({type(exc).__name__})",
                    retryable=True,
                ) from exc
            except httpx.TransportError as exc:
                raise ConnectorError(
                    "transient",
                    f"{method} {path}: connection failed ({type(exc).__name__})",
                    retryable=True,
                ) from exc
            if response.status_code == 429:
                delay = parse_retry_after(response.headers.get("Retry-After"))
                self._gate.pause(delay if delay is not None else 5.0)
        status = response.status_code
        if status < 300 or status in allow:
            return response
        raise self._error(method, path, response)

    def _error(self, method: str, path: str, response: httpx.Response) -> ConnectorError:
        status = response.status_code
        detail = _error_detail(response)
        where = f"{method} {path}: HTTP {status}"
        if status in (401, 403):
            return ConnectorError(
                "auth",
                f"{where}: the app refused our credentials (token from "
                f"${self.settings.token_env}): {detail}",
                retryable=False,
                status=status,
            )
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            return ConnectorError(
                "rate_limited",
                f"{where}: rate limited",
                retryable=True,
                status=status,
                retry_after=retry_after,
            )
        if status >= 500 or status == 408:
            return ConnectorError("transient", f"{where}: {detail}", retryable=True, status=status)
        return ConnectorError("rejected", f"{where}: {detail}", retryable=False, status=status)

    async def _json(self, response: httpx.Response, what: str) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError as exc:
            raise ConnectorError(
                "transient", f"{what}: response is not JSON", retryable=True
            ) from exc
        if not isinstance(data, dict):
            raise ConnectorError("transient", f"{what}: response is not an object", retryable=True)
        return data

    async def _paged(self, path: str, params: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Every resource of a list, even when the server lies about page sizes.

        Advance by what was received, stop on a page with nothing new, and never exceed
        MAX_PAGES, so a looping server cannot hang a run. ``pagination: standard`` also trusts
        ``totalResults`` to stop early (one request per lookup); ``defensive`` ignores it, for
        servers whose totals lie.
        """
        seen: set[str] = set()
        start = 1
        asked_again = False
        for _ in range(MAX_PAGES):
            response = await self._request(
                "GET", path, params={**params, "startIndex": start, "count": PAGE_SIZE}
            )
            page = await self._json(response, f"GET {path}")
            resources = page.get("Resources") or []
            if not resources:
                # Some servers answer an empty page before the end; ask the same page once more.
                if asked_again:
                    return
                asked_again = True
                continue
            asked_again = False
            fresh = [r for r in resources if str(r.get("id")) not in seen]
            if not fresh:
                return
            for resource in fresh:
                seen.add(str(resource.get("id")))
                yield resource
            start += len(resources)
            total = page.get("totalResults")
            if (
                self.settings.pagination == "standard"
                and isinstance(total, int)
                and len(seen) >= total
            ):
                return

    # -- users -----------------------------------------------------------------------------

    def _filter(self, value: str) -> str:
        attribute = {"userName": "userName", "email": "emails.value", "externalId": "externalId"}[
            self.settings.match
        ]
        return f"{attribute} eq {escape_filter_value(value)}"

    def _matches(self, account: Account, value: str) -> bool:
        wanted = value.casefold()
        if self.settings.match == "userName":
            return account.user_name.casefold() == wanted
        if self.settings.match == "email":
            return any(e.casefold() == wanted for e in account.emails)
        return account.external_id == value

    async def find(self, value: str) -> list[Account]:
        """Accounts matching ``value`` exactly; re-checked here so a lax server cannot widen it."""
        accounts = [
            _account(r) async for r in self._paged("/Users", {"filter": self._filter(value)})
        ]
        return [a for a in accounts if self._matches(a, value)]

    async def get(self, account_id: str) -> dict[str, Any] | None:
        response = await self._request("GET", f"/Users/{account_id}", allow=(404,))
        if response.status_code == 404:
            return None
        return await self._json(response, f"GET /Users/{account_id}")

    async def _patch(self, path: str, operations: list[dict[str, Any]]) -> httpx.Response:
        body = {"schemas": [PATCH_SCHEMA], "Operations": operations}
        return await self._request("PATCH", path, body=body, allow=(404, 405, 501))

    async def _put_modified(self, path: str, change: Any) -> Literal["ok", "gone"]:
        """GET, change, PUT back with If-Match when the server gives a version; one retry on 412."""
        for _ in range(2):
            response = await self._request("GET", path, allow=(404,))
            if response.status_code == 404:
                return "gone"
            resource = await self._json(response, f"GET {path}")
            version = response.headers.get("ETag") or (resource.get("meta") or {}).get("version")
            change(resource)
            resource.pop("meta", None)
            headers = {"If-Match": version} if version else {}
            put = await self._request("PUT", path, body=resource, headers=headers, allow=(404, 412))
            if put.status_code == 404:
                return "gone"
            if put.status_code != 412:
                return "ok"
        raise ConnectorError(
            "transient", f"PUT {path}: version conflict twice (412)", retryable=True, status=412
        )

    async def deactivate(self, account_id: str) -> Literal["deactivated", "gone"]:
        path = f"/Users/{account_id}"
        style = self.settings.patch_style
        if style != "put_fallback":
            op: dict[str, Any] = (
                {"op": "replace", "path": "active", "value": False}
                if style == "path"
                else {"op": "replace", "value": {"active": False}}
            )
            response = await self._patch(path, [op])
            if response.status_code == 404:
                return "gone"
            if response.status_code < 300:
                return "deactivated"
        # put_fallback, or a server that does not implement PATCH (405/501).
        result = await self._put_modified(path, lambda r: r.__setitem__("active", False))
        return "gone" if result == "gone" else "deactivated"

    async def delete(self, account_id: str) -> Literal["deleted", "gone"]:
        response = await self._request("DELETE", f"/Users/{account_id}", allow=(404,))
        return "gone" if response.status_code == 404 else "deleted"

    # -- groups ----------------------------------------------------------------------------

    async def groups_of(self, account_id: str) -> list[dict[str, Any]]:
        """Groups listing the account as a member; ``User.groups`` is often missing or stale."""
        member_filter = f"members.value eq {escape_filter_value(account_id)}"
        try:
            groups = [g async for g in self._paged("/Groups", {"filter": member_filter})]
        except ConnectorError as exc:
            if exc.kind != "rejected":
                raise
            groups = [g async for g in self._paged("/Groups", {})]
        return [
            g
            for g in groups
            if any(str(m.get("value")) == account_id for m in g.get("members") or [])
        ]

    async def _remove_member(self, group_id: str, account_id: str) -> None:
        path = f"/Groups/{group_id}"
        if self.settings.patch_style != "put_fallback":
            if self.settings.group_member_removal == "filter_path":
                op: dict[str, Any] = {
                    "op": "remove",
                    "path": f"members[value eq {escape_filter_value(account_id)}]",
                }
            else:
                op = {"op": "remove", "path": "members", "value": [{"value": account_id}]}
            response = await self._patch(path, [op])
            if response.status_code < 300 or response.status_code == 404:
                return

        def without_member(group: dict[str, Any]) -> None:
            group["members"] = [
                m for m in group.get("members") or [] if str(m.get("value")) != account_id
            ]

        await self._put_modified(path, without_member)

    async def remove_groups(self, account_id: str) -> list[str]:
        removed: list[str] = []
        for group in await self.groups_of(account_id):
            await self._remove_member(str(group["id"]), account_id)
            removed.append(str(group.get("displayName") or group["id"]))
        return removed

    async def read_back(self, account_id: str) -> ReadBack:
        resource = await self.get(account_id)
        if resource is None:
            return ReadBack(state="gone")
        groups = [str(g.get("displayName") or g["id"]) for g in await self.groups_of(account_id)]
        state: Literal["active", "inactive"] = (
            "active" if as_bool(resource.get("active", True)) else "inactive"
        )
        return ReadBack(state=state, groups=groups)


def _error_detail(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:200].strip() or response.reason_phrase
    if isinstance(data, dict) and data.get("detail"):
        return str(data["detail"])
    return response.reason_phrase
