"""``offboard apps check`` for IdP apps (Okta, Entra ID, Google Workspace): read only.

Credentials are set, authentication works (the token endpoint and one read), the token
carries the permissions a leaver's step needs (when the IdP says which), and the configured
``probe_user`` is found exactly once. Only reads reach the IdP's API; OAuth apps also POST to
their token endpoint. Every problem is said in plain words, with what to change.
"""

from __future__ import annotations

from collections.abc import Mapping

from config import AppConfig
from connectors.base import AuthError, ConfigError, ConnectorError
from connectors.idp import IdpConnector
from connectors.idp_build import api_http_client, build_idp_connector, require_env
from services.app_checks import AppReport

GRANT_HINT = {
    "okta": "grant the service app okta.users.manage (Okta Admin Console > API Scopes)",
    "entra": "add the Graph application permissions and grant admin consent",
    "google": "Admin console > Security > API controls > Domain-wide delegation: add the "
    "service account's client id with both admin.directory.user scopes",
}


async def check_idp_app(app: AppConfig, env: Mapping[str, str]) -> AppReport:
    """Probe one IdP app; the report says what works and what is missing."""
    report = AppReport(app)
    settings = app.idp_settings
    assert settings is not None
    try:
        require_env(app.id, settings.credential_envs, env)
    except ConfigError as exc:
        names = ", ".join(settings.credential_envs)
        report.add("credentials", "fail", exc.message, f"export {names} for the worker")
        return report
    async with api_http_client(settings) as client:
        try:
            connector = build_idp_connector(app, client, env)
        except ConfigError as exc:
            report.add("credentials", "fail", exc.message)
            return report
        if await _authenticate(connector, app, report):
            await _probe_user(connector, settings.probe_user, report)
    return report


async def _authenticate(connector: IdpConnector, app: AppConfig, report: AppReport) -> bool:
    hint = GRANT_HINT[app.connector]
    try:
        probe = await connector.probe()
    except AuthError as exc:
        renew = f"renew the credentials in {', '.join(f'${e}' for e in _envs(app))}"
        report.add("authenticate", "fail", exc.message, hint if exc.status == 403 else renew)
        return False
    except ConnectorError as exc:
        report.add("authenticate", "fail", exc.message, "check the URLs and network access")
        return False
    report.add("authenticate", "ok", f"{probe.authenticated} accepted; users can be read")
    for missing in probe.missing:
        report.add("permissions", "fail", f"the token lacks {missing}", hint)
    if probe.granted is None:
        report.add(
            "permissions",
            "info",
            "the IdP does not say what this credential may change; a refused write shows "
            "up as an exception task naming it",
        )
    elif not probe.missing:
        report.add("permissions", "ok", f"granted: {', '.join(probe.granted)}")
    return True


def _envs(app: AppConfig) -> list[str]:
    settings = app.idp_settings
    return settings.credential_envs if settings is not None else []


async def _probe_user(connector: IdpConnector, probe_user: str | None, report: AppReport) -> None:
    if not probe_user:
        report.add(
            "probe user",
            "info",
            "no probe_user configured",
            "set probe_user: <a known account> to test matching",
        )
        return
    try:
        found = await connector.lookup(probe_user)
    except ConnectorError as exc:
        report.add("find user", "fail", exc.message)
        return
    if not found.accounts:
        report.add("find user", "warn", f"{probe_user!r} not found", "check probe_user")
    elif len(found.accounts) > 1:
        ids = ", ".join(a.id for a in found.accounts)
        report.add(
            "find user",
            "warn",
            f"{len(found.accounts)} accounts match {probe_user!r} ({ids}): runs would stop as "
            "ambiguous and ask a person",
        )
    else:
        account = found.accounts[0]
        state = {True: "active", False: "disabled", None: "state unreadable"}[account.active]
        report.add("find user", "ok", f"{account.user_name} (id {account.id}, {state})")
