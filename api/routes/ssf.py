"""Shared Signals transmitter metadata and signing keys, at the root (public, no auth).

Receivers read ``/.well-known/ssf-configuration`` (SSF 1.0 section 7) to find the issuer
and ``jwks_uri``, then verify every SET offboard pushes against ``/.well-known/jwks.json``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from api.errors import ApiError
from connectors.base import ConfigError
from connectors.ssf import public_jwks, signing_key, transmitter_metadata

router = APIRouter(tags=["shared signals"])


@router.get("/.well-known/ssf-configuration")
def ssf_configuration(request: Request) -> dict[str, Any]:
    return transmitter_metadata(request.app.state.settings.effective_public_url)


@router.get("/.well-known/jwks.json")
def jwks(request: Request) -> dict[str, Any]:
    try:
        return public_jwks(signing_key(request.app.state.settings))
    except ConfigError as exc:
        raise ApiError(503, "ssf_key_unusable", exc.message) from None
