"""A leaver already gone everywhere: the run completes at once, every step skipped with its
reason, no task opened and nothing written to any app."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from activities.planning import NOTHING_TO_DO
from devstack.scim_server import ScimServer, SeedUser
from tests.conftest import (
    SCIM_TOKEN,
    ScimApp,
    StackFactory,
    catalog_yaml,
    scim_app_yaml,
    terminated,
)
from tests.scim_quirks import Quirks

pytestmark = pytest.mark.slow

# Deactivated in Ironclad by hand before HR sent the termination, and out of every group.
GONE = SeedUser("olga.ogden", "olga.ogden@example.com", "Olga", "Ogden", active=False)
# Deactivated too, but still in a group: access is left to take away.
HALF_GONE = SeedUser("pete.pryor", "pete.pryor@example.com", "Pete", "Pryor", active=False)
COLLEAGUE = SeedUser("quinn.quay", "quinn.quay@example.com", "Quinn", "Quay")
WRITES = ("POST", "PATCH", "PUT", "DELETE")


@pytest.fixture
def ironclad() -> Iterator[tuple[ScimServer, Quirks]]:
    quirks = Quirks()
    with ScimServer(token=SCIM_TOKEN, middleware=quirks.wrap) as server:
        server.seed(
            [GONE, HALF_GONE, COLLEAGUE],
            {"Legal": [COLLEAGUE.user_name, HALF_GONE.user_name], "All": [COLLEAGUE.user_name]},
        )
        yield server, quirks


def catalog(ironclad_url: str) -> str:
    """Ironclad (has the leaver's account) and DocuSign (the demo app, which has none)."""
    return catalog_yaml(
        scim_app_yaml(base_url=ironclad_url),
        scim_app_yaml("docusign", name="DocuSign", owners="it-lead@example.com"),
    )


async def test_a_leaver_gone_everywhere_completes_with_nothing_to_do(
    make_stack: StackFactory, scim_app: ScimApp, ironclad: tuple[ScimServer, Quirks]
) -> None:
    server, quirks = ironclad
    stack = await make_stack(scim_app, catalog_text=catalog(server.base_url))

    response = await stack.webhook(terminated(GONE, 40))

    assert response.status_code == 202, response.text
    run = await stack.wait_run(response.json()["run_id"], lambda r: r["completed_at"] is not None)
    assert run["status"] == "completed"
    by_app = {a["app"]: a for a in run["apps"]}
    assert {app: a["status"] for app, a in by_app.items()} == {
        "ironclad": "skipped",
        "docusign": "skipped",
    }
    assert by_app["ironclad"]["detail"] == NOTHING_TO_DO
    assert by_app["docusign"]["detail"].startswith("no account found")
    assert await stack.tasks() == []
    for method in WRITES:
        assert quirks.count(method) == 0, method
        assert scim_app.quirks.count(method) == 0, method
    found = server.find_user(GONE.user_name)
    assert found is not None and found["active"] is False


async def test_inactive_but_still_in_a_group_is_deprovisioned(
    make_stack: StackFactory, scim_app: ScimApp, ironclad: tuple[ScimServer, Quirks]
) -> None:
    server, _ = ironclad
    stack = await make_stack(scim_app, catalog_text=catalog(server.base_url))

    response = await stack.http.post(
        "/api/v1/offboardings", json={"email": HALF_GONE.email, "dry_run": True}
    )

    assert response.status_code == 200, response.text
    plans = {p["app"]: p for p in response.json()["apps"]}
    assert plans["ironclad"]["action"] == "deprovision", plans
