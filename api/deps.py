"""Request dependencies: settings, catalog, DB access, Temporal client, the caller and its role.

Sync routes may take a ``SessionDep`` (FastAPI runs them in its threadpool); async routes take
a ``DbDep`` and run their DB work through it, never a session on the event loop (a test checks).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel import Session
from temporalio.client import Client

from api.errors import ApiError
from config import Catalog, Settings
from db.session import Db, open_session
from services import authz
from services.authz import Principal
from services.tokens import principal_for

SESSION_COOKIE = "offboard_session"


def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_catalog(request: Request) -> Catalog:
    catalog: Catalog = request.app.state.catalog
    return catalog


def get_session(request: Request) -> Iterator[Session]:
    with open_session(request.app.state.settings.effective_database_url) as session:
        yield session


def get_db(request: Request) -> Db:
    return Db(request.app.state.settings.effective_database_url)


async def get_temporal(request: Request) -> Client:
    client: Client | None = request.app.state.temporal
    if client is None:
        raise ApiError(503, "temporal_unavailable", "not connected to Temporal yet")
    return client


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
DbDep = Annotated[Db, Depends(get_db)]
CatalogDep = Annotated[Catalog, Depends(get_catalog)]
SessionDep = Annotated[Session, Depends(get_session)]
TemporalDep = Annotated[Client, Depends(get_temporal)]


# The only requests the web UI's session cookie authenticates on the JSON API: reads (the
# audit page's CSV and JSON download links). A state-changing JSON call needs the bearer
# header, which a cross-site form cannot send, so it needs no CSRF token.
COOKIE_METHODS = {"GET", "HEAD"}


def get_principal(request: Request, session: SessionDep) -> Principal:
    """The bearer token's holder; for reads also the web UI's session cookie (same token)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not token and request.method in COOKIE_METHODS:
        token = request.cookies.get(SESSION_COOKIE, "")
        scheme = "bearer" if token else scheme
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "unauthenticated", "missing bearer token (Authorization: Bearer ...)")
    principal = principal_for(session, token)
    if principal is None:
        raise ApiError(401, "unauthenticated", "unknown or revoked token")
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require_admin(principal: PrincipalDep) -> Principal:
    authz.require_admin(principal)
    return principal


AdminDep = Annotated[Principal, Depends(require_admin)]


def require_staff(principal: PrincipalDep) -> Principal:
    """Admins and app admins: the people who run offboardings (not reviewers)."""
    authz.require_staff(principal)
    return principal


StaffDep = Annotated[Principal, Depends(require_staff)]
