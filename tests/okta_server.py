"""A local Okta org: the Users, Lifecycle and Sessions calls offboard makes, and the OAuth 2.0
token endpoint of an API service app (client credentials, private_key_jwt), per Okta's docs.

Errors have Okta's shape ``{errorCode, errorSummary, errorLink, errorId, errorCauses}``;
search supports ``profile.login``/``profile.email``/``id`` ``eq "<quoted>"`` joined by ``or``;
pages are ``limit`` long with the next one in ``Link: <..>; rel="next"``.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from tests.vendor_server import Request, Response, VendorServer, json_response

CLAUSE = r'(profile\.login|profile\.email|id) eq "((?:[^"\\]|\\.)*)"'
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def okta_error(status: int, code: str, summary: str) -> Response:
    body = {
        "errorCode": code,
        "errorSummary": summary,
        "errorLink": code,
        "errorId": f"oae{uuid.uuid4().hex[:20]}",
        "errorCauses": [],
    }
    return json_response(status, body)


@dataclass
class OktaServer(VendorServer):
    api_token: str = ""
    # OAuth service app: client id -> its public key, and the scopes it was granted.
    clients: dict[str, RSAKey] = field(default_factory=dict)
    granted_scopes: list[str] = field(default_factory=lambda: ["okta.users.manage"])
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    page_cap: int = 200
    issued: dict[str, list[str]] = field(default_factory=dict)  # access token -> scopes
    sessions_cleared: list[tuple[str, str]] = field(default_factory=list)  # (id, oauthTokens)

    def __post_init__(self) -> None:
        self.route("POST", r"/oauth2/v1/token", self._token)
        self.route("GET", r"/api/v1/users", self._search)
        self.route("GET", r"/api/v1/users/([^/]+)", self._get)
        self.route("POST", r"/api/v1/users/([^/]+)/lifecycle/(suspend|deactivate)", self._life)
        self.route("DELETE", r"/api/v1/users/([^/]+)/sessions", self._sessions)

    def add_user(self, login: str, email: str | None = None, status: str = "ACTIVE") -> str:
        user_id = f"00u{uuid.uuid4().hex[:17]}"
        first, _, last = login.split("@")[0].partition(".")
        self.users[user_id] = {
            "id": user_id,
            "status": status,
            "created": "2024-01-02T03:04:05.000Z",
            "profile": {
                "login": login,
                "email": email or login,
                "firstName": first.title(),
                "lastName": last.title(),
            },
        }
        return user_id

    def status_of(self, user_id: str) -> str:
        with self.lock:
            return str(self.users[user_id]["status"])

    # -- auth ----------------------------------------------------------------------------

    def _scopes(self, request: Request) -> list[str] | None:
        """The caller's scopes: everything for the API token, the issued ones for OAuth."""
        authorization = request.headers.get("authorization", "")
        if self.api_token and authorization == f"SSWS {self.api_token}":
            return ["okta.users.read", "okta.users.manage"]
        return self.issued.get(request.bearer) if authorization.startswith("Bearer ") else None

    def _guard(self, request: Request, write: bool) -> Response | None:
        scopes = self._scopes(request)
        if scopes is None:
            return okta_error(401, "E0000011", "Invalid token provided")
        if write and "okta.users.manage" not in scopes:
            return okta_error(
                403, "E0000006", "You do not have permission to perform the requested action"
            )
        return None

    def _token(self, request: Request, _: re.Match[str]) -> Response:
        form = request.form()
        # client_id is optional beside a client assertion (RFC 7523 3): then its iss names it.
        client_id = form.get("client_id") or _unverified_iss(form.get("client_assertion", ""))
        key = self.clients.get(client_id)
        if form.get("grant_type") != "client_credentials":
            return json_response(400, {"error": "unsupported_grant_type"})
        if key is None or form.get("client_assertion_type") != ASSERTION_TYPE:
            return json_response(
                401, {"error": "invalid_client", "error_description": "unknown client"}
            )
        try:
            claims = jwt.decode(form.get("client_assertion", ""), key).claims
        except (JoseError, ValueError):
            return json_response(
                401, {"error": "invalid_client", "error_description": "bad signature"}
            )
        audience = f"{self.url}/oauth2/v1/token"
        if (
            claims.get("iss") != client_id
            or claims.get("sub") != client_id
            or claims.get("aud") != audience
            or float(claims.get("exp", 0)) < time.time()
        ):
            return json_response(
                401, {"error": "invalid_client", "error_description": "bad claims"}
            )
        scopes = form.get("scope", "").split()
        if not scopes or not set(scopes) <= set(self.granted_scopes):
            return json_response(
                400, {"error": "invalid_scope", "error_description": "scope not granted"}
            )
        token = f"oat-{uuid.uuid4().hex}"
        self.issued[token] = scopes
        body = {
            "token_type": "Bearer",
            "expires_in": 3600,
            "access_token": token,
            "scope": " ".join(scopes),
        }
        return json_response(200, body)

    # -- users ---------------------------------------------------------------------------

    def _search(self, request: Request, _: re.Match[str]) -> Response:
        denied = self._guard(request, write=False)
        if denied:
            return denied
        expr = request.query.get("search", "")
        users = list(self.users.values())
        if expr:
            if not re.fullmatch(f"{CLAUSE}( or {CLAUSE})*", expr):
                return okta_error(400, "E0000031", f"Invalid search: {expr}")
            wanted = [
                (attr, re.sub(r"\\(.)", r"\1", value).lower())
                for attr, value in re.findall(CLAUSE, expr)
            ]
            users = [u for u in users if any(_attr(u, a) == v for a, v in wanted)]
        limit = min(int(request.query.get("limit", 200)), 200, self.page_cap)
        after = int(request.query.get("after", 0))
        page = users[after : after + limit]
        headers = []
        if after + limit < len(users):
            query = urlencode({"search": expr, "limit": limit, "after": after + limit})
            headers.append(("Link", f'<{self.url}/api/v1/users?{query}>; rel="next"'))
        return json_response(200, page, headers)

    def _user(self, user_id: str) -> dict[str, Any] | None:
        return self.users.get(user_id)

    def _get(self, request: Request, match: re.Match[str]) -> Response:
        denied = self._guard(request, write=False)
        if denied:
            return denied
        user = self._user(match[1])
        if user is None:
            return okta_error(404, "E0000007", f"Not found: Resource not found: {match[1]} (User)")
        return json_response(200, user)

    def _life(self, request: Request, match: re.Match[str]) -> Response:
        denied = self._guard(request, write=True)
        if denied:
            return denied
        user = self._user(match[1])
        if user is None:
            return okta_error(404, "E0000007", f"Not found: Resource not found: {match[1]} (User)")
        if match[2] == "suspend":
            if user["status"] != "ACTIVE":
                return okta_error(
                    400,
                    "E0000001",
                    "Api validation failed: Cannot suspend a user that is not active",
                )
            user["status"] = "SUSPENDED"
        else:
            if user["status"] == "DEPROVISIONED":
                return okta_error(
                    400, "E0000001", "Api validation failed: user is already deactivated"
                )
            user["status"] = "DEPROVISIONED"
        return json_response(200, {})

    def _sessions(self, request: Request, match: re.Match[str]) -> Response:
        denied = self._guard(request, write=True)
        if denied:
            return denied
        if self._user(match[1]) is None:
            return okta_error(404, "E0000007", f"Not found: Resource not found: {match[1]} (User)")
        self.sessions_cleared.append((match[1], request.query.get("oauthTokens", "false")))
        return json_response(204)

    def not_found(self, request: Request) -> Response:
        return okta_error(404, "E0000022", "The endpoint does not support the provided HTTP method")


def _unverified_iss(assertion: str) -> str:
    try:
        payload = assertion.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return ""
    return str(claims.get("iss", "")) if isinstance(claims, dict) else ""


def _attr(user: dict[str, Any], attr: str) -> str:
    if attr == "id":
        return str(user["id"]).lower()
    return str(user["profile"].get(attr.removeprefix("profile."), "")).lower()
