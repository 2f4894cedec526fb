"""Shared harness for the IdP tests (this module holds no tests of its own).

Fixtures start the local Okta org, Entra ID (identity platform + Graph) and Google Workspace
(token endpoint + Directory API), seeded with the demo people; ``idp_app`` builds a catalog
entry pointing at them, and ``IDP_ENV`` the env vars holding their credentials.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from joserfc.jwk import RSAKey

from config import AppConfig
from connectors.idp import IdpConnector
from connectors.idp_build import build_idp_connector
from devstack.demo_data import demo_users
from tests.google_server import GoogleServer
from tests.graph_server import GraphServer
from tests.okta_server import OktaServer

OKTA_TOKEN = "okta-ssws-token-4e1b9a"
OKTA_CLIENT = "0oa-offboard-service"
PEOPLE = [u.email for u in demo_users(20)]


@dataclass
class Idps:
    okta: OktaServer
    graph: GraphServer
    google: GoogleServer
    okta_key: RSAKey
    # email -> id, per IdP
    okta_ids: dict[str, str]
    graph_ids: dict[str, str]
    google_ids: dict[str, str]

    @property
    def env(self) -> dict[str, str]:
        """Every credential env var the catalogs below name."""
        return {
            "OKTA_API_TOKEN": OKTA_TOKEN,
            "OKTA_PRIVATE_KEY": self.okta_key.as_pem(private=True).decode(),
            "ENTRA_CLIENT_SECRET": self.graph.client_secret,
            "GOOGLE_SA_KEY": json.dumps(self.google.service_account_info()),
        }

    def secrets(self) -> list[str]:
        return [*self.env.values(), self.google.key.as_pem(private=True).decode()]

    def section(self, connector: str, **extra: Any) -> dict[str, Any]:
        """The catalog section of ``connector`` pointing at the local server."""
        if connector == "okta":
            return {"org_url": self.okta.url, "token_env": "OKTA_API_TOKEN", **extra}
        if connector == "okta_oauth":
            return {
                "org_url": self.okta.url,
                "client_id": OKTA_CLIENT,
                "key_env": "OKTA_PRIVATE_KEY",
                **extra,
            }
        if connector == "entra":
            return {
                "tenant_id": self.graph.tenant_id,
                "client_id": self.graph.client_id,
                "client_secret_env": "ENTRA_CLIENT_SECRET",
                "graph_url": self.graph.url,
                "login_url": self.graph.url,
                **extra,
            }
        assert connector == "google"
        return {
            "credentials_env": "GOOGLE_SA_KEY",
            "admin_email": "admin@example.com",
            "api_url": self.google.url,
            **extra,
        }

    def app(self, connector: str, app_id: str | None = None, **extra: Any) -> dict[str, Any]:
        kind = connector.removesuffix("_oauth")
        return {
            "id": app_id or kind,
            "name": {"okta": "Okta", "entra": "Entra ID", "google": "Google Workspace"}[kind],
            "owners": ["it-lead@example.com"],
            "connector": kind,
            kind: self.section(connector, **extra),
        }


def start_idps() -> Idps:
    okta_key = RSAKey.generate_key(2048)
    okta = OktaServer(api_token=OKTA_TOKEN, clients={OKTA_CLIENT: okta_key}).start()
    graph = GraphServer().start()
    google = GoogleServer().start()
    idps = Idps(okta, graph, google, okta_key, {}, {}, {})
    for email in PEOPLE:
        idps.okta_ids[email] = okta.add_user(email)
        idps.graph_ids[email] = graph.add_user(email)
        idps.google_ids[email] = google.add_user(email)
    google.add_user("admin@example.com")
    return idps


@pytest.fixture
def idps() -> Iterator[Idps]:
    servers = start_idps()
    yield servers
    for server in (servers.okta, servers.graph, servers.google):
        server.stop()


IdpFactory = Callable[..., IdpConnector]


@pytest.fixture
async def make_idp(idps: Idps) -> AsyncIterator[IdpFactory]:
    """``make_idp("okta", action="deactivate")`` -> a connector on a real httpx client."""
    clients: list[httpx.AsyncClient] = []

    def make(connector: str, env: dict[str, str] | None = None, **extra: Any) -> IdpConnector:
        app = AppConfig.model_validate(idps.app(connector, **extra))
        client = httpx.AsyncClient(timeout=10)
        clients.append(client)
        return build_idp_connector(app, client, idps.env if env is None else env)

    yield make
    for client in clients:
        await client.aclose()
