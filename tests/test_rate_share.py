"""Two worker processes serving one rate-limited app pace its requests at half its rate each,
so together they stay within the app's limit (rate_share.py); one worker alone uses it all."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from config import Settings, parse_catalog
from connectors.registry import ConnectorRegistry
from devstack.temporal_server import TemporalDevServer
from tests.conftest import SCIM_TOKEN, TOKEN_ENV, catalog_yaml, scim_app_yaml
from worker import build_worker

pytestmark = pytest.mark.slow

# 600 requests/min: one request every 0.1 s for the app as a whole.
CATALOG = catalog_yaml(
    scim_app_yaml(base_url="http://127.0.0.1:9/v2", rate_limit_per_minute=600), protected=""
)


async def interval_becomes(registry: ConnectorRegistry, seconds: float) -> float:
    """Poll (generously: a loaded machine) until the app's request spacing is ``seconds``."""
    gate = registry.scim("ironclad").gate
    for _ in range(600):
        if abs(gate.interval - seconds) < 1e-9:
            break
        await asyncio.sleep(0.1)
    return gate.interval


async def test_two_workers_split_an_apps_rate(
    temporal_server: TemporalDevServer, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path, task_queue=f"tq-{uuid.uuid4().hex}")
    catalog = parse_catalog(CATALOG)
    registries, workers, runs = [], [], []
    try:
        for name in ("worker-a", "worker-b"):
            client = await Client.connect(
                temporal_server.address, identity=name, data_converter=pydantic_data_converter
            )
            registry = ConnectorRegistry(catalog, env={TOKEN_ENV: SCIM_TOKEN})
            registries.append(registry)
            workers.append(build_worker(client, settings, catalog, registry))
            runs.append(asyncio.create_task(workers[-1].run()))
            if name == "worker-a":  # alone on the app's queue: the whole rate
                assert await interval_becomes(registry, 0.1) == 0.1
        # Both poll the queue now: each paces at 300/min, 600/min together.
        assert [await interval_becomes(r, 0.2) for r in registries] == [0.2, 0.2]
    finally:
        await asyncio.gather(*(w.shutdown() for w in workers), return_exceptions=True)
        await asyncio.gather(*runs, return_exceptions=True)
        for registry in registries:
            await registry.aclose()
