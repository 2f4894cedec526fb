"""ScimConnector against a real scim2-server behind Quirks: every field behaviour, no Temporal."""

# Fixtures are imported from tests.test_scim_support; pytest passes them by name.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest

from connectors.base import (
    AuthError,
    ProtocolError,
    RateLimitedError,
    RejectedError,
    TransientError,
)
from connectors.scim import RateGate, ScimConnector, parse_retry_after
from devstack.demo_data import MALLORY
from tests.conftest import SCIM_TOKEN, TOKEN_ENV
from tests.scim_quirks import Quirks
from tests.test_scim_support import (  # noqa: F401
    ConnectorFactory,
    ScimEnv,
    make_connector,
    scim_env,
)

SCIM_JSON = "application/scim+json"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
INVALID_FILTER = json.dumps(
    {"schemas": [ERROR_SCHEMA], "status": "400", "scimType": "invalidFilter", "detail": "no"}
).encode()


async def deprovision(connector: ScimConnector, account_id: str) -> tuple[str, list[str], str]:
    """What the activity does, minus Temporal and audit."""
    outcome = await connector.deactivate(account_id)
    removed = (await connector.remove_groups(account_id)).removed
    read = await connector.read_back(account_id, removed)
    assert read.groups == []
    return outcome, [g.name for g in removed], read.state


def patch_ops(env: ScimEnv, path_contains: str) -> list[dict[str, Any]]:
    return [op for body in env.bodies("PATCH", path_contains) for op in body["Operations"]]


# -- PATCH styles -----------------------------------------------------------------------------


async def test_patch_style_path(scim_env: ScimEnv, make_connector: ConnectorFactory) -> None:
    uid = scim_env.id_of(4)
    outcome, removed, state = await deprovision(make_connector(patch_style="path"), uid)
    assert (outcome, state) == ("deactivated", "inactive")
    assert sorted(removed) == ["All staff", "Legal", "Sales"]
    assert scim_env.user(4)["active"] is False
    assert scim_env.server.groups_of(uid) == []
    assert patch_ops(scim_env, f"/Users/{uid}") == [
        {"op": "replace", "path": "active", "value": False}
    ]
    [headers] = [h for m, t, h, _ in scim_env.quirks.requests if m == "PATCH" and "/Users/" in t]
    assert headers["Content-Type"] == SCIM_JSON
    assert scim_env.quirks.count("PUT") == 0
    # Nobody else changed.
    assert all(scim_env.user(i)["active"] for i in range(20) if i != 4)


async def test_patch_style_pathless(scim_env: ScimEnv, make_connector: ConnectorFactory) -> None:
    uid = scim_env.id_of(3)
    outcome, _, state = await deprovision(make_connector(patch_style="pathless"), uid)
    assert (outcome, state) == ("deactivated", "inactive")
    assert patch_ops(scim_env, f"/Users/{uid}") == [{"op": "replace", "value": {"active": False}}]


async def test_patch_style_put_fallback_uses_if_match(
    scim_env: ScimEnv, make_connector: ConnectorFactory
) -> None:
    uid = scim_env.id_of(7)
    version = scim_env.user(7)["meta"]["version"]
    scim_env.quirks.user_groups_filter = True  # proves the group reads complete
    outcome, removed, state = await deprovision(make_connector(patch_style="put_fallback"), uid)
    assert (outcome, state) == ("deactivated", "inactive")
    assert scim_env.quirks.count("PATCH") == 0, "put_fallback must not PATCH users or groups"
    user_puts = [h for m, t, h, _ in scim_env.quirks.requests if m == "PUT" and "/Users/" in t]
    assert [h["If-Match"] for h in user_puts] == [version]
    # Groups too: GET the group, PUT it back without the member.
    assert sorted(removed) == ["All staff", "Engineering", "Sales"]
    assert scim_env.quirks.count("PUT", "/Groups/") == 3
    assert scim_env.server.groups_of(uid) == []
    staff = next(b for b in scim_env.bodies("PUT", "/Groups/") if b["displayName"] == "All staff")
    assert len(staff["members"]) == 19


