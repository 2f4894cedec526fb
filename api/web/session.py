"""Web sessions: the cookie holds the API token itself; forms carry a CSRF token.

The CSRF token is an HMAC of the session token under a fixed label, so only a page rendered
for this session knows it (and it stays valid across API replicas and restarts without a
shared server secret). Errors on a page become pages (``WebRoute``).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Coroutine
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.routing import APIRoute

from api.deps import SESSION_COOKIE, SessionDep
from api.errors import ApiError, status_of
from api.web.render import csrf_token, error_page
from config import Settings
from services.authz import Principal
from services.errors import DomainError
from services.tokens import principal_for

LOGIN_CSRF_COOKIE = "offboard_login_csrf"
SESSION_MAX_AGE = 12 * 3600
_TITLES = {403: "Not allowed", 404: "Not found", 409: "Conflict", 503: "Unavailable"}


class NeedLogin(Exception):
    """No (valid) session: the page redirects to /login and comes back afterwards."""


class Refused(Exception):
    def __init__(self, status: int, title: str, message: str, need: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message
        self.need = need


def _next_target(request: Request) -> str:
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    return target


class WebRoute(APIRoute):
    """Errors on a page become pages: 401 → /login, 403 → which role is needed, else a message."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except NeedLogin:
                login = "/login?next=" + quote(_next_target(request), safe="/")
                if request.headers.get("HX-Request"):
                    return Response(status_code=401, headers={"HX-Redirect": login})
                return RedirectResponse(login, status_code=303)
            except Refused as exc:
                return error_page(request, exc.status, exc.title, exc.message, exc.need)
            except DomainError as exc:
                status = status_of(exc)
                return error_page(request, status, _TITLES.get(status, "Error"), exc.message)
            except ApiError as exc:
                if exc.status == 401:
                    return RedirectResponse("/login", status_code=303)
                return error_page(
                    request, exc.status, _TITLES.get(exc.status, "Error"), exc.message
                )

        return route


def page_router() -> APIRouter:
    return APIRouter(route_class=WebRoute, include_in_schema=False)


def same_origin(request: Request, settings: Settings) -> bool:
    """A state-changing request's ``Origin``, when the browser sends one, is this site's: the
    public URL's, or the host the request was addressed to (``offboard dev`` on any port)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    host = request.headers.get("Host", "")
    allowed = {settings.effective_public_url, f"{request.url.scheme}://{host}"}
    return origin.rstrip("/") in allowed


def check_csrf(request: Request, given: str) -> None:
    """The form's CSRF token is this session's, and the request comes from this site."""
    expected = csrf_token(request.state.session_token)
    settings: Settings = request.app.state.settings
    if not given or not hmac.compare_digest(expected, given) or not same_origin(request, settings):
        raise Refused(
            403,
            "Form expired",
            "This form's security token is missing or wrong. Reload the page and try again.",
        )


def web_principal(request: Request, session: SessionDep) -> Principal:
    token = request.cookies.get(SESSION_COOKIE, "")
    principal = principal_for(session, token)
    if principal is None:
        raise NeedLogin()
    request.state.principal = principal
    request.state.session_token = token
    return principal


WebPrincipal = Annotated[Principal, Depends(web_principal)]


def secure_cookie(settings: Settings) -> bool:
    return settings.effective_public_url.lower().startswith("https://")


def safe_next(target: str) -> str:
    """Only same-site relative paths: never //host, /\\host, a scheme, a backslash or a control
    character anywhere (browsers drop tabs and newlines: ``/<tab>/host`` is ``//host``)."""
    if (
        target.startswith("/")
        and not target.startswith("//")
        and "\\" not in target
        and all(ord(ch) > 0x20 and ord(ch) != 0x7F for ch in target)
    ):
        return target
    return "/"
