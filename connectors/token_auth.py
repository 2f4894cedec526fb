"""Access tokens for IdP APIs from the field's libraries, cached and refreshed once on a 401.

- OAuth 2.0 client credentials (RFC 6749 4.4) with Authlib: ``client_secret_post`` (Entra ID)
  or ``private_key_jwt`` (RFC 7523, Okta service apps).
- Google service-account JWT bearer grant (RFC 7523 2.1) with google-auth, with domain-wide
  delegation (``sub`` = the admin it acts as); the key file's ``token_uri`` says where.

Both libraries are synchronous (requests): a token fetch runs in a thread, one at a time per
app. Messages name the env var holding the secret and the OAuth error code, never a value.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from google.auth import exceptions as google_errors
from google.auth.transport.requests import Request as GoogleRequest
from google.oauth2 import service_account
from pydantic import SecretStr

from connectors.base import AuthError, ConfigError, ConnectorError, TransientError

# Refresh this long before expiry, so a request never leaves with a token dying in flight.
EXPIRY_MARGIN_SECONDS = 30.0
# OAuth errors that a later try may not get (RFC 6749 5.2 and common practice).
TRANSIENT_OAUTH_ERRORS = frozenset({"temporarily_unavailable", "server_error"})
# The credential itself is wrong (401-like); any other refusal is about what it may do (403).
BAD_CREDENTIAL_ERRORS = frozenset({"invalid_client", "invalid_grant"})


def _refusal_status(code: str) -> int:
    return 401 if code in BAD_CREDENTIAL_ERRORS else 403


class Token:
    """One fetched access token: its value, when to renew it, and what it grants."""

    def __init__(self, value: str, lifetime: float, granted: list[str] | None) -> None:
        self.value = SecretStr(value)
        margin = min(EXPIRY_MARGIN_SECONDS, lifetime / 2)
        self.renew_at = time.monotonic() + max(lifetime - margin, 0)
        self.granted = granted


class LibraryToken:
    """``Credentials`` (see connectors/auth.py) over a blocking ``fetch() -> Token``.

    Concurrent requests share one fetch; a 401 refreshes once, and only if nobody else has
    refreshed since the rejected token was handed out.
    """

    def __init__(self, source: str, fetch: Callable[[], Token], secrets: list[str]) -> None:
        self._source = source
        self._fetch = fetch
        self._secrets = secrets
        self._token: Token | None = None
        self._issued: list[str] = []
        self._lock = asyncio.Lock()
        self.fetches = 0

    @property
    def source(self) -> str:
        return self._source

    @property
    def granted(self) -> list[str] | None:
        """Scopes or roles of the current token, when the issuer says (None: unknown)."""
        return self._token.granted if self._token else None

    async def authorization(self) -> str:
        async with self._lock:
            if self._token is None or time.monotonic() >= self._token.renew_at:
                await self._renew()
            assert self._token is not None
            return f"Bearer {self._token.value.get_secret_value()}"

    async def refresh(self, rejected: str) -> bool:
        async with self._lock:
            current = self._token.value.get_secret_value() if self._token else None
            if current is not None and rejected != f"Bearer {current}":
                return True  # another request already refreshed
            await self._renew()
            return True

    def secrets(self) -> list[str]:
        return [*self._secrets, *self._issued]

    def __repr__(self) -> str:
        return f"LibraryToken({self._source})"

    async def _renew(self) -> None:
        self._token = None
        self.fetches += 1
        token = await asyncio.to_thread(self._fetch)
        self._issued = [*self._issued[-3:], token.value.get_secret_value()]
        self._token = token


def oauth_client_credentials(
    app_id: str,
    token_url: str,
    client_id: str,
    secret: SecretStr,
    *,
    method: str,
    scope: str,
    source: str,
    timeout: float,
) -> LibraryToken:
    """Client credentials grant at ``token_url``; ``method`` is ``client_secret_post`` (the
    secret in the form) or ``private_key_jwt`` (``secret`` is a private key PEM or JWK that
    signs the client assertion, RFC 7523 2.2)."""
    session = OAuth2Session(
        client_id,
        secret.get_secret_value(),
        token_endpoint_auth_method=method,
        scope=scope,
    )
    if method == "private_key_jwt":
        session.register_client_auth_method(PrivateKeyJWT(token_url))

    def fetch() -> Token:
        where = f"{app_id}: the token endpoint {token_url}"
        try:
            body = session.fetch_token(token_url, grant_type="client_credentials", timeout=timeout)
        except OAuthError as exc:
            if exc.error in TRANSIENT_OAUTH_ERRORS:
                raise TransientError(f"{where}: {exc.error}") from None
            raise AuthError(
                f"{app_id}: authentication failed: {where.removeprefix(f'{app_id}: ')} refused "
                f"{source} ({exc.error})",
                status=_refusal_status(str(exc.error)),
            ) from None
        except requests.HTTPError as exc:
            raise _http_error(where, exc.response, source) from None
        except (requests.RequestException, ValueError) as exc:
            raise TransientError(f"{where}: {type(exc).__name__}") from None
        return _token(body, where)

    return LibraryToken(source, fetch, [secret.get_secret_value()])


def google_service_account(
    app_id: str,
    key_json: SecretStr,
    subject: str,
    scopes: list[str],
    *,
    source: str,
    timeout: float,
) -> LibraryToken:
    """Service-account JWT bearer grant acting as ``subject`` (domain-wide delegation).

    Raises ConfigError when the env var does not hold a service account key file (JSON).
    """
    try:
        info: Mapping[str, Any] = json.loads(key_json.get_secret_value())
        credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            info, scopes=scopes, subject=subject
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise ConfigError(
            f"{app_id}: {source} is not a service account key file (JSON): {type(exc).__name__}"
        ) from None
    token_uri = str(info.get("token_uri", ""))
    session = requests.Session()

    def request(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", timeout)
        return GoogleRequest(session)(*args, **kwargs)

    def fetch() -> Token:
        where = f"{app_id}: the token endpoint {token_uri}"
        try:
            credentials.refresh(request)
        except google_errors.RefreshError as exc:
            code = _google_error_code(exc)
            if exc.retryable:
                raise TransientError(f"{where}: {code}") from None
            raise AuthError(
                f"{app_id}: authentication failed: {where.removeprefix(f'{app_id}: ')} refused "
                f"{source} acting as "
                f"{subject} ({code}); domain-wide delegation must grant {', '.join(scopes)}",
                status=_refusal_status(code),
            ) from None
        except google_errors.TransportError as exc:
            raise TransientError(f"{where}: {type(exc).__name__}") from None
        expiry = credentials.expiry
        lifetime = 3600.0
        if isinstance(expiry, datetime):
            lifetime = (expiry.replace(tzinfo=UTC) - datetime.now(UTC)).total_seconds()
        # The grant succeeded, so every requested scope was granted (Google refuses otherwise).
        return Token(str(credentials.token), lifetime, list(scopes))

    private_key = str(info.get("private_key", ""))
    return LibraryToken(source, fetch, [private_key, key_json.get_secret_value()])


def _token(body: Mapping[str, Any], where: str) -> Token:
    value = body.get("access_token")
    if not isinstance(value, str) or not value:
        raise TransientError(f"{where}: no access_token")
    try:
        lifetime = float(body.get("expires_in", 3600))
    except (TypeError, ValueError):
        lifetime = 3600.0
    scope = body.get("scope")
    return Token(value, lifetime, scope.split() if isinstance(scope, str) else None)


def _http_error(where: str, response: requests.Response | None, source: str) -> ConnectorError:
    status = response.status_code if response is not None else 0
    if status in (400, 401, 403):
        return AuthError(f"{where}: refused {source} (HTTP {status})", status=status)
    return TransientError(f"{where}: HTTP {status}", status=status or None)


def _google_error_code(exc: google_errors.RefreshError) -> str:
    """The OAuth error code of a refused grant (never its description, which may echo)."""
    data = exc.args[1] if len(exc.args) > 1 else None
    code = data.get("error") if isinstance(data, dict) else None
    return code if isinstance(code, str) and code.isascii() and len(code) < 64 else "refused"
