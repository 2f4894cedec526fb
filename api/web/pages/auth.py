"""Sign-in with an API token (it becomes the session cookie) and sign-out."""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.deps import SESSION_COOKIE, SessionDep, SettingsDep
from api.web.render import render
from api.web.session import (
    LOGIN_CSRF_COOKIE,
    SESSION_MAX_AGE,
    WebPrincipal,
    check_csrf,
    page_router,
    safe_next,
    same_origin,
    secure_cookie,
)
from services.tokens import principal_for

router = page_router()


def _login_page(
    request: Request, target: str, status: int = 200, error: str | None = None
) -> HTMLResponse:
    nonce = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
    response = render(
        request, "login.html", status, next=safe_next(target), login_csrf=nonce, error=error
    )
    # Double-submit token against login CSRF (signing a victim in as someone else).
    response.set_cookie(
        LOGIN_CSRF_COOKIE, nonce, max_age=3600, httponly=True, samesite="strict", path="/login"
    )
    return response


@router.get("/login")
def login_form(request: Request, next: str = Query(default="/")) -> HTMLResponse:
    return _login_page(request, next)


@router.post("/login")
def login(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    token: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    target = safe_next(next)
    nonce = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    fresh = nonce and hmac.compare_digest(nonce, csrf_token)
    if not fresh or not same_origin(request, settings):
        return _login_page(request, target, 403, "The sign-in form expired. Please try again.")
    token = token.strip()
    if principal_for(session, token) is None:
        return _login_page(request, target, 401, "That token is unknown or revoked.")
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=SESSION_MAX_AGE,
        httponly=True,
        samesite="lax",
        secure=secure_cookie(settings),
        path="/",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(
    request: Request,
    principal: WebPrincipal,
    settings: SettingsDep,
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """Sign out: a form post carrying the page's CSRF token (a cross-site post is refused)."""
    check_csrf(request, csrf_token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=secure_cookie(settings)
    )
    return response