@pytest.mark.parametrize("status", [501, 405])
async def test_patch_unsupported_falls_back_to_put(
    scim_env: ScimEnv, make_connector: ConnectorFactory, status: int
) -> None:
    if status == 501:
        scim_env.quirks.patch_not_supported = True
    else:
        scim_env.quirks.fail_next(10, 405, method="PATCH")
    scim_env.quirks.user_groups_filter = True  # proves the group reads complete
    uid = scim_env.id_of(1)
    outcome, removed, state = await deprovision(make_connector(patch_style="path"), uid)
    assert (outcome, state) == ("deactivated", "inactive")
    assert scim_env.user(1)["active"] is False
    assert scim_env.server.groups_of(uid) == [] and sorted(removed) == ["All staff", "Sales"]
    assert scim_env.quirks.count("PUT", f"/Users/{uid}") == 1


async def test_put_fallback_rereads_and_retries_once_on_412(
    scim_env: ScimEnv, make_connector: ConnectorFactory
) -> None:
    uid = scim_env.id_of(3)
    scim_env.quirks.fail_next(1, 412, method="PUT")
    assert await make_connector(patch_style="put_fallback").deactivate(uid) == "deactivated"
    user_calls = [m for m, t, _, _ in scim_env.quirks.requests if f"/Users/{uid}" in t]
    assert user_calls == ["GET", "PUT", "GET", "PUT"]
    assert scim_env.user(3)["active"] is False


async def test_put_fallback_gives_up_after_two_412s(
    scim_env: ScimEnv, make_connector: ConnectorFactory
) -> None:
    scim_env.quirks.fail_next(2, 412, method="PUT")
    with pytest.raises(TransientError) as info:
        await make_connector(patch_style="put_fallback").deactivate(scim_env.id_of(3))
    assert info.value.retryable and info.value.status == 412
    assert "version conflict" in info.value.message


async def test_path_form_rejected_falls_back_to_pathless(
    scim_env: ScimEnv, make_connector: ConnectorFactory
) -> None:
    scim_env.quirks.pathless_patch_only = True
    scim_env.quirks.user_groups_filter = True  # proves the group reads complete
    uid = scim_env.id_of(4)
    outcome, removed, state = await deprovision(make_connector(patch_style="path"), uid)
    assert (outcome, state) == ("deactivated", "inactive")
    assert patch_ops(scim_env, f"/Users/{uid}") == [
        {"op": "replace", "path": "active", "value": False},
        {"op": "replace", "value": {"active": False}},
    ]
    # Member removal always carries a path, so on this server both PATCH forms are refused
    # and groups are rewritten with PUT.
    assert sorted(removed) == ["All staff", "Legal", "Sales"]
    assert scim_env.quirks.count("PUT", "/Groups/") == 3
    assert scim_env.server.groups_of(uid) == []


@pytest.mark.parametrize(
    "quirk", ["patch_200", "patch_204", "active_as_string", "plain_json_content_type", "drop_meta"]
)
@pytest.mark.parametrize("style", ["path", "put_fallback"])
async def test_response_shapes(
    scim_env: ScimEnv, make_connector: ConnectorFactory, quirk: str, style: str
) -> None:
    setattr(scim_env.quirks, quirk, True)
    scim_env.quirks.user_groups_filter = True  # proves group reads complete for the PUT
    connector = make_connector(patch_style=style, match="userName")
    person = scim_env.users[7]
    [account] = await connector.find(person.user_name)
    assert account.active is True  # "True" stays true
    outcome, _, state = await deprovision(connector, account.id)
    assert (outcome, state) == ("deactivated", "inactive")  # "False" is not truthy here
    assert scim_env.user(7)["active"] is False
    assert scim_env.server.groups_of(account.id) == []
    if quirk == "drop_meta" and style == "put_fallback":
        # No meta.version, but the ETag header still makes the PUT conditional.
        puts = [h for m, t, h, _ in scim_env.quirks.requests if m == "PUT" and "/Users/" in t]
        assert puts and all(h.get("If-Match", "").startswith('W/"') for h in puts)


# -- groups -----------------------------------------------------------------------------------


async def test_groups_found_by_member_filter_not_user_groups(
    scim_env: ScimEnv, make_connector: ConnectorFactory
) -> None:
    uid = scim_env.id_of(16)
    assert "groups" not in scim_env.user(16)  # scim2-server never fills User.groups
    connector = make_connector()
    assert sorted(g.name for g in (await connector.groups_of(uid)).member) == [
        "All staff",
        "Legal",
        "Sales",
    ]
    assert scim_env.quirks.sent_filters("/Groups") == [f'members.value eq "{uid}"']


