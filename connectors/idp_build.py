"""Build an IdP connector for one catalog app: its HTTP client, credentials and transport.

Credentials come from the env vars the catalog names; a missing one is a ConfigError naming
it. Nothing here holds a secret longer than the credentials object it builds.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx
from pydantic import SecretStr

from config import ApiSettings, AppConfig
from connectors.api_transport import ApiTransport
from connectors.auth import BearerToken, Credentials
from connectors.base import ConfigError
from connectors.entra import EntraConnector
from connectors.google import SCOPES, GoogleConnector, quota_error
from connectors.idp import IdpConnector
from connectors.okta import RATE_LIMIT_HEADERS, OktaConnector
from connectors.token_auth import google_service_account, oauth_client_credentials


def api_http_client(settings: ApiSettings) -> httpx.AsyncClient:
    """The pooled client for one IdP: its timeout, a pool no larger than its limit needs."""
    connections = settings.max_concurrent_requests
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.timeout_seconds),
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        follow_redirects=False,
    )


def require_env(app_id: str, names: list[str], env: Mapping[str, str]) -> None:
    missing = [name for name in names if not env.get(name)]
    if missing:
        listed = " and ".join(f"${name}" for name in missing)
        raise ConfigError(f"{app_id}: no credentials: environment variable {listed} is not set")


def build_idp_connector(
    app: AppConfig, client: httpx.AsyncClient, env: Mapping[str, str]
) -> IdpConnector:
    """The app's connector; ConfigError when it is no IdP app or a credential is missing."""
    settings = app.idp_settings
    if settings is None:
        raise ConfigError(f"{app.id}: not an IdP app (okta, entra or google) in the catalog")
    require_env(app.id, settings.credential_envs, env)
    timeout = settings.timeout_seconds
    if app.okta is not None:
        okta = app.okta
        credentials: Credentials
        if okta.token_env:
            credentials = BearerToken(SecretStr(env[okta.token_env]), okta.token_env, "SSWS")
        else:
            assert okta.client_id and okta.key_env
            credentials = oauth_client_credentials(
                app.id,
                f"{okta.org_url.rstrip('/')}/oauth2/v1/token",
                okta.client_id,
                SecretStr(env[okta.key_env]),
                method="private_key_jwt",
                scope=" ".join(okta.scopes),
                source=f"the private key in ${okta.key_env} (client {okta.client_id})",
                timeout=timeout,
            )
        transport = ApiTransport(
            app.id, okta.org_url, okta, client, credentials, rate_limit_headers=RATE_LIMIT_HEADERS
        )
        return OktaConnector(app.id, okta, transport)
    if app.entra is not None:
        entra = app.entra
        credentials = oauth_client_credentials(
            app.id,
            f"{entra.login_url.rstrip('/')}/{entra.tenant_id}/oauth2/v2.0/token",
            entra.client_id,
            SecretStr(env[entra.client_secret_env]),
            method="client_secret_post",
            scope=f"{entra.graph_url.rstrip('/')}/.default",
            source=f"the client secret in ${entra.client_secret_env} (client {entra.client_id})",
            timeout=timeout,
        )
        transport = ApiTransport(app.id, entra.graph_url, entra, client, credentials)
        return EntraConnector(app.id, entra, transport)
    google = app.google
    assert google is not None
    credentials = google_service_account(
        app.id,
        SecretStr(env[google.credentials_env]),
        google.admin_email,
        SCOPES,
        source=f"the service account key in ${google.credentials_env}",
        timeout=timeout,
    )
    transport = ApiTransport(
        app.id, google.api_url, google, client, credentials, classify=quota_error
    )
    return GoogleConnector(app.id, google, transport)
