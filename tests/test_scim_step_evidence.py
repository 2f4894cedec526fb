"""What a SCIM step did is on the trail as it happens, a retry resumes from it, and a step that
cannot verify says what is known: access cut when it was, memberships it could not check."""

# Fixtures are imported from tests.test_scim_activity / test_scim_support by name.
# ruff: noqa: F811

from __future__ import annotations

import pytest
from temporalio.exceptions import ApplicationError

from activities.step_evidence import StepRecorder
from tests.test_scim_activity import Harness, db_url, harness, sessions  # noqa: F401
from tests.test_scim_support import scim_env  # noqa: F401

LEAVER = 4  # in "All staff", "Legal" and "Sales"


def kinds(harness: Harness) -> list[str]:
    return [e["kind"] for e in harness.events()]


async def test_a_group_failure_after_deactivation_keeps_the_cut_on_the_trail(
    harness: Harness,
) -> None:
    harness.env.quirks.fail_next(10_000, 500, method="GET", path_contains="/Groups")
    with pytest.raises(ApplicationError) as info:
        await harness.run(harness.activities(request_retries=0), LEAVER)
    message = info.value.message
    assert message.startswith("acme: access cut at ") and " UTC (account deactivated)" in message
    assert "not verified" in message and "GET /Groups" in message and "HTTP 500" in message
    assert not info.value.non_retryable  # a 500 may heal; the budget decides
    assert kinds(harness) == ["scim.deactivated"]
    assert harness.env.user(LEAVER)["active"] is False


async def test_a_retry_resumes_instead_of_starting_over(harness: Harness) -> None:
    env = harness.env
    env.quirks.fail_next(1, 500, method="PATCH", path_contains="/Groups/")
    acts = harness.activities(request_retries=0)
    with pytest.raises(ApplicationError):
        await harness.run(acts, LEAVER)
    first = kinds(harness)
    assert first[0] == "scim.deactivated" and "scim.groups_removing" in first
    result = await harness.run(acts, LEAVER, attempt=2)
    assert result.state == "inactive" and env.server.groups_of(env.id_of(LEAVER)) == []
    # Deactivated once, by the first attempt; the second took it from there.
    assert env.quirks.count("PATCH", "/Users/") == 1
    assert kinds(harness).count("scim.deactivated") == 1
    removed = [
        g
        for e in harness.events()
        if e["kind"] == "scim.groups_removed"
        for g in e["detail"]["groups"]
    ]
    assert sorted(removed) == ["All staff", "Legal", "Sales"]
    assert kinds(harness)[-1] == "step.verified"


async def test_a_refused_delete_still_cuts_access_first(harness: Harness) -> None:
    env = harness.env
    env.quirks.fail_next(10, 409, method="DELETE")
    acts = harness.activities(deprovision="delete")
    with pytest.raises(ApplicationError) as info:
        await harness.run(acts, LEAVER, mode="delete")
    assert info.value.non_retryable
    assert "access cut at" in info.value.message and "HTTP 409" in info.value.message
    assert env.user(LEAVER)["active"] is False
    assert env.server.groups_of(env.id_of(LEAVER)) == []
    assert kinds(harness) == ["scim.groups_removing", "scim.groups_removed", "scim.deactivated"]


async def test_memberships_no_route_shows_become_a_question_for_a_person(
    harness: Harness,
) -> None:
    harness.env.quirks.group_members_hidden = True
    with pytest.raises(ApplicationError) as info:
        await harness.run(harness.activities(group_membership="group_reads"), LEAVER)
    error = info.value
    assert error.type == "verify" and error.non_retryable
    assert "access cut at" in error.message
    assert "could not be checked (the app shows no member lists by group_reads)" in error.message
    assert "step.verified" not in kinds(harness)


async def test_a_write_the_app_ignores_is_never_verified(harness: Harness) -> None:
    harness.env.quirks.active_as_digit = True
    harness.env.quirks.ignore_user_patch = True
    acts = harness.activities(remove_groups="false")
    for attempt in (1, 2, 3):
        with pytest.raises(ApplicationError) as info:
            await harness.run(acts, LEAVER, attempt=attempt)
        message = info.value.message
        assert "the app accepted the deactivation at" in message and "access cut" not in message
        assert "read back: account still active" in message
    # Re-read a few times (lazy apps), then a person is asked.
    assert info.value.non_retryable
    assert "step.verified" not in kinds(harness)


async def test_removals_a_dead_attempt_could_not_record_are_confirmed_by_the_retry(
    harness: Harness,
) -> None:
    """The worker died after taking the account out of its groups, before it wrote that
    down: the retry finds the groups no longer list it and puts the removals on the trail."""
    env = harness.env
    env.quirks.fail_next(1, 500, method="GET", path_contains="/Groups")
    acts = harness.activities(request_retries=0)
    with pytest.raises(ApplicationError):
        await harness.run(acts, LEAVER)  # deactivated, then listing the groups failed
    uid = env.id_of(LEAVER)
    connector = acts._registry.scim("acme")  # type: ignore[attr-defined]
    # What the dead attempt did: the intent went on the trail, the removals reached the app.
    found = await connector.groups_of(uid)
    recorder = StepRecorder(sessions(harness.db_url), harness.last_input, 1)
    await recorder.groups_removing(found.member)
    for group in found.member:
        assert await connector.remove_member(group, uid) is None
    result = await harness.run(acts, LEAVER, attempt=2)
    assert result.state == "inactive" and env.server.groups_of(uid) == []
    [confirmed] = [e for e in harness.events() if e["kind"] == "scim.groups_removed"]
    assert sorted(confirmed["detail"]["groups"]) == ["All staff", "Legal", "Sales"]
    assert confirmed["detail"]["confirmed_after_retry"] is True


async def test_a_verified_step_writes_once_and_its_evidence_rides_with_the_result(
    harness: Harness,
) -> None:
    """The cut goes on the trail with the intent to remove groups (before any removal is
    sent); the removals and the verification come back for the run's state write."""
    result = await harness.run(harness.activities(), LEAVER, write_audit=False)
    assert result.state == "inactive"
    assert kinds(harness) == ["scim.deactivated", "scim.groups_removing"]
    assert [e.kind for e in result.events] == ["scim.groups_removed", "step.verified"]
    assert sorted(result.events[0].detail["groups"]) == ["All staff", "Legal", "Sales"]


async def test_a_step_that_fails_after_the_removals_leaves_them_on_the_trail(
    harness: Harness,
) -> None:
    harness.env.quirks.ignore_user_patch = True
    with pytest.raises(ApplicationError) as info:
        await harness.run(harness.activities(), LEAVER, write_audit=False)
    assert "read back: account still active" in info.value.message
    assert kinds(harness) == ["scim.deactivated", "scim.groups_removing", "scim.groups_removed"]
    assert harness.env.server.groups_of(harness.env.id_of(LEAVER)) == []
