"""Calling into running workflows: an Update's refusal becomes a domain Conflict."""

from __future__ import annotations

from typing import Any

from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError

from services.errors import Conflict


async def update(handle: WorkflowHandle[Any, Any], method: Any, arg: Any, code: str) -> Any:
    """Run a workflow Update; a validator's refusal (its message) is raised as Conflict(code)."""
    try:
        return await handle.execute_update(method, arg)
    except WorkflowUpdateFailedError as exc:
        message = getattr(exc.cause, "message", None) or str(exc.cause)
        raise Conflict(code, message) from None
