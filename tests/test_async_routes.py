"""No async route touches the database on the event loop.

A blocking pool checkout or SQLite lock wait on the loop stalls every request (and, under
``offboard dev``, the worker sharing it). Async handlers take ``DbDep`` and run DB work in the
threadpool; sync handlers and sync dependencies may take a session (FastAPI runs them in the
threadpool). Checked twice: statically over every route's dependencies, and at run time by
watching where connections are checked out while async routes answer.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from sqlalchemy import event

from api.app import create_app
from api.deps import SessionDep, get_session
from config import Settings, parse_catalog
from db.session import get_engine
from tests.conftest import CATALOG, StackFactory


def blocking_on_the_loop(app: FastAPI) -> Iterator[str]:
    """``route: dependency`` for every coroutine (route or dependency) that takes a session."""

    def walk(dependant: Dependant, where: str) -> Iterator[str]:
        on_loop = inspect.iscoroutinefunction(dependant.call)
        for sub in dependant.dependencies:
            if on_loop and sub.call is get_session:
                yield f"{where}: {getattr(dependant.call, '__name__', dependant.call)}"
            yield from walk(sub, where)

    for route in app.routes:
        if isinstance(route, APIRoute):
            yield from walk(route.dependant, f"{sorted(route.methods)} {route.path}")


def offboard_app() -> FastAPI:
    catalog = parse_catalog(CATALOG.format(base_url="http://127.0.0.1:9/v2"))
    return create_app(Settings(), catalog)


def test_no_async_route_takes_a_session() -> None:
    assert list(blocking_on_the_loop(offboard_app())) == []


def test_the_check_catches_an_async_route_with_a_session() -> None:
    app = FastAPI()

    @app.get("/bad")
    async def bad(session: SessionDep) -> dict[str, Any]:
        return {}

    @app.get("/fine")
    def fine(session: SessionDep) -> dict[str, Any]:
        return {}

    assert list(blocking_on_the_loop(app)) == ["['GET'] /bad: bad"]


@pytest.mark.slow
async def test_async_routes_check_out_connections_off_the_loop(make_stack: StackFactory) -> None:
    stack = await make_stack(worker=False)
    on_loop: list[str] = []

    def checkout(*_: Any) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # a threadpool thread: fine
        on_loop.append("a connection was checked out on the event loop")

    engine = get_engine(stack.db_url)
    event.listen(engine, "checkout", checkout)
    try:
        assert (await stack.http.get("/readyz")).status_code in (200, 503)
        imported = await stack.http.post(
            "/api/v1/people:import",
            content=b"id,email\nE9,e9@example.com\n",
            headers={"Content-Type": "text/csv"},
        )
        assert imported.status_code == 200, imported.text
        assert (await stack.http.get("/api/v1/offboardings/nope")).status_code == 404
        assert (await stack.http.post("/api/v1/offboardings/nope/cancel")).status_code == 404
    finally:
        event.remove(engine, "checkout", checkout)
    assert on_loop == []
