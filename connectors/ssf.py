"""Shared Signals (OpenID SSF 1.0 / CAEP 1.0) transmitter: signing key, SETs, push delivery.

- The signing key: an RSA private key (PEM) from ``OFFBOARD_SSF_SIGNING_KEY``, else one
  generated once into ``<data_dir>/ssf-signing-key.pem``; its public half is served as a JWKS
  (``kid`` = RFC 7638 thumbprint) for receivers to verify SETs.
- A CAEP ``session-revoked`` Security Event Token (RFC 8417): a JWS (RS256, ``typ``
  ``secevent+jwt``) whose subject is ``{"format": "email", "email": ...}`` (SSF 1.0 ``sub_id``).
- Push delivery (RFC 8935): ``POST`` the SET as ``application/secevent+jwt``; the receiver
  answers 202, or 400 with ``{"err", "description"}``. Transient failures are retried like
  any connector request (connectors/api_transport.py).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import RSAKey
from pydantic import SecretStr

from config import ApiSettings, Settings, SsfReceiver
from connectors.api_transport import ApiTransport
from connectors.auth import BearerToken
from connectors.base import ConfigError

SESSION_REVOKED = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
PUSH_DELIVERY = "urn:ietf:rfc:8935"
KEY_FILE = "ssf-signing-key.pem"
ALG = "RS256"


def signing_key(settings: Settings) -> RSAKey:
    """The transmitter's private key; generated into the data dir on first use when unset.

    Raises ConfigError when ``OFFBOARD_SSF_SIGNING_KEY`` is not an RSA private key (PEM).
    """
    configured = settings.ssf_signing_key.get_secret_value() if settings.ssf_signing_key else ""
    if configured:  # empty counts as unset (compose passes an unset variable as "")
        return _import(configured, "$OFFBOARD_SSF_SIGNING_KEY")
    path = (settings.data_dir / KEY_FILE).resolve()
    if not path.exists():
        _create(path)
    return _import(path.read_text(), str(path))


@lru_cache(maxsize=4)
def _import(pem: str, where: str) -> RSAKey:
    try:
        key = RSAKey.import_key(pem)
    except ValueError as exc:
        raise ConfigError(f"{where} is not an RSA private key (PEM): {exc}") from None
    if not key.is_private:
        raise ConfigError(f"{where} holds a public key; SETs need the private key")
    return key


def _create(path: Path) -> None:
    """Write a new key atomically (0600): API and worker may both get here first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}")
    pem = RSAKey.generate_key(2048).as_pem(private=True)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    try:
        os.link(temp, path)  # fails if another process won the race: its key stands
    except FileExistsError:
        pass
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()


def public_jwks(key: RSAKey) -> dict[str, Any]:
    """The JWKS receivers fetch (RFC 7517): the public key only."""
    public = {**key.as_dict(private=False), "kid": key.thumbprint(), "use": "sig", "alg": ALG}
    return {"keys": [public]}


def transmitter_metadata(issuer: str) -> dict[str, Any]:
    """``/.well-known/ssf-configuration`` (SSF 1.0 section 7.1): push delivery only; the
    receivers are configured in the catalog, so there is no stream management endpoint."""
    return {
        "spec_version": "1_0",
        "issuer": issuer,
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "delivery_methods_supported": [PUSH_DELIVERY],
        "critical_subject_members": ["format"],
    }


def session_revoked_set(
    key: RSAKey,
    *,
    issuer: str,
    audience: str,
    jti: str,
    email: str,
    event_time: datetime,
    txn: str,
) -> str:
    """A signed CAEP session-revoked SET for every session of ``email`` (RFC 8417, CAEP 3.1).

    The admin reason is fixed text: an HR reason is personal data a receiver has no need of.
    """
    header = {"alg": ALG, "typ": "secevent+jwt", "kid": key.thumbprint()}
    claims = {
        "iss": issuer,
        "aud": audience,
        "jti": jti,
        "iat": int(time.time()),
        "txn": txn,
        "sub_id": {"format": "email", "email": email},
        "events": {
            SESSION_REVOKED: {
                "event_timestamp": int(event_time.timestamp()),
                "initiating_entity": "policy",
                "reason_admin": {"en": "Access revoked: the person was offboarded"},
            }
        },
    }
    return jwt.encode(header, claims, key)


def receiver_transport(
    receiver: SsfReceiver, client: httpx.AsyncClient, env: Mapping[str, str]
) -> ApiTransport:
    """The transport that pushes to one receiver, with its bearer token when it has one."""
    credentials = None
    if receiver.token_env:
        token = env.get(receiver.token_env)
        if not token:
            raise ConfigError(
                f"ssf receiver {receiver.url}: environment variable "
                f"${receiver.token_env} is not set"
            )
        credentials = BearerToken(SecretStr(token), receiver.token_env)
    name = f"ssf receiver {receiver.url}"
    return ApiTransport(name, receiver.url, ApiSettings(), client, credentials)


async def push(transport: ApiTransport, token: str) -> int:
    """Deliver one SET (RFC 8935 2); the receiver's status. Raises the connector errors."""
    response = await transport.request(
        "POST",
        "",
        content=token.encode(),
        headers={"Content-Type": "application/secevent+jwt", "Accept": "application/json"},
    )
    return response.status_code
