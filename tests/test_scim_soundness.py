"""Each kind of fault that could make "verified" untrue, against the connector on a real
scim2-server behind the quirk front: membership that listings hide, capped member lists,
unreadable ``active``, case-sensitive filters, brief faults, absurd Retry-After values,
required ETags, and listings that stop early."""

# Fixtures are imported from tests.test_scim_support; pytest passes them by name.
# ruff: noqa: F811

from __future__ import annotations

import json
import time

import pytest

from connectors.base import GroupRef, ProtocolError, RateLimitedError
from connectors.scim import parse_active
from devstack.demo_data import demo_users
from tests.scim_quirk_profiles import BIG_GROUP, _big_group
from tests.test_scim_support import (  # noqa: F401
    ConnectorFactory,
    ScimEnv,
    make_connector,
    scim_env,
)

INVALID_FILTER = json.dumps(
    {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
        "status": "400",
        "scimType": "invalidFilter",
        "detail": "no",
    }
).encode()
LEAVER = 4  # in "All staff", "Legal" and "Sales"
HIS_GROUPS = ["All staff", "Legal", "Sales"]


# -- 1. membership that listings do not show -------------------------------------------------


async def test_groups_listed_without_members_are_checked_one_by_one(
    scim_env: ScimEnv, make_connector: ConnectorFactory
) -> None:
    scim_env.quirks.group_lists_without_members = True
    scim_env.quirks.fail_next(1, 400, path_contains="filter=members.value", body=INVALID_FILTER)
    uid = scim_env.id_of(LEAVER)
    connector = make_connector()
    removal = await connector.remove_groups(uid)
    assert sorted(g.name for g in removal.removed) == HIS_GROUPS and not removal.unknown
    assert scim_env.server.groups_of(uid) == []
    assert (await connector.read_back(uid, removal.removed)).groups == []


async def test_groups_that_never_show_members_use_the_id_and_member_filter(
    scim_env: ScimEnv, make_connector: ConnectorFactory
) -> None:
    scim_env.quirks.group_members_hidden = True
    uid = scim_env.id_of(LEAVER)
    connector = make_connector()
    removal = await connector.remove_groups(uid)
    assert sorted(g.name for g in removal.removed) == HIS_GROUPS
    assert connector.memberships.route == "group_filter"
    assert (await connector.read_back(uid, removal.removed)).access_gone is False  # still active
    assert scim_env.server.groups_of(uid) == []


async def test_membership_no_route_shows_is_unknown_never_absent(
    scim_env: ScimEnv, make_connector: ConnectorFactory
) -> None:
    scim_env.quirks.group_members_hidden = True
    connector = make_connector(group_membership="group_reads")
    uid = scim_env.id_of(LEAVER)
    await connector.deactivate(uid)
    removal = await connector.remove_groups(uid)
    assert removal.removed == [] and len(removal.unknown) == len(
        scim_env.server._search("/Groups", None)
    )
    read = await connector.read_back(uid, removal.removed, removal.unknown)
    assert read.state == "inactive" and read.unknown_groups and not read.access_gone


# -- 2. a capped member list is never written back ------------------------------------------


async def test_capped_group_is_not_rewritten_and_nobody_loses_access(
    scim_env: ScimEnv, make_connector: ConnectorFactory
) -> None:
    app = scim_env.as_scim_app()
    _big_group(app, LEAVER)
    scim_env.quirks.user_groups_filter = True  # the second route exists and disagrees
    big = next(g for g in scim_env.server._search("/Groups", None) if g["displayName"] == BIG_GROUP)
    uid = scim_env.id_of(LEAVER)
    reason = await make_connector().remove_member(GroupRef(id=big["id"], name=BIG_GROUP), uid)
    assert reason is not None and "the list is partial" in reason
    assert scim_env.quirks.count("PUT") == 0
    after = next(g for g in scim_env.server._search("/Groups", None) if g["id"] == big["id"])
    assert len(after["members"]) == 151


