"""No account found for the leaver: the step names every lookup it tried, and an admin can
demand a human check for apps where everyone has an account (``on_no_account: exception``)."""

from __future__ import annotations

import pytest

from devstack.scim_server import SeedUser
from tests.conftest import ScimApp, StackFactory, catalog_yaml, scim_app_yaml, steps, terminated
from tests.test_scim_stack import open_exception

pytestmark = pytest.mark.slow


def catalog(on_no_account: str) -> str:
    return catalog_yaml(scim_app_yaml(app_keys=f"    on_no_account: {on_no_account}\n"))


GHOST = SeedUser("ghost", "Gina.Ghost@Example.com", "Gina", "Ghost")
# The intake lower-cases emails; the lookup tries that form, then the alternate attribute.
TRIED = 'tried emails.value eq "gina.ghost@example.com"; userName eq "gina.ghost@example.com"'


async def test_skipped_step_names_every_lookup(make_stack: StackFactory, scim_app: ScimApp) -> None:
    stack = await make_stack(scim_app, catalog_text=catalog("skip"))
    response = await stack.webhook(terminated(GHOST, 90))
    run_id = response.json()["run_id"]
    run = await stack.wait_run(run_id, lambda r: r["status"] == "completed", timeout=60)
    [step] = run["apps"]
    assert step["status"] == "skipped"
    assert step["detail"] == f"no account found; {TRIED}"


async def test_on_no_account_exception_asks_a_person(
    make_stack: StackFactory, scim_app: ScimApp
) -> None:
    stack = await make_stack(scim_app, catalog_text=catalog("exception"))
    response = await stack.webhook(terminated(GHOST, 91))
    run_id = response.json()["run_id"]
    run = await stack.wait_run(run_id, lambda r: steps(r).get("ironclad") == "failed", timeout=60)
    assert TRIED in run["apps"][0]["detail"]
    task = await open_exception(stack, run_id)
    assert task["kind"] == "exception" and "on_no_account: exception" in task["instructions"]
    run = await stack.wait_run(run_id, lambda r: r["status"] == "waiting_human", timeout=60)
