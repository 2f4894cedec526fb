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
    ) -> None:
        self._catalog = catalog
        self._registry = registry
        self._sessions = session_factory
