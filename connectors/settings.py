"""How the catalog reaches each kind of app: SCIM and IdP API settings (``scim:``, ``okta:``,
``entra:``, ``google:`` sections of ``apps.yaml``), validated with line-precise errors by
``config.parse_catalog``. Secrets by env var name only.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Requests a deprovisioning step makes with a few groups (find in the plan, deactivate, find
# groups, remove from each, read back the user and the groups): sizes admission per app.
REQUESTS_PER_STEP = 8


class ScimSettings(_Strict):
    base_url: Annotated[str, Field(pattern=r"^https?://")]
    # Credentials, by reference only: the catalog names env vars, never secrets.
    # bearer: a static token in $token_env. oauth2: client credentials grant at token_url with
    # $client_id_env / $client_secret_env; the token is cached and refreshed once on a 401.
    auth: Literal["bearer", "oauth2"] = "bearer"
    token_env: str | None = None
    token_url: Annotated[str | None, Field(pattern=r"^https?://")] = None
    client_id_env: str | None = None
    client_secret_env: str | None = None
    scope: str | None = None
    match: Literal["userName", "email", "externalId"] = "email"
    deprovision: Literal["deactivate", "delete", "deactivate_then_delete"] = "deactivate"
    delete_after_days: int | None = None
    # The configured form is tried first; a 400 tries the other PATCH form, and a server that
    # answers 405/501 (or rejects both forms) gets GET + PUT (If-Match when it gives ETags).
    patch_style: Literal["path", "pathless", "put_fallback"] = "path"
    gone_after_deactivate_ok: bool = False
    remove_groups: bool = True
    group_member_removal: Literal["filter_path", "value_array"] = "filter_path"
    # Per app and per worker, shared by every run: requests are spaced to this rate and at
    # most max_concurrent_requests are in flight.
    rate_limit_per_minute: Annotated[int | None, Field(gt=0)] = None
    pagination: Literal["standard", "defensive"] = "standard"
    page_size: Annotated[int, Field(ge=1, le=1000)] = 100
    max_pages: Annotated[int, Field(ge=1)] = 1000
    max_concurrent_requests: Annotated[int, Field(ge=1)] = 8
    timeout_seconds: Annotated[float, Field(gt=0)] = 10.0
    # Each request is retried this often on 5xx/408/timeouts/resets/short 429s (with backoff)
    # before the step as a whole is retried by the workflow.
    request_retries: Annotated[int, Field(ge=0, le=20)] = 4
    # A Retry-After is never honoured beyond this (an app sending a Unix time, or years).
    max_retry_after_seconds: Annotated[float, Field(gt=0)] = 900.0
    # A pause up to this long is waited out inside the step; a longer one is handed to the
    # workflow, which retries the step after it (durably, costing no activity timeout).
    max_pause_in_step_seconds: Annotated[float, Field(ge=0)] = 20.0
    # A step (find, deactivate, groups, read back) must finish within this many seconds.
    step_timeout_seconds: Annotated[float, Field(gt=0)] = 120.0
    # How group memberships are found: auto tries member_filter, then group_filter, then
    # group_reads, learning what the app rejects (see `offboard apps check`).
    group_membership: Literal["auto", "member_filter", "group_filter", "group_reads"] = "auto"
    # A known account `offboard apps check` looks up (read only) to prove matching works.
    probe_user: str | None = None

    @model_validator(mode="after")
    def _delete_after(self) -> ScimSettings:
        if self.deprovision == "deactivate_then_delete" and self.delete_after_days is None:
            raise ValueError("deactivate_then_delete needs delete_after_days")
        return self

    @model_validator(mode="after")
    def _credentials(self) -> ScimSettings:
        if self.auth == "bearer" and not self.token_env:
            raise ValueError("auth: bearer needs token_env (the env var holding the token)")
        if self.auth == "oauth2":
            missing = [
                name
                for name in ("token_url", "client_id_env", "client_secret_env")
                if not getattr(self, name)
            ]
            if missing:
                raise ValueError(f"auth: oauth2 needs {', '.join(missing)}")
        return self

    @property
    def admission(self) -> int | None:
        """Steps of this app a worker runs at once when it has a rate limit (else None).

        As many as its rate serves within half a step's timeout, so a step never times out
        waiting for its turn at the rate gate; the rest wait, durably and without a timeout,
        in the app's own task queue (see worker.py).
        """
        if self.rate_limit_per_minute is None:
            return None
        per_second = self.rate_limit_per_minute / 60
        return max(1, int(per_second * self.step_timeout_seconds * 0.5 / REQUESTS_PER_STEP))

    @property
    def credential_envs(self) -> list[str]:
        """The env vars holding this app's credentials (names only, for messages)."""
        if self.auth == "oauth2":
            return [e for e in (self.client_id_env, self.client_secret_env) if e]
        return [self.token_env] if self.token_env else []


