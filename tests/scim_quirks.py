"""WSGI middleware that makes the in-process SCIM server misbehave like real SaaS endpoints.

    quirks = Quirks()
    with ScimServer(token=TOKEN, middleware=quirks.wrap) as scim:
        quirks.fail_next(1, 429, retry_after="2")
        quirks.gone_after_deactivate = True

Every request is recorded in `requests` first, so injected faults count as
attempts. One-shot faults (`*_next`) are matched in the order they were armed;
the first armed rule whose method and path filter match consumes one of its n.
Faults that answer instead of the app (`fail_next`, `reset_next`,
`malformed_next`) never reach the app, so nothing changes server-side;
`delay_next` sleeps and then lets the request through, so a client that timed
out may still have changed the resource (the ambiguous outcome real timeouts have).

Persistent quirks are plain attributes, read once per request. `reset()` puts
everything back, for a server shared between tests.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from io import BytesIO
from time import time
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode

from devstack.scim_server import WSGIApp
from tests import scim_quirk_shapes as shapes

__all__ = ["Quirks"]

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SCIM_JSON = "application/scim+json"

Headers = list[tuple[str, str]]
Response = tuple[int, Headers, bytes]
RecordedRequest = tuple[str, str, dict[str, str], bytes]

# What a PATCH-less or soft-deleting app effectively does on DELETE.
_DEACTIVATE = json.dumps(
    {"schemas": [PATCH_SCHEMA], "Operations": [{"op": "replace", "path": "active", "value": False}]}
).encode()


@dataclass
class _Rule:
    kind: Literal["fail", "delay", "reset", "malformed"]
    remaining: int
    method: str | None
    path_contains: str | None
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    seconds: float = 0.0

    def matches(self, method: str, target: str) -> bool:
        return (
            self.remaining > 0
            and (self.method is None or self.method == method)
            and (self.path_contains is None or self.path_contains in target)
        )


class Quirks:
    # lying_pagination: the app is asked for at most this many items per page,
    # whatever `count` the client sent.
    LYING_PAGE_CAP = 7

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._app: WSGIApp | None = None
        self._rules: list[_Rule] = []
        # Delays wait on this event rather than sleeping, so reset() can release
        # them instead of leaving server threads stuck for the rest of the run.
        self._wake = threading.Event()
        # Listings (path, filter) whose next final page still gets swapped for an
        # empty one; re-armed whenever the client starts over at startIndex=1.
        self._empty_page_armed: set[tuple[str, str]] = set()
        self.requests: list[RecordedRequest] = []
        self._clear_flags()

    def _clear_flags(self) -> None:
        self.patch_not_supported = False  # PATCH -> 501
        self.patch_204 = False  # PATCH -> 204 with no body, even if attributes were asked for
        self.patch_200 = False  # PATCH -> 200 with the full resource (scim2-server says 204)
        self.active_as_string = False  # "active": false/true -> "False"/"True" in responses
        self.plain_json_content_type = False  # Content-Type application/json
        self.drop_meta = False  # no "meta" in resources (the ETag header stays)
        self.gone_after_deactivate = False  # inactive users 404 and vanish from /Users lists
        self.delete_only_deactivates = False  # DELETE /Users/<id> sets active=false, 204
        self.pathless_patch_only = False  # PATCH operations carrying "path" -> 400 invalidPath
        self.lying_pagination = False  # see _lying_list
        self.active_as_digit = False  # "active": false/true -> "0"/"1" in responses
        self.ignore_user_patch = False  # PATCH /Users/<id> -> 204, and nothing changes
        self.case_sensitive_filters = False  # userName/emails.value eq compare case-exactly
        self.total_is_page_size = False  # totalResults = the number on this page
        self.require_if_match = False  # PATCH/PUT/DELETE without If-Match -> 428
        self.group_lists_without_members = False  # GET /Groups listings carry no members
        # No group ever shows members, and `members.value eq` is rejected unless next to `id eq`.
        self.group_members_hidden = False
        self.group_member_cap: int | None = None  # groups show at most this many members
        self.group_patch_unsupported = False  # PATCH /Groups/<id> -> 501
        self.user_groups_filter = False  # GET /Users?filter=groups.value eq "<group id>" works
        # Every n-th request fails, in turn with each of flaky_faults (429 carries
        # Retry-After: 1; "reset" hangs up without an answer).
        self.flaky_every: int | None = None
        self.flaky_faults: tuple[str, ...] = ("429", "503", "reset")

    # -- configuration ---------------------------------------------------------------

    def wrap(self, app: WSGIApp) -> WSGIApp:
        """Pass as `ScimServer(middleware=quirks.wrap)`; one Quirks per server."""
        if self._app is not None and self._app is not app:
            raise RuntimeError("this Quirks already wraps another app; make one per server")
        self._app = app
        return self

    def fail_next(
        self,
        n: int,
        status: int,
        *,
        method: str | None = None,
        path_contains: str | None = None,
        retry_after: str | None = None,
        body: bytes | None = None,
        content_type: str | None = None,
    ) -> None:
        """Answer the next n matching requests with `status` instead of reaching the app.

        retry_after goes out verbatim as Retry-After: seconds ("2") or an HTTP-date
        (see `http_date`). The default body is a SCIM Error; pass e.g. HTML to
        imitate a proxy (its content type then defaults to text/html).
        """
        headers: list[tuple[str, str]] = []
        if body is None:
            body = _error_body(status, f"injected {status}")
            content_type = content_type or SCIM_JSON
        headers.append(("Content-Type", content_type or "text/html; charset=utf-8"))
        if retry_after is not None:
            headers.append(("Retry-After", retry_after))
        if status == HTTPStatus.UNAUTHORIZED:
            headers.append(("WWW-Authenticate", 'Bearer realm="SCIM"'))
        self._arm(_Rule("fail", n, _upper(method), path_contains, status, tuple(headers), body))

    def delay_next(
        self,
        n: int,
        seconds: float,
        *,
        method: str | None = None,
        path_contains: str | None = None,
    ) -> None:
        """Hold the next n matching requests for `seconds`, then let them through."""
        self._arm(_Rule("delay", n, _upper(method), path_contains, seconds=seconds))

    def reset_next(
        self, n: int, *, method: str | None = None, path_contains: str | None = None
    ) -> None:
        """Close the connection of the next n matching requests without any response.

        httpx raises RemoteProtocolError ("Server disconnected without sending a
        response"), a subclass of httpx.TransportError.
        """
        self._arm(_Rule("reset", n, _upper(method), path_contains))

    def malformed_next(
        self,
        n: int,
        *,
        method: str | None = None,
        path_contains: str | None = None,
        body: bytes = b'{"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListRes',
        content_type: str = SCIM_JSON,
    ) -> None:
        """Answer the next n matching requests 200 with a body that is not JSON.

        By default truncated JSON that still claims to be SCIM, the case a client
        most easily mistakes for success.
        """
        headers = (("Content-Type", content_type),)
        self._arm(_Rule("malformed", n, _upper(method), path_contains, 200, headers, body))

    def reset(self) -> None:
        """Disarm every fault, clear every quirk and the request log, release delays."""
        with self._lock:
            self._rules.clear()
            self._empty_page_armed.clear()
            self.requests.clear()
            self._clear_flags()
            wake, self._wake = self._wake, threading.Event()
        wake.set()

    @staticmethod
    def http_date(seconds_from_now: float) -> str:
        """A Retry-After value in HTTP-date form."""
        return formatdate(time() + seconds_from_now, usegmt=True)

    def _arm(self, rule: _Rule) -> None:
        if rule.remaining < 1:
            raise ValueError("n must be at least 1")
        with self._lock:
            self._rules.append(rule)

    # -- inspection ------------------------------------------------------------------

    def count(self, method: str | None = None, path_contains: str | None = None) -> int:
        """How many recorded requests match (method case-insensitive, substring of path+query)."""
        wanted = _upper(method)
        with self._lock:
            return sum(
                1
                for m, target, _, _ in self.requests
                if (wanted is None or m == wanted)
                and (path_contains is None or path_contains in target)
            )

    def sent_filters(self, path_contains: str | None = None) -> list[str]:
        """The decoded `filter` parameters sent, in order (the log keeps the raw query)."""
        with self._lock:
            targets = [target for _, target, _, _ in self.requests]
        filters = []
        for target in targets:
            if path_contains is not None and path_contains not in target:
                continue
            query = dict(parse_qsl(target.partition("?")[2], keep_blank_values=True))
            if "filter" in query:
                filters.append(query["filter"])
        return filters

    # -- WSGI ------------------------------------------------------------------------

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        method = str(environ["REQUEST_METHOD"]).upper()
        path = str(environ.get("PATH_INFO", ""))
        query_string = str(environ.get("QUERY_STRING", ""))
        target = f"{path}?{query_string}" if query_string else path
        body = _read_body(environ)
        environ["wsgi.input"] = BytesIO(body)

        with self._lock:
            self.requests.append((method, target, _headers(environ), body))
            rule = next((r for r in self._rules if r.matches(method, target)), None)
            if rule is not None:
                rule.remaining -= 1
                if rule.remaining == 0:
                    self._rules.remove(rule)
            wake = self._wake

        if rule is None and self.flaky_every and len(self.requests) % self.flaky_every == 0:
            faults = self.flaky_faults
            rule = _flaky_rule(faults[len(self.requests) // self.flaky_every % len(faults)])
        if rule is not None:
            if rule.kind == "reset":
                # wsgiref's handler treats this as the client hanging up: it writes
                # nothing and the server closes the socket.
                raise ConnectionResetError("injected connection reset")
            if rule.kind == "delay":
                wake.wait(rule.seconds)
            else:
                return _send(start_response, (rule.status, list(rule.headers), rule.body))

        response = self._handle(environ, method, body)
        return _send(start_response, self._postprocess(environ, method, response))

    # -- quirks ----------------------------------------------------------------------

    def _handle(self, environ: dict[str, Any], method: str, body: bytes) -> Response:
        path = str(environ.get("PATH_INFO", ""))
        prefix = "/v2" if path == "/v2" or path.startswith("/v2/") else ""
        parts = path.removeprefix(prefix).strip("/").split("/")
        user_id = (
            parts[1] if len(parts) == 2 and parts[0] == "Users" and parts[1] != ".search" else None
        )

        early = self._app_rules(environ, method, parts, user_id)
        if early is not None:
            return early

        if method == "PATCH":
            if self.patch_not_supported:
                return _error(HTTPStatus.NOT_IMPLEMENTED, "PATCH is not supported")
            if self.pathless_patch_only and _has_patch_path(body):
                return _error(
                    HTTPStatus.BAD_REQUEST,
                    "Operations with a path are not supported",
                    scim_type="invalidPath",
                )

        if user_id is not None and self.gone_after_deactivate:
            if self._inactive(environ, f"{prefix}/Users/{user_id}"):
                return _error(HTTPStatus.NOT_FOUND, f"User {user_id!r} not found")

        if user_id is not None and method == "DELETE" and self.delete_only_deactivates:
            status, headers, out = self._call(
                _derive(
                    environ, "PATCH", body=_DEACTIVATE, content_type=SCIM_JSON, conditional=True
                )
            )
            return (204, [], b"") if status < 300 else (status, headers, out)

        if method == "GET" and len(parts) == 1 and parts[0] in ("Users", "Groups"):
            query = dict(parse_qsl(str(environ.get("QUERY_STRING", "")), keep_blank_values=True))
            if self.gone_after_deactivate and parts[0] == "Users":
                # Filtering in the app (not on the page afterwards) keeps paging
                # consistent: counts and startIndex skip the hidden users.
                original = query.get("filter")
                hidden = "not (active eq false)"
                query["filter"] = f"({original}) and {hidden}" if original else hidden
            if self.lying_pagination:
                return self._lying_list(environ, query)
            return self._call(_derive(environ, "GET", query=query))

        response = self._call(environ)
        if method == "PATCH":
            status, headers, _ = response
            if self.patch_204 and status == HTTPStatus.OK:
                return 204, [(k, v) for k, v in headers if k.lower() == "etag"], b""
            if self.patch_200 and status == HTTPStatus.NO_CONTENT:
                return self._call(_derive(environ, "GET"))
        return response

    def _inactive(self, environ: dict[str, Any], user_path: str) -> bool:
        status, _, out = self._call(_derive(environ, "GET", path=user_path))
        return status == HTTPStatus.OK and json.loads(out).get("active") is False

    def _lying_list(self, environ: dict[str, Any], query: dict[str, str]) -> Response:
        """Page like a sloppy SaaS API.

        - at most LYING_PAGE_CAP items per page, whatever `count` asked for;
        - itemsPerPage echoes the requested count (or claims the whole total),
          not the number of items returned;
        - totalResults is half the truth, so a client that stops at it misses items;
        - the first time a listing reaches its final page (startIndex > 1), that
          page comes back empty once; asking for it again returns the items.
          Restarting at startIndex=1 re-arms it. A client must therefore re-ask an
          empty page once before concluding the listing is over.
        """
        requested = _int(query.get("count"))
        start = max(_int(query.get("startIndex")) or 1, 1)
        capped = self.LYING_PAGE_CAP if requested is None else min(requested, self.LYING_PAGE_CAP)
        status, headers, out = self._call(
            _derive(environ, "GET", query={**query, "count": str(capped)})
        )
        if status != HTTPStatus.OK:
            return status, headers, out
        page = json.loads(out)
        total = int(page.get("totalResults", 0))
        resources: list[Any] = page.get("Resources", [])
        key = (str(environ.get("PATH_INFO", "")), query.get("filter", ""))
        with self._lock:
            if start == 1:
                self._empty_page_armed.add(key)
            inject = (
                start > 1
                and bool(resources)
                and start - 1 + len(resources) >= total
                and key in self._empty_page_armed
            )
            if inject:
                self._empty_page_armed.discard(key)
        page["Resources"] = [] if inject else resources
        page["totalResults"] = total // 2
        page["itemsPerPage"] = requested if requested is not None else total
        return status, headers, json.dumps(page).encode()

    def _app_rules(
        self, environ: dict[str, Any], method: str, parts: list[str], user_id: str | None
    ) -> Response | None:
        """Answers some apps give before the request reaches their data (None: go on)."""
        query = dict(parse_qsl(str(environ.get("QUERY_STRING", "")), keep_blank_values=True))
        scim_filter = query.get("filter", "")
        writes = method in ("PATCH", "PUT", "DELETE")
        if writes and self.require_if_match and "HTTP_IF_MATCH" not in environ:
            return _error(428, "If-Match is required", scim_type="invalidVers")
        if method == "PATCH" and user_id is not None and self.ignore_user_patch:
            return 204, [], b""
        if method == "PATCH" and parts[0] == "Groups" and self.group_patch_unsupported:
            return _error(HTTPStatus.NOT_IMPLEMENTED, "PATCH is not supported for groups")
        listing = method == "GET" and len(parts) == 1
        if listing and parts[0] == "Groups" and self.group_members_hidden:
            if "members" in scim_filter and "id eq" not in scim_filter:
                return _error(
                    HTTPStatus.BAD_REQUEST, "filter on members", scim_type="invalidFilter"
                )
        if listing and parts[0] == "Users" and scim_filter.startswith("groups.value eq"):
            if not self.user_groups_filter:
                return _error(HTTPStatus.BAD_REQUEST, "groups.value", scim_type="invalidFilter")
            return self._users_in_group(environ, scim_filter)
        return None

    def _users_in_group(self, environ: dict[str, Any], scim_filter: str) -> Response:
        group_id = scim_filter.split('"')[1]
        prefix = str(environ.get("PATH_INFO", "")).removesuffix("/Users")
        status, _, out = self._call(_derive(environ, "GET", path=f"{prefix}/Groups/{group_id}"))
        if status != HTTPStatus.OK:
            return 200, [("Content-Type", SCIM_JSON)], json.dumps(shapes.user_list([])).encode()
        members = json.loads(out).get("members") or []
        users = [{"id": m["value"]} for m in members if m.get("type", "User") == "User"]
        return 200, [("Content-Type", SCIM_JSON)], json.dumps(shapes.user_list(users)).encode()

    def _reshape(self, environ: dict[str, Any], method: str, doc: dict[str, Any]) -> bool:
        """Apply the response-shape quirks to ``doc``; True when it changed."""
        path = str(environ.get("PATH_INFO", ""))
        groups = "/Groups" in path
        is_list = isinstance(doc.get("Resources"), list)
        query = dict(parse_qsl(str(environ.get("QUERY_STRING", "")), keep_blank_values=True))
        rules = [
            (self.active_as_digit, lambda: shapes.active_as(doc, "1", "0")),
            (self.active_as_string, lambda: shapes.active_as(doc, "True", "False")),
            (groups and self.group_members_hidden, lambda: shapes.strip_members(doc)),
            (
                groups and is_list and self.group_lists_without_members,
                lambda: shapes.strip_members(doc),
            ),
            (
                groups and self.group_member_cap is not None,
                lambda: shapes.cap_members(doc, self.group_member_cap or 0),
            ),
            (
                "/Users" in path and self.case_sensitive_filters,
                lambda: shapes.exact_case(doc, query.get("filter", "")),
            ),
            (is_list and self.total_is_page_size, lambda: shapes.total_is_page_size(doc)),
            (self.drop_meta, lambda: shapes.drop_meta(doc)),
        ]
        applied = [apply for wanted, apply in rules if wanted]
        for apply in applied:
            apply()
        return bool(applied)

    def _postprocess(self, environ: dict[str, Any], method: str, response: Response) -> Response:
        status, headers, out = response
        if out and status == HTTPStatus.OK:
            try:
                doc = json.loads(out)
            except ValueError:
                doc = None
            if isinstance(doc, dict) and self._reshape(environ, method, doc):
                out = json.dumps(doc).encode()
        if self.plain_json_content_type:
            headers = [
                (k, "application/json" if k.lower() == "content-type" else v) for k, v in headers
            ]
        return status, headers, out

    def _call(self, environ: dict[str, Any]) -> Response:
        if self._app is None:
            raise RuntimeError("Quirks is not wrapping an app; pass quirks.wrap as middleware")
        captured: list[Any] = []

        def start_response(
            status: str, headers: Headers, exc_info: Any = None
        ) -> Callable[[bytes], object]:
            captured[:] = [status, headers]
            return lambda _data: None

        chunks = self._app(environ, start_response)
        try:
            out = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        status_line, headers = captured
        return int(status_line.split()[0]), list(headers), out


def _flaky_rule(fault: str) -> _Rule:
    if fault == "reset":
        return _Rule("reset", 1, None, None)
    status = int(fault)
    headers = [("Content-Type", SCIM_JSON)]
    if status == HTTPStatus.TOO_MANY_REQUESTS:
        headers.append(("Retry-After", "1"))
    return _Rule(
        "fail", 1, None, None, status, tuple(headers), _error_body(status, f"flaky {status}")
    )


# -- helpers -------------------------------------------------------------------------


def _upper(method: str | None) -> str | None:
    return method.upper() if method is not None else None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _read_body(environ: dict[str, Any]) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    return bytes(environ["wsgi.input"].read(length)) if length > 0 else b""


def _headers(environ: dict[str, Any]) -> dict[str, str]:
    headers = {
        "-".join(word.capitalize() for word in key[5:].split("_")): str(value)
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    # wsgiref fills CONTENT_TYPE with text/plain when the client sent none, so it is
    # only worth recording alongside a body.
    if environ.get("CONTENT_LENGTH") not in (None, "", "0"):
        headers["Content-Type"] = str(environ.get("CONTENT_TYPE", ""))
        headers["Content-Length"] = str(environ["CONTENT_LENGTH"])
    return headers


def _derive(
    environ: dict[str, Any],
    method: str,
    *,
    path: str | None = None,
    query: dict[str, str] | None = None,
    body: bytes = b"",
    content_type: str = "",
    conditional: bool = False,
) -> dict[str, Any]:
    """A copy of a request's environ for a side request: same client and credentials.

    If-Match/If-None-Match are dropped unless `conditional`: a read the middleware
    makes for itself must not turn into a 304 or 412.
    """
    derived = dict(environ)
    derived["REQUEST_METHOD"] = method
    if path is not None:
        derived["PATH_INFO"] = path
    if query is not None:
        derived["QUERY_STRING"] = urlencode(query)
    elif method != environ["REQUEST_METHOD"]:
        derived["QUERY_STRING"] = ""
    derived["CONTENT_LENGTH"] = str(len(body)) if body else ""
    derived["CONTENT_TYPE"] = content_type
    derived["wsgi.input"] = BytesIO(body)
    if not conditional:
        derived.pop("HTTP_IF_MATCH", None)
        derived.pop("HTTP_IF_NONE_MATCH", None)
    return derived


def _has_patch_path(body: bytes) -> bool:
    try:
        operations = json.loads(body).get("Operations") or []
    except (ValueError, AttributeError):
        return False
    return any(isinstance(op, dict) and "path" in op for op in operations)


def _error_body(status: int, detail: str, scim_type: str | None = None) -> bytes:
    error: dict[str, Any] = {"schemas": [ERROR_SCHEMA], "status": str(status), "detail": detail}
    if scim_type is not None:
        error["scimType"] = scim_type
    return json.dumps(error).encode()


def _error(status: int, detail: str, *, scim_type: str | None = None) -> Response:
    return status, [("Content-Type", SCIM_JSON)], _error_body(status, detail, scim_type)


def _send(start_response: Callable[..., Any], response: Response) -> list[bytes]:
    status, headers, out = response
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    # The body may have been rewritten; let wsgiref compute the length again.
    start_response(
        f"{status} {phrase}", [(k, v) for k, v in headers if k.lower() != "content-length"]
    )
    return [out]
