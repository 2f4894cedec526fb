"""Apps planned together: one app that cannot be asked at once is planned on its own, and its
step still ends verified; the other apps are planned and run as usual."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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

LEAVER = SeedUser("rita.rowe", "rita.rowe@example.com", "Rita", "Rowe")
COLLEAGUE = SeedUser("sam.sand", "sam.sand@example.com", "Sam", "Sand")


@pytest.fixture
def ironclad() -> Iterator[tuple[ScimServer, Quirks]]:
    quirks = Quirks()
    with ScimServer(token=SCIM_TOKEN, middleware=quirks.wrap) as server:
        server.seed(
            [LEAVER, COLLEAGUE],
            {"Legal": [LEAVER.user_name, COLLEAGUE.user_name]},
        )
        yield server, quirks


async def test_an_app_down_while_planning_is_planned_alone_and_verified(
    make_stack: StackFactory, scim_app: ScimApp, ironclad: tuple[ScimServer, Quirks]
) -> None:
    server, quirks = ironclad
    catalog = catalog_yaml(
        scim_app_yaml(base_url=server.base_url, request_retries=1),
        scim_app_yaml("docusign", name="DocuSign", owners="it-lead@example.com"),
    )
    stack = await make_stack(scim_app, catalog_text=catalog)
    # Ironclad's user lookups fail for a while: more than the shared planning's two tries.
    quirks.fail_next(3, 503, method="GET", path_contains="/Users?")

    response = await stack.webhook(terminated(LEAVER, 41))

    assert response.status_code == 202, response.text
    run = await stack.wait_run(response.json()["run_id"], lambda r: r["completed_at"] is not None)
    assert run["status"] == "completed"
    statuses = {a["app"]: a["status"] for a in run["apps"]}
    assert statuses == {"ironclad": "verified", "docusign": "skipped"}
    assert await stack.tasks() == [], "no exception task for a brief outage while planning"
    leaver = server.find_user(LEAVER.user_name)
    assert leaver is not None and leaver["active"] is False
    colleague = server.find_user(COLLEAGUE.user_name)
    assert colleague is not None and colleague["active"] is True
    assert quirks.count("GET", "/Users?") >= 4, "the lookup was asked again after the outage"
