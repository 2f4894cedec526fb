"""What an identity provider connector offers a leaver's IdP step (Okta, Entra ID, Google).

Small on purpose: find the person, disable them (suspend / deactivate / accountEnabled
false / suspended), revoke their sessions, and read back whether they are disabled. Only a
read-back that shows the account disabled (or gone) verifies the step.
"""

from __future__ import annotations

import json
from typing import Literal, Protocol

from pydantic import BaseModel, Field

from connectors.base import Lookup

Disabled = Literal["disabled", "already_disabled", "gone"]
Revoked = Literal["revoked", "gone"]


class IdpReadBack(BaseModel):
    """What the IdP shows after the writes; ``raw`` is its own word (``SUSPENDED``...)."""

    state: Literal["disabled", "enabled", "gone", "unknown"]
    raw: str = ""

    @property
    def verified(self) -> bool:
        return self.state in ("disabled", "gone")

    @classmethod
    def of_flag(cls, user: object, field: str, disabled_when: bool) -> IdpReadBack:
        """From a boolean field of a user resource (None: 404); anything else is unknown."""
        if user is None:
            return cls(state="gone", raw="404")
        value = user.get(field) if isinstance(user, dict) else None
        raw = f"{field}={json.dumps(value)}"
        if isinstance(value, bool):
            return cls(state="disabled" if value is disabled_when else "enabled", raw=raw)
        return cls(state="unknown", raw=raw)


class Probe(BaseModel):
    """What ``offboard apps check`` learned with read-only calls."""

    authenticated: str  # how (credentials source), for the report
    missing: list[str] = Field(default_factory=list)  # permissions the token lacks, in words
    granted: list[str] | None = None  # scopes/roles the token carries, when the IdP says


class IdpConnector(Protocol):
    app_id: str
    # In words, for step details: "suspend in Okta", "disable in Entra ID".
    verb: str

    async def lookup(self, value: str) -> Lookup:
        """Accounts whose login/primary email matches ``value`` (every query tried)."""
        ...

    async def disable(self, account_id: str) -> Disabled:
        """Stop sign-ins; ``already_disabled`` when it was, ``gone`` when it no longer exists."""
        ...

    async def revoke_sessions(self, account_id: str) -> Revoked:
        """End every session and refresh token the IdP issued to the account."""
        ...

    async def read_back(self, account_id: str) -> IdpReadBack: ...

    async def probe(self) -> Probe:
        """Authenticate and read one user (read only); AuthError when refused."""
        ...
