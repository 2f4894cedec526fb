"""The run status rule (workflows/run_state.py), on its own: no servers."""

from __future__ import annotations

import pytest

from domain.status import RunStatus, StepStatus
from workflows.run_state import derive_status


@pytest.mark.parametrize(
    ("steps", "open_exceptions", "expected"),
    [
        (["pending", "verified"], False, "running"),
        (["running", "waiting_human"], True, "running"),
        (["waiting_human", "verified"], False, "waiting_human"),
        # The only open work is an exception task: a person is needed, the run is not failed.
        (["failed", "verified"], True, "waiting_human"),
        (["failed", "skipped"], False, "failed"),
        (["verified", "done", "skipped", "cancelled"], False, "completed"),
        ([], False, "completed"),
    ],
)
def test_derive_status(steps: list[StepStatus], open_exceptions: bool, expected: RunStatus) -> None:
    assert derive_status(steps, open_exceptions) == expected
