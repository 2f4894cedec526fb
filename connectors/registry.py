"""One connector, with one pooled HTTP client and one rate gate, per app per worker process."""

from __future__ import annotations

import os
from collections.abc import Mapping

import httpx

from config import Catalog
from connectors.base import ConnectorError
from connectors.scim import ScimConnector


class ConnectorRegistry:
    def __init__(self, catalog: Catalog, env: Mapping[str, str] | None = None) -> None:
        self.catalog = catalog
        self._env = env if env is not None else os.environ
        self._scim: dict[str, ScimConnector] = {}
        self._clients: list[httpx.AsyncClient] = []

    def scim(self, app_id: str) -> ScimConnector:
        connector = self._scim.get(app_id)
        if connector is not None:
            return connector
        app = self.catalog.app(app_id)
        if app.scim is None:
            raise ConnectorError(
                "config", f"{app_id}: not a SCIM app in the catalog", retryable=False
            )
        token = self._env.get(app.scim.token_env)
        if not token:
            raise ConnectorError(
                "config",
                f"{app_id}: no token: environment variable ${app.scim.token_env} is not set",
                retryable=False,
            )
        client = httpx.AsyncClient(
            timeout=httpx.Timeout(app.scim.timeout_seconds),
            limits=httpx.Limits(
                max_connections=app.scim.max_concurrent_requests,
                max_keepalive_connections=app.scim.max_concurrent_requests,
            ),
        )
        self._clients.append(client)
        connector = ScimConnector(app_id, app.scim, client, token)
        self._scim[app_id] = connector
        return connector

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()
        self._clients.clear()
        self._scim.clear()
