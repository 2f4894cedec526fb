"""The run's status, derived from its steps: a pure rule, so it is unit-tested on its own.

- ``running`` while any step is pending or running;
- ``waiting_human`` while a step waits for a person (a manual task) or an exception task is
  open, including when that exception is the only open work left;
- ``failed`` when a step ended failed and nobody is working on it;
- ``completed`` otherwise (every step verified, done, skipped or cancelled).
"""

from __future__ import annotations

from collections.abc import Iterable

from domain.status import RunStatus, StepStatus

# Run statuses a step change may move the run into; the terminal ones are set by the run's end.
LIVE_STATUSES: tuple[RunStatus, ...] = ("running", "waiting_human")


def derive_status(steps: Iterable[StepStatus], open_exceptions: bool) -> RunStatus:
    statuses = set(steps)
    if statuses & {"pending", "running"}:
        return "running"
    if "waiting_human" in statuses or open_exceptions:
        return "waiting_human"
    if "failed" in statuses:
        return "failed"
    return "completed"