async def test_capped_group_with_the_leaver_shown_is_not_rewritten_either(
    scim_env: ScimEnv, make_connector: ConnectorFactory
) -> None:
    app = scim_env.as_scim_app()
    _big_group(app, LEAVER)
    scim_env.quirks.group_member_cap = 151  # the leaver shows; the count route disagrees
    scim_env.quirks.user_groups_filter = True
    # One bystander more than the cap shows.
    big = next(g for g in scim_env.server._search("/Groups", None) if g["displayName"] == BIG_GROUP)
    extra = scim_env.server.seed(demo_users(171)[170:])
    members = [*big["members"], *({"value": i, "type": "User"} for i in extra.values())]
    scim_env.server._oracle.put(
        f"/Groups/{big['id']}",
        content=json.dumps({**big, "members": members}),
        headers={"Content-Type": "application/scim+json"},
    ).raise_for_status()
    reason = await make_connector().remove_member(
        GroupRef(id=big["id"], name=BIG_GROUP), scim_env.id_of(LEAVER)
    )
    assert reason is not None and "shows 151 users but the app counts 152" in reason
    assert scim_env.quirks.count("PUT") == 0


async def test_a_capped_group_is_not_rewritten_to_add_a_restored_account(
    scim_env: ScimEnv, make_connector: ConnectorFactory
) -> None:
    """A restore on an app without PATCH on groups: the same proof as for removal, or the
    members the capped list does not show would lose access."""
    app = scim_env.as_scim_app()
    _big_group(app, LEAVER)
    scim_env.quirks.group_patch_unsupported = True
    scim_env.quirks.user_groups_filter = True
    big = next(g for g in scim_env.server._search("/Groups", None) if g["displayName"] == BIG_GROUP)
    returning = scim_env.id_of(LEAVER + 1)

    with pytest.raises(ProtocolError, match="add the account back by hand"):
        await make_connector().add_member(GroupRef(id=big["id"], name=BIG_GROUP), returning)

    assert scim_env.quirks.count("PUT") == 0
    after = next(g for g in scim_env.server._search("/Groups", None) if g["id"] == big["id"])
    assert len(after["members"]) == 151


async def test_group_proven_complete_is_rewritten_without_only_the_leaver(
    scim_env: ScimEnv, make_connector: ConnectorFactory
) -> None:
    scim_env.quirks.group_patch_unsupported = True
    scim_env.quirks.user_groups_filter = True
    uid = scim_env.id_of(LEAVER)
    before = {g["displayName"]: len(g["members"]) for g in scim_env.server._search("/Groups", None)}
    removal = await make_connector().remove_groups(uid)
    assert sorted(g.name for g in removal.removed) == HIS_GROUPS and not removal.refused
    after = {
        g["displayName"]: len(g.get("members", []))
        for g in scim_env.server._search("/Groups", None)
    }
    assert after == {n: c - (n in HIS_GROUPS) for n, c in before.items()}


# -- 3. active that is not a boolean --------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "read"),
    [
        (True, True),
        (False, False),
        (None, True),
        ("True", True),
        ("false", False),
        ("1", True),
        ("0", False),
        (1, True),
        (0, False),
        ("inactive?", None),
        (7, None),
        ([], None),
    ],
)
def test_active_is_read_or_unknown_never_guessed(value: object, read: bool | None) -> None:
    assert parse_active(value) is read


async def test_a_patch_the_app_ignores_is_caught_with_digit_active(
    scim_env: ScimEnv, make_connector: ConnectorFactory
) -> None:
    scim_env.quirks.active_as_digit = True
    scim_env.quirks.ignore_user_patch = True
    connector = make_connector()
    [account] = await connector.find(scim_env.users[LEAVER].email)
    assert account.active is True  # "1"
    await connector.deactivate(account.id)
    assert (await connector.read_back(account.id)).state == "active"


# -- 4. matching that survives case --------------------------------------------------------


