"""Named SCIM app behaviours from the field, each a way to set up ``Quirks`` and the catalog.

Every profile states what an honest offboarding must end in against such an app: the step
``verified`` (access gone and proven), or ``failed`` with an exception task (a person must
look, because the app cannot prove it or refused a write). The invariant test runs each one
end to end and then reads the app directly, bypassing the quirks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from devstack.demo_data import demo_users

if TYPE_CHECKING:  # conftest imports this module
    from tests.conftest import ScimApp

Setup = Callable[["ScimApp", int], None]
BIG_GROUP = "Big"


@dataclass(frozen=True)
class Profile:
    name: str
    setup: Setup
    outcome: Literal["verified", "failed"]
    scim: dict[str, Any] = field(default_factory=dict)  # catalog settings under scim:
    email_case: Literal["same", "mixed"] = "same"  # how HR spells the leaver's email


def _flags(**flags: Any) -> Setup:
    def setup(app: ScimApp, leaver: int) -> None:
        for name, value in flags.items():
            setattr(app.quirks, name, value)

    return setup


def _big_group(app: ScimApp, leaver: int) -> None:
    """150 bystanders and the leaver (last) in one group; the app shows 100 members."""
    others = demo_users(170)[20:]
    ids = [*app.server.seed(others).values(), app.ids[app.users[leaver].user_name]]
    group = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": BIG_GROUP,
        "members": [{"value": i, "type": "User"} for i in ids],
    }
    created = app.server._oracle.post(
        "/Groups", content=json.dumps(group), headers={"Content-Type": "application/scim+json"}
    )
    created.raise_for_status()
    app.quirks.group_member_cap = 100
    app.quirks.group_patch_unsupported = True


def _retry_after_unix_time(app: ScimApp, leaver: int) -> None:
    app.quirks.fail_next(1, 429, retry_after=str(int(time.time()) + 2))


def _groups_fail(app: ScimApp, leaver: int) -> None:
    app.quirks.fail_next(10_000, 500, method="GET", path_contains="/Groups")


def _delete_refused(app: ScimApp, leaver: int) -> None:
    app.quirks.fail_next(10_000, 409, method="DELETE")


PROFILES = [
    Profile("plain", _flags(), "verified"),
    Profile("rate_limited", _flags(flaky_every=3, flaky_faults=("429",)), "verified"),
    Profile("flaky", _flags(flaky_every=3), "verified"),
    Profile("retry_after_unix_time", _retry_after_unix_time, "verified"),
    Profile("group_lists_without_members", _flags(group_lists_without_members=True), "verified"),
    Profile("group_members_hidden", _flags(group_members_hidden=True), "verified"),
    Profile("active_as_digit", _flags(active_as_digit=True), "verified"),
    Profile("active_as_string", _flags(active_as_string=True), "verified"),
    Profile(
        "active_as_digit_patch_ignored",
        _flags(active_as_digit=True, ignore_user_patch=True),
        "failed",
    ),
    Profile("case_sensitive_filter", _flags(case_sensitive_filters=True), "verified", {}, "mixed"),
    Profile("if_match_required", _flags(require_if_match=True), "verified"),
    Profile("total_is_page_size", _flags(total_is_page_size=True), "verified", {"page_size": 2}),
    Profile("lying_pagination", _flags(lying_pagination=True), "verified"),
    Profile(
        "gone_after_deactivate",
        _flags(gone_after_deactivate=True),
        "verified",
        {"gone_after_deactivate_ok": True},
    ),
    Profile("patch_unsupported_no_proof", _flags(patch_not_supported=True), "failed"),
    Profile(
        "patch_unsupported_proven",
        _flags(patch_not_supported=True, user_groups_filter=True),
        "verified",
    ),
    Profile("group_member_cap_put", _big_group, "failed", {"patch_style": "put_fallback"}),
    Profile("groups_fail_after_deactivate", _groups_fail, "failed", {"request_retries": 1}),
    Profile("delete_refused", _delete_refused, "failed", {"deprovision": "delete"}),
]
