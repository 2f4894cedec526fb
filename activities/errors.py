"""Connector errors become Temporal errors that say whether to retry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporalio.exceptions import ApplicationError

from connectors.base import ConnectorError


def to_application_error(app: str, exc: ConnectorError) -> ApplicationError:
    """The error's kind becomes the ApplicationError type (``auth``, ``transient``, ...).

    Permanent kinds are non-retryable; a 429's Retry-After becomes the next retry delay, so
    the workflow's backoff never retries sooner than the app asked. The message always names
    the app (connector messages already do) and never carries a secret.
    """
    message = exc.message if exc.message.startswith(f"{app}:") else f"{app}: {exc.message}"
    delay = timedelta(seconds=exc.retry_after) if exc.retry_after is not None else None
    return ApplicationError(
        message,
        type=exc.kind,
        non_retryable=not exc.retryable,
        next_retry_delay=delay,
    )


def step_failure(
    app: str,
    error: ApplicationError,
    done: str | None,
    first_scheduled: datetime,
    budget_seconds: float,
) -> ApplicationError:
    """The error a failed step attempt raises to its workflow.

    ``done`` says in words what the step already changed ("access cut at 10:02 UTC"), or None
    when nothing changed yet; the message then reads "<app>: <done>; not verified: <why>".
    A retryable error becomes final once ``budget_seconds`` have passed since the step was
    first scheduled, and then says how long it kept failing.
    """
    spent = (datetime.now(UTC) - first_scheduled).total_seconds()
    give_up = error.non_retryable or spent >= budget_seconds
    message = error.message
    if done is not None:
        message = f"{app}: {done}; not verified: {message.removeprefix(f'{app}: ')}"
    if give_up and not error.non_retryable:
        message += f" (still failing after {spent / 3600:.1f} h of retries)"
    return ApplicationError(
        message,
        type=error.type,
        non_retryable=give_up,
        next_retry_delay=error.next_retry_delay,
    )