async def test_member_filter_answer_stands_without_member_lists(
    scim_env: ScimEnv, make_connector: ConnectorFactory
) -> None:
    """A group the member filter returns holds the account, even when the app shows no
    member list (many leave them out): its groups must not look empty."""
    uid = scim_env.id_of(4)
    groups = scim_env.server._oracle.get(
        "/Groups", params={"filter": f'members.value eq "{uid}"', "excludedAttributes": "members"}
    ).json()
    assert groups["Resources"] and all("members" not in g for g in groups["Resources"])
    scim_env.quirks.fail_next(
        1,
        200,
        path_contains="attributes=",
        body=json.dumps(groups).encode(),
        content_type=SCIM_JSON,
    )
    found = (await make_connector().groups_of(uid)).member
    assert sorted(g.name for g in found) == ["All staff", "Legal", "Sales"]
    assert scim_env.quirks.count("GET", "/Groups") == 1


async def test_a_server_ignoring_the_member_filter_changes_nobody_else(
    scim_env: ScimEnv, make_connector: ConnectorFactory
) -> None:
    """Every group comes back for the member query: removals are targeted at the leaver, so
    the groups he was not in keep every member, and the read-back asks again."""
    uid = scim_env.id_of(4)
    everyone = scim_env.server._oracle.get("/Groups", params={"attributes": "displayName"})
    before = {
        g["displayName"]: g.get("members", []) for g in scim_env.server._search("/Groups", None)
    }
    scim_env.quirks.fail_next(
        1, 200, path_contains="attributes=", body=everyone.content, content_type=SCIM_JSON
    )
    connector = make_connector()
    removal = await connector.remove_groups(uid)
    assert (await connector.read_back(uid, removal.removed)).groups == []
    after = {
        g["displayName"]: g.get("members", []) for g in scim_env.server._search("/Groups", None)
    }
    for name, members in before.items():
        assert [m for m in members if m["value"] != uid] == after[name], name
    assert scim_env.server.groups_of(uid) == []


async def test_rejected_member_filter_pages_all_groups(
    scim_env: ScimEnv, make_connector: ConnectorFactory
) -> None:
    scim_env.quirks.fail_next(
        1, 400, method="GET", path_contains="members.value", body=INVALID_FILTER
    )
    connector = make_connector()
    uid = scim_env.id_of(4)
    removed = (await connector.remove_groups(uid)).removed
    assert sorted(g.name for g in removed) == ["All staff", "Legal", "Sales"]
    assert scim_env.server.groups_of(uid) == []
    # Learned once: the next lookup pages straight away.
    assert [g.name for g in (await connector.groups_of(scim_env.id_of(3))).member] == ["All staff"]
    assert len(scim_env.quirks.sent_filters("/Groups")) == 1


async def test_read_back_rereads_only_the_groups_it_left(
    scim_env: ScimEnv, make_connector: ConnectorFactory
) -> None:
    """Verification asks about the removed groups by id, not the app's whole group list."""
    uid = scim_env.id_of(4)
    connector = make_connector()
    removed = (await connector.remove_groups(uid)).removed
    assert (await connector.read_back(uid, removed)).groups == []
    ids = " or ".join(f'id eq "{g}"' for g in sorted(g.id for g in removed))
    assert scim_env.quirks.sent_filters("/Groups") == [
        f'members.value eq "{uid}"',
        f'({ids}) and members.value eq "{uid}"',
    ]


async def test_read_back_names_a_group_that_kept_the_member(
    scim_env: ScimEnv, make_connector: ConnectorFactory
) -> None:
    """An app that answers 204 to the member removal but keeps the member is caught."""
    uid = scim_env.id_of(3)  # in "All staff" only
    scim_env.quirks.fail_next(1, 204, method="PATCH", path_contains="/Groups/", body=b"")
    connector = make_connector()
    removed = (await connector.remove_groups(uid)).removed
    assert [g.name for g in removed] == ["All staff"]
    assert (await connector.read_back(uid, removed)).groups == ["All staff"]


