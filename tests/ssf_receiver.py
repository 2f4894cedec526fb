"""A Shared Signals receiver (push delivery, RFC 8935) that verifies every SET it is sent.

It reads the transmitter's ``/.well-known/ssf-configuration``, fetches the ``jwks_uri`` and
checks the SET's signature, ``typ``, issuer, audience and event type, as a real receiver
does; it answers 202, or 400/401 with RFC 8935's ``{"err", "description"}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from tests.vendor_server import Request, Response, VendorServer, json_response

SESSION_REVOKED = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"


def set_error(status: int, err: str, description: str) -> Response:
    return json_response(status, {"err": err, "description": description})


@dataclass
class SsfReceiver(VendorServer):
    transmitter: str = ""  # the transmitter's base URL (offboard's API)
    audience: str = "https://receiver.example.com"
    token: str = "ssf-receiver-token-2c8e"
    received: list[dict[str, Any]] = field(default_factory=list)  # verified claims
    headers_seen: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.route("POST", r"/events", self._event)

    @property
    def endpoint(self) -> str:
        return f"{self.url}/events"

    def _keys(self) -> tuple[str, KeySet]:
        metadata = httpx.get(f"{self.transmitter}/.well-known/ssf-configuration").json()
        jwks = httpx.get(metadata["jwks_uri"]).json()
        return metadata["issuer"], KeySet.import_key_set(jwks)

    def _event(self, request: Request, _: re.Match[str]) -> Response:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return set_error(401, "authentication_failed", "bad or missing bearer token")
        if request.headers.get("content-type") != "application/secevent+jwt":
            return set_error(400, "invalid_request", "not application/secevent+jwt")
        issuer, keys = self._keys()
        try:
            token = jwt.decode(request.body.decode(), keys)
        except (JoseError, ValueError) as exc:
            return set_error(400, "invalid_key", f"signature does not verify: {exc}")
        claims = token.claims
        if token.header.get("typ") != "secevent+jwt":
            return set_error(400, "invalid_request", "typ is not secevent+jwt")
        if claims.get("iss") != issuer:
            return set_error(400, "invalid_issuer", f"unexpected issuer {claims.get('iss')}")
        if claims.get("aud") != self.audience:
            return set_error(400, "invalid_audience", f"not for {self.audience}")
        if SESSION_REVOKED not in (claims.get("events") or {}):
            return set_error(400, "invalid_request", "no session-revoked event")
        self.headers_seen.append(token.header)
        self.received.append(claims)
        return 202, [], b""
