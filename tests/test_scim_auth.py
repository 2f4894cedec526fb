"""Credentials: bearer tokens from env, OAuth2 client credentials with refresh on 401, and the
registry that builds one connector per app per worker."""

# Fixtures are imported from tests.test_scim_support; pytest passes them by name.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr

from config import parse_catalog
from connectors.auth import OAuth2ClientCredentials
from connectors.base import AuthError, ConfigError, RateLimitedError, TransientError
from connectors.registry import ConnectorRegistry
from tests.conftest import SCIM_TOKEN, TOKEN_ENV
from tests.test_scim_support import (  # noqa: F401
    ConnectorFactory,
    ScimEnv,
    TokenEndpoint,
    json_logs,
    make_connector,
    scim_env,
    token_endpoint,
)

ID_ENV, SECRET_ENV = "ACME_CLIENT_ID", "ACME_CLIENT_SECRET"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def oauth(
    endpoint: TokenEndpoint, client: httpx.AsyncClient, secret: str | None = None, **kw: object
) -> OAuth2ClientCredentials:
    return OAuth2ClientCredentials(
        "acme",
        endpoint.url,
        endpoint.client_id,
        SecretStr(secret or endpoint.client_secret),
        client=client,
        client_id_env=ID_ENV,
        client_secret_env=SECRET_ENV,
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


async def test_refused_first_token_is_refreshed_once(
    scim_env: ScimEnv,
    make_connector: ConnectorFactory,
    token_endpoint: TokenEndpoint,
    http: httpx.AsyncClient,
) -> None:
    connector = make_connector(credentials=oauth(token_endpoint, http))
    [account] = await connector.find("dave.davis@example.com")
    assert account.id == scim_env.id_of(3)
    assert [h["Authorization"] for _, _, h, _ in scim_env.quirks.requests] == [
        "Bearer expired-token-3b2a11",
        f"Bearer {SCIM_TOKEN}",
    ]
    # The good token is cached: more work, no more token requests.
    await connector.deactivate(account.id)
    await connector.read_back(account.id)
    assert len(token_endpoint.requests) == 2
    assert token_endpoint.requests[0] == {
        "grant_type": "client_credentials",
        "client_id": "offboard-client",
    }


async def test_tokens_that_keep_failing_end_in_one_auth_error(
    scim_env: ScimEnv,
    make_connector: ConnectorFactory,
    token_endpoint: TokenEndpoint,
    http: httpx.AsyncClient,
) -> None:
    token_endpoint.tokens = ["wrong-token-1", "wrong-token-2"]
    connector = make_connector(credentials=oauth(token_endpoint, http))
    with pytest.raises(AuthError) as info:
        await connector.find("dave.davis@example.com")
    message = info.value.message
    assert scim_env.quirks.count() == 2 and len(token_endpoint.requests) == 2
    assert f"${ID_ENV}" in message and f"${SECRET_ENV}" in message
    for secret in ("wrong-token-1", "wrong-token-2", token_endpoint.client_secret):
        assert secret not in message


async def test_token_endpoint_refusing_the_client(
    scim_env: ScimEnv,
    make_connector: ConnectorFactory,
    token_endpoint: TokenEndpoint,
    http: httpx.AsyncClient,
) -> None:
    connector = make_connector(credentials=oauth(token_endpoint, http, secret="rotated-away-55"))
    with pytest.raises(AuthError) as info:
        await connector.find("dave.davis@example.com")
    message = info.value.message
    assert message.startswith("acme: authentication failed: the token endpoint")
    assert token_endpoint.url in message and "invalid_client" in message
    assert f"${SECRET_ENV}" in message and "rotated-away-55" not in message
    assert scim_env.quirks.count() == 0


async def test_concurrent_requests_share_one_token_fetch(
    scim_env: ScimEnv,
    make_connector: ConnectorFactory,
    token_endpoint: TokenEndpoint,
    http: httpx.AsyncClient,
) -> None:
    token_endpoint.tokens = [SCIM_TOKEN]
    connector = make_connector(credentials=oauth(token_endpoint, http))
    found = await asyncio.gather(*(connector.find(u.email) for u in scim_env.users[:6]))
    assert [a.id for [a] in found] == [scim_env.id_of(i) for i in range(6)]
    assert len(token_endpoint.requests) == 1


async def test_expired_token_is_fetched_again_before_use(
    scim_env: ScimEnv,
    make_connector: ConnectorFactory,
    token_endpoint: TokenEndpoint,
    http: httpx.AsyncClient,
) -> None:
    token_endpoint.tokens = [SCIM_TOKEN]
    token_endpoint.expires_in = 300
    clock = Clock()
    connector = make_connector(credentials=oauth(token_endpoint, http, clock=clock))
    await connector.find("dave.davis@example.com")
    clock.now += 200
    await connector.find("dave.davis@example.com")
    assert len(token_endpoint.requests) == 1
    clock.now += 80  # within the 30 s margin before expiry
    await connector.find("dave.davis@example.com")
    assert len(token_endpoint.requests) == 2
    assert scim_env.quirks.count() == 3  # never a request with a dying token


async def test_unreachable_token_endpoint_is_transient(
    make_connector: ConnectorFactory, token_endpoint: TokenEndpoint, http: httpx.AsyncClient
) -> None:
    token_endpoint.stop()
    with pytest.raises(TransientError) as info:
        await make_connector(credentials=oauth(token_endpoint, http)).find("x@example.com")
    assert info.value.retryable and token_endpoint.url in info.value.message
    assert isinstance(info.value.__cause__, httpx.TransportError)


async def test_no_secret_in_logs(
    scim_env: ScimEnv,
    make_connector: ConnectorFactory,
    token_endpoint: TokenEndpoint,
    http: httpx.AsyncClient,
    capfd: pytest.CaptureFixture[str],
    json_logs: None,
) -> None:
    scim_env.quirks.fail_next(1, 429, retry_after="0")
    scim_env.quirks.pathless_patch_only = True
    connector = make_connector(credentials=oauth(token_endpoint, http), request_retries=0)
    with pytest.raises(RateLimitedError):
        await connector.find("dave.davis@example.com")
    [account] = await connector.find("dave.davis@example.com")
    await connector.deactivate(account.id)
    await connector.remove_groups(account.id)
    logs = capfd.readouterr()
    text = logs.out + logs.err
    for event in ("scim.token_refreshed", "scim.rate_limited", "scim.patch_form_fallback"):
        assert event in text
    for secret in (SCIM_TOKEN, "expired-token-3b2a11", token_endpoint.client_secret):
        assert secret not in text


# -- registry ---------------------------------------------------------------------------------

CATALOG = """
apps:
  - id: acme
    name: Acme
    connector: scim
    scim:
      base_url: {base_url}
      token_env: TEST_SCIM_TOKEN
      max_concurrent_requests: 3
      rate_limit_per_minute: 600
  - id: okta-ish
    name: OAuth app
    connector: scim
    scim:
      base_url: {base_url}
      auth: oauth2
      token_url: {token_url}
      client_id_env: ACME_CLIENT_ID
      client_secret_env: ACME_CLIENT_SECRET
  - id: manual
    name: Manual
    connector: manual
    manual:
      assignees: [it@example.com]
"""


async def test_registry_one_connector_per_app_sharing_one_gate(
    scim_env: ScimEnv, token_endpoint: TokenEndpoint
) -> None:
    catalog = parse_catalog(
        CATALOG.format(base_url=scim_env.base_url, token_url=token_endpoint.url)
    )
    env = {
        TOKEN_ENV: SCIM_TOKEN,
        ID_ENV: token_endpoint.client_id,
        SECRET_ENV: token_endpoint.client_secret,
    }
    registry = ConnectorRegistry(catalog, env=env)
    try:
        acme = registry.scim("acme")
        assert registry.scim("acme") is acme  # every run on the worker shares it
        assert acme.gate.max_concurrent == 3 and acme.gate.interval == pytest.approx(0.1)
        assert [a.id for a in await acme.find("dave.davis@example.com")] == [scim_env.id_of(3)]
        oauth_app = registry.scim("okta-ish")
        assert isinstance(oauth_app.credentials, OAuth2ClientCredentials)
        assert len(await oauth_app.find("dave.davis@example.com")) == 1
        assert len(token_endpoint.requests) == 2
        with pytest.raises(ConfigError, match="not a SCIM app"):
            registry.scim("manual")
    finally:
        await registry.aclose()


async def test_registry_missing_env_var_then_set(scim_env: ScimEnv) -> None:
    catalog = parse_catalog(CATALOG.format(base_url=scim_env.base_url, token_url="http://x/t"))
    env: dict[str, str] = {}
    registry = ConnectorRegistry(catalog, env=env)
    try:
        with pytest.raises(ConfigError) as info:
            registry.scim("acme")
        assert info.value.message == (
            f"acme: no credentials: environment variable ${TOKEN_ENV} is not set"
        )
        with pytest.raises(ConfigError, match=rf"\${ID_ENV} and \${SECRET_ENV}"):
            registry.scim("okta-ish")
        env[TOKEN_ENV] = SCIM_TOKEN  # fixed without a restart: nothing bad was cached
        assert len(await registry.scim("acme").find("dave.davis@example.com")) == 1
    finally:
        await registry.aclose()


@pytest.mark.parametrize(
    ("scim", "error"),
    [
        ("auth: bearer", "auth: bearer needs token_env"),
        ("auth: oauth2\n      token_env: X", "auth: oauth2 needs token_url, client_id_env"),
    ],
)
def test_catalog_validates_credentials(scim: str, error: str) -> None:
    text = f"""
apps:
  - id: acme
    name: Acme
    connector: scim
    scim:
      base_url: https://example.com/scim/v2
      {scim}
"""
    with pytest.raises(ValueError, match=error):
        parse_catalog(text)
