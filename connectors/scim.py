"""SCIM 2.0 connector: one small client per app over an injected ``httpx.AsyncClient``.

It is written for the servers in the field, not only the RFC: PATCH in two shapes or PUT,
200-with-body or 204, booleans as strings, groups that ``User.groups`` does not list, pagination
that lies, 429 with Retry-After, tokens that expire. See ../shared/context/scim-field-notes.md.

Retrying is not done here: every failure is raised as a typed ``ConnectorError`` that says
whether a retry can help, and the workflow's retry policy does the backing off. The exceptions
are the few retries that are part of a protocol: one token refresh on 401 (OAuth2), one re-read
on a 412 version conflict, and one re-ask of an empty page.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Literal
from urllib.parse import quote

import httpx
import structlog
from pydantic import SecretStr, ValidationError
from scim2_models import Error, Group, PatchOp, User

from config import ScimSettings
from connectors.auth import BearerToken, Credentials
from connectors.base import (
    Account,
    AuthError,
    ConnectorError,
    GroupRef,
    ProtocolError,
    RateLimitedError,
    ReadBack,
    RejectedError,
    TransientError,
)

log = structlog.get_logger("offboard.scim")

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SCIM_JSON = "application/scim+json"
# Asked for when listing a member's groups (RFC 7644 3.4.2.5).
GROUP_PROJECTION = "displayName,members.value"
# Group ids per re-read query: keeps the filter (and the URL) short for people in many groups.
STILL_IN_BATCH = 10
# When a 429 carries no (readable) Retry-After.
DEFAULT_RETRY_AFTER = 5.0

PatchResult = Literal["ok", "gone", "unsupported"]


def escape_filter_value(value: str) -> str:
    """Quote a value for a SCIM filter (RFC 7644 3.4.2.2): it can never widen the match."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def as_bool(value: Any) -> bool:
    """``active`` arrives as true/false or, from Entra-style servers, as "True"/"False"."""
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP-date (RFC 9110)."""
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
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class AppPaused(Exception):
    """The app is paused (429) for longer than a request should wait inside an activity."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"paused for {seconds:.0f}s")
        self.seconds = seconds


class RateGate:
    """Per-app request pacing shared by every run on this worker.

    At most ``max_concurrent`` requests are in flight; request starts are spaced
    ``60 / per_minute`` seconds apart; and a 429 pauses every request to the app until its
    Retry-After has passed, including requests already waiting for a slot. A pause longer
    than ``max_wait`` raises ``AppPaused`` instead of sleeping, so the caller hands the wait to
    the workflow's retry (with that delay) rather than sitting out an activity timeout.
    """

    def __init__(self, per_minute: int | None, max_concurrent: int, max_wait: float = 20.0) -> None:
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self.max_concurrent = max_concurrent
        self.max_wait = max_wait
        self._sem = asyncio.Semaphore(max_concurrent)
        self._lock = asyncio.Lock()
        self._next_slot = 0.0
        self._paused_until = 0.0

    def pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    @property
    def paused_for(self) -> float:
        return max(0.0, self._paused_until - time.monotonic())

    async def acquire(self) -> None:
        """Wait for a slot; raises AppPaused (holding nothing) when the pause is too long."""
        await self._sem.acquire()
        try:
            await self._wait_turn()
        except BaseException:
            self._sem.release()
            raise

    def release(self) -> None:
        self._sem.release()

    async def __aenter__(self) -> None:
        await self.acquire()

    async def _wait_turn(self) -> None:
        while True:
            async with self._lock:
                now = time.monotonic()
                reserved = self._paused_until <= now
                if reserved:
                    start = max(now, self._next_slot)
                    self._next_slot = start + self.interval
                    wait = start - now
                else:
                    wait = self._paused_until - now
                    if wait > self.max_wait:
                        raise AppPaused(wait)
            if wait > 0:
                await asyncio.sleep(wait)
            # A 429 answered while we waited for our slot pauses us too.
            if reserved and self._paused_until <= time.monotonic():
                return

    async def __aexit__(self, *_: object) -> None:
        self.release()


