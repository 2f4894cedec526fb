"""A local Microsoft Entra ID: the identity platform's v2.0 token endpoint (client credentials,
client_secret_post or basic) and the Microsoft Graph v1.0 user calls offboard makes.

Graph errors are ``{"error": {"code", "message", "innerError"}}``; ``$filter`` supports
``userPrincipalName``/``mail`` ``eq '<literal>'`` (quotes doubled) joined by ``or``; pages of
``page_size`` carry an absolute ``@odata.nextLink``; ``accountEnabled`` only when selected.
App-only access tokens are JWTs whose ``roles`` claim lists the application permissions.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from tests.vendor_server import Request, Response, VendorServer, json_response

CLAUSE = r"(userPrincipalName|mail) eq '((?:[^']|'')*)'"
DEFAULT_SELECT = ["id", "displayName", "mail", "userPrincipalName"]
ALL_ROLES = ["User.Read.All", "User.EnableDisableAccount.All", "User.RevokeSessions.All"]


def graph_error(status: int, code: str, message: str) -> Response:
    inner = {"date": "2025-01-01T00:00:00", "request-id": str(uuid.uuid4())}
    return json_response(status, {"error": {"code": code, "message": message, "innerError": inner}})


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


@dataclass
class GraphServer(VendorServer):
    tenant_id: str = "contoso-tenant"
    client_id: str = "11111111-2222-3333-4444-555555555555"
    client_secret: str = "entra-secret-7f3a9c"
    roles: list[str] = field(default_factory=lambda: list(ALL_ROLES))
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    page_size: int = 100
    issued: dict[str, list[str]] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.route("POST", r"/([^/]+)/oauth2/v2\.0/token", self._token)
        self.route("GET", r"/v1\.0/users", self._list)
        self.route("GET", r"/v1\.0/users/([^/]+)", self._get)
        self.route("PATCH", r"/v1\.0/users/([^/]+)", self._patch)
        self.route("POST", r"/v1\.0/users/([^/]+)/revokeSignInSessions", self._revoke)

    def add_user(self, upn: str, mail: str | None = None, enabled: bool = True) -> str:
        user_id = str(uuid.uuid4())
        self.users[user_id] = {
            "id": user_id,
            "userPrincipalName": upn,
            "mail": mail if mail is not None else upn,
            "displayName": upn.split("@")[0].replace(".", " ").title(),
            "accountEnabled": enabled,
        }
        return user_id

    def enabled(self, user_id: str) -> bool:
        with self.lock:
            return bool(self.users[user_id]["accountEnabled"])

    def _token(self, request: Request, match: re.Match[str]) -> Response:
        form = request.form()
        self.token_requests.append({k: v for k, v in form.items() if k != "client_secret"})
        if match[1] != self.tenant_id:
            return json_response(
                400,
                {"error": "invalid_request", "error_description": "AADSTS90002: Tenant not found."},
            )
        if form.get("grant_type") != "client_credentials":
            return json_response(400, {"error": "unsupported_grant_type"})
        if (
            form.get("client_id") != self.client_id
            or form.get("client_secret") != self.client_secret
        ):
            return json_response(
                401,
                {
                    "error": "invalid_client",
                    "error_description": "AADSTS7000215: Invalid client secret provided.",
                    "error_codes": [7000215],
                },
            )
        if not form.get("scope", "").endswith("/.default"):
            return json_response(
                400, {"error": "invalid_scope", "error_description": "AADSTS1002012"}
            )
        claims = {"aud": "https://graph.microsoft.com", "tid": self.tenant_id, "roles": self.roles}
        token = f"{_b64({'typ': 'JWT', 'alg': 'RS256'})}.{_b64(claims)}.{uuid.uuid4().hex}"
        self.issued[token] = list(self.roles)
        body = {
            "token_type": "Bearer",
            "expires_in": 3599,
            "ext_expires_in": 3599,
            "access_token": token,
        }
        return json_response(200, body)

    def _guard(self, request: Request, role: str | None) -> Response | None:
        roles = self.issued.get(request.bearer)
        if roles is None:
            return graph_error(
                401, "InvalidAuthenticationToken", "Access token is empty or invalid."
            )
        if role and role not in roles:
            return graph_error(
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            )
        return None

    def _view(self, user: dict[str, Any], select: str | None) -> dict[str, Any]:
        keys = select.split(",") if select else DEFAULT_SELECT
        return {k: user.get(k) for k in keys}

    def _list(self, request: Request, _: re.Match[str]) -> Response:
        denied = self._guard(request, None)
        if denied:
            return denied
        expr = request.query.get("$filter", "")
        users = list(self.users.values())
        if expr:
            if not re.fullmatch(f"{CLAUSE}( or {CLAUSE})*", expr):
                return graph_error(400, "BadRequest", f"Invalid filter clause: {expr[:60]}")
            wanted = [(a, v.replace("''", "'").lower()) for a, v in re.findall(CLAUSE, expr)]
            users = [u for u in users if any(str(u.get(a) or "").lower() == v for a, v in wanted)]
        size = min(int(request.query.get("$top", self.page_size)), self.page_size)
        skip = int(request.query.get("$skiptoken", 0))
        select = request.query.get("$select")
        body: dict[str, Any] = {
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users",
            "value": [self._view(u, select) for u in users[skip : skip + size]],
        }
        if skip + size < len(users):
            query = {k: v for k, v in request.query.items() if k != "$skiptoken"}
            query["$skiptoken"] = str(skip + size)
            body["@odata.nextLink"] = f"{self.url}/v1.0/users?{urlencode(query)}"
        return json_response(200, body)

    def _find(self, match: re.Match[str]) -> dict[str, Any] | None:
        key = match[1]
        return self.users.get(key) or next(
            (u for u in self.users.values() if u["userPrincipalName"] == key), None
        )

    def _missing(self, key: str) -> Response:
        return graph_error(
            404,
            "Request_ResourceNotFound",
            f"Resource '{key}' does not exist or one of its queried reference-property objects "
            "are not present.",
        )

    def _get(self, request: Request, match: re.Match[str]) -> Response:
        denied = self._guard(request, None)
        if denied:
            return denied
        user = self._find(match)
        if user is None:
            return self._missing(match[1])
        return json_response(200, self._view(user, request.query.get("$select")))

    def _patch(self, request: Request, match: re.Match[str]) -> Response:
        denied = self._guard(request, "User.EnableDisableAccount.All")
        if denied:
            return denied
        user = self._find(match)
        if user is None:
            return self._missing(match[1])
        body = request.json()
        if not isinstance(body, dict) or not isinstance(body.get("accountEnabled"), bool):
            return graph_error(
                400, "Request_BadRequest", "Invalid value specified for property 'accountEnabled'."
            )
        user["accountEnabled"] = body["accountEnabled"]
        return json_response(204)

    def _revoke(self, request: Request, match: re.Match[str]) -> Response:
        denied = self._guard(request, "User.RevokeSessions.All")
        if denied:
            return denied
        user = self._find(match)
        if user is None:
            return self._missing(match[1])
        self.revoked.append(user["id"])
        context = "https://graph.microsoft.com/v1.0/$metadata#Edm.Boolean"
        return json_response(200, {"@odata.context": context, "value": True})

    def not_found(self, request: Request) -> Response:
        return graph_error(
            400, "BadRequest", f"Resource not found for the segment '{request.path}'."
        )
