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
    # None: the app sent an `active` value that cannot be read (never taken as inactive).
    active: bool | None = True
    display_name: str | None = None
    last_sign_in: str | None = None


class GroupRef(BaseModel):
    id: str
    name: str


class ReadBack(BaseModel):
    """What the app shows after the writes. ``unknown``: its ``active`` could not be read."""

    state: Literal["active", "inactive", "gone", "unknown"]
    groups: list[str] = Field(default_factory=list)  # still listing the account
    unknown_groups: list[str] = Field(default_factory=list)  # membership could not be read
    active_value: str | None = None  # the raw value, when it could not be read

    @property
    def access_gone(self) -> bool:
        """Only this is "verified": the account inactive or gone, and in no group we know of."""
        return self.state in ("inactive", "gone") and not self.groups and not self.unknown_groups


class Memberships(BaseModel):
    """The account's groups: ``member`` ones, and those whose membership could not be read."""

    member: list[GroupRef] = Field(default_factory=list)
    unknown: list[GroupRef] = Field(default_factory=list)
    route: str = ""


class Lookup(BaseModel):
    """The accounts a lookup found, and every query it tried (named in a "skipped" step)."""

    accounts: list[Account] = Field(default_factory=list)
    tried: list[str] = Field(default_factory=list)


class GroupRemoval(BaseModel):
    """Groups the account was taken out of, those left for a person, and why."""

    removed: list[GroupRef] = Field(default_factory=list)
    unknown: list[GroupRef] = Field(default_factory=list)  # membership could not be read
    refused: dict[str, str] = Field(default_factory=dict)  # group name -> why it was not written


class Connector(Protocol):
    """What a deprovisioning step needs from an app that has accounts in groups (SCIM).

    IdPs have their own, smaller contract (``connectors/idp.py``).
    """

    @property
    def membership_route(self) -> str:
        """How group memberships are read now (for messages): e.g. ``member_filter``."""
        ...

    async def lookup(self, value: str) -> Lookup: ...

    async def groups_of(self, account_id: str) -> Memberships: ...

    async def deactivate(self, account_id: str) -> Literal["deactivated", "gone"]: ...

    async def delete(self, account_id: str) -> Literal["deleted", "gone"]: ...

    async def reactivate(self, account_id: str) -> Literal["reactivated", "gone"]: ...

    async def add_member(self, group: GroupRef, account_id: str) -> Literal["added", "gone"]: ...

    async def remove_member(self, group: GroupRef, account_id: str) -> str | None: ...

    async def read_back(
        self,
        account_id: str,
        removed_from: Sequence[GroupRef] = (),
        unknown: Sequence[GroupRef] = (),
    ) -> ReadBack: ...
