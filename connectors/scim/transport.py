"""HTTP for one SCIM app: auth header, pacing, typed errors, and retries of single requests.

Every request we send is idempotent (GET, PUT, DELETE, and PATCHes that replace ``active`` or
remove one member), so a transient failure of one request (5xx, 408, reset, timeout, a short
429) is retried here, with backoff, before it can fail a whole step. What is still failing
after ``request_retries`` is raised as a typed ``ConnectorError`` for the workflow's retry.
A 429 pauses the whole app (every run on this worker) for its Retry-After, capped at
``max_retry_after_seconds``; a pause longer than the gate's ``max_wait`` is handed to the
workflow as the next retry delay instead of being slept inside an activity.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import structlog

from config import ScimSettings
from connectors.auth import Credentials
from connectors.base import ConnectorError, TransientError
from connectors.http_retry import Retrier, gated_send, retry_after, status_error
from connectors.scim.gate import RateGate
from connectors.scim.payloads import SCIM_JSON, error_detail

log = structlog.get_logger("offboard.scim")
T = TypeVar("T")


class ScimTransport:
    """Sends requests to one app; shared by every run on the worker (one per app)."""

    def __init__(
        self,
        app_id: str,
        settings: ScimSettings,
        client: httpx.AsyncClient,
        credentials: Credentials,
        gate: RateGate,
    ) -> None:
        self.app_id = app_id
        self.settings = settings
        self.credentials = credentials
        self.gate = gate
        self._client = client
        self._base = settings.base_url.rstrip("/")
        self._retrier = Retrier(app_id, settings.request_retries, gate, log, "scim.request_retried")

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        allow: tuple[int, ...] = (),
    ) -> httpx.Response:
        """Send one request, retrying transient failures; 2xx or a status in ``allow``.

        Raises AuthError (401/403 after one credential refresh), RejectedError (other 4xx),
        RateLimitedError (a 429 or pause outlasting the retries), TransientError (5xx, 408,
        timeouts, resets, after the retries).
        """
        content = json.dumps(body).encode() if body is not None else None
        return await self._retrying(
            method, path, lambda: self._once(method, path, params, content, headers, allow)
        )

    async def read(
        self, path: str, params: dict[str, Any] | None = None, *, missing_ok: bool = False
    ) -> tuple[httpx.Response, dict[str, Any] | None]:
        """GET a resource or listing as a JSON object; ``None`` for a 404 when ``missing_ok``.

        A body that is not JSON (a proxy page, a truncated answer) is retried like a 5xx.
        """

        async def once() -> tuple[httpx.Response, dict[str, Any] | None]:
            allow = (404,) if missing_ok else ()
            response = await self._once("GET", path, params, None, None, allow)
            if response.status_code == 404:
                return response, None
            return response, self.json(response, f"GET {path}")

        return await self._retrying("GET", path, once)

    async def _retrying(self, method: str, path: str, call: Callable[[], Awaitable[T]]) -> T:
        return await self._retrier(method, path, call)

    async def _once(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None,
        content: bytes | None,
        headers: dict[str, str] | None,
        allow: tuple[int, ...],
    ) -> httpx.Response:
        authorization = await self.credentials.authorization()
        response = await self._send(method, path, params, content, headers, authorization)
        if response.status_code == 401 and await self.credentials.refresh(authorization):
            authorization = await self.credentials.authorization()
            response = await self._send(method, path, params, content, headers, authorization)
        status = response.status_code
        if status < 300 or status in allow:
            return response
        raise self._error(method, path, response)

    async def _send(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None,
        content: bytes | None,
        headers: dict[str, str] | None,
        authorization: str,
    ) -> httpx.Response:
        send_headers = {"Accept": SCIM_JSON, "Authorization": authorization, **(headers or {})}
        if content is not None:
            send_headers["Content-Type"] = SCIM_JSON
        response = await gated_send(
            self.gate,
            self.app_id,
            method,
            path,
            lambda: self._client.request(
                method, self._base + path, params=params, content=content, headers=send_headers
            ),
            self.scrub,
        )
        if response.status_code == 429:
            pause = self.retry_after(response)
            self.gate.pause(pause)
            log.warning("scim.rate_limited", app=self.app_id, pause_seconds=round(pause, 3))
        return response

    def retry_after(self, response: httpx.Response) -> float:
        """The wait a 429 asked for, in seconds, capped by ``max_retry_after_seconds``."""
        return retry_after(response, self.settings.max_retry_after_seconds)

    def scrub(self, message: str) -> str:
        """Remove any secret a server may have echoed back into a message."""
        for secret in self.credentials.secrets():
            if secret:
                message = message.replace(secret, "[REDACTED]")
        return message

    def _error(self, method: str, path: str, response: httpx.Response) -> ConnectorError:
        status = response.status_code
        wait = self.retry_after(response) if status == 429 else 0.0
        return status_error(
            self.app_id,
            f"{method} {path}: HTTP {status}",
            status,
            error_detail(response),
            self.credentials.source,
            wait,
            self.scrub,
        )

    def json(self, response: httpx.Response, what: str) -> dict[str, Any]:
        """The body as a JSON object; TransientError when it is not one (a proxy page...)."""
        try:
            data = response.json()
        except ValueError as exc:
            raise TransientError(
                f"{self.app_id}: {what}: response is not JSON", status=response.status_code
            ) from exc
        if not isinstance(data, dict):
            raise TransientError(
                f"{self.app_id}: {what}: response is not a JSON object",
                status=response.status_code,
            )
        return data

    async def get_json(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """GET one resource or endpoint (e.g. ``/ServiceProviderConfig``); read only."""
        _, data = await self.read(path, params)
        assert data is not None
        return data
