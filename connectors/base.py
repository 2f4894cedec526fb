"""What every connector offers, and the one error type activities translate for Temporal."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

from pydantic import BaseModel, Field

ErrorKind = Literal[
    "auth", "ambiguous", "transient", "rate_limited", "protocol", "config", "rejected"
]


class ConnectorError(Exception):
    """A failed call to an app. ``retryable`` decides whether Temporal tries again.

    The message is meant for people (step detail, exception task): it names the app and, for
    credentials, the env var that holds them, never a secret.
    """

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.message = message
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after


class AuthError(ConnectorError):
    """401/403, or no usable credentials: a person must fix the token; never retried."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__("auth", message, retryable=False, status=status)


class RateLimitedError(ConnectorError):
    """429: retried after ``retry_after`` seconds (the app is paused on this worker meanwhile)."""

    def __init__(self, message: str, *, retry_after: float | None, status: int = 429) -> None:
        super().__init__(
            "rate_limited", message, retryable=True, status=status, retry_after=retry_after
        )


class TransientError(ConnectorError):
    """5xx, timeouts, resets, garbage bodies, version conflicts: retried with backoff."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__("transient", message, retryable=True, status=status)


class RejectedError(ConnectorError):
    """The app understood and said no (4xx): retrying the same request cannot help."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__("rejected", message, retryable=False, status=status)


class ProtocolError(ConnectorError):
    """The app broke the protocol in a way that would not heal (e.g. a listing that never ends)."""

    def __init__(self, message: str) -> None:
        super().__init__("protocol", message, retryable=False)


class ConfigError(ConnectorError):
    """The catalog or environment is incomplete (e.g. a credential env var is not set)."""

    def __init__(self, message: str) -> None:
        super().__init__("config", message, retryable=False)


class Account(BaseModel):
    id: str
    user_name: str
    emails: list[str] = Field(default_factory=list)
    external_id: str | None = None
    active: bool = True
    display_name: str | None = None
    last_sign_in: str | None = None


class GroupRef(BaseModel):
    id: str
    name: str


class ReadBack(BaseModel):
    state: Literal["active", "inactive", "gone"]
    groups: list[str] = Field(default_factory=list)


class Connector(Protocol):
    async def find(self, value: str) -> list[Account]: ...

    async def deactivate(self, account_id: str) -> Literal["deactivated", "gone"]: ...

    async def delete(self, account_id: str) -> Literal["deleted", "gone"]: ...

    async def remove_groups(self, account_id: str) -> list[GroupRef]: ...

    async def read_back(
        self, account_id: str, removed_from: Sequence[GroupRef] = ()
    ) -> ReadBack: ...