async def test_read_back_falls_back_when_the_id_query_is_rejected(
    scim_env: ScimEnv, make_connector: ConnectorFactory
) -> None:
    # The grouped id query, however the client encodes its parentheses.
    scim_env.quirks.fail_next(1, 400, method="GET", path_contains="+or+id+eq+", body=INVALID_FILTER)
    uid = scim_env.id_of(4)
    connector = make_connector()
    removed = (await connector.remove_groups(uid)).removed
    assert (await connector.read_back(uid, removed)).groups == []
    # Learned once: the next read-back goes straight to the member query.
    assert (await connector.read_back(uid, removed)).groups == []
    member = f'members.value eq "{uid}"'
    assert scim_env.quirks.sent_filters("/Groups")[-2:] == [member, member]


async def test_value_array_rejected_falls_back_to_filter_path(
    scim_env: ScimEnv, make_connector: ConnectorFactory
) -> None:
    """scim2-server refuses the Entra-style removal (400): the RFC form is tried next."""
    uid = scim_env.id_of(3)
    connector = make_connector(group_member_removal="value_array")
    assert [g.name for g in (await connector.remove_groups(uid)).removed] == ["All staff"]
    assert patch_ops(scim_env, "/Groups/") == [
        {"op": "remove", "path": "members", "value": [{"value": uid}]},
        {"op": "remove", "path": f'members[value eq "{uid}"]'},
    ]
    assert scim_env.server.groups_of(uid) == []


async def test_value_array_honoured_when_accepted(
    scim_env: ScimEnv, make_connector: ConnectorFactory
) -> None:
    scim_env.quirks.fail_next(1, 204, method="PATCH", path_contains="/Groups/", body=b"")
    connector = make_connector(group_member_removal="value_array")
    await connector.remove_groups(scim_env.id_of(3))
    assert patch_ops(scim_env, "/Groups/") == [
        {"op": "remove", "path": "members", "value": [{"value": scim_env.id_of(3)}]}
    ]


async def test_removing_last_member_and_read_back(
    scim_env: ScimEnv, make_connector: ConnectorFactory
) -> None:
    uid = scim_env.id_of(5)
    created = scim_env.server.client.post(
        "/Groups",
        content=json.dumps(
            {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Solo",
                "members": [{"value": uid, "type": "User"}],
            }
        ),
        headers={"Content-Type": SCIM_JSON},
    )
    assert created.status_code == 201, created.text
    scim_env.quirks.user_groups_filter = True  # proves the group reads complete
    _, removed, state = await deprovision(make_connector(patch_style="put_fallback"), uid)
    assert sorted(removed) == ["All staff", "Solo"] and state == "inactive"
    assert scim_env.server.groups_of(uid) == []


# -- lookup ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("match", "value", "hits"),
    [
        ("userName", "CAROL.CLARK@EXAMPLE.COM", 1),
        ("email", "Carol.Clark@Example.com", 1),
        ("externalId", "emp-00003", 1),
        ("externalId", "EMP-00003", 0),  # externalId is caseExact (RFC 7643)
        ("email", "nobody@example.com", 0),
    ],
)
async def test_find_by_configured_attribute(
    scim_env: ScimEnv, make_connector: ConnectorFactory, match: str, value: str, hits: int
) -> None:
    found = await make_connector(match=match).find(value)
    assert [a.id for a in found] == [scim_env.id_of(2)] * hits
    if hits:
        assert found[0].user_name == "carol.clark@example.com"
        assert found[0].emails == ["carol.clark@example.com"]
        assert found[0].external_id == "emp-00003"


@pytest.mark.parametrize("match", ["userName", "email"])
async def test_find_escapes_filter_values(
    scim_env: ScimEnv, make_connector: ConnectorFactory, match: str
) -> None:
    found = await make_connector(match=match).find(MALLORY)
    assert [a.id for a in found] == [scim_env.id_of(12)]
    attribute = "userName" if match == "userName" else "emails.value"
    escaped = MALLORY.replace('"', '\\"')
    assert scim_env.quirks.sent_filters("/Users") == [f'{attribute} eq "{escaped}"']


async def test_find_rechecks_what_a_lax_server_returns(
    scim_env: ScimEnv, make_connector: ConnectorFactory
) -> None:
    """A server that ignores the filter cannot make us pick (or see ambiguity in) others."""
    everyone = scim_env.server._oracle.get("/Users", params={"count": 100}).json()
    scim_env.quirks.fail_next(1, 200, method="GET", body=json.dumps(everyone).encode())
    found = await make_connector(match="email").find("dave.davis@example.com")
    assert [a.id for a in found] == [scim_env.id_of(3)]


