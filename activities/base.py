"""What activities that reach apps share: the catalog, the connectors and the DB sessions."""

from __future__ import annotations

from collections.abc import Callable

from sqlmodel import Session

from config import Catalog
from connectors.registry import ConnectorRegistry


class AppActivities:
    def __init__(
        self,
        catalog: Catalog,
        registry: ConnectorRegistry,
        session_factory: Callable[[], Session],
        retry_budget_seconds: float = 86400.0,
    ) -> None:
        self._catalog = catalog
        self._registry = registry
        self._sessions = session_factory
        # How long a step keeps retrying transient app failures, from its first attempt.
        self._budget = retry_budget_seconds
