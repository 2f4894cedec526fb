"""One connector, with one pooled HTTP client and one rate gate, per app per worker process.

Every run on the worker shares them, so an app's concurrency limit, its pacing and a 429's
pause hold across runs.
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Awaitable, Callable, Mapping

import httpx
from httpx_aiohttp import AiohttpTransport
from pydantic import SecretStr

from config import ApiSettings, Catalog, ScimSettings, SsfReceiver
from connectors.api_transport import ApiTransport
from connectors.auth import BearerToken, Credentials, OAuth2ClientCredentials
from connectors.base import ConfigError
from connectors.idp import IdpConnector
from connectors.idp_build import api_http_client, build_idp_connector, require_env
from connectors.scim import ScimConnector
from connectors.ssf import receiver_transport

ResponseObserver = Callable[[str, int], None]


def scim_http_client(
    settings: ScimSettings, app_id: str = "", observe: ResponseObserver | None = None
) -> httpx.AsyncClient:
    """The pooled client for one app: its timeout, and a pool no larger than its limit needs.

    httpx's API over aiohttp's connection pool (httpx-aiohttp): the same requests cost about
    a third less CPU than over httpcore, and a layoff makes several per person per app.
    Behind a proxy from the environment, httpx's own transport, which applies it.
    ``observe(app, status)`` sees every response (the worker counts them as metrics).
    """
    # One spare connection for the OAuth2 token endpoint.
    connections = settings.max_concurrent_requests + 1
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    hooks: dict[str, list[Callable[[httpx.Response], Awaitable[None]]]] = {}
    if observe is not None:

        async def count(response: httpx.Response) -> None:
            observe(app_id, response.status_code)

        hooks["response"] = [count]
    # httpx honours HTTP(S)_PROXY/NO_PROXY only with its own transport: behind a proxy, use it.
    proxied = bool(urllib.request.getproxies())
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.timeout_seconds),
        limits=limits,
        transport=None if proxied else AiohttpTransport(limits=limits),
        follow_redirects=False,
        event_hooks=hooks,
    )


def require_credentials(app_id: str, settings: ScimSettings, env: Mapping[str, str]) -> None:
    missing = [name for name in settings.credential_envs if not env.get(name)]
    if missing:
        names = " and ".join(f"${name}" for name in missing)
        raise ConfigError(f"{app_id}: no credentials: environment variable {names} is not set")


def scim_credentials(
    app_id: str, settings: ScimSettings, client: httpx.AsyncClient, env: Mapping[str, str]
) -> Credentials:
    """Credentials from the env vars the catalog names; ConfigError names a missing one."""
    require_credentials(app_id, settings, env)
    if settings.auth == "oauth2":
        assert settings.token_url and settings.client_id_env and settings.client_secret_env
        return OAuth2ClientCredentials(
            app_id,
            settings.token_url,
            env[settings.client_id_env],
            SecretStr(env[settings.client_secret_env]),
            client=client,
            client_id_env=settings.client_id_env,
            client_secret_env=settings.client_secret_env,
            scope=settings.scope,
        )
    assert settings.token_env
    return BearerToken(SecretStr(env[settings.token_env]), settings.token_env)


class ConnectorRegistry:
    def __init__(
        self,
        catalog: Catalog,
        env: Mapping[str, str] | None = None,
        observe: ResponseObserver | None = None,
    ) -> None:
        self.catalog = catalog
        self._observe = observe
        self._env = env if env is not None else os.environ
        self._scim: dict[str, ScimConnector] = {}
        self._idp: dict[str, IdpConnector] = {}
        self._receivers: dict[tuple[str, str], ApiTransport] = {}
        self._clients: list[httpx.AsyncClient] = []
        self._shares: dict[str, int] = {}

    def scim(self, app_id: str) -> ScimConnector:
        connector = self._scim.get(app_id)
        if connector is not None:
            return connector
        app = self.catalog.app(app_id)
        if app.scim is None:
            raise ConfigError(f"{app_id}: not a SCIM app in the catalog")
        # Checked before anything is built or cached: once the env var is set, a retried step
        # works without restarting the worker.
        require_credentials(app_id, app.scim, self._env)
        client = scim_http_client(app.scim, app_id, self._observe)
        self._clients.append(client)
        connector = ScimConnector(
            app_id, app.scim, client, scim_credentials(app_id, app.scim, client, self._env)
        )
        connector.gate.share(self._shares.get(app_id, 1))
        self._scim[app_id] = connector
        return connector

    def share_rate(self, app_id: str, workers: int) -> bool:
        """Pace ``app_id``'s SCIM requests at 1/``workers`` of its rate (see rate_share.py),
        now and in a connector built later. True when the share changed."""
        if self._shares.get(app_id, 1) == workers:
            return False
        self._shares[app_id] = workers
        connector = self._scim.get(app_id)
        if connector is not None:
            connector.gate.share(workers)
        return True

    def idp(self, app_id: str) -> IdpConnector:
        """The Okta, Entra ID or Google connector of ``app_id`` (built once per worker)."""
        connector = self._idp.get(app_id)
        if connector is not None:
            return connector
        app = self.catalog.app(app_id)
        if app.idp_settings is None:
            raise ConfigError(f"{app_id}: not an IdP app (okta, entra or google) in the catalog")
        # Checked before anything is built or cached: once the env var is set, a retried step
        # works without restarting the worker.
        require_env(app_id, app.idp_settings.credential_envs, self._env)
        client = api_http_client(app.idp_settings)
        self._clients.append(client)
        connector = build_idp_connector(app, client, self._env)
        self._idp[app_id] = connector
        return connector

    def ssf_receiver(self, receiver: SsfReceiver) -> ApiTransport:
        """The push transport of one Shared Signals receiver (built once per worker)."""
        key = (receiver.url, receiver.audience)
        transport = self._receivers.get(key)
        if transport is None:
            if receiver.token_env:
                require_env(f"ssf receiver {receiver.url}", [receiver.token_env], self._env)
            client = api_http_client(ApiSettings())
            self._clients.append(client)
            transport = receiver_transport(receiver, client, self._env)
            self._receivers[key] = transport
        return transport

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()
        self._clients.clear()
        self._scim.clear()
        self._idp.clear()
        self._receivers.clear()
