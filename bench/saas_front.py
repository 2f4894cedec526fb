"""A SaaS-like front for a local SCIM app: network latency and a rate limit answered with 429.

Wraps the WSGI app (``ScimServer(middleware=SaasFront(...).wrap)``): every request waits a
latency drawn from ``latency ± jitter`` seconds; a token bucket refills at ``per_minute / 60``
tokens a second (holding at most one second's worth), and a request finding it empty gets 429
with ``Retry-After`` (whole seconds until a token). ``GET /_stats`` (not rate limited) answers
``{requests, throttled, early, in_flight, first, last}``: admitted requests, 429s, requests
that arrived inside an announced Retry-After window, and the Unix times of the first and last
admitted request. A request in the window counts as ``early`` only when it arrived more than
``in_flight_margin`` seconds after the 429 that opened the window was answered, so the client
had that 429 when it sent it; one arriving sooner was on its way already (``in_flight``).
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class SaasFront:
    def __init__(
        self,
        per_minute: float,
        latency: float = 0.15,
        jitter: float = 0.05,
        in_flight_margin: float = 0.2,
    ) -> None:
        self.rate = per_minute / 60
        self.in_flight_margin = in_flight_margin
        self.capacity = max(1.0, self.rate)
        self.latency, self.jitter = latency, jitter
        self._tokens = self.capacity
        self._refilled = time.monotonic()
        self._lock = threading.Lock()
        self._app: WSGIApp | None = None
        self.stats: dict[str, float] = {
            "requests": 0,
            "throttled": 0,
            "early": 0,
            "in_flight": 0,
            "first": 0.0,
            "last": 0.0,
        }
        # The Retry-After window announced so far, and when the 429 that opened it was answered.
        self._window_from = 0.0
        self._retry_at = 0.0

    def wrap(self, app: WSGIApp) -> WSGIApp:
        self._app = app
        return self

    def _arrive(self) -> None:
        """Count a request arriving inside an announced Retry-After window (by arrival time:
        the front's latency sleep stands for the network, after the client sent it)."""
        with self._lock:
            now = time.monotonic()
            if now < self._retry_at:
                sent_after_429 = now >= self._window_from + self.in_flight_margin
                self.stats["early" if sent_after_429 else "in_flight"] += 1

    def _admit(self) -> float:
        """0 when a token was taken, else the seconds until one is there."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.capacity, self._tokens + (now - self._refilled) * self.rate)
            self._refilled = now
            if self._tokens >= 1:
                self._tokens -= 1
                self.stats["requests"] += 1
                self.stats["first"] = self.stats["first"] or time.time()
                self.stats["last"] = time.time()
                return 0.0
            self.stats["throttled"] += 1
            wait = (1 - self._tokens) / self.rate
            if now >= self._retry_at:
                self._window_from = now
            self._retry_at = max(self._retry_at, now + math.ceil(wait))
            return wait

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        assert self._app is not None
        if environ.get("PATH_INFO", "").endswith("/_stats"):
            start_response("200 OK", [("Content-Type", "application/json")])
            return [json.dumps(self.stats).encode()]
        self._arrive()
        time.sleep(max(0.0, random.uniform(self.latency - self.jitter, self.latency + self.jitter)))
        wait = self._admit()
        if wait:
            start_response(
                "429 Too Many Requests",
                [("Content-Type", "application/scim+json"), ("Retry-After", str(math.ceil(wait)))],
            )
            return [b'{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"429"}']
        return self._app(environ, start_response)
