"""Connect to Temporal the same way from the API, the worker and the CLI."""

from __future__ import annotations

import asyncio

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime
from temporalio.service import TLSConfig

from config import Settings


def _tls(settings: Settings) -> TLSConfig | bool:
    if not (settings.temporal_tls_cert or settings.temporal_tls_ca):
        return settings.temporal_api_key is not None
    return TLSConfig(
        client_cert=settings.temporal_tls_cert.read_bytes() if settings.temporal_tls_cert else None,
        client_private_key=(
            settings.temporal_tls_key.read_bytes() if settings.temporal_tls_key else None
        ),
        server_root_ca_cert=settings.temporal_tls_ca.read_bytes()
        if settings.temporal_tls_ca
        else None,
    )


async def connect(
    settings: Settings, address: str | None = None, runtime: Runtime | None = None
) -> Client:
    """A client with the pydantic data converter (``runtime``: the SDK's, e.g. with metrics)."""
    target = address or settings.temporal_address
    if not target:
        raise RuntimeError("OFFBOARD_TEMPORAL_ADDRESS is not set (offboard dev sets it for you)")
    return await Client.connect(
        target,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        tls=_tls(settings),
        api_key=settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None,
        runtime=runtime,
    )


async def connect_with_retry(
    settings: Settings, timeout: float = 60, runtime: Runtime | None = None
) -> Client:
    """``connect``, waiting up to ``timeout`` seconds for a server that is starting or
    restarting: an API or worker started while Temporal is briefly down (a deploy, a crash)
    waits for it instead of exiting. Raises RuntimeError when it is still unreachable."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            return await connect(settings, runtime=runtime)
        except RuntimeError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.2)
