"""IdP connectors against local servers implementing Okta's, Graph's and Google's contracts:
find, disable, revoke sessions, read back; escaping, paging, auth, 429s and 5xx."""

# Fixtures are imported from tests.idp_support; pytest passes them by name.
# ruff: noqa: F811

from __future__ import annotations

import time

import pytest
import yaml

from config import parse_catalog
from connectors.base import AuthError, ConfigError, RateLimitedError, TransientError
from connectors.registry import ConnectorRegistry
from devstack.demo_data import MALLORY
from tests.idp_support import PEOPLE, IdpFactory, Idps, idps, make_idp  # noqa: F401

DAVE = PEOPLE[3]
KINDS = ["okta", "okta_oauth", "entra", "google"]


def disabled_on_server(idps: Idps, kind: str, email: str) -> bool:
    if kind.startswith("okta"):
        return idps.okta.status_of(idps.okta_ids[email]) == "SUSPENDED"
    if kind == "entra":
        return not idps.graph.enabled(idps.graph_ids[email])
    return idps.google.suspended(idps.google_ids[email])


def sessions_revoked_on_server(idps: Idps, kind: str, email: str) -> bool:
    if kind.startswith("okta"):
        return (idps.okta_ids[email], "true") in idps.okta.sessions_cleared
    if kind == "entra":
        return idps.graph_ids[email] in idps.graph.revoked
    return idps.google_ids[email] in idps.google.signed_out


@pytest.mark.parametrize("kind", KINDS)
async def test_disable_revoke_and_read_back(kind: str, idps: Idps, make_idp: IdpFactory) -> None:
    idp = make_idp(kind)
    found = await idp.lookup(DAVE)
    [account] = found.accounts
    assert DAVE in (account.user_name, *account.emails)
    assert (await idp.read_back(account.id)).state == "enabled"

    assert await idp.disable(account.id) == "disabled"
    assert await idp.revoke_sessions(account.id) == "revoked"
    back = await idp.read_back(account.id)
    assert back.verified and back.state == "disabled"
    assert disabled_on_server(idps, kind, DAVE)
    assert sessions_revoked_on_server(idps, kind, DAVE)
    # Nobody else was touched.
    assert not any(disabled_on_server(idps, kind, p) for p in PEOPLE if p != DAVE)
    # A retried step disables again without an error.
    assert await idp.disable(account.id) in ("disabled", "already_disabled")


@pytest.mark.parametrize("kind", KINDS)
async def test_unknown_and_injected_values_find_nobody_else(
    kind: str, make_idp: IdpFactory
) -> None:
    idp = make_idp(kind)
    assert (await idp.lookup("nobody@example.com")).accounts == []
    # Mallory's login is a filter injection; escaped, it matches exactly her.
    found = await idp.lookup(MALLORY)
    assert [a.user_name for a in found.accounts] == [MALLORY]
    crafted = (
        'x" or profile.email eq "bob.brown@example.com'
        if "okta" in kind
        else "x' or mail eq 'bob.brown@example.com"
    )
    assert (await idp.lookup(crafted)).accounts == []


async def test_okta_pages_through_link_headers(idps: Idps, make_idp: IdpFactory) -> None:
    # Two users match: one by login, one whose email is that login (ambiguous on purpose).
    idps.okta.add_user("dave.d@example.com", email=DAVE)
    idps.okta.page_cap = 1
    found = await make_idp("okta").lookup(DAVE)
    assert len(found.accounts) == 2
    assert idps.okta.count("GET", "/api/v1/users") == 2


async def test_graph_pages_through_next_links(idps: Idps, make_idp: IdpFactory) -> None:
    idps.graph.add_user("dave.d@example.com", mail=DAVE)
    idps.graph.page_size = 1
    found = await make_idp("entra").lookup(DAVE)
    assert len(found.accounts) == 2
    assert idps.graph.count("GET", "/v1.0/users") == 2


async def test_okta_deactivate_action(idps: Idps, make_idp: IdpFactory) -> None:
    idp = make_idp("okta", action="deactivate")
    dave = idps.okta_ids[DAVE]
    idps.okta.users[dave]["status"] = "SUSPENDED"  # suspended earlier by someone else
    assert (await idp.read_back(dave)).state == "enabled"  # not yet what the catalog asks
    assert await idp.disable(dave) == "disabled"
    assert idps.okta.status_of(dave) == "DEPROVISIONED"
    assert (await idp.read_back(dave)).raw == "DEPROVISIONED"
    assert await idp.disable(dave) == "already_disabled"


