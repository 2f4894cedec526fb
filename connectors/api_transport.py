"""HTTP for one vendor REST API (Okta, Microsoft Graph, Google Admin SDK, SSF receivers).

The same rules as SCIM apps (``connectors/http_retry.py``): single idempotent requests are
retried on 5xx/408/timeouts/resets/short 429s with backoff, a 429 pauses every request to the
app on this worker for its Retry-After (capped), 401 refreshes OAuth credentials once, and
every failure is a typed ``ConnectorError`` whose message names the app and never a secret.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog

from config import ApiSettings
from connectors.auth import Credentials
from connectors.base import ConnectorError, ProtocolError, RateLimitedError, TransientError
from connectors.http_retry import Retrier, gated_send, retry_after, status_error
from connectors.scim.gate import RateGate

log = structlog.get_logger("offboard.idp")

# Vendor-specific classification of a response before the status rules (e.g. Google's
# 403 rateLimitExceeded is a rate limit, not a permission problem).
Classifier = Callable[[str, httpx.Response], ConnectorError | None]


def api_error_detail(response: httpx.Response) -> str:
    """The vendor's own words for an error, short: Okta ``errorCode: errorSummary``, Graph and
    Google ``error.code: error.message``, RFC 8935 ``err: description``, OAuth ``error``."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip().replace("\n", " ")
        return text[:200] or "(no body)"
    if isinstance(body, dict):
        if "errorSummary" in body:  # Okta
            return f"{body.get('errorCode', '')}: {body['errorSummary']}"[:300]
        error = body.get("error")
        if isinstance(error, dict):  # Microsoft Graph, Google APIs
            code = error.get("status") or error.get("code") or ""
            return f"{code}: {error.get('message', '')}"[:300]
        if "err" in body:  # RFC 8935 push delivery
            return f"{body['err']}: {str(body.get('description', ''))[:200]}"
        if isinstance(error, str):  # OAuth 2.0 (RFC 6749 5.2)
            return error[:64]
    return json.dumps(body)[:200]


class ApiTransport:
    """Sends requests to one vendor API; shared by every run on the worker (one per app)."""

    def __init__(
        self,
        app_id: str,
        base_url: str,
        settings: ApiSettings,
        client: httpx.AsyncClient,
        credentials: Credentials | None,
        gate: RateGate | None = None,
        *,
        rate_limit_headers: Iterable[str] = ("Retry-After",),
        classify: Classifier | None = None,
    ) -> None:
        self.app_id = app_id
        self.settings = settings
        self.credentials = credentials
        self.gate = gate or RateGate(
            settings.rate_limit_per_minute,
            settings.max_concurrent_requests,
            settings.max_pause_in_step_seconds,
        )
        self._client = client
        self._base = base_url.rstrip("/")
        self._origin = urlsplit(self._base)[:2]
        self._rate_headers = tuple(rate_limit_headers)
        self._classify = classify
        self._retrier = Retrier(app_id, settings.request_retries, self.gate, log, "idp.retried")

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: dict[str, Any] | None = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        allow: tuple[int, ...] = (),
    ) -> httpx.Response:
        """Send one request, retrying transient failures; a 2xx or a status in ``allow``.

        ``path`` is relative to the base URL, or an absolute URL on the same origin (a
        vendor's next-page link); a link elsewhere raises ProtocolError (our token never
        leaves for another host). Raises AuthError, RejectedError, RateLimitedError,
        TransientError as ``http_retry.status_error`` maps them.
        """
        url = self._url(path)
        send_headers = {"Accept": "application/json", **(headers or {})}
        if json_body is not None:
            content = json.dumps(json_body).encode()
            send_headers["Content-Type"] = "application/json"
        where = urlsplit(url).path

        async def once() -> httpx.Response:
            return await self._once(method, url, where, params, content, send_headers, allow)

        return await self._retrier(method, where, once)

    async def get_json(
        self, path: str, params: dict[str, Any] | None = None, *, missing_ok: bool = False
    ) -> Any:
        """GET a JSON document; ``None`` for a 404 when ``missing_ok``. A body that is not
        JSON (a proxy's page, a truncated answer) is retried like a 5xx."""
        url = self._url(path)
        where = urlsplit(url).path
        allow = (404,) if missing_ok else ()
        headers = {"Accept": "application/json"}

        async def once() -> Any:
            response = await self._once("GET", url, where, params, None, headers, allow)
            return None if response.status_code == 404 else self.json(response, f"GET {where}")

        return await self._retrier("GET", where, once)

    def json(self, response: httpx.Response, what: str) -> Any:
        """The body as JSON; TransientError when it is not JSON."""
        try:
            return response.json()
        except ValueError as exc:
            raise TransientError(
                f"{self.app_id}: {what}: response is not JSON", status=response.status_code
            ) from exc

    def scrub(self, message: str) -> str:
        """Remove any secret a server may have echoed back into a message."""
        for secret in self.credentials.secrets() if self.credentials else ():
            if secret:
                message = message.replace(secret, "[REDACTED]")
        return message

    @property
    def source(self) -> str:
        return self.credentials.source if self.credentials else "the request (no credentials)"

    def _url(self, path: str) -> str:
        if not path.startswith(("http://", "https://")):
            return self._base + path
        if urlsplit(path)[:2] != self._origin:
            raise ProtocolError(f"{self.app_id}: the API linked to another host: {path[:120]}")
        return path

    async def _once(
        self,
        method: str,
        url: str,
        where: str,
        params: dict[str, Any] | None,
        content: bytes | None,
        headers: dict[str, str],
        allow: tuple[int, ...],
    ) -> httpx.Response:
        authorization = await self.credentials.authorization() if self.credentials else None
        response = await self._send(method, url, where, params, content, headers, authorization)
        if (
            response.status_code == 401
            and self.credentials is not None
            and authorization is not None
            and await self.credentials.refresh(authorization)
        ):
            authorization = await self.credentials.authorization()
            response = await self._send(method, url, where, params, content, headers, authorization)
        status = response.status_code
        special = self._classify(self.app_id, response) if self._classify else None
        if special is not None:
            if isinstance(special, RateLimitedError) and special.retry_after:
                self.gate.pause(special.retry_after)
            raise special
        if status < 300 or status in allow:
            return response
        wait = self._pause_for(response) if status == 429 else 0.0
        raise status_error(
            self.app_id,
            f"{method} {where}: HTTP {status}",
            status,
            api_error_detail(response),
            self.source,
            wait,
            self.scrub,
        )

    async def _send(
        self,
        method: str,
        url: str,
        where: str,
        params: dict[str, Any] | None,
        content: bytes | None,
        headers: dict[str, str],
        authorization: str | None,
    ) -> httpx.Response:
        send_headers = dict(headers)
        if authorization is not None:
            send_headers["Authorization"] = authorization
        response = await gated_send(
            self.gate,
            self.app_id,
            method,
            where,
            lambda: self._client.request(
                method, url, params=params, content=content, headers=send_headers
            ),
            self.scrub,
        )
        if response.status_code == 429:
            pause = self._pause_for(response)
            self.gate.pause(pause)
            log.warning("idp.rate_limited", app=self.app_id, pause_seconds=round(pause, 3))
        return response

    def _pause_for(self, response: httpx.Response) -> float:
        return retry_after(response, self.settings.max_retry_after_seconds, self._rate_headers)