async def test_lying_pagination_defensive_lists_everyone(
    scim_env: ScimEnv, make_connector: ConnectorFactory
) -> None:
    scim_env.quirks.lying_pagination = True
    listed = [a.id async for a in make_connector(pagination="defensive").list_users()]
    assert sorted(listed) == sorted(scim_env.ids.values())
    # The default reads totalResults too, but keeps going while pages come back full (of the
    # server's real page size, learned from a short page that was not the last), so half a
    # total cannot end the listing early.
    scim_env.quirks.reset()
    scim_env.quirks.lying_pagination = True
    standard = [a.id async for a in make_connector(pagination="standard").list_users()]
    assert sorted(standard) == sorted(listed)


async def test_lying_pagination_with_pages_smaller_than_asked(
    scim_env: ScimEnv, make_connector: ConnectorFactory
) -> None:
    scim_env.quirks.lying_pagination = True
    connector = make_connector(pagination="defensive", page_size=5)
    found = await connector.find(scim_env.users[19].email)
    assert [a.id for a in found] == [scim_env.id_of(19)]
    listed = [a.id async for a in connector.list_users()]
    assert len(listed) == len(set(listed)) == 20
    starts = [
        int(dict(p.split("=") for p in t.split("?")[1].split("&"))["startIndex"])
        for m, t, _, _ in scim_env.quirks.requests
        if m == "GET" and "filter" not in t
    ]
    # Advanced by what came back (5 per page), and the empty last page was asked twice.
    assert starts[:4] == [1, 6, 11, 16]


async def test_page_cap_is_an_error_not_a_truncation(
    scim_env: ScimEnv, make_connector: ConnectorFactory
) -> None:
    scim_env.quirks.lying_pagination = True
    connector = make_connector(pagination="defensive", max_pages=2)
    with pytest.raises(ProtocolError) as info:
        _ = [a async for a in connector.list_users()]
    assert "max_pages" in info.value.message and not info.value.retryable
    assert scim_env.quirks.count("GET", "/Users") == 2


# -- faults ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_transient(
    scim_env: ScimEnv, make_connector: ConnectorFactory, status: int
) -> None:
    scim_env.quirks.fail_next(1, status, method="PATCH")
    connector = make_connector(request_retries=0)
    with pytest.raises(TransientError) as info:
        await connector.deactivate(scim_env.id_of(3))
    assert info.value.retryable and info.value.status == status
    assert info.value.message.startswith(f"acme: PATCH /Users/{scim_env.id_of(3)}: HTTP {status}")
    # The retry (the workflow's job) then works.
    assert await connector.deactivate(scim_env.id_of(3)) == "deactivated"


async def test_proxy_html_error_is_summarised(
    scim_env: ScimEnv, make_connector: ConnectorFactory
) -> None:
    html = b"<html><body><h1>502 Bad Gateway</h1><p>upstream gone</p></body></html>"
    scim_env.quirks.fail_next(1, 502, body=html)
    with pytest.raises(TransientError) as info:
        await make_connector(request_retries=0).find("dave.davis@example.com")
    assert "502 Bad Gateway upstream gone" in info.value.message
    assert "<" not in info.value.message


async def test_connection_reset_is_transient(
    scim_env: ScimEnv, make_connector: ConnectorFactory
) -> None:
    scim_env.quirks.reset_next(1, method="PATCH")
    with pytest.raises(TransientError) as info:
        await make_connector(request_retries=0).deactivate(scim_env.id_of(3))
    assert "connection failed" in info.value.message
    assert isinstance(info.value.__cause__, httpx.TransportError)


async def test_read_timeout_is_transient(
    scim_env: ScimEnv, make_connector: ConnectorFactory
) -> None:
    scim_env.quirks.delay_next(1, 5, method="GET")
    with pytest.raises(TransientError) as info:
        await make_connector(timeout=0.3, request_retries=0).find("dave.davis@example.com")
    assert "timed out (ReadTimeout)" in info.value.message
    assert isinstance(info.value.__cause__, httpx.TimeoutException)
    scim_env.quirks.reset()


