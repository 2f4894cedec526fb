"""Liveness, readiness and metrics, at the root (not under /api/v1)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from sqlmodel import Session

import metrics
from api.deps import DbDep
from api.schemas import Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(request: Request, db: DbDep) -> Any:
    """200 when the DB and Temporal answer, else 503 naming the failing check."""
    checks: dict[str, str] = {}

    def ping(session: Session) -> None:
        session.connection().execute(text("SELECT 1"))

    try:
        await db.run(ping)
        checks["database"] = "ok"
    except Exception as exc:  # any failure means not ready; the message says which
        checks["database"] = f"error: {type(exc).__name__}"
    client = request.app.state.temporal
    try:
        if client is None:
            raise RuntimeError("not connected")
        await client.service_client.check_health()
        checks["temporal"] = "ok"
    except Exception as exc:
        checks["temporal"] = f"error: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse({"ready": ready, "checks": checks}, 200 if ready else 503)


@router.get("/metrics", response_class=Response)
def metrics_endpoint(request: Request) -> Response:
    """Prometheus text: this process's counters plus gauges read from the DB."""
    body = metrics.render(request.app.state.settings.effective_database_url)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