def _account(resource: dict[str, Any]) -> Account:
    emails = [
        str(e.get("value"))
        for e in resource.get("emails") or []
        if isinstance(e, dict) and e.get("value") is not None
    ]
    meta = resource.get("meta") or {}
    external_id = resource.get("externalId")
    return Account(
        id=str(resource["id"]),
        user_name=str(resource.get("userName", "")),
        emails=emails,
        external_id=str(external_id) if external_id is not None else None,
        active=as_bool(resource.get("active", True)),
        display_name=resource.get("displayName"),
        last_sign_in=meta.get("lastLogin") if isinstance(meta, dict) else None,
    )


def _has_member(group: dict[str, Any], account_id: str) -> bool:
    members = group.get("members") or []
    return any(isinstance(m, dict) and str(m.get("value")) == account_id for m in members)


def _group_name(group: dict[str, Any]) -> str:
    return str(group.get("displayName") or group["id"])


@functools.cache
def _patch_op_type(model: type[User[Any]] | type[Group]) -> Any:
    # Parametrising PatchOp[...] builds a class each time; it showed up in burst profiles.
    return PatchOp[model]  # type: ignore[valid-type]


def _patch_body(model: type[User[Any]] | type[Group], operation: dict[str, Any]) -> dict[str, Any]:
    """A PatchOp message, validated by scim2-models against the resource's schema."""
    message = _patch_op_type(model).model_validate(
        {"schemas": [PATCH_SCHEMA], "Operations": [operation]}
    )
    body: dict[str, Any] = message.model_dump(mode="json", exclude_none=True)
    return body