async def test_refused_credentials_name_the_env_var_never_the_secret(
    idps: Idps, make_idp: IdpFactory
) -> None:
    env = {**idps.env, "OKTA_API_TOKEN": "revoked-ssws-0000", "ENTRA_CLIENT_SECRET": "wrong-77"}
    for kind, var in (("okta", "OKTA_API_TOKEN"), ("entra", "ENTRA_CLIENT_SECRET")):
        with pytest.raises(AuthError) as refused:
            await make_idp(kind, env=env).lookup(DAVE)
        assert f"${var}" in refused.value.message
        assert env[var] not in refused.value.message
    assert "invalid_client" in refused.value.message


async def test_missing_permissions_are_auth_errors(idps: Idps, make_idp: IdpFactory) -> None:
    idps.graph.roles = ["User.Read.All"]
    entra = make_idp("entra")
    dave = idps.graph_ids[DAVE]
    with pytest.raises(AuthError, match=r"authorization failed.*Insufficient privileges"):
        await entra.disable(dave)
    probe = await entra.probe()
    assert probe.missing == [
        "application permission User.EnableDisableAccount.All",
        "application permission User.RevokeSessions.All",
    ]
    # Google: delegation lacks the security scope signOut needs; the grant itself is refused.
    idps.google.delegated = ["https://www.googleapis.com/auth/admin.directory.user"]
    with pytest.raises(AuthError, match=r"unauthorized_client.*admin\.directory\.user\.security"):
        await make_idp("google").lookup(DAVE)


async def test_429_retry_after_is_waited_out(idps: Idps, make_idp: IdpFactory) -> None:
    entra = make_idp("entra")
    idps.graph.fail_next(
        1,
        429,
        method="PATCH",
        headers=[("Retry-After", "1")],
        body={"error": {"code": "TooManyRequests", "message": "Too many requests"}},
    )
    started = time.monotonic()
    assert await entra.disable(idps.graph_ids[DAVE]) == "disabled"
    assert time.monotonic() - started >= 1.0
    assert idps.graph.count("PATCH") == 2
    # Okta says when to come back as a Unix time in X-Rate-Limit-Reset.
    okta = make_idp("okta")
    reset = str(int(time.time()) + 2)
    idps.okta.fail_next(
        1,
        429,
        path_contains="/lifecycle/",
        headers=[("X-Rate-Limit-Reset", reset)],
        body={"errorCode": "E0000047", "errorSummary": "API call exceeded rate limit"},
    )
    assert await okta.disable(idps.okta_ids[DAVE]) == "disabled"
    assert time.time() >= int(reset) - 1


async def test_google_quota_403_is_a_rate_limit(idps: Idps, make_idp: IdpFactory) -> None:
    google = make_idp("google", request_retries=0)
    idps.google.fail_next(
        1,
        403,
        path_contains="/signOut",
        body={
            "error": {
                "code": 403,
                "message": "Quota exceeded",
                "errors": [{"reason": "userRateLimitExceeded"}],
            }
        },
    )
    with pytest.raises(RateLimitedError):
        await google.revoke_sessions(idps.google_ids[DAVE])


async def test_server_errors_are_retried_then_transient(idps: Idps, make_idp: IdpFactory) -> None:
    okta = make_idp("okta", request_retries=2)
    idps.okta.fail_next(2, 503, method="DELETE")
    assert await okta.revoke_sessions(idps.okta_ids[DAVE]) == "revoked"
    idps.okta.fail_next(3, 502, method="DELETE")
    with pytest.raises(TransientError, match="HTTP 502"):
        await okta.revoke_sessions(idps.okta_ids[DAVE])


async def test_tokens_are_cached_and_refreshed_once_on_401(
    idps: Idps, make_idp: IdpFactory
) -> None:
    entra = make_idp("entra")
    for email in PEOPLE[:5]:
        await entra.lookup(email)
    assert len(idps.graph.token_requests) == 1
    assert idps.graph.token_requests[0]["scope"] == f"{idps.graph.url}/.default"
    idps.graph.fail_next(
        1,
        401,
        method="GET",
        body={"error": {"code": "InvalidAuthenticationToken", "message": "expired"}},
    )
    assert len((await entra.lookup(DAVE)).accounts) == 1
    assert len(idps.graph.token_requests) == 2


async def test_registry_names_a_missing_env_var(idps: Idps) -> None:
    catalog = parse_catalog(yaml.safe_dump({"apps": [idps.app("okta")]}))
    registry = ConnectorRegistry(catalog, env={})
    with pytest.raises(ConfigError, match=r"\$OKTA_API_TOKEN is not set"):
        registry.idp("okta")
    await registry.aclose()
