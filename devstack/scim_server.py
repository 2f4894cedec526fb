r"""An in-process SCIM 2.0 server (scim2-server's WSGI app) for the demo, tests and benches.

What scim2-server 0.8.3 (default schemas and ServiceProviderConfig) actually does,
checked by running it through this module:

- Auth: missing or wrong bearer token -> 401 with `WWW-Authenticate: Bearer realm="SCIM"`;
  /ServiceProviderConfig answers without a token.
- Config: patch, bulk (1000 ops, 1 MiB), filter (maxResults 1000), sort, etag all
  supported; no pagination block, so `count` defaults to and is capped at 1000, and
  startIndex < 1 is read as 1.
- PATCH `{"op":"replace","path":"active","value":false}` works, and so do the pathless
  `{"op":"replace","value":{"active":false}}` and Entra's `"op":"Replace"` with
  `"value":"False"`. The answer is 204 with an ETag and no body, unless the query has
  `attributes`/`excludedAttributes` (then 200 with the resource). A no-op PATCH is 204
  and keeps the version.
- Requests with a body need `Content-Type: application/scim+json` or `application/json`;
  without the header wsgiref reports text/plain and the server answers 415.
- ETags are `W/"<n>"` (also meta.version). If-Match on PUT, PATCH and DELETE: stale ->
  412; weak comparison, so `"n"` matches `W/"n"`.
- Filters: `userName eq` and `emails.value eq` are case-insensitive, `externalId eq` is
  case-sensitive; `emails[type eq "work"].value eq "x"` and
  `emails[type eq "work" and value eq "x"]` work; `co`, `sw`, `and`, `or`, `not (...)`
  work; single quotes or bad syntax -> 400 scimType invalidFilter.
- Escaping: `\"` and `\\` inside a filter string work. The demo's
  `mallory" or emails.value co "@example.com` escaped finds exactly her; unescaped it
  matches every user.
- Groups: `members.value eq "<id>"` and `members[value eq "<id>"]` work (ids compare
  case-sensitively). Removing with `{"op":"remove","path":"members[value eq \"<id>\"]"}`
  -> 204 (also 204 when not a member). Removing with
  `{"op":"remove","path":"members","value":[{"value":"<id>"}]}` -> 400 invalidValue:
  not supported. Removing the last member drops the `members` key entirely.
- DELETE -> 204; then GET -> 404, DELETE again -> 404. Deleted users stay listed in
  their groups' members, and User.groups is never filled.
- A user POSTed without `active` has no `active` attribute at all (not true).
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from socketserver import ThreadingMixIn
from types import TracebackType
from typing import Any, Self
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx
from scim2_models import ScimProvider
from scim2_server.memory import InMemoryStorage
from scim2_server.service import ScimService
from scim2_server.testserver.application import BEARER_TOKEN_SCHEME, BearerTokenApplication
from scim2_server.utils import (
    load_default_resource_types,
    load_default_schemas,
    load_default_service_provider_config,
)

__all__ = ["SCIM_JSON", "USER_SCHEMA", "ScimServer", "SeedUser", "WSGIApp"]

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
SCIM_JSON = "application/scim+json"

# Large enough that listing groups is one round trip in the demo and tests, and
# equal to the server's filter.maxResults, which caps `count` anyway.
_PAGE_SIZE = 1000


@dataclass(frozen=True)
class SeedUser:
    user_name: str
    email: str
    given_name: str
    family_name: str
    external_id: str | None = None
    active: bool = True

    def to_scim(self) -> dict[str, Any]:
        """The body a provisioning client would POST for this person."""
        body: dict[str, Any] = {
            "schemas": [USER_SCHEMA],
            "userName": self.user_name,
            "name": {
                "givenName": self.given_name,
                "familyName": self.family_name,
                "formatted": f"{self.given_name} {self.family_name}",
            },
            "displayName": f"{self.given_name} {self.family_name}",
            "emails": [{"value": self.email, "type": "work", "primary": True}],
            "active": self.active,
        }
        if self.external_id is not None:
            body["externalId"] = self.external_id
        return body


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    # Daemon threads, so stop() never waits for a request a quirk is stalling.
    daemon_threads = True
    # HTTP/1.0 means a connection per request; socketserver's backlog of 5 drops SYNs under
    # a burst and every dropped one costs a 1 s retransmit.
    request_queue_size = 256

    # Clients time out and the reset quirk hangs up on purpose; socketserver would
    # print a traceback for each. Anything else is a real bug and stays loud.
    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _QuietHandler(WSGIRequestHandler):
    # wsgiref writes an access-log line per request to stderr, which floods test
    # and bench output.
    def log_message(self, format: str, *args: Any) -> None:
        pass


@cache
def _default_provider() -> ScimProvider:
    """The models of scim2-server's default schemas, built once per process.

    Building them is slow (a pydantic model per schema and complex attribute) and parses source
    with ``ast``. On CPython 3.11 that parse can fail with "AST constructor recursion depth
    mismatch" when another thread parses at the same moment (3.11's tracebacks do, to place
    their ^^^ markers; see python/cpython#106905), so a server started while workers log must
    not rebuild them. The models are immutable and can be shared.
    """
    return ScimProvider.from_discovery(
        load_default_schemas().values(), load_default_resource_types().values()
    )


class ScimServer:
    """scim2-server's WSGI app on a background thread, with helpers to seed and inspect it.

    Clients (the connector under test, `client`) go through `middleware`; seed() and
    the inspection helpers do not, so they always see the server's real state.
    """

    def __init__(
        self,
        token: str | None = None,
        middleware: Callable[[WSGIApp], WSGIApp] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.token = token
        self.host = host
        self.port = port
        self.base_url = ""
        config = load_default_service_provider_config()
        if token is not None:
            # Announcing the scheme is what makes 401s carry WWW-Authenticate.
            config.authentication_schemes = [
                *(config.authentication_schemes or []),
                BEARER_TOKEN_SCHEME,
            ]
        shared = _default_provider()
        self.provider = ScimProvider(
            models=shared.models, resource_types=shared.resource_types, config=config
        )
        # The default config announces no cursor pagination, so no secret is needed.
        self.service = ScimService(self.provider)
        self.storage = InMemoryStorage()
        self.scim_app = BearerTokenApplication(
            self.storage,
            self.provider,
            service=self.service,
            bearer_tokens=[token] if token is not None else [],
        )
        app: WSGIApp = self.scim_app
        self.app = middleware(app) if middleware is not None else app
        self._server: _ThreadingWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._client: httpx.Client | None = None
        self._direct: httpx.Client | None = None
        self._lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> Self:
        with self._lock:
            if self._server is not None:
                return self
            server = make_server(
                self.host,
                self.port,
                self.app,
                server_class=_ThreadingWSGIServer,
                handler_class=_QuietHandler,
            )
            self.port = server.server_port
            self.base_url = f"http://{self.host}:{self.port}/v2"
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"scim-server-{self.port}",
                daemon=True,
            )
            thread.start()
            self._server, self._thread = server, thread
            return self

    def stop(self) -> None:
        with self._lock:
            server, thread = self._server, self._thread
            clients = [c for c in (self._client, self._direct) if c is not None]
            self._server = self._thread = self._client = self._direct = None
        for client in clients:
            client.close()
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- HTTP clients ----------------------------------------------------------------

    @property
    def client(self) -> httpx.Client:
        """An authenticated client for base_url: real sockets, through the middleware."""
        with self._lock:
            if self._server is None:
                raise RuntimeError("ScimServer is not started")
            if self._client is None:
                self._client = self._make_client(None)
            return self._client

    @property
    def _oracle(self) -> httpx.Client:
        # The inspection helpers are the tests' ground truth, so they call the SCIM
        # app directly: quirks can neither distort their answers (lying pagination,
        # gone users, injected faults) nor see them in the request log.
        with self._lock:
            if self._server is None:
                raise RuntimeError("ScimServer is not started")
            if self._direct is None:
                self._direct = self._make_client(httpx.WSGITransport(app=self.scim_app))
            return self._direct

    def _make_client(self, transport: httpx.BaseTransport | None) -> httpx.Client:
        headers = {"Accept": SCIM_JSON}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        return httpx.Client(
            base_url=self.base_url, headers=headers, timeout=30, transport=transport
        )

    # -- seeding ---------------------------------------------------------------------

    def seed(
        self,
        users: Sequence[SeedUser],
        groups: Mapping[str, Sequence[str]] = {},
        *,
        over_http: bool = False,
    ) -> dict[str, str]:
        """Create users, then groups of them (displayName -> userNames); return userName -> id.

        By default the bodies go through the same two calls the POST handler makes
        (validate as a creation request, store), skipping only sockets, WSGI and the
        response: ~5x faster than HTTP, bypasses any middleware (so quirks neither
        break nor record seeding), and yields the same resources a POST would.
        `over_http=True` POSTs them instead, through the middleware.
        """
        create = self._create_over_http if over_http else self._create_in_process
        ids: dict[str, str] = {}
        for user in users:
            ids[user.user_name] = create("Users", user.to_scim())
        for display_name, members in groups.items():
            body = {
                "schemas": [GROUP_SCHEMA],
                "displayName": display_name,
                "members": [
                    {"value": ids[name], "display": name, "type": "User"} for name in members
                ],
            }
            create("Groups", body)
        return ids

    def _create_over_http(self, endpoint: str, body: dict[str, Any]) -> str:
        response = self.client.post(
            f"/{endpoint}", content=json.dumps(body), headers={"Content-Type": SCIM_JSON}
        )
        response.raise_for_status()
        resource_id: str = response.json()["id"]
        return resource_id

    def _create_in_process(self, endpoint: str, body: dict[str, Any]) -> str:
        # Mirrors scim2_server.handler.ScimHandler.create step for step; the provider
        # context matters because validation reads the ambient provider and policy.
        resource_type = self.service.resource_type_at(endpoint)
        with self.provider:
            resource = self.service.read_creation(
                resource_type, json.dumps(body).encode(), SCIM_JSON
            )
            with self.storage.operation():
                created = self.storage.create(resource_type, resource)
        assert created.id is not None
        return created.id

    # -- inspection ------------------------------------------------------------------

    # Read the SCIM app's true state (see _oracle), never the quirky view.

    def get_user(self, user_id: str) -> dict[str, Any] | None:
        response = self._oracle.get(f"/Users/{user_id}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        user: dict[str, Any] = response.json()
        return user

    def find_user(self, user_name: str) -> dict[str, Any] | None:
        found = self._search("/Users", f'userName eq "{scim_filter_value(user_name)}"')
        return found[0] if found else None

    def groups_of(self, user_id: str) -> list[str]:
        """Sorted displayNames of the groups listing user_id as a member."""
        # Reads members rather than filtering so it stays an independent check
        # of what a connector's filtered query claims.
        return sorted(
            group["displayName"]
            for group in self._search("/Groups", None)
            if any(member.get("value") == user_id for member in group.get("members", []))
        )

    def _search(self, path: str, scim_filter: str | None) -> list[dict[str, Any]]:
        resources: list[dict[str, Any]] = []
        start = 1
        while True:
            params: dict[str, str | int] = {"startIndex": start, "count": _PAGE_SIZE}
            if scim_filter is not None:
                params["filter"] = scim_filter
            response = self._oracle.get(path, params=params)
            response.raise_for_status()
            page = response.json()
            batch: list[dict[str, Any]] = page.get("Resources", [])
            resources.extend(batch)
            start += len(batch)
            if not batch or start > int(page.get("totalResults", 0)):
                return resources


def scim_filter_value(value: str) -> str:
    """Escape a string for use inside a double-quoted SCIM filter literal (RFC 7644 §3.4.2.2)."""
    return value.replace("\\", "\\\\").replace('"', '\\"')
