"""POST /api/v1/webhooks/hr: signed HR events start, join or cancel offboardings."""

from __future__ import annotations

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from api import signature
from api.deps import DbDep, SettingsDep, TemporalDep
from api.errors import error_body, field_errors
from api.schemas import HrAccepted, HrDuplicate
from metrics import WEBHOOK_EVENTS
from services.hr_events import HrEvent, handle_hr_event

router = APIRouter(tags=["webhooks"])
log = structlog.get_logger()


def _reject(status: int, code: str, message: str, details: object = None) -> JSONResponse:
    log.warning("webhook.rejected", status=status, code=code, message=message)
    WEBHOOK_EVENTS.labels(code).inc()
    return JSONResponse(error_body(code, message, details), status)


@router.post(
    "/webhooks/hr",
    status_code=202,
    response_model=HrAccepted,
    responses={200: {"model": HrDuplicate, "description": "an event already handled"}},
)
async def hr_webhook(
    request: Request, db: DbDep, settings: SettingsDep, client: TemporalDep
) -> JSONResponse:
    """``X-Offboard-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>``;
    a missing, wrong or stale signature is 401, a malformed body 422 with field errors."""
    body = await request.body()
    secrets = [s.get_secret_value() for s in settings.webhook_secrets]
    try:
        signature.verify(
            request.headers.get("X-Offboard-Signature"),
            body,
            secrets,
            settings.webhook_tolerance_seconds,
        )
    except signature.SignatureError as exc:
        return _reject(401, "bad_signature", str(exc))
    try:
        event = HrEvent.model_validate_json(body)
    except ValidationError as exc:
        details = field_errors(exc.errors())
        summary = "; ".join(f"{d['field']}: {d['message']}" for d in details)
        return _reject(422, "validation_error", summary, details)
    outcome = await handle_hr_event(client, db, settings, event)
    if outcome.duplicate:
        WEBHOOK_EVENTS.labels("duplicate").inc()
        return JSONResponse(HrDuplicate(run_id=outcome.run_id, duplicate=True).model_dump(), 200)
    WEBHOOK_EVENTS.labels("stale" if outcome.ignored else "accepted").inc()
    log.info(
        "webhook.accepted",
        event_id=event.event_id,
        type=event.type,
        run_id=outcome.run_id,
        ignored=outcome.ignored,
    )
    accepted = HrAccepted(run_id=outcome.run_id, event_id=event.event_id, ignored=outcome.ignored)
    return JSONResponse(accepted.model_dump(), 202)