class ApiSettings(_Strict):
    """How an IdP's REST API is called: the same retry and pacing rules as SCIM apps."""

    rate_limit_per_minute: Annotated[int | None, Field(gt=0)] = None
    max_concurrent_requests: Annotated[int, Field(ge=1)] = 4
    timeout_seconds: Annotated[float, Field(gt=0)] = 10.0
    request_retries: Annotated[int, Field(ge=0, le=20)] = 4
    max_retry_after_seconds: Annotated[float, Field(gt=0)] = 900.0
    max_pause_in_step_seconds: Annotated[float, Field(ge=0)] = 20.0
    # A known account `offboard apps check` looks up (read only) to prove matching works.
    probe_user: str | None = None


class OktaSettings(ApiSettings):
    """Okta: an API token (``Authorization: SSWS``) in $token_env, or an OAuth 2.0 service
    app (client credentials, ``private_key_jwt`` with the private key PEM in $key_env)."""

    org_url: Annotated[str, Field(pattern=r"^https?://")]
    # suspend: reversible, the user keeps app assignments; deactivate: DEPROVISIONED.
    action: Literal["suspend", "deactivate"] = "suspend"
    token_env: str | None = None
    client_id: str | None = None
    key_env: str | None = None
    scopes: list[str] = Field(default_factory=lambda: ["okta.users.manage"])

    @model_validator(mode="after")
    def _one_auth(self) -> OktaSettings:
        oauth = self.client_id is not None or self.key_env is not None
        if self.token_env and oauth:
            raise ValueError("okta: use token_env (API token) or client_id + key_env, not both")
        if oauth and not (self.client_id and self.key_env):
            raise ValueError("okta: private_key_jwt needs both client_id and key_env")
        if not self.token_env and not oauth:
            raise ValueError("okta: needs token_env, or client_id + key_env")
        return self

    @property
    def credential_envs(self) -> list[str]:
        return [self.token_env] if self.token_env else [self.key_env or ""]


class EntraSettings(ApiSettings):
    """Microsoft Entra ID via Microsoft Graph, OAuth 2.0 client credentials (app-only)."""

    tenant_id: str = Field(min_length=1)
    client_id: str = Field(min_length=1)
    client_secret_env: str
    graph_url: Annotated[str, Field(pattern=r"^https?://")] = "https://graph.microsoft.com"
    login_url: Annotated[str, Field(pattern=r"^https?://")] = "https://login.microsoftonline.com"

    @property
    def credential_envs(self) -> list[str]:
        return [self.client_secret_env]


class GoogleSettings(ApiSettings):
    """Google Workspace Admin SDK: a service account key (JSON) in $credentials_env with
    domain-wide delegation, acting as ``admin_email``."""

    credentials_env: str
    admin_email: str = Field(min_length=3)
    api_url: Annotated[str, Field(pattern=r"^https?://")] = "https://admin.googleapis.com"

    @property
    def credential_envs(self) -> list[str]:
        return [self.credentials_env]
