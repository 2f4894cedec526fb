"""A loopback HTTP server for vendor APIs no test can reach (Okta, Graph, Google, receivers).

Subclasses add routes (method, path regex, handler) implementing the vendor's documented
contract for the calls offboard makes. Every request is recorded first, so injected faults
count as attempts; ``fail_next`` answers instead of the vendor (nothing changes server-side).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from socketserver import ThreadingMixIn
from typing import Any, Self
from urllib.parse import parse_qsl
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

Headers = list[tuple[str, str]]
Response = tuple[int, Headers, bytes]


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode()))

    @property
    def bearer(self) -> str:
        return self.headers.get("authorization", "").removeprefix("Bearer ")


Handler = Callable[[Request, re.Match[str]], Response]


@dataclass
class _Fault:
    remaining: int
    status: int
    method: str | None
    path_contains: str | None
    headers: Headers
    body: bytes


def json_response(status: int, body: Any = None, headers: Headers | None = None) -> Response:
    if body is None and status == 204:
        return status, list(headers or []), b""
    data = json.dumps(body).encode()
    return status, [("Content-Type", "application/json"), *(headers or [])], data


class _Threading(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve_wsgi(app: Callable[..., Iterable[bytes]]) -> WSGIServer:
    """Serve ``app`` on a free loopback port, one thread per request, until ``shutdown()``."""
    server = make_server("127.0.0.1", 0, app, server_class=_Threading, handler_class=_Quiet)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    return server


@dataclass
class VendorServer:
    routes: list[tuple[str, re.Pattern[str], Handler]] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    url: str = ""
    _faults: list[_Fault] = field(default_factory=list)
    _server: WSGIServer | None = None
    lock: threading.RLock = field(default_factory=threading.RLock)

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        self.routes.append((method, re.compile(pattern + "$"), handler))

    def fail_next(
        self,
        n: int,
        status: int,
        *,
        method: str | None = None,
        path_contains: str | None = None,
        headers: Headers | None = None,
        body: Any = None,
    ) -> None:
        """The next ``n`` matching requests get ``status`` (a JSON ``body``) instead."""
        data = json.dumps(body).encode() if body is not None else b""
        with self.lock:
            self._faults.append(_Fault(n, status, method, path_contains, headers or [], data))

    def clear_faults(self) -> None:
        with self.lock:
            self._faults.clear()

    def count(self, method: str, path_contains: str = "") -> int:
        with self.lock:
            return sum(1 for r in self.requests if r.method == method and path_contains in r.path)

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        request = Request(
            method=environ["REQUEST_METHOD"],
            path=environ.get("PATH_INFO", ""),
            query=dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)),
            headers={
                k[5:].replace("_", "-").lower(): v
                for k, v in environ.items()
                if k.startswith("HTTP_")
            }
            | {"content-type": environ.get("CONTENT_TYPE", "")},
            body=environ["wsgi.input"].read(length) if length else b"",
        )
        with self.lock:
            self.requests.append(request)
            status, headers, body = self._fault(request) or self._dispatch(request)
        phrase = HTTPStatus(status).phrase
        start_response(f"{status} {phrase}", [*headers, ("Content-Length", str(len(body)))])
        return [body]

    def _fault(self, request: Request) -> Response | None:
        for fault in self._faults:
            if (
                fault.remaining > 0
                and (fault.method is None or fault.method == request.method)
                and (fault.path_contains is None or fault.path_contains in request.path)
            ):
                fault.remaining -= 1
                content = [("Content-Type", "application/json")] if fault.body else []
                return fault.status, [*content, *fault.headers], fault.body
        return None

    def _dispatch(self, request: Request) -> Response:
        for method, pattern, handler in self.routes:
            match = pattern.match(request.path)
            if match and method == request.method:
                return handler(request, match)
        return self.not_found(request)

    def not_found(self, request: Request) -> Response:
        return json_response(404, {"error": f"no route {request.method} {request.path}"})

    def start(self) -> Self:
        self._server = serve_wsgi(self)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
