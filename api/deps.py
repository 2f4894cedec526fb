"""Request dependencies: settings, DB session, Temporal client, the caller and its role."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from temporalio.client import Client

from api.errors import ApiError
from api.tokens import Role, lookup
from config import Catalog, Settings
from db.session import open_session

T = TypeVar("T")


def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_catalog(request: Request) -> Catalog:
    catalog: Catalog = request.app.state.catalog
    return catalog


def get_session(request: Request) -> Iterator[Session]:
    url = request.app.state.settings.effective_database_url
    with open_session(url) as session:
        yield session


async def get_temporal(request: Request) -> Client:
    client: Client | None = request.app.state.temporal
    if client is None:
        raise ApiError(503, "temporal_unavailable", "not connected to Temporal yet")
    return client


class Db:
    """Database work for async endpoints, run in the threadpool with its own short session.

    An async endpoint must never touch the DB on the event loop: a blocking pool checkout or
    SQLite lock wait there stalls every request (and, under ``offboard dev``, the worker).
    """

    def __init__(self, url: str) -> None:
        self._url = url

    async def run(self, fn: Callable[[Session], T]) -> T:
        def call() -> T:
            with open_session(self._url) as session:
                return fn(session)

        return await run_in_threadpool(call)


def get_db(request: Request) -> Db:
    return Db(request.app.state.settings.effective_database_url)


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
DbDep = Annotated[Db, Depends(get_db)]
CatalogDep = Annotated[Catalog, Depends(get_catalog)]
SessionDep = Annotated[Session, Depends(get_session)]
TemporalDep = Annotated[Client, Depends(get_temporal)]


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    email: str | None

    @property
    def actor(self) -> str:
        return self.email or f"token:{self.name}"


def get_principal(request: Request, session: SessionDep) -> Principal:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not token:
        token = request.cookies.get("offboard_session", "")
        scheme = "bearer" if token else scheme
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "unauthenticated", "missing bearer token (Authorization: Bearer ...)")
    row = lookup(session, token)
    if row is None:
        raise ApiError(401, "unauthenticated", "unknown or revoked token")
    return Principal(name=row.name, role=row.role, email=row.email)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require_admin(principal: PrincipalDep) -> Principal:
    if principal.role != "admin":
        raise ApiError(403, "forbidden", f"role admin required (you are {principal.role})")
    return principal


AdminDep = Annotated[Principal, Depends(require_admin)]


def require_staff(principal: PrincipalDep) -> Principal:
    """Admins and app admins: the people who run offboardings (not reviewers)."""
    if principal.role not in ("admin", "app-admin"):
        raise ApiError(
            403, "forbidden", f"role admin or app-admin required (you are {principal.role})"
        )
    return principal


StaffDep = Annotated[Principal, Depends(require_staff)]


def owned_apps(principal: Principal, catalog: Catalog) -> set[str] | None:
    """The apps an app admin owns in the catalog; None means every app (admin)."""
    if principal.role == "admin":
        return None
    email = (principal.email or "").lower()
    return {a.id for a in catalog.apps if email and email in {o.lower() for o in a.owners}}


def check_apps(catalog: Catalog, apps: Sequence[str] | None) -> list[str]:
    """The requested app ids (all apps when none), or 422 naming every unknown one."""
    unknown = catalog.unknown_apps(apps)
    if unknown:
        raise ApiError(422, "unknown_app", f"unknown app(s): {', '.join(unknown)}")
    return list(dict.fromkeys(apps)) if apps else [a.id for a in catalog.apps]
