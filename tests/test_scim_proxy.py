"""Behind an egress proxy (HTTP_PROXY/HTTPS_PROXY in the worker's environment), SCIM requests
go through it: the faster transport the worker uses by default does not read those variables,
so the connector must not use it there."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import SecretStr

from connectors.auth import BearerToken
from connectors.registry import scim_http_client
from connectors.scim import ScimConnector
from connectors.settings import ScimSettings

# Never resolvable: an answer can only have come from the proxy.
APP_URL = "http://scim.offboard-test.invalid/v2"
ALICE = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
    "id": "u-1",
    "userName": "alice@example.com",
    "active": True,
}


class _ForwardProxy(BaseHTTPRequestHandler):
    """Answers any proxied GET as the app would, noting the absolute URL it was asked for."""

    seen: list[str] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        body = json.dumps(
            {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
                "totalResults": 1,
                "itemsPerPage": 1,
                "startIndex": 1,
                "Resources": [ALICE],
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/scim+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ForwardProxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _ForwardProxy.seen = []
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    yield _ForwardProxy.seen
    server.shutdown()
    server.server_close()
    thread.join()


async def test_scim_requests_go_through_the_proxy_from_the_environment(
    proxy: list[str],
) -> None:
    settings = ScimSettings.model_validate({"base_url": APP_URL, "token_env": "PROXY_TOKEN"})
    client = scim_http_client(settings)
    try:
        connector = ScimConnector(
            "proxied", settings, client, BearerToken(SecretStr("t"), "PROXY_TOKEN")
        )
        found = await connector.find("alice@example.com")
    finally:
        await client.aclose()

    assert [a.id for a in found] == ["u-1"]
    assert proxy and all(url.startswith(f"{APP_URL}/Users?") for url in proxy)
