"""The Shared Signals signing key and the transmitter's public endpoints."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from pydantic import SecretStr

from api.app import create_app
from config import Catalog, Settings
from connectors.ssf import KEY_FILE, SESSION_REVOKED, session_revoked_set, signing_key


async def get(settings: Settings, path: str) -> httpx.Response:
    app = create_app(settings, Catalog(), client=object())  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://offboard") as http:
        return await http.get(path)


async def test_generated_key_is_shared_through_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, public_url="https://offboard.example.com")
    key = signing_key(settings)
    assert (tmp_path / KEY_FILE).stat().st_mode & 0o777 == 0o600
    assert signing_key(settings).thumbprint() == key.thumbprint()  # another process, same key

    metadata = (await get(settings, "/.well-known/ssf-configuration")).json()
    assert metadata["issuer"] == "https://offboard.example.com"
    assert metadata["jwks_uri"] == "https://offboard.example.com/.well-known/jwks.json"
    assert metadata["delivery_methods_supported"] == ["urn:ietf:rfc:8935"]
    jwks = (await get(settings, "/.well-known/jwks.json")).json()
    assert [k["kid"] for k in jwks["keys"]] == [key.thumbprint()]
    assert "d" not in jwks["keys"][0]  # never the private part

    token = session_revoked_set(
        key,
        issuer=metadata["issuer"],
        audience="https://receiver.example.com",
        jti="j-1",
        email="dave.davis@example.com",
        event_time=datetime.now(UTC),
        txn="run-1",
    )
    decoded = jwt.decode(token, KeySet.import_key_set(jwks))
    assert decoded.header["typ"] == "secevent+jwt"
    assert SESSION_REVOKED in decoded.claims["events"]


async def test_configured_key_wins_and_a_bad_one_is_a_clear_503(tmp_path: Path) -> None:
    pem = RSAKey.generate_key(2048).as_pem(private=True).decode()
    settings = Settings(data_dir=tmp_path, ssf_signing_key=SecretStr(pem))
    assert signing_key(settings).thumbprint() == RSAKey.import_key(pem).thumbprint()
    assert not (tmp_path / KEY_FILE).exists()
    bad = Settings(data_dir=tmp_path, ssf_signing_key=SecretStr("not a key"))
    response = await get(bad, "/.well-known/jwks.json")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "ssf_key_unusable"
    assert "not a key" not in response.text
