"""Okta (Users and Sessions APIs, /api/v1): suspend or deactivate a user, clear sessions.

Contract used (developer.okta.com, Management API):
- ``GET /api/v1/users?search=<expr>&limit=200``: a JSON array of users; further pages in the
  ``Link: <...>; rel="next"`` header. ``search`` also finds SUSPENDED and DEPROVISIONED users.
- ``GET /api/v1/users/{id}``: the user; ``status`` is ACTIVE, SUSPENDED, DEPROVISIONED, ...
- ``POST /api/v1/users/{id}/lifecycle/suspend`` (ACTIVE users only) or
  ``POST /api/v1/users/{id}/lifecycle/deactivate?sendEmail=false``: 200 ``{}``.
- ``DELETE /api/v1/users/{id}/sessions?oauthTokens=true``: 204, every session and every
  OAuth token the org issued to the user revoked.
- Errors ``{errorCode, errorSummary, errorId, errorCauses}``; 429 carries
  ``X-Rate-Limit-Reset`` (a Unix time), which is honoured like Retry-After.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from config import OktaSettings
from connectors.api_transport import ApiTransport
from connectors.base import Account, Lookup, ProtocolError
from connectors.idp import Disabled, IdpReadBack, Probe, Revoked

PAGE_LIMIT = 200
MAX_PAGES = 50
RATE_LIMIT_HEADERS = ("Retry-After", "X-Rate-Limit-Reset")
# Statuses in which the user can no longer sign in, per catalog action.
DISABLED = {"suspend": {"SUSPENDED", "DEPROVISIONED"}, "deactivate": {"DEPROVISIONED"}}


def search_literal(value: str) -> str:
    """``value`` as a quoted string in an Okta search expression (backslash and quote escaped)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def next_link(link_header: str | None) -> str | None:
    """The ``rel="next"`` URL of an RFC 8288 Link header, if any."""
    for part in (link_header or "").split(","):
        url, _, params = part.partition(";")
        if 'rel="next"' in params.replace(" ", ""):
            return url.strip().strip("<>")
    return None


class OktaConnector:
    """One Okta org; ``transport`` carries its auth (SSWS token or OAuth 2.0 service app)."""

    def __init__(self, app_id: str, settings: OktaSettings, transport: ApiTransport) -> None:
        self.app_id = app_id
        self.settings = settings
        self.transport = transport
        self.verb = "suspend" if settings.action == "suspend" else "deactivate"

    async def lookup(self, value: str) -> Lookup:
        literal = search_literal(value)
        expr = f"profile.login eq {literal} or profile.email eq {literal}"
        accounts: list[Account] = []
        url: str | None = "/api/v1/users"
        params: dict[str, Any] | None = {"search": expr, "limit": PAGE_LIMIT}
        for _ in range(MAX_PAGES):
            if url is None:
                return Lookup(accounts=accounts, tried=[f"search {expr}"])
            response = await self.transport.request("GET", url, params=params)
            page = self.transport.json(response, "GET /api/v1/users")
            if not isinstance(page, list):
                raise ProtocolError(f"{self.app_id}: GET /api/v1/users: not a list of users")
            accounts += [_account(u) for u in page if isinstance(u, dict)]
            url, params = next_link(response.headers.get("Link")), None
        raise ProtocolError(f"{self.app_id}: user search still paging after {MAX_PAGES} pages")

    async def disable(self, account_id: str) -> Disabled:
        path = f"/api/v1/users/{quote(account_id, safe='')}"
        user = await self.transport.get_json(path, missing_ok=True)
        if user is None:
            return "gone"
        if _status(user) in DISABLED[self.settings.action]:
            return "already_disabled"
        # Okta suspends only ACTIVE users; any other state (STAGED, LOCKED_OUT, ...) is
        # deactivated instead, which also stops sign-ins.
        action = self.settings.action if _status(user) == "ACTIVE" else "deactivate"
        params = {"sendEmail": "false"} if action == "deactivate" else None
        response = await self.transport.request(
            "POST", f"{path}/lifecycle/{action}", params=params, allow=(404,)
        )
        return "gone" if response.status_code == 404 else "disabled"

    async def revoke_sessions(self, account_id: str) -> Revoked:
        response = await self.transport.request(
            "DELETE",
            f"/api/v1/users/{quote(account_id, safe='')}/sessions",
            params={"oauthTokens": "true"},
            allow=(404,),
        )
        return "gone" if response.status_code == 404 else "revoked"

    async def read_back(self, account_id: str) -> IdpReadBack:
        user = await self.transport.get_json(
            f"/api/v1/users/{quote(account_id, safe='')}", missing_ok=True
        )
        if user is None:
            return IdpReadBack(state="gone", raw="404")
        status = _status(user)
        if status in DISABLED[self.settings.action]:
            return IdpReadBack(state="disabled", raw=status)
        return IdpReadBack(state="enabled" if status else "unknown", raw=status or "no status")

    async def probe(self) -> Probe:
        await self.transport.request("GET", "/api/v1/users", params={"limit": 1})
        granted = getattr(self.transport.credentials, "granted", None)
        missing: list[str] = []
        if granted is not None and "okta.users.manage" not in granted:
            missing.append("scope okta.users.manage (suspend, deactivate, clear sessions)")
        return Probe(authenticated=self.transport.source, missing=missing, granted=granted)


def _status(user: Any) -> str:
    status = user.get("status") if isinstance(user, dict) else None
    return status if isinstance(status, str) else ""


def _account(user: dict[str, Any]) -> Account:
    profile = user.get("profile") if isinstance(user.get("profile"), dict) else {}
    assert isinstance(profile, dict)
    login = str(profile.get("login") or user.get("id"))
    email = profile.get("email")
    return Account(
        id=str(user.get("id")),
        user_name=login,
        emails=[email] if isinstance(email, str) else [],
        active=_status(user) not in DISABLED["suspend"],
        display_name=" ".join(str(profile[k]) for k in ("firstName", "lastName") if profile.get(k)),
    )
