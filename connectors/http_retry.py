"""What every connector's HTTP transport shares: per-request retries, pacing, typed errors.

A transport (SCIM, each IdP, the Shared Signals push) sends single idempotent requests. Here:

- ``Retrier``: retries one request's transient failures (5xx, 408, resets, timeouts, a short
  429) with jittered backoff (tenacity); a 429 whose pause outlasts the gate's ``max_wait`` is
  handed to the workflow as the next retry delay instead of being slept inside an activity.
- ``gated_send``: one request through the app's ``RateGate`` (a 429 pauses every request to
  the app on this worker), with timeouts and resets as ``TransientError``.
- ``status_error``: an HTTP status as the typed ``ConnectorError`` activities understand.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, TypeVar

import httpcore
import httpx
import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from connectors.base import (
    AuthError,
    ConnectorError,
    RateLimitedError,
    RejectedError,
    TransientError,
)

if TYPE_CHECKING:
    from connectors.scim.gate import RateGate

T = TypeVar("T")

# When a 429 carries no (readable) Retry-After.
DEFAULT_RETRY_AFTER = 5.0


class Retrier:
    """Retries one request of one app: ``request_retries`` more tries after the first."""

    def __init__(
        self,
        app_id: str,
        request_retries: int,
        gate: RateGate,
        log: structlog.typing.FilteringBoundLogger,
        event: str,
    ) -> None:
        self.app_id = app_id
        self.request_retries = request_retries
        self.gate = gate
        self._log = log
        self._event = event
        self._backoff = wait_random_exponential(multiplier=0.5, max=8)

    async def __call__(self, method: str, path: str, call: Callable[[], Awaitable[T]]) -> T:
        """``call()`` until it returns, raises a permanent error, or the tries are spent.

        Raises the last ``ConnectorError`` (or whatever non-connector error ``call`` raised).
        """
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.request_retries + 1),
            wait=self._wait,
            retry=retry_if_exception(self._retry_here),
            before_sleep=self._log_retry(method, path),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await call()
        raise AssertionError("unreachable: tenacity re-raises the last error")

    def _retry_here(self, exc: BaseException) -> bool:
        if not isinstance(exc, ConnectorError) or not exc.retryable:
            return False
        # A long pause is the workflow's to wait out (durably), not this request's.
        return exc.kind != "rate_limited" or (exc.retry_after or 0) <= self.gate.max_wait

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RateLimitedError):
            return 0.0  # the gate holds every request to the app until the pause is over
        return float(self._backoff(state))

    def _log_retry(self, method: str, path: str) -> Callable[[RetryCallState], None]:
        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            self._log.info(
                self._event,
                app=self.app_id,
                method=method,
                path=path,
                attempt=state.attempt_number,
                error=getattr(exc, "message", str(exc)),
            )

        return before_sleep


async def gated_send(
    gate: RateGate,
    app_id: str,
    method: str,
    path: str,
    send: Callable[[], Awaitable[httpx.Response]],
    scrub: Callable[[str], str],
) -> httpx.Response:
    """Send one request when the gate gives a slot.

    Raises RateLimitedError (the app is paused longer than the gate waits), TransientError
    (timeout, connection failure). Any status comes back as a response.
    """
    # Imported here: the SCIM package imports this module while it initialises.
    from connectors.scim.gate import AppPaused

    try:
        await gate.acquire()
    except AppPaused as exc:
        raise RateLimitedError(
            f"{app_id}: {method} {path}: the app asked us to wait (429); {exc.seconds:.0f}s left",
            retry_after=exc.seconds,
        ) from exc
    try:
        return await send()
    except httpx.TimeoutException as exc:
        if not _timed_out(exc):
            raise TransientError(
                scrub(f"{app_id}: {method} {path}: connection failed ({type(exc).__name__})")
            ) from exc
        raise TransientError(
            scrub(f"{app_id}: {method} {path}: timed out ({type(exc).__name__})")
        ) from exc
    except httpx.TransportError as exc:
        raise TransientError(
            scrub(f"{app_id}: {method} {path}: connection failed ({type(exc).__name__})")
        ) from exc
    finally:
        gate.release()


def _timed_out(exc: httpx.TimeoutException) -> bool:
    """Whether a transport's timeout is one: httpx-aiohttp reports every aiohttp connection
    error (a reset, a server that hung up) as ``ConnectTimeout``; its cause says which."""
    cause = exc.__cause__
    while cause is not None:
        if isinstance(cause, (TimeoutError, httpcore.TimeoutException)):
            return True
        cause = cause.__cause__
    return exc.__cause__ is None


def retry_after(
    response: httpx.Response, ceiling: float, headers: Iterable[str] = ("Retry-After",)
) -> float:
    """The wait a 429 asked for, in seconds, from the first readable header, capped."""
    from connectors.scim.gate import parse_retry_after

    for name in headers:
        delay = parse_retry_after(response.headers.get(name), ceiling=ceiling)
        if delay is not None:
            return delay
    return DEFAULT_RETRY_AFTER


def status_error(
    app_id: str,
    where: str,
    status: int,
    detail: str,
    credentials_source: str,
    wait: float,
    scrub: Callable[[str], str],
) -> ConnectorError:
    """A non-2xx status as a typed error; ``where`` is ``"METHOD path: HTTP status"``.

    401/403 -> AuthError naming ``credentials_source`` (env var names, never values);
    429 -> RateLimitedError after ``wait`` s; 408 and 5xx but 501 -> TransientError; other
    4xx (and 501) -> RejectedError. ``scrub`` removes any secret the app echoed back.
    """
    if status in (401, 403):
        verb = "authentication" if status == 401 else "authorization"
        return AuthError(
            scrub(
                f"{app_id}: {verb} failed ({where}): the app refused {credentials_source}: {detail}"
            ),
            status=status,
        )
    if status == 429:
        return RateLimitedError(
            f"{app_id}: {where}: rate limited; retry after {wait:.0f}s", retry_after=wait
        )
    if status == 408 or (status >= 500 and status != 501):
        return TransientError(scrub(f"{app_id}: {where}: {detail}"), status=status)
    return RejectedError(scrub(f"{app_id}: {where}: {detail}"), status=status)
