"""A local Google Workspace: the OAuth 2.0 token endpoint's service-account JWT bearer grant
(with domain-wide delegation) and the Admin SDK Directory API user calls offboard makes.

Errors are ``{"error": {"code", "message", "errors": [{"message", "domain", "reason"}],
"status"}}``. A user key is a primary email, an alias or the id. ``service_account_info()``
is the JSON key file an admin downloads, with ``token_uri`` pointing here.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from tests.vendor_server import Request, Response, VendorServer, json_response

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# Google's documented audience of a service-account assertion, wherever it is posted.
AUDIENCE = "https://oauth2.googleapis.com/token"
USER_SCOPE = "https://www.googleapis.com/auth/admin.directory.user"
SECURITY_SCOPE = "https://www.googleapis.com/auth/admin.directory.user.security"
STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
}


def google_error(status: int, reason: str, message: str) -> Response:
    error = {
        "code": status,
        "message": message,
        "errors": [{"message": message, "domain": "global", "reason": reason}],
        "status": STATUS.get(status, "UNKNOWN"),
    }
    return json_response(status, {"error": error})


@dataclass
class GoogleServer(VendorServer):
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048))
    client_email: str = "offboard@offboard-test.iam.gserviceaccount.com"
    admins: list[str] = field(default_factory=lambda: ["admin@example.com"])
    # Domain-wide delegation: the scopes an admin granted the service account's client id.
    delegated: list[str] = field(default_factory=lambda: [USER_SCOPE, SECURITY_SCOPE])
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    issued: dict[str, list[str]] = field(default_factory=dict)
    assertions: list[dict[str, Any]] = field(default_factory=list)
    signed_out: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.route("POST", r"/token", self._token)
        self.route("GET", r"/admin/directory/v1/users", self._list)
        self.route("GET", r"/admin/directory/v1/users/([^/]+)", self._get)
        self.route("PUT", r"/admin/directory/v1/users/([^/]+)", self._put)
        self.route("POST", r"/admin/directory/v1/users/([^/]+)/signOut", self._sign_out)

    def service_account_info(self) -> dict[str, str]:
        return {
            "type": "service_account",
            "project_id": "offboard-test",
            "private_key_id": self.key.thumbprint(),
            "private_key": self.key.as_pem(private=True).decode(),
            "client_email": self.client_email,
            "client_id": "104857600000000000001",
            "token_uri": f"{self.url}/token",
        }

    def add_user(self, email: str, aliases: tuple[str, ...] = (), suspended: bool = False) -> str:
        user_id = str(100000000000000000000 + len(self.users))
        given, _, family = email.split("@")[0].partition(".")
        self.users[user_id] = {
            "kind": "admin#directory#user",
            "id": user_id,
            "primaryEmail": email,
            "aliases": list(aliases),
            "name": {
                "givenName": given.title(),
                "familyName": family.title(),
                "fullName": f"{given.title()} {family.title()}",
            },
            "suspended": suspended,
            "emails": [{"address": email, "primary": True}],
        }
        return user_id

    def suspended(self, user_id: str) -> bool:
        with self.lock:
            return bool(self.users[user_id]["suspended"])

    def _token(self, request: Request, _: re.Match[str]) -> Response:
        form = request.form()
        if form.get("grant_type") != JWT_BEARER:
            return json_response(400, {"error": "unsupported_grant_type"})
        try:
            claims = jwt.decode(form.get("assertion", ""), self.key).claims
        except (JoseError, ValueError):
            return json_response(
                400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
            )
        self.assertions.append(claims)
        if claims.get("iss") != self.client_email or claims.get("aud") != AUDIENCE:
            return json_response(
                400, {"error": "invalid_grant", "error_description": "Invalid JWT: bad iss or aud"}
            )
        if float(claims.get("exp", 0)) < time.time():
            return json_response(
                400, {"error": "invalid_grant", "error_description": "Invalid JWT: expired"}
            )
        scopes = str(claims.get("scope", "")).split()
        if not scopes or not set(scopes) <= set(self.delegated):
            return json_response(
                401,
                {
                    "error": "unauthorized_client",
                    "error_description": "Client is unauthorized to retrieve access tokens "
                    "using this method, or client not authorized for any of the scopes "
                    "requested.",
                },
            )
        if claims.get("sub") not in self.admins and claims.get("sub") not in self._emails():
            return json_response(
                400, {"error": "invalid_grant", "error_description": "Invalid email or User ID"}
            )
        token = f"ya29.{uuid.uuid4().hex}"
        self.issued[token] = scopes if claims.get("sub") in self.admins else []
        return json_response(
            200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}
        )

    def _emails(self) -> set[str]:
        return {u["primaryEmail"] for u in self.users.values()}

    def _guard(self, request: Request, scope: str) -> Response | None:
        scopes = self.issued.get(request.bearer)
        if scopes is None:
            return google_error(401, "authError", "Invalid Credentials")
        if scope not in scopes:
            return google_error(403, "forbidden", "Not Authorized to access this resource/api")
        return None

    def _find(self, key: str) -> dict[str, Any] | None:
        key = unquote(key).lower()
        for user in self.users.values():
            names = {
                user["id"],
                user["primaryEmail"].lower(),
                *(a.lower() for a in user["aliases"]),
            }
            if key in names:
                return user
        return None

    def _list(self, request: Request, _: re.Match[str]) -> Response:
        denied = self._guard(request, USER_SCOPE)
        if denied:
            return denied
        if request.query.get("customer") != "my_customer" and "domain" not in request.query:
            return google_error(400, "badRequest", "Bad Request")
        size = int(request.query.get("maxResults", 100))
        return json_response(
            200, {"kind": "admin#directory#users", "users": list(self.users.values())[:size]}
        )

    def _get(self, request: Request, match: re.Match[str]) -> Response:
        denied = self._guard(request, USER_SCOPE)
        if denied:
            return denied
        user = self._find(match[1])
        if user is None:
            return google_error(404, "notFound", "Resource Not Found: userKey")
        return json_response(200, user)

    def _put(self, request: Request, match: re.Match[str]) -> Response:
        denied = self._guard(request, USER_SCOPE)
        if denied:
            return denied
        user = self._find(match[1])
        if user is None:
            return google_error(404, "notFound", "Resource Not Found: userKey")
        body = request.json()
        if not isinstance(body, dict):
            return google_error(400, "invalid", "Invalid Input")
        user.update({k: v for k, v in body.items() if k not in ("id", "kind")})
        return json_response(200, user)

    def _sign_out(self, request: Request, match: re.Match[str]) -> Response:
        denied = self._guard(request, SECURITY_SCOPE)
        if denied:
            return denied
        user = self._find(match[1])
        if user is None:
            return google_error(404, "notFound", "Resource Not Found: userKey")
        self.signed_out.append(user["id"])
        return json_response(204)

    def not_found(self, request: Request) -> Response:
        return google_error(404, "notFound", "Not Found")
