"""Every error is JSON ``{"error": {"code", "message", "details"}}``.

Domain errors from ``services`` map to their HTTP status here; ``ApiError`` is for what only
HTTP has (401, 413, 503).
"""

from __future__ import annotations

import uuid
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.errors import Conflict, DomainError, Forbidden, Invalid, NotFound

log = structlog.get_logger()
STATUS: dict[type[DomainError], int] = {NotFound: 404, Conflict: 409, Forbidden: 403, Invalid: 422}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


class BodyRefused(StarletteHTTPException):
    """A request body refused before its handler used it (api/limits.py): 408, 413 or 415.

    An HTTPException, so FastAPI's own body reading passes it on instead of making it a 400.
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(status, message, {"Connection": "close"})
        self.status, self.code, self.message = status, code, message


def status_of(exc: DomainError) -> int:
    """The HTTP status of a domain error (409 for a kind this table does not know)."""
    for kind, status in STATUS.items():
        if isinstance(exc, kind):
            return status
    return 409


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def field_errors(errors: Any) -> list[dict[str, Any]]:
    return [
        {
            "field": ".".join(str(p) for p in e["loc"] if p != "body") or "body",
            "message": e["msg"],
        }
        for e in errors
    ]


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message, exc.details), exc.status)

    @app.exception_handler(DomainError)
    async def _domain_error(_: Request, exc: DomainError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message, exc.details), status_of(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = field_errors(exc.errors())
        summary = "; ".join(f"{d['field']}: {d['message']}" for d in details)
        return JSONResponse(error_body("validation_error", summary, details), 422)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The message says nothing about the cause (it may hold data); the log has it all,
        # under the id the caller can quote.
        correlation_id = uuid.uuid4().hex
        log.error(
            "request.failed",
            correlation_id=correlation_id,
            method=request.method,
            path=request.url.path,
            exc_info=exc,
        )
        body = error_body(
            "internal_error",
            f"unexpected error; quote correlation id {correlation_id}",
            {"correlation_id": correlation_id},
        )
        return JSONResponse(body, 500, {"X-Correlation-Id": correlation_id})

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = getattr(exc, "code", f"http_{exc.status_code}")
        return JSONResponse(error_body(code, str(exc.detail)), exc.status_code, exc.headers)
