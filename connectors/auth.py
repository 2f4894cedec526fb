"""Credentials for SCIM apps: a static bearer token, or OAuth2 client credentials.

Secrets live only here, as ``SecretStr``; everything that leaves (error messages, logs) names
the env var they came from instead. ``secrets()`` lets the connector scrub any message that a
server might have echoed a secret into.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol

import httpx
import structlog
from pydantic import SecretStr

from connectors.base import AuthError, TransientError

log = structlog.get_logger("offboard.scim.auth")

# Refresh this long before the issuer's expiry, so a request never leaves with a token that
# dies in flight (capped at half the lifetime for short-lived tokens).
EXPIRY_MARGIN_SECONDS = 30.0
DEFAULT_EXPIRES_IN = 3600.0


class Credentials(Protocol):
    @property
    def source(self) -> str:
        """Where the credentials come from, for messages: env var names, never values."""
        ...

    async def authorization(self) -> str:
        """The Authorization header value for the next request."""
        ...

    async def refresh(self, rejected: str) -> bool:
        """The app answered 401 to ``rejected``: get fresh credentials; False if impossible."""
        ...

    def secrets(self) -> list[str]:
        """Every secret value held, so messages can be scrubbed of them."""
        ...


class BearerToken:
    """A static token from an env var; ``scheme`` is ``Bearer`` (Okta API tokens: ``SSWS``)."""

    def __init__(self, token: SecretStr, token_env: str, scheme: str = "Bearer") -> None:
        self._token = token
        self._env = token_env
        self._scheme = scheme

    @property
    def source(self) -> str:
        return f"the token in ${self._env}"

    async def authorization(self) -> str:
        return f"{self._scheme} {self._token.get_secret_value()}"

    async def refresh(self, rejected: str) -> bool:
        return False

    def secrets(self) -> list[str]:
        return [self._token.get_secret_value()]

    def __repr__(self) -> str:
        return f"BearerToken(${self._env})"


class OAuth2ClientCredentials:
    """RFC 6749 4.4 client credentials grant (client_secret_basic), with a cached token.

    Concurrent requests share one token fetch; a 401 refreshes once, and only if nobody else
    has refreshed since the rejected token was handed out.
    """

    def __init__(
        self,
        app_id: str,
        token_url: str,
        client_id: str,
        client_secret: SecretStr,
        *,
        client: httpx.AsyncClient,
        client_id_env: str,
        client_secret_env: str,
        scope: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._app = app_id
        self._url = token_url
        self._client_id = client_id
        self._secret = client_secret
        self._client = client
        self._envs = (client_id_env, client_secret_env)
        self._scope = scope
        self._clock = clock
        self._token: SecretStr | None = None
        self._expires_at = 0.0
        self._issued: list[SecretStr] = []
        self._lock = asyncio.Lock()
        self.fetches = 0

    @property
    def source(self) -> str:
        return f"the OAuth2 client credentials in ${self._envs[0]} / ${self._envs[1]}"

    async def authorization(self) -> str:
        async with self._lock:
            if self._token is None or self._clock() >= self._expires_at:
                await self._fetch()
            assert self._token is not None
            return f"Bearer {self._token.get_secret_value()}"

    async def refresh(self, rejected: str) -> bool:
        async with self._lock:
            current = f"Bearer {self._token.get_secret_value()}" if self._token else None
            if current is not None and current != rejected:
                return True  # another request already refreshed
            await self._fetch()
            log.info("scim.token_refreshed", app=self._app, reason="401 from the app")
            return True

    def secrets(self) -> list[str]:
        return [self._secret.get_secret_value(), *(t.get_secret_value() for t in self._issued)]

    def __repr__(self) -> str:
        return f"OAuth2ClientCredentials({self._url}, ${self._envs[0]}, ${self._envs[1]})"

    async def _fetch(self) -> None:
        self._token = None
        data = {"grant_type": "client_credentials"}
        if self._scope:
            data["scope"] = self._scope
        self.fetches += 1
        try:
            response = await self._client.post(
                self._url,
                data=data,
                auth=httpx.BasicAuth(self._client_id, self._secret.get_secret_value()),
                headers={"Accept": "application/json"},
            )
        except httpx.TransportError as exc:
            raise TransientError(
                f"{self._app}: token endpoint {self._url}: {type(exc).__name__}"
            ) from exc
        status = response.status_code
        if status in (400, 401, 403):
            raise AuthError(
                f"{self._app}: authentication failed: the token endpoint {self._url} refused "
                f"{self.source} (HTTP {status}{_oauth_error(response)})",
                status=status,
            )
        if status >= 300:
            raise TransientError(
                f"{self._app}: token endpoint {self._url}: HTTP {status}", status=status
            )
        try:
            body: Any = response.json()
        except ValueError as exc:
            raise TransientError(
                f"{self._app}: token endpoint {self._url}: response is not JSON"
            ) from exc
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise TransientError(f"{self._app}: token endpoint {self._url}: no access_token")
        try:
            lifetime = float(body.get("expires_in", DEFAULT_EXPIRES_IN))
        except (TypeError, ValueError):
            lifetime = DEFAULT_EXPIRES_IN
        margin = min(EXPIRY_MARGIN_SECONDS, lifetime / 2)
        self._token = SecretStr(token)
        self._issued = [*self._issued[-3:], self._token]
        self._expires_at = self._clock() + max(lifetime - margin, 0.0)


def _oauth_error(response: httpx.Response) -> str:
    """The RFC 6749 5.2 error code, if any (never the description, which may echo input)."""
    try:
        body = response.json()
    except ValueError:
        return ""
    code = body.get("error") if isinstance(body, dict) else None
    return f": {code}" if isinstance(code, str) and code.isascii() and len(code) < 64 else ""
