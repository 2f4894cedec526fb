"""The FastAPI app factory: routers under /api/v1, health at the root."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from temporalio.client import Client

from api import errors, web
from api.limits import BodyLimits
from api.routes import campaigns, health, offboardings, people, ssf, tasks, webhooks
from api.schemas import ERROR_RESPONSES
from config import Catalog, Settings
from temporal_client import connect_with_retry


def create_app(settings: Settings, catalog: Catalog, client: Client | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if app.state.temporal is None:
            app.state.temporal = await connect_with_retry(settings)
        yield

    app = FastAPI(title="offboard", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.catalog = catalog
    app.state.temporal = client
    errors.install(app)
    app.add_middleware(BodyLimits, settings=settings)
    for module in (webhooks, offboardings, tasks, people, campaigns):
        app.include_router(module.router, prefix="/api/v1", responses=ERROR_RESPONSES)
    app.include_router(health.router)
    app.include_router(ssf.router)
    app.include_router(web.router)
    app.mount("/static", StaticFiles(directory=web.STATIC_DIR), name="static")
    return app
