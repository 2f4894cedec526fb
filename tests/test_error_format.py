"""An unexpected error is answered in the JSON error format, with a logged correlation id."""

from __future__ import annotations

from pathlib import Path

import httpx
from structlog.testing import capture_logs

from api.app import create_app
from config import Settings, parse_catalog


async def test_an_unexpected_error_is_json_with_a_correlation_id(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path), parse_catalog("apps: []\n"))

    @app.get("/api/v1/boom")
    def boom() -> None:
        raise RuntimeError("secret detail that must not reach the caller")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    with capture_logs() as logs:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/api/v1/boom")

    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "internal_error"
    correlation_id = error["details"]["correlation_id"]
    assert correlation_id in error["message"]
    assert response.headers["X-Correlation-Id"] == correlation_id
    assert "secret detail" not in response.text
    [logged] = [e for e in logs if e["event"] == "request.failed"]
    assert logged["correlation_id"] == correlation_id
    assert logged["path"] == "/api/v1/boom"
