"""Connector errors become Temporal errors that say whether to retry."""

from __future__ import annotations

from datetime import timedelta

from temporalio.exceptions import ApplicationError

from connectors.base import ConnectorError


def to_application_error(app: str, exc: ConnectorError) -> ApplicationError:
    delay = timedelta(seconds=exc.retry_after) if exc.retry_after is not None else None
    return ApplicationError(
        f"{app}: {exc.message}",
        type=exc.kind,
        non_retryable=not exc.retryable,
        next_retry_delay=delay,
    )
