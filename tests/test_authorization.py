"""Who may call what: every endpoint by every role (DESIGN.md, "Who sees what").

Roles: no token, an unknown token, admin, an app-admin who owns iManage (it-lead), an app-admin
who owns nothing but is the iManage assignee (it-helpdesk), and a reviewer. "ok" means the role
got past authorization (any answer but 401/403); the other columns are exact statuses.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Stack, steps, terminated

pytestmark = pytest.mark.slow

ROLES = ("anonymous", "bogus", "admin", "owner", "helpdesk", "reviewer")
OK = "ok"
STAFF_ONLY = {"anonymous": 401, "bogus": 401, "admin": OK, "owner": OK, "helpdesk": 403,
              "reviewer": 403}  # fmt: skip
ADMIN_ONLY = {"anonymous": 401, "bogus": 401, "admin": OK, "owner": 403, "helpdesk": 403,
              "reviewer": 403}  # fmt: skip
ANY_TOKEN = {"anonymous": 401, "bogus": 401, "admin": OK, "owner": OK, "helpdesk": OK,
             "reviewer": OK}  # fmt: skip
PUBLIC = dict.fromkeys(ROLES, OK)


async def call(stack: Stack, token: str | None, method: str, path: str, **kw: Any) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {"Authorization": ""}
    headers.update(kw.pop("headers", {}))
    response = await stack.http.request(method, path, headers=headers, **kw)
    if response.status_code in (401, 403):
        body = response.json()["error"]
        assert body["message"], "a refusal must say why"
        if response.status_code == 403:
            assert "role" in body["message"] or "own" in body["message"]
    return response.status_code


def outcome(status: int) -> int | str:
    return status if status in (401, 403) else OK


async def test_every_endpoint_enforces_its_roles(stack: Stack) -> None:
    assert stack.scim is not None
    tokens: dict[str, str | None] = {
        "anonymous": None,
        "bogus": "ofb_not-a-real-token",
        "admin": stack.admin_token,
        "owner": stack.token("app-admin", "it-lead@example.com"),
        "helpdesk": stack.token("app-admin", "it-helpdesk@example.com"),
        "reviewer": stack.token("reviewer", "reviewer@example.com"),
    }
    response = await stack.webhook(terminated(stack.scim.users[3], 3))
    run_id = response.json()["run_id"]
    await stack.wait_run(run_id, lambda r: steps(r).get("imanage") == "waiting_human")

    matrix: list[tuple[str, str, dict[str, Any], dict[str, int | str]]] = [
        ("POST", "/api/v1/offboardings", {"json": {"email": "x@example.com", "dry_run": True}},
         ADMIN_ONLY),
        ("GET", "/api/v1/offboardings", {}, {**STAFF_ONLY, "helpdesk": OK}),
        ("GET", f"/api/v1/offboardings/{run_id}", {}, STAFF_ONLY),
        ("POST", f"/api/v1/offboardings/{run_id}/approve", {}, ADMIN_ONLY),
        ("POST", f"/api/v1/offboardings/{run_id}/steps/ironclad/retry", {},
         {**ADMIN_ONLY, "owner": 403}),
        ("POST", f"/api/v1/offboardings/{run_id}/steps/imanage/retry", {}, STAFF_ONLY),
        ("GET", "/api/v1/people/E1003/audit", {}, ADMIN_ONLY),
        ("GET", "/api/v1/campaigns/nope/audit", {}, ADMIN_ONLY),
        ("POST", "/api/v1/people:import", {"content": b"", "headers": {"Content-Type": "text/csv"}},
         ADMIN_ONLY),
        ("GET", "/api/v1/tasks", {}, ANY_TOKEN),
        ("POST", "/api/v1/campaigns", {"json": {}}, ADMIN_ONLY),
        ("GET", "/api/v1/campaigns", {}, ANY_TOKEN),
        ("POST", "/api/v1/campaigns/nope/close", {}, ADMIN_ONLY),
        ("GET", "/healthz", {}, PUBLIC),
        ("GET", "/metrics", {}, PUBLIC),
    ]  # fmt: skip
    failures = []
    for method, path, kw, expected in matrix:
        for role in ROLES:
            got = outcome(await call(stack, tokens[role], method, path, **dict(kw)))
            if got != expected[role]:
                failures.append(f"{method} {path} as {role}: {got}, expected {expected[role]}")
    assert not failures, "\n".join(failures)

    # Tasks: a reviewer must not even learn the task exists; assignee and owner may complete.
    [task] = await stack.tasks(status="open")
    complete = f"/api/v1/tasks/{task['id']}/complete"
    body = {"json": {"outcome": "done", "note": "removed"}}
    assert await call(stack, tokens["anonymous"], "POST", complete, **body) == 401
    assert await call(stack, tokens["reviewer"], "POST", complete, **body) == 404
    reviewer_tasks = await stack.http.get(
        "/api/v1/tasks", headers={"Authorization": f"Bearer {tokens['reviewer']}"}
    )
    assert reviewer_tasks.json() == []
    assert await call(stack, tokens["helpdesk"], "POST", complete, **body) == 200
    assert await call(stack, tokens["owner"], "POST", complete, **body) == 409  # already done

    # Cancel last: it ends the run.
    cancel = f"/api/v1/offboardings/{run_id}/cancel"
    for role in ("anonymous", "bogus", "owner", "helpdesk", "reviewer"):
        assert outcome(await call(stack, tokens[role], "POST", cancel)) == ADMIN_ONLY[role]
