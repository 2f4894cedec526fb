"""What every connector offers, and the one error type activities translate for Temporal."""

from __future__ import annotations

from typing import Literal, Protocol

from pydantic import BaseModel, Field

ErrorKind = Literal[
    "auth", "ambiguous", "transient", "rate_limited", "protocol", "config", "rejected"
]


class ConnectorError(Exception):
    """A failed call to an app. ``retryable`` decides whether Temporal tries again."""

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


class Account(BaseModel):
    id: str
    user_name: str
    emails: list[str] = Field(default_factory=list)
    external_id: str | None = None
    active: bool = True
    display_name: str | None = None
    last_sign_in: str | None = None


class ReadBack(BaseModel):
    state: Literal["active", "inactive", "gone"]
    groups: list[str] = Field(default_factory=list)


class Connector(Protocol):
    async def find(self, value: str) -> list[Account]: ...

    async def deactivate(self, account_id: str) -> Literal["deactivated", "gone"]: ...

    async def delete(self, account_id: str) -> Literal["deleted", "gone"]: ...

    async def remove_groups(self, account_id: str) -> list[str]: ...

    async def read_back(self, account_id: str) -> ReadBack: ...