async def test_malformed_json_is_transient(
    scim_env: ScimEnv, make_connector: ConnectorFactory
) -> None:
    scim_env.quirks.malformed_next(1, method="GET")
    with pytest.raises(TransientError) as info:
        await make_connector(request_retries=0).find("dave.davis@example.com")
    assert "not JSON" in info.value.message
    assert isinstance(info.value.__cause__, ValueError)


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_refusal_names_app_and_env_var(
    scim_env: ScimEnv, make_connector: ConnectorFactory, status: int
) -> None:
    scim_env.quirks.fail_next(1, status)
    with pytest.raises(AuthError) as info:
        await make_connector().deactivate(scim_env.id_of(3))
    error = info.value
    assert error.kind == "auth" and not error.retryable and error.status == status
    assert error.message.startswith("acme: ")
    assert f"${TOKEN_ENV}" in error.message
    assert SCIM_TOKEN not in error.message


async def test_wrong_token_is_refused_by_the_real_server(
    scim_env: ScimEnv, make_connector: ConnectorFactory
) -> None:
    with pytest.raises(AuthError) as info:
        await make_connector(token="not-the-token-77").find("dave.davis@example.com")
    assert "not-the-token-77" not in info.value.message
    assert f"${TOKEN_ENV}" in info.value.message


async def test_patch_404_means_gone(scim_env: ScimEnv, make_connector: ConnectorFactory) -> None:
    """Found a moment ago, deleted since: nothing to deactivate, and a read confirms it."""
    connector = make_connector()
    [account] = await connector.find("dave.davis@example.com")
    scim_env.server.client.delete(f"/Users/{account.id}").raise_for_status()
    assert await connector.deactivate(account.id) == "gone"
    assert (await connector.read_back(account.id)).state == "gone"


async def test_other_4xx_is_rejected_not_retried(
    scim_env: ScimEnv, make_connector: ConnectorFactory
) -> None:
    scim_env.quirks.fail_next(1, 409, method="DELETE")
    with pytest.raises(RejectedError) as info:
        await make_connector().delete(scim_env.id_of(3))
    assert not info.value.retryable and info.value.status == 409


@pytest.mark.parametrize("fault", ["503", "reset", "timeout", "malformed", "429"])
async def test_a_brief_fault_is_retried_inside_the_request(
    scim_env: ScimEnv, make_connector: ConnectorFactory, fault: str
) -> None:
    """One bad answer does not fail a step: the request is sent again (all ours are
    idempotent), after the app's Retry-After for a 429."""
    quirks = scim_env.quirks
    if fault == "503":
        quirks.fail_next(2, 503, method="PATCH")
    elif fault == "reset":
        quirks.reset_next(2, method="PATCH")
    elif fault == "timeout":
        quirks.delay_next(1, 3, method="PATCH")
    elif fault == "malformed":
        quirks.malformed_next(1, method="GET")
    else:
        quirks.fail_next(1, 429, method="PATCH", retry_after="1")
    connector = make_connector(timeout=1.0)
    [account] = await connector.find(scim_env.users[3].email)
    assert await connector.deactivate(account.id) == "deactivated"
    assert scim_env.user(3)["active"] is False
    if fault == "429":
        [limited, retried] = scim_env.meter.of("PATCH")
        assert retried.started_mono - limited.ended_mono >= 1.0


async def test_a_fault_that_persists_is_raised_after_the_retries(
    scim_env: ScimEnv, make_connector: ConnectorFactory
) -> None:
    scim_env.quirks.fail_next(10, 503, method="PATCH")
    with pytest.raises(TransientError):
        await make_connector(request_retries=2).deactivate(scim_env.id_of(3))
    assert scim_env.quirks.count("PATCH") == 3


# -- 429 and the shared gate ----------------------------------------------------------------


def test_parse_retry_after() -> None:
    # A Unix time (as some apps send) is a moment, not 57 years; a ceiling bounds any value.
    now = 1_796_065_000.0
    assert parse_retry_after("1796065598", now=now) == 598.0
    assert parse_retry_after("1796065598", now=now, ceiling=60) == 60.0
    assert parse_retry_after("99999999", ceiling=900) == 900.0
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("-1") == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    date = Quirks.http_date(10)
    seconds = parse_retry_after(date)
    assert seconds is not None and 8.0 <= seconds <= 10.0


