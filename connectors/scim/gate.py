"""Per-app request pacing, and reading how long an app asked us to wait (Retry-After)."""

from __future__ import annotations

import asyncio
import email.utils
import time

# A Retry-After number this large cannot be delta-seconds (that would be 30+ years): some apps
# send the Unix time at which to come back instead.
_EPOCH_THRESHOLD = 1_000_000_000


def parse_retry_after(
    value: str | None, now: float | None = None, ceiling: float | None = None
) -> float | None:
    """Seconds to wait from a Retry-After header, or None when it is absent or unreadable.

    Accepts delta-seconds and an HTTP-date (RFC 9110 10.2.3), and, as some apps send, a Unix
    time in seconds. ``now`` is the current Unix time (default: the clock). The result is never
    negative and, with ``ceiling``, never above it: one absurd header must not pause an app
    for years.
    """
    if not value:
        return None
    clock = time.time() if now is None else now
    seconds: float | None
    try:
        number = float(value.strip())
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - clock
        except (TypeError, ValueError, IndexError):
            return None
    else:
        seconds = number - clock if number >= _EPOCH_THRESHOLD else number
    seconds = max(0.0, seconds)
    return min(seconds, ceiling) if ceiling is not None else seconds


class AppPaused(Exception):
    """The app is paused (429) for longer than a request should wait inside an activity."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"paused for {seconds:.0f}s")
        self.seconds = seconds


class RateGate:
    """Per-app request pacing shared by every run on this worker.

    At most ``max_concurrent`` requests are in flight; request starts are spaced
    ``60 / per_minute`` seconds apart; and a 429 pauses every request to the app until its
    Retry-After has passed, including requests already waiting for a slot. A pause longer
    than ``max_wait`` seconds raises ``AppPaused`` instead of sleeping, so the caller hands the
    wait to the workflow's retry (with that delay) rather than sitting out an activity timeout.
    With ``share(n)`` it paces at ``per_minute / n``: n worker processes serve the app.
    """

    def __init__(self, per_minute: int | None, max_concurrent: int, max_wait: float = 20.0) -> None:
        self._full_interval = 60.0 / per_minute if per_minute else 0.0
        self.interval = self._full_interval
        self.max_concurrent = max_concurrent
        self.max_wait = max_wait
        self._sem = asyncio.Semaphore(max_concurrent)
        self._lock = asyncio.Lock()
        self._next_slot = 0.0
        self._paused_until = 0.0

    def share(self, workers: int) -> None:
        """Pace at 1/``workers`` of the app's rate: the other worker processes take the rest."""
        self.interval = self._full_interval * max(1, workers)

    def pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    @property
    def paused_for(self) -> float:
        return max(0.0, self._paused_until - time.monotonic())

    async def acquire(self) -> None:
        """Wait for a slot; raises AppPaused (holding nothing) when the pause is too long."""
        await self._sem.acquire()
        try:
            await self._wait_turn()
        except BaseException:
            self._sem.release()
            raise

    def release(self) -> None:
        self._sem.release()

    async def _wait_turn(self) -> None:
        while True:
            async with self._lock:
                now = time.monotonic()
                reserved = self._paused_until <= now
                if reserved:
                    start = max(now, self._next_slot)
                    self._next_slot = start + self.interval
                    wait = start - now
                else:
                    wait = self._paused_until - now
                    if wait > self.max_wait:
                        raise AppPaused(wait)
            if wait > 0:
                await asyncio.sleep(wait)
            # A 429 answered while we waited for our slot pauses us too.
            if reserved and self._paused_until <= time.monotonic():
                return
