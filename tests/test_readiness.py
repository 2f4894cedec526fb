"""/readyz tells the load balancer the truth about the database, and recovers on its own.

The API runs against PostgreSQL as in production. When the database goes away, /readyz turns
503 and names the database check (so traffic is drained and the on-call sees why) while
/healthz stays 200 (the process is fine; don't restart it). When the database comes back,
/readyz is 200 again without restarting the API: the pool drops its dead connections.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import uvicorn
from temporalio.client import Client

from api.app import create_app
from config import Settings, parse_catalog
from db.migrate import upgrade
from devstack.ports import free_port
from tests.conftest import CATALOG

if TYPE_CHECKING:
    from devstack.postgres_server import PostgresServer
    from devstack.temporal_server import TemporalDevServer

pytestmark = pytest.mark.slow


@pytest.fixture
async def api(
    postgres_server: PostgresServer,
    temporal_server: TemporalDevServer,
    temporal_client: Client,
    tmp_path: Path,
) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        data_dir=tmp_path,
        database_url=postgres_server.new_database(),
        temporal_address=temporal_server.address,
        port=free_port(),
    )
    upgrade(settings.effective_database_url)
    catalog = parse_catalog(CATALOG.format(base_url="http://127.0.0.1:9/v2"))
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, catalog, temporal_client),
            host="127.0.0.1",
            port=settings.port,
            log_level="warning",
            lifespan="on",
        )
    )
    serve = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn exposes a flag, not an event)
        await asyncio.sleep(0.02)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.port}", timeout=30) as http:
        yield http
    server.should_exit = True
    await serve


async def ready(http: httpx.AsyncClient) -> tuple[int, dict[str, Any]]:
    response = await http.get("/readyz")
    return response.status_code, response.json()


async def test_readyz_follows_the_database_down_and_back_up(
    api: httpx.AsyncClient, postgres_server: PostgresServer
) -> None:
    status, body = await ready(api)
    assert (status, body) == (200, {"ready": True, "checks": {"database": "ok", "temporal": "ok"}})

    # Pooled connections now exist; the server goes away under them (a failover, a restart).
    await asyncio.to_thread(postgres_server.stop)
    try:
        for _ in range(2):  # and stays not-ready while it is down, request after request
            status, body = await ready(api)
            assert status == 503, body
            assert body["ready"] is False
            assert body["checks"]["database"].startswith("error"), body
            assert body["checks"]["temporal"] == "ok"  # only the database is blamed
        health = await api.get("/healthz")
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
    finally:
        await asyncio.to_thread(postgres_server.start)

    status, body = await ready(api)
    assert (status, body) == (200, {"ready": True, "checks": {"database": "ok", "temporal": "ok"}})
