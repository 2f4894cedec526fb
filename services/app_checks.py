"""Probe a SCIM app, read only, and suggest catalog settings (``offboard apps check``).

IdP apps (Okta, Entra ID, Google Workspace) are probed by ``services/idp_checks.py``.

For every SCIM app: reach the base URL, authenticate, read ServiceProviderConfig (PATCH, ETag,
filter, bulk), look up the configured ``probe_user`` and its groups. Only GET requests reach
the app (OAuth2 apps also POST to their token endpoint, which is not the app).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError
from scim2_models import ServiceProviderConfig

from config import AppConfig, ScimSettings
from connectors.base import AuthError, ConfigError, ConnectorError, TransientError
from connectors.registry import require_credentials, scim_credentials, scim_http_client
from connectors.scim import ScimConnector

Status = Literal["ok", "warn", "fail", "info"]
MATCHES: tuple[Literal["userName", "email", "externalId"], ...] = (
    "userName",
    "email",
    "externalId",
)


@dataclass
class Finding:
    check: str
    status: Status
    detail: str
    suggestion: str = ""


@dataclass
class AppReport:
    app: AppConfig
    findings: list[Finding] = field(default_factory=list)

    def add(self, check: str, status: Status, detail: str, suggestion: str = "") -> None:
        self.findings.append(Finding(check, status, detail, suggestion))

    @property
    def usable(self) -> bool:
        return all(f.status != "fail" for f in self.findings)


async def check_app(app: AppConfig, env: Mapping[str, str]) -> AppReport:
    """Probe one SCIM app with the credentials ``env`` holds; the findings say what to fix."""
    report = AppReport(app)
    scim = app.scim
    assert scim is not None
    try:
        require_credentials(app.id, scim, env)
    except ConfigError as exc:
        names = ", ".join(scim.credential_envs)
        report.add("credentials", "fail", exc.message, f"export {names} for the worker")
        return report
    async with scim_http_client(scim) as client:
        connector = ScimConnector(app.id, scim, client, scim_credentials(app.id, scim, client, env))
        await _probe(connector, scim, report)
    return report


async def _probe(connector: ScimConnector, scim: ScimSettings, report: AppReport) -> None:
    # Reach: ServiceProviderConfig is often served without credentials.
    config: dict[str, Any] | None = None
    try:
        config = await connector.get_json("/ServiceProviderConfig")
        report.add("reach", "ok", f"{scim.base_url} answers")
    except AuthError:
        report.add("reach", "ok", f"{scim.base_url} answers (asks for credentials)")
    except TransientError as exc:
        report.add("reach", "fail", exc.message, "check base_url and network access")
        return
    except ConnectorError as exc:
        report.add("reach", "warn", f"no ServiceProviderConfig: {exc.message}")

    # Authenticate with a one-item listing.
    try:
        await connector.get_json("/Users", {"startIndex": 1, "count": 1})
        report.add("authenticate", "ok", f"{connector.credentials.source} accepted")
    except AuthError as exc:
        report.add("authenticate", "fail", exc.message, "renew the credentials or their scope")
        return
    except ConnectorError as exc:
        report.add("authenticate", "fail", f"listing users failed: {exc.message}")
        return
    if config is None:
        try:
            config = await connector.get_json("/ServiceProviderConfig")
        except ConnectorError:
            config = None

    if config is not None:
        _service_provider_config(config, scim, report)
    await _probe_paging(connector, report)
    await _probe_user(connector, scim, report)


def _service_provider_config(raw: dict[str, Any], scim: ScimSettings, report: AppReport) -> None:
    try:
        spc = ServiceProviderConfig.model_validate(raw)
    except ValidationError as exc:
        report.add("ServiceProviderConfig", "warn", f"unreadable: {exc.error_count()} errors")
        return
    patch = bool(spc.patch and spc.patch.supported)
    etag = bool(spc.etag and spc.etag.supported)
    if patch:
        report.add("PATCH", "ok", f"supported (using patch_style: {scim.patch_style})")
    elif scim.patch_style == "put_fallback":
        report.add("PATCH", "ok", "unsupported; patch_style: put_fallback uses PUT")
    else:
        report.add(
            "PATCH",
            "warn",
            "unsupported according to ServiceProviderConfig",
            "PATCH unsupported -> set patch_style: put_fallback",
        )
    report.add(
        "ETag",
        "ok" if etag else "info",
        "supported: PUT fallback sends If-Match"
        if etag
        else "not supported: PUT fallback cannot detect concurrent changes",
    )
    if spc.filter and spc.filter.supported:
        cap = spc.filter.max_results
        detail = "supported" + (f", at most {cap} results per page" if cap else "")
        report.add("filter", "ok", detail)
        if cap and cap < scim.page_size:
            report.add(
                "paging",
                "info",
                f"the app caps pages at {cap}; page_size is {scim.page_size}",
                f"set page_size: {cap}",
            )
    else:
        report.add(
            "filter",
            "fail",
            "filtering is not supported: accounts cannot be looked up",
        )
    bulk = spc.bulk
    if bulk and bulk.supported:
        report.add("bulk", "info", f"supported (max {bulk.max_operations} ops); not needed")
    else:
        report.add("bulk", "info", "not supported; not needed")


async def _probe_user(connector: ScimConnector, scim: ScimSettings, report: AppReport) -> None:
    probe = scim.probe_user
    if not probe:
        report.add(
            "probe user",
            "info",
            "no probe_user configured",
            "set probe_user: <a known account> to test matching",
        )
        return
    try:
        accounts = await connector.find(probe)
    except ConnectorError as exc:
        report.add(f"find {scim.match}", "fail", exc.message)
        return
    if len(accounts) > 1:
        report.add(
            f"find {scim.match}",
            "warn",
            f"{len(accounts)} accounts match {probe!r}: runs would stop as ambiguous",
        )
        return
    if not accounts:
        others = [m for m in MATCHES if m != scim.match]
        for match in others:
            if len(await connector.variant(match=match).find(probe)) == 1:
                report.add(
                    f"find {scim.match}",
                    "warn",
                    f"{probe!r} not found by {scim.match}, but found by {match}",
                    f"set match: {match}",
                )
                return
        report.add(f"find {scim.match}", "warn", f"{probe!r} not found", "check probe_user")
        return
    account = accounts[0]
    if account.active is None:
        report.add(
            "active",
            "warn",
            f"{account.user_name}'s active attribute is not a boolean: no read-back can verify",
        )
    state = {True: "active", False: "inactive", None: "active unreadable"}[account.active]
    report.add(f"find {scim.match}", "ok", f"{account.user_name} (id {account.id}, {state})")
    if scim.remove_groups:
        await _probe_groups(connector, account.id, report)


async def _probe_groups(connector: ScimConnector, account_id: str, report: AppReport) -> None:
    """How this app's group memberships can be read, and whether every group answers."""
    found = await connector.groups_of(account_id)
    route = connector.memberships.route
    names = ", ".join(sorted(g.name for g in found.member)) or "none"
    suggestion = ""
    if connector.settings.group_membership == "auto" and route != "member_filter":
        suggestion = f"set group_membership: {route}"
    report.add("groups", "ok", f"member of {len(found.member)} via {route}: {names}", suggestion)
    if found.unknown:
        unread = ", ".join(g.name for g in found.unknown)
        report.add(
            "group members",
            "warn",
            f"no route shows the members of {unread}: runs cannot verify those groups and "
            "will ask a person",
        )


async def _probe_paging(connector: ScimConnector, report: AppReport) -> None:
    """A server whose totalResults is just the page size makes listings look complete."""
    page = await connector.get_json("/Users", {"startIndex": 1, "count": 2})
    resources = page.get("Resources") or []
    total = page.get("totalResults")
    if len(resources) == 2 and total == 2:
        second = await connector.get_json("/Users", {"startIndex": 3, "count": 2})
        if second.get("Resources"):
            report.add(
                "paging",
                "warn",
                "totalResults reports the page size, not the listing's size",
                "set pagination: defensive",
            )


def suggested_settings(report: AppReport) -> list[str]:
    """The catalog lines the findings suggest (``key: value``, under the app's connector
    section, e.g. ``scim:``)."""
    return [
        f.suggestion.split("-> ")[-1].removeprefix("set ")
        for f in report.findings
        if f.suggestion.startswith("set ") or "-> set " in f.suggestion
    ]
