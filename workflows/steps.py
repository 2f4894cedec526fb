"""What the workflows share about a step: the SCIM retry policy, how a failure and a
verification read in a step's detail."""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError
from temporalio.exceptions import TimeoutError as TemporalTimeout

from workflows.types import ScimStepResult

# Transient app failures (429, 5xx, timeouts, not yet verified) back off without an attempt
# cap: the activity itself stops retrying once the step's retry budget is spent (a setting,
# default one day) or the failure is permanent, and the step becomes an exception task.
SCIM_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=2),
)

# Shared Signals pushes: receivers answered are audited; unreachable ones are retried a few
# times, then audited as failed (the run does not wait on them any longer).
SSF_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=5,
)


def failure_message(exc: BaseException) -> str:
    """The message a person reads: the activity's or child's own error, not Temporal's wrapper."""
    inner = exc.__cause__ if isinstance(exc, ActivityError | ChildWorkflowError) else exc
    # A timeout (e.g. the planning budget running out) carries the last attempt's failure.
    if isinstance(inner, TemporalTimeout) and isinstance(inner.__cause__, ApplicationError):
        inner = inner.__cause__
    if isinstance(inner, ApplicationError):
        return inner.message
    return str(inner or exc)


def verified_detail(result: ScimStepResult) -> str:
    """e.g. ``deactivated, read back inactive; removed from Legal, Sales``."""
    groups = f"; removed from {', '.join(result.groups_removed)}" if result.groups_removed else ""
    return f"{result.outcome}, read back {result.state}{groups}"
