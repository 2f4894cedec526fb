"""Shared harness for the SCIM connector tests (this module holds no tests of its own).

- ``Meter``: WSGI middleware outside ``Quirks`` that timestamps every request and measures
  how many are in flight at once (injected faults and delays included).
- ``TokenEndpoint``: a tiny OAuth2 token endpoint on a loopback port, issuing tokens the
  ScimServer accepts (or, on purpose, ones it refuses).
- ``scim_env``: a real scim2-server behind Quirks and Meter, seeded with the demo people and
  groups; ``make_connector`` builds a ``ScimConnector`` on a real ``httpx.AsyncClient``.

Test modules import the fixtures from here.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl
from wsgiref.simple_server import WSGIServer

import httpx
import pytest
import structlog
from pydantic import SecretStr

from config import ScimSettings
from connectors.auth import BearerToken, Credentials
from connectors.registry import scim_http_client
from connectors.scim import RateGate, ScimConnector
from devstack.demo_data import DEMO_GROUPS, demo_users
from devstack.scim_server import ScimServer, SeedUser, WSGIApp
from logs import configure_logging
from tests.conftest import SCIM_TOKEN, TOKEN_ENV, ScimApp
from tests.scim_quirks import Quirks
from tests.vendor_server import serve_wsgi

APP = "acme"


@dataclass(frozen=True)
class Hit:
    method: str
    target: str
    started: float  # time.time() when the request reached the server
    ended: float
    started_mono: float
    ended_mono: float


class Meter:
    """Records every request's arrival and end, and the most requests ever in flight."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._app: WSGIApp | None = None
        self.in_flight = 0
        self.max_in_flight = 0
        self.hits: list[Hit] = []

    def wrap(self, app: WSGIApp) -> WSGIApp:
        self._app = app
        return self

    def reset(self) -> None:
        with self._lock:
            self.max_in_flight = self.in_flight
            self.hits.clear()

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        assert self._app is not None
        query = environ.get("QUERY_STRING", "")
        target = environ.get("PATH_INFO", "") + (f"?{query}" if query else "")
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        started, started_mono = time.time(), time.monotonic()
        try:
            return list(self._app(environ, start_response))
        finally:
            with self._lock:
                self.in_flight -= 1
                self.hits.append(
                    Hit(
                        environ["REQUEST_METHOD"],
                        target,
                        started,
                        time.time(),
                        started_mono,
                        time.monotonic(),
                    )
                )

    def of(self, method: str | None = None, path_contains: str | None = None) -> list[Hit]:
        with self._lock:
            hits = sorted(self.hits, key=lambda h: h.started_mono)
        return [
            h
            for h in hits
            if (method is None or h.method == method)
            and (path_contains is None or path_contains in h.target)
        ]


@dataclass
class TokenEndpoint:
    """OAuth2 client-credentials token endpoint: hands out ``tokens`` in order, then repeats
    the last one; refuses any other client id/secret with 401 invalid_client."""

    client_id: str
    client_secret: str
    tokens: list[str]
    expires_in: int = 3600
    requests: list[dict[str, str]] = field(default_factory=list)
    url: str = ""
    _server: WSGIServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        form = dict(parse_qsl(environ["wsgi.input"].read(length).decode()))
        basic = environ.get("HTTP_AUTHORIZATION", "")
        client_id = client_secret = ""
        if basic.startswith("Basic "):
            client_id, _, client_secret = base64.b64decode(basic[6:]).decode().partition(":")
        with self._lock:
            self.requests.append({**form, "client_id": client_id})
            ok = (client_id, client_secret) == (self.client_id, self.client_secret)
            token = (self.tokens.pop(0) if len(self.tokens) > 1 else self.tokens[0]) if ok else ""
        if not ok or form.get("grant_type") != "client_credentials":
            body = {"error": "invalid_client", "error_description": "bad client credentials"}
            start_response("401 Unauthorized", [("Content-Type", "application/json")])
            return [json.dumps(body).encode()]
        body2 = {"access_token": token, "token_type": "Bearer", "expires_in": self.expires_in}
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(body2).encode()]

    def start(self) -> TokenEndpoint:
        self._server = serve_wsgi(self)
        self.url = f"http://127.0.0.1:{self._server.server_port}/oauth2/token"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


@dataclass
class ScimEnv:
    server: ScimServer
    quirks: Quirks
    meter: Meter
    ids: dict[str, str]
    users: list[SeedUser]

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def id_of(self, index: int) -> str:
        return self.ids[self.users[index].user_name]

    def user(self, index: int) -> dict[str, Any]:
        found = self.server.get_user(self.id_of(index))
        assert found is not None
        return found

    def as_scim_app(self) -> ScimApp:
        return ScimApp(server=self.server, quirks=self.quirks, ids=self.ids, users=self.users)

    def bodies(self, method: str, path_contains: str = "") -> list[dict[str, Any]]:
        return [
            json.loads(body)
            for m, target, _, body in self.quirks.requests
            if m == method and path_contains in target and body
        ]


def start_scim_env(users: int = 20) -> ScimEnv:
    quirks = Quirks()
    meter = Meter()
    people = demo_users(users)
    server = ScimServer(token=SCIM_TOKEN, middleware=lambda app: meter.wrap(quirks.wrap(app)))
    server.start()
    groups = DEMO_GROUPS if users == 20 else {}
    ids = server.seed(people, groups)
    return ScimEnv(server=server, quirks=quirks, meter=meter, ids=ids, users=people)


@pytest.fixture
def scim_env() -> Iterator[ScimEnv]:
    env = start_scim_env()
    yield env
    env.quirks.reset()  # releases any delayed request
    env.server.stop()


ConnectorFactory = Callable[..., ScimConnector]


@pytest.fixture
async def make_connector(scim_env: ScimEnv) -> AsyncIterator[ConnectorFactory]:
    clients: list[httpx.AsyncClient] = []

    def make(
        *,
        env: ScimEnv | None = None,
        token: str = SCIM_TOKEN,
        credentials: Credentials | None = None,
        timeout: float = 10.0,
        gate: RateGate | None = None,
        client: httpx.AsyncClient | None = None,
        **settings: Any,
    ) -> ScimConnector:
        base_url = (env or scim_env).base_url
        scim = ScimSettings.model_validate(
            {"base_url": base_url, "token_env": TOKEN_ENV, "timeout_seconds": timeout, **settings}
        )
        if client is None:
            client = scim_http_client(scim)  # the worker's client: its transport, its pool
            clients.append(client)
        creds = credentials or BearerToken(SecretStr(token), TOKEN_ENV)
        return ScimConnector(APP, scim, client, creds, gate)

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
def json_logs() -> Iterator[None]:
    """Production logging (structlog JSON on stderr) for the test, then whatever was before."""
    saved = structlog.get_config()
    configure_logging("json")
    yield
    structlog.configure(**saved)


@pytest.fixture
def token_endpoint() -> Iterator[TokenEndpoint]:
    endpoint = TokenEndpoint(
        client_id="offboard-client",
        client_secret="client-secret-9c1e77",
        tokens=["expired-token-3b2a11", SCIM_TOKEN],
    ).start()
    yield endpoint
    endpoint.stop()
