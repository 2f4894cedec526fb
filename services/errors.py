"""Domain errors: what a use case refuses, and why, independent of HTTP or the shell.

``api/errors.py`` maps them to JSON (404, 409, 403, 422), the CLI to exit codes (2 for
``Invalid``, else 1). ``code`` is the stable machine-readable name clients match on.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    def __init__(self, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


class NotFound(DomainError):
    """The object does not exist (or its existence is not the caller's to know)."""

    def __init__(self, message: str, code: str = "not_found", details: Any = None) -> None:
        super().__init__(code, message, details)


class Conflict(DomainError):
    """The object's state does not allow it (already closed, finished, being processed)."""


class Forbidden(DomainError):
    """The caller's role or ownership does not allow it."""

    def __init__(self, message: str, code: str = "forbidden", details: Any = None) -> None:
        super().__init__(code, message, details)


class Invalid(DomainError):
    """The input is wrong in a way the caller can fix (unknown app, bad CSV row)."""
