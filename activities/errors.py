"""Connector errors become Temporal errors that say whether to retry."""

from __future__ import annotations

from datetime import timedelta

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
