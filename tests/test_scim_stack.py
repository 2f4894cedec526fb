"""SCIM failures end to end: API + worker on real Temporal + scim2-server behind Quirks.

Only what needs the workflow: auth failures become failed steps with exception tasks, 5xx
retries run out into a failed step carrying the last error, a 429's Retry-After is waited
out, OAuth2 tokens are refreshed, and no secret ever reaches logs, API answers or the audit.
"""

# Fixtures are imported from tests.test_scim_support; pytest passes them by name.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from connectors.registry import ConnectorRegistry
from tests.conftest import SCIM_TOKEN, TOKEN_ENV, Stack, StackFactory, steps, terminated
from tests.test_scim_support import (  # noqa: F401
    ScimEnv,
    TokenEndpoint,
    json_logs,
    scim_env,
    token_endpoint,
)

pytestmark = pytest.mark.slow

SCIM_ONLY = """
apps:
  - id: ironclad
    name: Ironclad
    owners: [legal-ops@example.com]
    connector: scim
    scim:
      base_url: {base_url}
      token_env: TEST_SCIM_TOKEN
      match: email
"""

OAUTH = """
apps:
  - id: ironclad
    name: Ironclad
    owners: [legal-ops@example.com]
    connector: scim
    scim:
      base_url: {base_url}
      auth: oauth2
      token_url: TOKEN_URL
      client_id_env: IRONCLAD_CLIENT_ID
      client_secret_env: IRONCLAD_CLIENT_SECRET
      match: email
"""


async def everything_public(stack: Stack, run_id: str, person_id: str) -> str:
    """Every answer an operator or auditor can get about the run, as one string."""
    parts = [
        await stack.run(run_id),
        await stack.tasks(),
        await stack.audit(person_id),
        (await stack.http.get("/api/v1/offboardings")).json(),
    ]
    return json.dumps(parts)


async def start(stack: Stack, env: ScimEnv, index: int) -> str:
    response = await stack.webhook(terminated(env.users[index], index))
    assert response.status_code == 202, response.text
    run_id: str = response.json()["run_id"]
    return run_id


async def open_exception(stack: Stack, run_id: str) -> dict[str, Any]:
    """The run's open exception task, once its HumanTaskWorkflow has stored it."""
    for _ in range(300):
        found = [t for t in await stack.tasks(status="open") if t["run_id"] == run_id]
        if found:
            [task] = found
            return task
        await asyncio.sleep(0.1)
    raise AssertionError(f"no exception task for {run_id}")


def failed(app: str) -> Any:
    return lambda r: steps(r).get(app) == "failed"


async def test_auth_failures_become_exception_tasks_naming_the_env_var(
    make_stack: StackFactory,
    scim_env: ScimEnv,
    json_logs: None,
    capfd: pytest.CaptureFixture[str],
) -> None:
    stack = await make_stack(scim_env.as_scim_app(), catalog_text=SCIM_ONLY)

    # While deprovisioning: the PATCH is refused.
    scim_env.quirks.fail_next(1, 401, method="PATCH")
    run_id = await start(stack, scim_env, 3)
    run = await stack.wait_run(run_id, failed("ironclad"))
    [step] = run["apps"]
    assert step["detail"].startswith("ironclad: authentication failed")
    assert f"${TOKEN_ENV}" in step["detail"]
    assert scim_env.quirks.count("PATCH") == 1, "an auth failure is not retried"
    task = await open_exception(stack, run_id)
    assert (task["kind"], task["app"], task["run_id"]) == ("exception", "ironclad", run_id)
    assert f"${TOKEN_ENV}" in task["instructions"]
    public = await everything_public(stack, run_id, "E1003")

    # The admin fixes the token and retries the step: it goes through.
    retry = await stack.http.post(f"/api/v1/offboardings/{run_id}/steps/ironclad/retry")
    assert retry.status_code == 202, retry.text
    run = await stack.wait_run(run_id, lambda r: r["status"] == "completed")
    assert steps(run) == {"ironclad": "verified"}
    assert scim_env.user(3)["active"] is False

    # While planning: the lookup is refused.
    scim_env.quirks.fail_next(1, 403, method="GET", path_contains="/Users")
    run_id = await start(stack, scim_env, 5)
    run = await stack.wait_run(run_id, failed("ironclad"))
    assert "authorization failed" in run["apps"][0]["detail"]
    assert f"${TOKEN_ENV}" in run["apps"][0]["detail"]
    assert "ironclad" in run["apps"][0]["detail"]
    public += await everything_public(stack, run_id, "E1005")

    logs = capfd.readouterr()
    assert SCIM_TOKEN not in public
    assert SCIM_TOKEN not in logs.out + logs.err


