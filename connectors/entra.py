"""Microsoft Entra ID via Microsoft Graph v1.0: block sign-in, revoke sessions.

Contract used (learn.microsoft.com, Graph v1.0 user resource):
- ``GET /v1.0/users?$filter=userPrincipalName eq '..' or mail eq '..'&$select=..``:
  ``{"value": [...], "@odata.nextLink": "<absolute URL>"}``; ``accountEnabled`` only when
  ``$select``ed. OData string literals escape a quote by doubling it.
- ``PATCH /v1.0/users/{id}`` ``{"accountEnabled": false}``: 204.
- ``POST /v1.0/users/{id}/revokeSignInSessions``: 200 ``{"value": true}``; refresh tokens and
  session cookies are invalidated (apps holding access tokens keep them until they expire:
  Shared Signals tell them sooner).
- ``GET /v1.0/users/{id}?$select=id,accountEnabled``: read back.
- Errors ``{"error": {"code", "message", "innerError"}}``; 429 with ``Retry-After``.
Token: OAuth 2.0 client credentials at ``{login_url}/{tenant}/oauth2/v2.0/token`` with scope
``{graph_url}/.default``; the app needs User.EnableDisableAccount.All (or
User.ReadWrite.All) and User.RevokeSessions.All (or User.ReadWrite.All).
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote

from config import EntraSettings
from connectors.api_transport import ApiTransport
from connectors.base import Account, Lookup, ProtocolError
from connectors.idp import Disabled, IdpReadBack, Probe, Revoked

SELECT = "id,userPrincipalName,mail,accountEnabled,displayName"
MAX_PAGES = 50
# Application permissions (the token's ``roles``) that allow each write.
DISABLE_ROLES = {"User.EnableDisableAccount.All", "User.ReadWrite.All", "Directory.ReadWrite.All"}
REVOKE_ROLES = {"User.RevokeSessions.All", "User.ReadWrite.All", "Directory.ReadWrite.All"}


def odata_literal(value: str) -> str:
    """``value`` as an OData string literal: single-quoted, quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


def token_roles(authorization: str) -> list[str] | None:
    """The ``roles`` claim of a Graph app-only access token (a JWT), read without verifying:
    only to tell an admin which permission is missing. None when it is not a readable JWT."""
    parts = authorization.removeprefix("Bearer ").split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    roles = payload.get("roles") if isinstance(payload, dict) else None
    return [str(r) for r in roles] if isinstance(roles, list) else None


class EntraConnector:
    def __init__(self, app_id: str, settings: EntraSettings, transport: ApiTransport) -> None:
        self.app_id = app_id
        self.settings = settings
        self.transport = transport
        self.verb = "disable sign-in in Entra ID"

    async def lookup(self, value: str) -> Lookup:
        literal = odata_literal(value)
        expr = f"userPrincipalName eq {literal} or mail eq {literal}"
        accounts: list[Account] = []
        url: str | None = "/v1.0/users"
        params: dict[str, Any] | None = {"$filter": expr, "$select": SELECT}
        for _ in range(MAX_PAGES):
            if url is None:
                return Lookup(accounts=accounts, tried=[f"$filter {expr}"])
            page = await self.transport.get_json(url, params)
            users = page.get("value") if isinstance(page, dict) else None
            if not isinstance(users, list):
                raise ProtocolError(f"{self.app_id}: GET /v1.0/users: no value list")
            accounts += [_account(u) for u in users if isinstance(u, dict)]
            link = page.get("@odata.nextLink")
            url, params = (link if isinstance(link, str) else None), None
        raise ProtocolError(f"{self.app_id}: user listing still paging after {MAX_PAGES} pages")

    async def disable(self, account_id: str) -> Disabled:
        response = await self.transport.request(
            "PATCH", self._user(account_id), json_body={"accountEnabled": False}, allow=(404,)
        )
        return "gone" if response.status_code == 404 else "disabled"

    async def revoke_sessions(self, account_id: str) -> Revoked:
        response = await self.transport.request(
            "POST", f"{self._user(account_id)}/revokeSignInSessions", allow=(404,)
        )
        return "gone" if response.status_code == 404 else "revoked"

    async def read_back(self, account_id: str) -> IdpReadBack:
        user = await self.transport.get_json(
            self._user(account_id), {"$select": "id,accountEnabled"}, missing_ok=True
        )
        return IdpReadBack.of_flag(user, "accountEnabled", disabled_when=False)

    async def probe(self) -> Probe:
        await self.transport.get_json("/v1.0/users", {"$top": 1, "$select": "id"})
        credentials = self.transport.credentials
        roles = token_roles(await credentials.authorization()) if credentials else None
        missing = []
        if roles is not None:
            if not DISABLE_ROLES & set(roles):
                missing.append("application permission User.EnableDisableAccount.All")
            if not REVOKE_ROLES & set(roles):
                missing.append("application permission User.RevokeSessions.All")
        return Probe(authenticated=self.transport.source, missing=missing, granted=roles)

    @staticmethod
    def _user(account_id: str) -> str:
        return f"/v1.0/users/{quote(account_id, safe='')}"


def _account(user: dict[str, Any]) -> Account:
    upn = str(user.get("userPrincipalName") or user.get("id"))
    mail = user.get("mail")
    enabled = user.get("accountEnabled")
    return Account(
        id=str(user.get("id")),
        user_name=upn,
        emails=[mail] if isinstance(mail, str) else [],
        active=enabled if isinstance(enabled, bool) else None,
        display_name=user.get("displayName") if isinstance(user.get("displayName"), str) else None,
    )
