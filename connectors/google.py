"""Google Workspace via the Admin SDK Directory API: suspend a user, sign them out.

Contract used (developers.google.com/admin-sdk/directory/reference/rest/v1/users):
- ``GET /admin/directory/v1/users/{userKey}``: the user by primary email, alias or id (one
  user or 404, so a lookup is never ambiguous); ``suspended`` is a boolean.
- ``PUT /admin/directory/v1/users/{userKey}`` ``{"suspended": true}``: 200, the user (update
  has patch semantics: fields not sent are kept).
- ``POST /admin/directory/v1/users/{userKey}/signOut``: 204; every web and device session
  and every token the user holds is signed out.
- ``GET /admin/directory/v1/users?customer=my_customer&maxResults=1``: the probe.
- Errors ``{"error": {"code", "message", "errors": [{"reason", ...}], "status"}}``; quota
  errors come as 429 or as 403 with reason ``rateLimitExceeded`` / ``userRateLimitExceeded``.
Token: the service account's JWT bearer grant with ``sub`` = ``admin_email`` (domain-wide
delegation of SCOPES).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from config import GoogleSettings
from connectors.api_transport import ApiTransport
from connectors.base import Account, ConnectorError, Lookup, RateLimitedError
from connectors.http_retry import DEFAULT_RETRY_AFTER
from connectors.idp import Disabled, IdpReadBack, Probe, Revoked

USERS = "/admin/directory/v1/users"
SCOPES = [
    "https://www.googleapis.com/auth/admin.directory.user",
    # users.signOut needs this one besides admin.directory.user.
    "https://www.googleapis.com/auth/admin.directory.user.security",
]
QUOTA_REASONS = {"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded"}


def quota_error(app_id: str, response: httpx.Response) -> ConnectorError | None:
    """Google's 403 quota errors are rate limits (retried after a pause), not refusals."""
    if response.status_code != 403:
        return None
    try:
        errors = response.json().get("error", {}).get("errors", [])
        reasons = {e.get("reason") for e in errors if isinstance(e, dict)}
    except (ValueError, AttributeError):
        return None
    if not reasons & QUOTA_REASONS:
        return None
    path = response.request.url.path
    return RateLimitedError(
        f"{app_id}: {response.request.method} {path}: HTTP 403 quota exceeded; retry after "
        f"{DEFAULT_RETRY_AFTER:.0f}s",
        retry_after=DEFAULT_RETRY_AFTER,
        status=403,
    )


class GoogleConnector:
    def __init__(self, app_id: str, settings: GoogleSettings, transport: ApiTransport) -> None:
        self.app_id = app_id
        self.settings = settings
        self.transport = transport
        self.verb = "suspend in Google Workspace"

    async def lookup(self, value: str) -> Lookup:
        user = await self.transport.get_json(_user(value), missing_ok=True)
        accounts = [_account(user)] if isinstance(user, dict) else []
        return Lookup(accounts=accounts, tried=[f"userKey {value}"])

    async def disable(self, account_id: str) -> Disabled:
        response = await self.transport.request(
            "PUT", _user(account_id), json_body={"suspended": True}, allow=(404,)
        )
        return "gone" if response.status_code == 404 else "disabled"

    async def revoke_sessions(self, account_id: str) -> Revoked:
        response = await self.transport.request(
            "POST", f"{_user(account_id)}/signOut", allow=(404,)
        )
        return "gone" if response.status_code == 404 else "revoked"

    async def read_back(self, account_id: str) -> IdpReadBack:
        user = await self.transport.get_json(_user(account_id), missing_ok=True)
        return IdpReadBack.of_flag(user, "suspended", disabled_when=True)

    async def probe(self) -> Probe:
        await self.transport.get_json(USERS, {"customer": "my_customer", "maxResults": 1})
        granted = getattr(self.transport.credentials, "granted", None)
        return Probe(authenticated=self.transport.source, granted=granted)


def _user(key: str) -> str:
    return f"{USERS}/{quote(key, safe='@')}"


def _account(user: dict[str, Any]) -> Account:
    name = user.get("name") if isinstance(user.get("name"), dict) else {}
    assert isinstance(name, dict)
    listed = user.get("emails") or []
    emails = [str(e["address"]) for e in listed if isinstance(e, dict) and "address" in e]
    suspended = user.get("suspended")
    return Account(
        id=str(user.get("id")),
        user_name=str(user.get("primaryEmail") or user.get("id")),
        emails=emails,
        active=not suspended if isinstance(suspended, bool) else None,
        display_name=name.get("fullName") if isinstance(name.get("fullName"), str) else None,
    )