@pytest.mark.parametrize("form", ["seconds", "http-date"])
async def test_429_pauses_every_request_to_the_app(
    scim_env: ScimEnv, make_connector: ConnectorFactory, form: str
) -> None:
    """One 429 holds back all runs sharing the connector, even requests already queued."""
    retry_after = "1" if form == "seconds" else Quirks.http_date(2)
    scim_env.quirks.fail_next(1, 429, method="PATCH", retry_after=retry_after)
    connector = make_connector(max_concurrent_requests=1, request_retries=0)

    first = asyncio.create_task(connector.deactivate(scim_env.id_of(3)))
    queued = asyncio.create_task(connector.find(scim_env.users[5].email))
    with pytest.raises(RateLimitedError) as info:
        await first
    assert info.value.retryable and info.value.retry_after is not None
    assert info.value.retry_after > 0
    # The workflow retries later; meanwhile another run's request waits for the pause too.
    retried = asyncio.create_task(connector.deactivate(scim_env.id_of(3)))
    await queued
    assert await retried == "deactivated"

    [limited] = [h for h in scim_env.meter.of("PATCH")][:1]
    later = [h for h in scim_env.meter.of() if h.started_mono > limited.started_mono]
    assert later, "requests after the 429"
    if form == "seconds":
        assert all(h.started_mono - limited.ended_mono >= 1.0 for h in later)
    else:
        advertised = parse_retry_after(retry_after, now=0.0)
        assert advertised is not None
        assert all(h.started >= advertised - 0.01 for h in later)


async def test_long_pause_is_handed_to_the_workflow_not_slept(
    scim_env: ScimEnv, make_connector: ConnectorFactory
) -> None:
    """Retry-After beyond what an activity should sleep: fail fast with the remaining wait,
    which becomes the workflow's next retry delay; nothing is sent meanwhile."""
    scim_env.quirks.fail_next(1, 429, retry_after="120")
    connector = make_connector()
    with pytest.raises(RateLimitedError) as first:
        await connector.find("dave.davis@example.com")
    assert first.value.retry_after == 120.0
    with pytest.raises(RateLimitedError) as other_run:
        await connector.deactivate(scim_env.id_of(5))
    assert other_run.value.retry_after is not None and 100 < other_run.value.retry_after <= 120
    assert "asked us to wait" in other_run.value.message
    assert scim_env.quirks.count() == 1


async def test_concurrency_limit_holds_across_runs(
    scim_env: ScimEnv, make_connector: ConnectorFactory
) -> None:
    # Slow responses make every run want a connection at once.
    scim_env.quirks.delay_next(40, 0.05)
    connector = make_connector(max_concurrent_requests=3)
    results = await asyncio.gather(*(deprovision(connector, scim_env.id_of(i)) for i in range(8)))
    assert all(r[0] == "deactivated" and r[2] == "inactive" for r in results)
    assert scim_env.meter.max_in_flight == 3
    # Control: without the limit the same work overlaps more, so the meter can see it.
    scim_env.meter.reset()
    scim_env.quirks.delay_next(40, 0.3)
    free = make_connector(max_concurrent_requests=50)
    await asyncio.gather(*(free.find(scim_env.users[i].email) for i in range(10, 20)))
    assert scim_env.meter.max_in_flight > 3


async def test_rate_limit_paces_requests(
    scim_env: ScimEnv, make_connector: ConnectorFactory
) -> None:
    connector = make_connector(rate_limit_per_minute=1200)  # one request per 50 ms
    began = time.monotonic()
    await asyncio.gather(*(connector.find(scim_env.users[i].email) for i in range(12)))
    starts = [h.started_mono for h in scim_env.meter.of()]
    assert len(starts) == 12
    # The k-th request may not start before k intervals have passed (a stalled client may
    # send late, never early), so the 12th arrives at least 11 intervals after we began.
    for k, started in enumerate(starts):
        assert started - began >= k * 0.05 - 0.001, (k, started - began)


async def test_gate_shared_by_connectors_of_one_app(
    scim_env: ScimEnv, make_connector: ConnectorFactory
) -> None:
    gate = RateGate(None, 2)
    scim_env.quirks.delay_next(40, 0.05)
    a, b = make_connector(gate=gate), make_connector(gate=gate)
    await asyncio.gather(*(c.find(scim_env.users[i].email) for i, c in enumerate([a, b] * 4)))
    assert scim_env.meter.max_in_flight == 2
