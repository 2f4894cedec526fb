"""Limits on request bodies, enforced before any handler runs (an ASGI middleware).

Under ``/api/v1``, a request that carries a body must say ``Content-Type: application/json``
(415 otherwise; the two CSV uploads take ``text/csv``), may not exceed its size cap (413, from
``Content-Length`` before reading, or counted while reading a chunked body), and must keep
sending: a body that stalls longer than the read timeout between chunks is 408. The handler
never sees a refused body, so nothing is written for it.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import BodyRefused, error_body
from config import Settings

log = structlog.get_logger()

API_PREFIX = "/api/v1/"
# The routes whose body is CSV, not JSON (people import, a manual app's account export).
CSV_ROUTES = re.compile(r"^/api/v1/(people:import|campaigns/[^/]+/apps/[^/]+/accounts)$")
# How much of a refused body is read and dropped before answering (then the connection closes).
DRAIN_BYTES = 16 * 1024 * 1024
BODILESS_METHODS = {"GET", "HEAD", "OPTIONS", "DELETE"}


def _media_type(headers: dict[bytes, bytes]) -> str:
    raw = headers.get(b"content-type", b"").decode("latin-1")
    return raw.split(";", 1)[0].strip().lower()


class BodyLimits:
    """The middleware; sizes in bytes, the read timeout in seconds (from Settings)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.max_json = settings.max_body_bytes
        self.max_csv = settings.max_upload_bytes
        self.read_timeout = settings.body_read_timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope["method"] in BODILESS_METHODS
            or not path.startswith(API_PREFIX)
        ):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        csv = bool(CSV_ROUTES.match(path))
        cap = self.max_csv if csv else self.max_json
        try:
            self._check_headers(headers, csv, cap)
        except BodyRefused as refused:
            # Read (and drop) a moderately oversized body first: a client still sending does
            # not read an early answer, and would only see its connection reset.
            await self._drain(receive)
            await _refuse(send, refused, path)
            return
        started = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, self._counting(receive, cap), guarded_send)
        except BodyRefused as refused:
            if started:
                raise
            await _refuse(send, refused, path)

    def _check_headers(self, headers: dict[bytes, bytes], csv: bool, cap: int) -> None:
        length = headers.get(b"content-length")
        has_body = b"transfer-encoding" in headers or (length is not None and length != b"0")
        if not has_body:
            return
        allowed = ("text/csv", "application/json") if csv else ("application/json",)
        media = _media_type(headers)
        if media not in allowed:
            raise BodyRefused(
                415,
                "unsupported_media_type",
                f"Content-Type must be {' or '.join(allowed)}, not {media or 'missing'}",
            )
        if length is not None and (not length.isdigit() or int(length) > cap):
            raise BodyRefused(413, "too_large", f"the body is over {cap} bytes")

    async def _drain(self, receive: Receive) -> None:
        dropped = 0
        while dropped <= DRAIN_BYTES:
            try:
                message = await asyncio.wait_for(receive(), self.read_timeout)
            except TimeoutError:
                return
            if message["type"] != "http.request":
                return
            dropped += len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    def _counting(self, receive: Receive, cap: int) -> Receive:
        seen = 0

        async def wrapped() -> Message:
            nonlocal seen
            try:
                message = await asyncio.wait_for(receive(), self.read_timeout)
            except TimeoutError:
                raise BodyRefused(
                    408, "body_timeout", f"no body bytes for {self.read_timeout:g} s"
                ) from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > cap:
                    raise BodyRefused(413, "too_large", f"the body is over {cap} bytes")
            return message

        return wrapped


async def _refuse(send: Send, refused: BodyRefused, path: str) -> None:
    log.warning("request.refused", path=path, status=refused.status, code=refused.code)
    body = json.dumps(error_body(refused.code, refused.message)).encode()
    headers: list[Any] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": refused.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