async def test_exhausted_server_errors_fail_the_step_with_the_last_error(
    make_stack: StackFactory, scim_env: ScimEnv
) -> None:
    """An app that keeps failing: each request retried, the step retried until the retry
    budget is spent; then a failed step and an exception task naming the last error."""
    stack = await make_stack(
        scim_env.as_scim_app(), catalog_text=SCIM_ONLY, step_retry_budget_seconds=4
    )
    scim_env.quirks.fail_next(10_000, 502, method="PATCH", body=b"<html>Bad Gateway</html>")
    run_id = await start(stack, scim_env, 4)
    run = await stack.wait_run(run_id, failed("ironclad"), timeout=120)
    detail = run["apps"][0]["detail"]
    assert detail.startswith(f"ironclad: PATCH /Users/{scim_env.id_of(4)}: HTTP 502")
    assert "Bad Gateway" in detail and "still failing after" in detail
    # The request was retried inside the step (request_retries: 4) before the step gave up.
    assert scim_env.quirks.count("PATCH") >= 5
    task = await open_exception(stack, run_id)
    assert task["kind"] == "exception" and "HTTP 502" in task["instructions"]
    assert scim_env.user(4)["active"] is True


async def test_429_retry_after_is_waited_out(make_stack: StackFactory, scim_env: ScimEnv) -> None:
    stack = await make_stack(scim_env.as_scim_app(), catalog_text=SCIM_ONLY)
    scim_env.quirks.fail_next(1, 429, method="PATCH", retry_after="3")
    run_id = await start(stack, scim_env, 4)
    run = await stack.wait_run(run_id, lambda r: r["status"] == "completed")
    assert steps(run) == {"ironclad": "verified"}
    limited, retried = scim_env.meter.of("PATCH", "/Users/")
    assert retried.started_mono - limited.ended_mono >= 3.0
    # Nothing at all reached the app while it was paused.
    during = [
        h
        for h in scim_env.meter.of()
        if limited.ended_mono < h.started_mono < limited.ended_mono + 3.0
    ]
    assert during == []
    assert scim_env.user(4)["active"] is False


async def test_oauth2_refresh_and_no_secret_anywhere(
    make_stack: StackFactory,
    scim_env: ScimEnv,
    token_endpoint: TokenEndpoint,
    json_logs: None,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """The first issued token is refused (expired); one refresh later the run completes."""
    stack = await make_stack(
        scim_env.as_scim_app(),
        catalog_text=OAUTH.replace("TOKEN_URL", token_endpoint.url),
        worker=False,
    )
    stack.registry = ConnectorRegistry(
        stack.catalog,
        env={
            "IRONCLAD_CLIENT_ID": token_endpoint.client_id,
            "IRONCLAD_CLIENT_SECRET": token_endpoint.client_secret,
        },
    )
    await stack.start_worker()
    run_id = await start(stack, scim_env, 7)
    run = await stack.wait_run(run_id, lambda r: r["status"] == "completed")
    assert steps(run) == {"ironclad": "verified"}
    assert scim_env.user(7)["active"] is False
    assert len(token_endpoint.requests) == 2
    assert all(r["grant_type"] == "client_credentials" for r in token_endpoint.requests)
    assert [h["Authorization"] for _, _, h, _ in scim_env.quirks.requests[:2]] == [
        "Bearer expired-token-3b2a11",
        f"Bearer {SCIM_TOKEN}",
    ]
    public = await everything_public(stack, run_id, "E1007")
    logs = capfd.readouterr()
    seen = public + logs.out + logs.err
    assert "scim.token_refreshed" in logs.err  # the logs were captured
    for secret in (SCIM_TOKEN, "expired-token-3b2a11", token_endpoint.client_secret):
        assert secret not in seen