async def test_lookup_tries_the_normalised_form_on_a_case_sensitive_app(
    scim_env: ScimEnv, make_connector: ConnectorFactory
) -> None:
    scim_env.quirks.case_sensitive_filters = True
    connector = make_connector()
    lookup = await connector.lookup(scim_env.users[LEAVER].email.title())
    assert [a.id for a in lookup.accounts] == [scim_env.id_of(LEAVER)]
    missing = await connector.lookup("Nobody.Here@Example.com")
    assert missing.accounts == []
    assert missing.tried == [
        'emails.value eq "nobody.here@example.com"',
        'emails.value eq "Nobody.Here@Example.com"',
        'userName eq "nobody.here@example.com"',
        'userName eq "Nobody.Here@Example.com"',
    ]


# -- 5/6. brief faults and Retry-After as apps send it --------------------------------------


async def test_every_third_request_failing_still_deprovisions(
    scim_env: ScimEnv, make_connector: ConnectorFactory
) -> None:
    scim_env.quirks.flaky_every = 3
    connector = make_connector()
    uid = scim_env.id_of(LEAVER)
    assert await connector.deactivate(uid) == "deactivated"
    removal = await connector.remove_groups(uid)
    assert (await connector.read_back(uid, removal.removed)).access_gone
    assert scim_env.server.groups_of(uid) == [] and scim_env.user(LEAVER)["active"] is False


async def test_retry_after_as_a_unix_time_is_a_moment_not_years(
    scim_env: ScimEnv, make_connector: ConnectorFactory
) -> None:
    scim_env.quirks.fail_next(1, 429, retry_after=str(int(time.time()) + 2))
    connector = make_connector()
    assert await connector.find(scim_env.users[LEAVER].email)
    assert connector.gate.paused_for < 5


async def test_an_absurd_pause_is_capped_and_handed_to_the_workflow(
    scim_env: ScimEnv, make_connector: ConnectorFactory
) -> None:
    scim_env.quirks.fail_next(1, 429, retry_after="99999999")  # 3 years as delta-seconds
    with pytest.raises(RateLimitedError) as info:
        await make_connector(max_retry_after_seconds=120).find(scim_env.users[LEAVER].email)
    assert info.value.retry_after == 120


# -- 7. ETags required ------------------------------------------------------------------------


async def test_writes_the_app_wants_conditional_carry_if_match(
    scim_env: ScimEnv, make_connector: ConnectorFactory
) -> None:
    scim_env.quirks.require_if_match = True
    connector = make_connector()
    uid = scim_env.id_of(LEAVER)
    assert await connector.deactivate(uid) == "deactivated"
    removal = await connector.remove_groups(uid)
    assert sorted(g.name for g in removal.removed) == HIS_GROUPS
    assert await connector.delete(uid) == "deleted"
    writes = [(m, h) for m, _, h, _ in scim_env.quirks.requests if m in ("PATCH", "DELETE")]
    assert [m for m, h in writes if "If-Match" in h] == ["PATCH"] * 4 + ["DELETE"]


# -- 9. listings that stop early -------------------------------------------------------------


async def test_total_reported_as_the_page_size_does_not_end_the_listing(
    scim_env: ScimEnv, make_connector: ConnectorFactory
) -> None:
    scim_env.quirks.total_is_page_size = True
    pager = make_connector(page_size=5).pager("/Users")
    listed = [r["id"] async for r in pager]
    assert sorted(listed) == sorted(scim_env.ids.values())
    assert pager.listing.collected == 20


async def test_a_repeated_page_is_a_loud_failure(
    scim_env: ScimEnv, make_connector: ConnectorFactory
) -> None:
    first = scim_env.server._oracle.get("/Users", params={"count": 5}).json()
    for _ in range(3):
        scim_env.quirks.fail_next(1, 200, method="GET", body=json.dumps(first).encode())
    with pytest.raises(ProtocolError) as info:
        _ = [a async for a in make_connector(page_size=5).list_users()]
    assert "repeated a page" in info.value.message and "collected 5 of the 20" in info.value.message