class ScimConnector:
    """Deprovisioning operations for one app; shared by every run on the worker."""

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
        self._base = settings.base_url.rstrip("/")
        if isinstance(credentials, str):
            credentials = BearerToken(SecretStr(credentials), settings.token_env or "?")
        self.credentials: Credentials = credentials
        self.gate = gate or RateGate(
            settings.rate_limit_per_minute, settings.max_concurrent_requests
        )
        # Learned once: the app rejects `members.value eq` filters, so groups are paged.
        self._member_filter_ok = True
        self._id_filter_ok = True

    def variant(self, **settings: Any) -> ScimConnector:
        """The same app with some settings changed, sharing client, credentials and gate."""
        return ScimConnector(
            self.app_id,
            self.settings.model_copy(update=settings),
            self._client,
            self.credentials,
            self.gate,
        )

    @property
    def member_filter_ok(self) -> bool:
        """False once the app has rejected a ``members.value eq`` filter (groups are paged)."""
        return self._member_filter_ok

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
        """Send one request; returns 2xx responses and those whose status is in ``allow``.

        A 401 gets one retry when the credentials can be refreshed (OAuth2).
        """
        content = json.dumps(body).encode() if body is not None else None
        authorization = await self.credentials.authorization()
        response = await self._send(method, path, params, content, headers, authorization)
        if response.status_code == 401 and await self.credentials.refresh(authorization):
            authorization = await self.credentials.authorization()
            response = await self._send(method, path, params, content, headers, authorization)
        status = response.status_code
        if status < 300 or status in allow:
            return response
        raise self._error(method, path, response)

    async def _send(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None,
        content: bytes | None,
        headers: dict[str, str] | None,
        authorization: str,
    ) -> httpx.Response:
        send_headers = {"Accept": SCIM_JSON, "Authorization": authorization, **(headers or {})}
        if content is not None:
            send_headers["Content-Type"] = SCIM_JSON
        try:
            await self.gate.acquire()
        except AppPaused as exc:
            raise RateLimitedError(
                f"{self.app_id}: {method} {path}: the app asked us to wait (429); "
                f"{exc.seconds:.0f}s left",
                retry_after=exc.seconds,
            ) from exc
        try:
            response = await self._client.request(
                method, self._base + path, params=params, content=content, headers=send_headers
            )
        except httpx.TimeoutException as exc:
            raise TransientError(
                self._scrub(f"{self.app_id}: {method} {path}: timed out ({type(exc).__name__})")
            ) from exc
        except httpx.TransportError as exc:
            raise TransientError(
                self._scrub(
                    f"{self.app_id}: {method} {path}: connection failed ({type(exc).__name__})"
                )
            ) from exc
        finally:
            self.gate.release()
        if response.status_code == 429:
            delay = parse_retry_after(response.headers.get("Retry-After"))
            pause = delay if delay is not None else DEFAULT_RETRY_AFTER
            self.gate.pause(pause)
            log.warning("scim.rate_limited", app=self.app_id, pause_seconds=round(pause, 3))
        return response

    def _scrub(self, message: str) -> str:
        """Remove any secret a server may have echoed back into a message."""
        for secret in self.credentials.secrets():
            if secret:
                message = message.replace(secret, "[REDACTED]")
        return message

    def _error(self, method: str, path: str, response: httpx.Response) -> ConnectorError:
        status = response.status_code
        detail = _error_detail(response)
        where = f"{method} {path}: HTTP {status}"
        if status in (401, 403):
            verb = "authentication" if status == 401 else "authorization"
            return AuthError(
                self._scrub(
                    f"{self.app_id}: {verb} failed ({where}): the app refused "
                    f"{self.credentials.source}: {detail}"
                ),
                status=status,
            )
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            wait = retry_after if retry_after is not None else DEFAULT_RETRY_AFTER
            return RateLimitedError(
                f"{self.app_id}: {where}: rate limited; retry after {wait:.0f}s",
                retry_after=wait,
            )
        if status == 408 or (status >= 500 and status != 501):
            return TransientError(self._scrub(f"{self.app_id}: {where}: {detail}"), status=status)
        return RejectedError(self._scrub(f"{self.app_id}: {where}: {detail}"), status=status)

    def _json(self, response: httpx.Response, what: str) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError as exc:
            raise TransientError(
                f"{self.app_id}: {what}: response is not JSON", status=response.status_code
            ) from exc
        if not isinstance(data, dict):
            raise TransientError(
                f"{self.app_id}: {what}: response is not a JSON object",
                status=response.status_code,
            )
        return data

    async def get_json(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """GET one resource or endpoint (e.g. ``/ServiceProviderConfig``); read only."""
        response = await self._request("GET", path, params=params)
        return self._json(response, f"GET {path}")

    async def _paged(self, path: str, params: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Every resource of a list, even when the server lies about page sizes.

        ``startIndex`` advances by what was actually received (servers cap ``count``); a page
        with nothing new ends the listing, as does an empty page asked twice (some servers
        answer one empty page before the end); and more than ``max_pages`` pages is an error,
        never a silent truncation, so a looping server cannot hang a run or hide an account.
        ``pagination: standard`` also stops at ``totalResults`` (one request per lookup);
        ``defensive`` ignores it, for servers whose totals lie.
        """
        seen: set[str] = set()
        start = 1
        asked_again = False
        size = self.settings.page_size
        for _ in range(self.settings.max_pages):
            response = await self._request(
                "GET", path, params={**params, "startIndex": start, "count": size}
            )
            page = self._json(response, f"GET {path}")
            resources = [r for r in page.get("Resources") or [] if isinstance(r, dict)]
            if not resources:
                if start == 1 or asked_again:
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
        raise ProtocolError(
            f"{self.app_id}: GET {path}: the listing did not end after "
            f"{self.settings.max_pages} pages (max_pages); refusing to guess the rest"
        )

    # -- users -----------------------------------------------------------------------------

    @staticmethod
    def _user_path(account_id: str) -> str:
        return f"/Users/{quote(account_id, safe='')}"

    def _filter(self, value: str) -> str:
        attribute = {"userName": "userName", "email": "emails.value", "externalId": "externalId"}[
            self.settings.match
        ]
        return f"{attribute} eq {escape_filter_value(value)}"

    def _matches(self, account: Account, value: str) -> bool:
        # userName and emails compare case-insensitively (RFC 7643 caseExact=false);
        # externalId is caseExact.
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

    async def list_users(self) -> AsyncIterator[Account]:
        """Every account in the app (access reviews), paged defensively."""
        async for resource in self._paged("/Users", {}):
            yield _account(resource)

    async def get(self, account_id: str) -> dict[str, Any] | None:
        path = self._user_path(account_id)
        response = await self._request("GET", path, allow=(404,))
        if response.status_code == 404:
            return None
        return self._json(response, f"GET {path}")

    async def deactivate(self, account_id: str) -> Literal["deactivated", "gone"]:
        """Set ``active`` to false in the configured way; "gone" when the app 404s."""
        path = self._user_path(account_id)
        style = self.settings.patch_style
        if style != "put_fallback":
            forms: dict[str, dict[str, Any]] = {
                "path": {"op": "replace", "path": "active", "value": False},
                "pathless": {"op": "replace", "value": {"active": False}},
            }
            other = "pathless" if style == "path" else "path"
            result = await self._patch_forms(
                path, User, [(style, forms[style]), (other, forms[other])], "patch_style"
            )
            if result == "gone":
                return "gone"
            if result == "ok":
                return "deactivated"

        def set_inactive(user: dict[str, Any]) -> None:
            user["active"] = False
            user.pop("groups", None)  # read-only; some servers reject it in a PUT

        return "deactivated" if await self._put_modified(path, set_inactive) == "ok" else "gone"

    async def delete(self, account_id: str) -> Literal["deleted", "gone"]:
        path = self._user_path(account_id)
        response = await self._request("DELETE", path, allow=(404, 405, 501))
        if response.status_code in (405, 501):
            raise RejectedError(
                f"{self.app_id}: DELETE {path}: HTTP {response.status_code}: the app does not "
                "delete users over SCIM; set deprovision: deactivate",
                status=response.status_code,
            )
        return "gone" if response.status_code == 404 else "deleted"

    # -- writes: PATCH forms and the PUT fallback ------------------------------------------

    async def _patch_forms(
        self,
        path: str,
        model: type[User[Any]] | type[Group],
        forms: list[tuple[str, dict[str, Any]]],
        setting: str,
    ) -> PatchResult:
        """Try the configured PATCH form, then the other one if the app rejects it (400).

        "unsupported" means the caller should GET + PUT: PATCH answered 405/501, or every
        form was rejected.
        """
        rejected: list[str] = []
        for name, operation in forms:
            response = await self._request(
                "PATCH", path, body=_patch_body(model, operation), allow=(400, 404, 405, 501)
            )
            status = response.status_code
            if status < 300:
                if rejected:
                    log.warning(
                        "scim.patch_form_fallback",
                        app=self.app_id,
                        path=path,
                        rejected=rejected,
                        hint=f"set {setting}: {name}",
                    )
                return "ok"
            if status == 404:
                return "gone"
            if status in (405, 501):
                log.warning(
                    "scim.patch_unsupported",
                    app=self.app_id,
                    path=path,
                    status=status,
                    hint="set patch_style: put_fallback",
                )
                return "unsupported"
            rejected.append(f"{name}: {self._scrub(_error_detail(response))}")
        log.warning(
            "scim.patch_rejected",
            app=self.app_id,
            path=path,
            rejected=rejected,
            hint="set patch_style: put_fallback",
        )
        return "unsupported"

    async def _put_modified(
        self, path: str, change: Callable[[dict[str, Any]], None]
    ) -> Literal["ok", "gone"]:
        """GET, change, PUT back with If-Match when the app versions resources.

        A 412 (someone changed it in between) re-reads and retries once; a second 412 is a
        transient error for the workflow to retry later.
        """
        for _ in range(2):
            response = await self._request("GET", path, allow=(404,))
            if response.status_code == 404:
                return "gone"
            resource = self._json(response, f"GET {path}")
            meta = resource.get("meta")
            version = response.headers.get("ETag") or (
                meta.get("version") if isinstance(meta, dict) else None
            )
            change(resource)
            resource.pop("meta", None)
            headers = {"If-Match": str(version)} if version else {}
            put = await self._request("PUT", path, body=resource, headers=headers, allow=(404, 412))
            if put.status_code == 404:
                return "gone"
            if put.status_code != 412:
                return "ok"
            log.info("scim.version_conflict", app=self.app_id, path=path)
        raise TransientError(
            f"{self.app_id}: PUT {path}: HTTP 412: version conflict twice; will retry",
            status=412,
        )

    # -- groups ----------------------------------------------------------------------------

    async def groups_of(self, account_id: str) -> list[dict[str, Any]]:
        """Groups listing the account as a member; ``User.groups`` is often missing or stale.

        Asks with a ``members.value eq`` filter; an app that rejects the filter gets its groups
        paged instead. Membership is re-checked here, so a server that ignores the filter
        cannot make us touch other groups.
        """
        groups: list[dict[str, Any]] | None = None
        if self._member_filter_ok:
            try:
                groups = await self._groups_where(
                    f"members.value eq {escape_filter_value(account_id)}"
                )
            except RejectedError as exc:
                self._member_filter_ok = False
                log.warning(
                    "scim.member_filter_rejected",
                    app=self.app_id,
                    error=exc.message,
                    fallback="paging all groups",
                )
        if groups is None:
            groups = [g async for g in self._paged("/Groups", {})]
        return [g for g in groups if "id" in g and _has_member(g, account_id)]

    async def _groups_where(self, scim_filter: str) -> list[dict[str, Any]]:
        # Only names and member ids: big groups are most of the bytes (and of the server's
        # time). A group the filter matched must list members; if one does not, the
        # projection was not understood and we ask again for everything.
        projected = {"filter": scim_filter, "attributes": GROUP_PROJECTION}
        groups = [g async for g in self._paged("/Groups", projected)]
        if any("members" not in g for g in groups):
            groups = [g async for g in self._paged("/Groups", {"filter": scim_filter})]
        return groups

    async def still_in(self, groups: Sequence[GroupRef], account_id: str) -> list[str]:
        """Of the groups the account was taken out of, the names of those still listing it.

        Re-reads just those groups (``(id eq .. or ..) and members.value eq ..``, ids first so
        the server can stop early): a member query over every group costs a big app far more,
        and those groups came from a full member query moments before, within the same step.
        An app that rejects the query is asked the full member query instead.
        """
        wanted = {g.id for g in groups}
        if not wanted:
            return []
        member = f"members.value eq {escape_filter_value(account_id)}"
        found: list[dict[str, Any]] | None = None
        if self._member_filter_ok and self._id_filter_ok:
            ids = sorted(wanted)
            try:
                found = []
                for i in range(0, len(ids), STILL_IN_BATCH):
                    any_id = " or ".join(
                        f"id eq {escape_filter_value(g)}" for g in ids[i : i + STILL_IN_BATCH]
                    )
                    found += await self._groups_where(f"({any_id}) and {member}")
            except RejectedError:
                self._id_filter_ok = False
                found = None
        if found is None:
            found = await self.groups_of(account_id)
        return [
            _group_name(g)
            for g in found
            if str(g.get("id")) in wanted and _has_member(g, account_id)
        ]

    async def remove_groups(self, account_id: str) -> list[GroupRef]:
        """Take the account out of every group; returns the groups it was taken out of."""
        groups = await self.groups_of(account_id)
        await asyncio.gather(*(self._remove_member(str(g["id"]), account_id) for g in groups))
        return [GroupRef(id=str(g["id"]), name=_group_name(g)) for g in groups]

    async def read_back(self, account_id: str, removed_from: Sequence[GroupRef] = ()) -> ReadBack:
        """What the app says now: active, inactive or gone, and which of the groups we took
        the account out of still list it."""
        resource = await self.get(account_id)
        groups = await self.still_in(removed_from, account_id)
        if resource is None:
            return ReadBack(state="gone", groups=groups)
        state: Literal["active", "inactive"] = (
            "active" if as_bool(resource.get("active", True)) else "inactive"
        )
        return ReadBack(state=state, groups=groups)

    async def _remove_member(self, group_id: str, account_id: str) -> None:
        path = f"/Groups/{quote(group_id, safe='')}"
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
            result = await self._patch_forms(
                path, Group, [(first, forms[first]), (other, forms[other])], "group_member_removal"
            )
            if result != "unsupported":
                return

        def without_member(group: dict[str, Any]) -> None:
            group["members"] = [
                m
                for m in group.get("members") or []
                if not (isinstance(m, dict) and str(m.get("value")) == account_id)
            ]

        await self._put_modified(path, without_member)


_TAGS = re.compile(r"<[^>]+>")


def _error_detail(response: httpx.Response) -> str:
    """A short reason from an error body: a SCIM Error, or text from an HTML proxy page."""
    try:
        data = response.json()
    except ValueError:
        text = " ".join(_TAGS.sub(" ", response.text).split())
        return text[:200] or response.reason_phrase
    if isinstance(data, dict):
        try:
            error = Error.model_validate(data)
        except ValidationError:
            error = None
        if error is not None and (error.detail or error.scim_type):
            parts = [str(error.scim_type) if error.scim_type else "", str(error.detail or "")]
            return ": ".join(p for p in parts if p)[:300]
    return response.reason_phrase
