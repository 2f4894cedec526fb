"""A quarterly access review end to end, on real Temporal and two real SCIM servers.

Two SCIM apps and one manual app (its owner uploads a CSV export), HR people imported by CSV,
seeded terminated-but-active users, orphans, service accounts and a protected account. Checks
the classification, the reviewer rules (manager, else the app's first owner, never yourself),
reviewer scoping (403 on someone else's items), decisions one by one and in bulk, the close,
revocations read back on the SCIM servers and done by a human for the manual app, the evidence
report and the audit trails.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.demo_data import demo_users
from devstack.postgres_server import PostgresServer
from devstack.scim_server import ScimServer, SeedUser
from tests.conftest import (
    SCIM_TOKEN,
    Stack,
    StackFactory,
    catalog_yaml,
    manual_app_yaml,
    scim_app_yaml,
)

pytestmark = pytest.mark.slow

CATALOG = catalog_yaml(
    scim_app_yaml(gone_after_deactivate_ok=True),
    scim_app_yaml(
        "docusign",
        "DocuSign",
        "frank.fisher@example.com, grace.green@example.com",
        base_url="DOCUSIGN_URL",
    ),
    manual_app_yaml(),
    service_accounts='"svc-*", "*-bot@*"',
)

PEOPLE = """id,email,name,manager_email,department,status,terminated_at
E1000,alice.adams@example.com,Alice Adams,,Legal,active,
E1001,bob.brown@example.com,Bob Brown,alice.adams@example.com,Legal,active,
E1002,carol.clark@example.com,Carol Clark,alice.adams@example.com,Sales,active,
E1003,dave.davis@example.com,Dave Davis,alice.adams@example.com,Sales,terminated,2026-10-01
E1004,erin.evans@example.com,Erin Evans,carol.clark@example.com,Legal,terminated,2026-09-15
E1005,frank.fisher@example.com,Frank Fisher,,Engineering,active,
E1006,grace.green@example.com,Grace Green,frank.fisher@example.com,Engineering,active,
E1007,heidi.hall@example.com,Heidi Hall,alice.adams@example.com,Legal,active,
E1008,ivan.irwin@example.com,Ivan Irwin,carol.clark@example.com,Sales,active,
E1009,judy.jones@example.com,Judy Jones,carol.clark@example.com,Sales,active,
"""

IMANAGE_CSV = """account,email,display_name,last_sign_in,active
bob.brown,bob.brown@example.com,Bob Brown,2026-10-20T08:00:00Z,true
erin.evans,erin.evans@example.com,Erin Evans,2026-06-01,true
stranger,stranger@example.com,Some Stranger,,true
retired,retired@example.com,Retired Person,,false
"""


def extra(user_name: str, active: bool = True) -> SeedUser:
    first, _, last = user_name.split("@")[0].partition(".")
    return SeedUser(user_name, user_name, first.title(), (last or "x").title(), active=active)


def by_email(users: list[SeedUser], *emails: str) -> list[SeedUser]:
    wanted = set(emails)
    return [u for u in users if u.email in wanted]


@pytest.fixture
def scim_servers() -> Iterator[tuple[ScimServer, ScimServer]]:
    people = demo_users(10)
    ironclad_users = [
        *people,
        extra("ghost.writer@example.com"),
        extra("svc-backup@example.com"),
        extra("breakglass@example.com"),
        extra("old.timer@example.com", active=False),
    ]
    docusign_users = [
        *by_email(
            people,
            "alice.adams@example.com",
            "dave.davis@example.com",
            "frank.fisher@example.com",
        ),
        extra("deploy-bot@example.com"),
        extra("temp.contractor@example.com"),
    ]
    with (
        ScimServer(token=SCIM_TOKEN) as ironclad,
        ScimServer(token=SCIM_TOKEN) as docusign,
    ):
        ironclad.seed(ironclad_users, {"Legal": [u.user_name for u in people[0::2]]})
        docusign.seed(docusign_users, {"Senders": [u.user_name for u in docusign_users]})
        yield ironclad, docusign


async def poll(
    fetch: Callable[[], Any], ready: Callable[[Any], bool], what: str, timeout: float = 60
) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Any = None
    while loop.time() < deadline:
        last = await fetch()
        if ready(last):
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}: {json.dumps(last, default=str)[:3000]}")


def client_for(stack: Stack, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=str(stack.http.base_url), headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_campaign_collects_classifies_reviews_revokes_and_proves(
    make_stack: StackFactory,
    scim_servers: tuple[ScimServer, ScimServer],
    backend: str,
    request: pytest.FixtureRequest,
) -> None:
    ironclad, docusign = scim_servers
    database: dict[str, Any] = {}
    if backend == "postgresql":
        postgres: PostgresServer = request.getfixturevalue("postgres_server")
        database["database_url"] = postgres.new_database()
    stack = await make_stack(
        catalog_text=CATALOG.replace("{base_url}", ironclad.base_url).replace(
            "DOCUSIGN_URL", docusign.base_url
        ),
        **database,
    )
    api = stack.http

    # -- HR directory by CSV: a bad row names its line and column, and imports nothing.
    bad_people = PEOPLE + "E1010,not-an-email,Nobody,,,active,\n"
    response = await api.post(
        "/api/v1/people:import", content=bad_people, headers={"Content-Type": "text/csv"}
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["details"][0] == {
        "line": 12,
        "column": "email",
        "message": "not an email address: 'not-an-email'",
    }
    assert "line 12, column email" in error["message"]
    response = await api.post(
        "/api/v1/people:import", content=PEOPLE, headers={"Content-Type": "text/csv"}
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"imported": 10}

    # -- Start: 202 with the id, readable at once.
    response = await api.post(
        "/api/v1/campaigns",
        json={
            "name": "Q4 access review",
            "apps": ["ironclad", "docusign", "imanage"],
            "due_in_days": 14,
            "reviewer": "manager",
            "on_no_decision": "keep",
        },
    )
    assert response.status_code == 202, response.text
    campaign_id = response.json()["id"]
    got = await api.get(f"/api/v1/campaigns/{campaign_id}")
    assert got.status_code == 200 and got.json()["status"] in ("collecting", "reviewing")
    unknown = await api.post("/api/v1/campaigns", json={"name": "x", "apps": ["nope"]})
    assert unknown.status_code == 422

    # -- The manual app: its owner gets a csv_upload task and uploads the export.
    tasks = await poll(
        lambda: stack.tasks(status="open"),
        lambda ts: any(t["kind"] == "csv_upload" for t in ts),
        "the csv_upload task",
    )
    [upload] = [t for t in tasks if t["kind"] == "csv_upload"]
    assert upload["app"] == "imanage" and upload["assignees"] == ["it-lead@example.com"]
    assert f"/api/v1/campaigns/{campaign_id}/apps/imanage/accounts" in upload["instructions"]
    owner = client_for(stack, stack.token("app-admin", "it-lead@example.com"))
    alice = client_for(stack, stack.token("reviewer", "alice.adams@example.com"))
    accounts_url = f"/api/v1/campaigns/{campaign_id}/apps/imanage/accounts"
    csv_headers = {"Content-Type": "text/csv"}
    not_owner = await alice.post(accounts_url, content=IMANAGE_CSV, headers=csv_headers)
    assert not_owner.status_code == 403
    broken = IMANAGE_CSV.replace("2026-06-01", "last tuesday")
    response = await owner.post(accounts_url, content=broken, headers=csv_headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["line"] == 3
    assert response.json()["error"]["details"][0]["column"] == "last_sign_in"
    response = await owner.post(accounts_url, content=IMANAGE_CSV, headers=csv_headers)
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 3 and response.json()["skipped_inactive"] == 1

    campaign = await poll(
        lambda: _json(api.get(f"/api/v1/campaigns/{campaign_id}")),
        lambda c: c["status"] == "reviewing",
        "the review to open",
    )
    assert {a: s["status"] for a, s in campaign["collection"].items()} == {
        "ironclad": "collected",
        "docusign": "collected",
        "imanage": "collected",
    }
    assert campaign["collection"]["ironclad"]["accounts"] == 13  # old.timer is inactive
    # The population as evidence: what was listed, by which query, against the app's own count.
    detail = campaign["collection"]["ironclad"]["detail"]
    assert "14 listed by GET /Users (the app reported 14)" in detail, detail
    ironclad_state = campaign["collection"]["ironclad"]
    assert (ironclad_state["listed"], ironclad_state["reported"]) == (14, 14)
    assert ironclad_state["query"] == "GET /Users" and ironclad_state["collected_at"]
    assert campaign["counts"] == {"items": 21, "decided": 0, "keep": 0, "revoke": 0, "pending": 21}

    # -- Classification and reviewers.
    items = await _json(api.get(f"/api/v1/campaigns/{campaign_id}/items"))
    table = {(i["app"], i["account"]): (i["classification"], i["reviewer"]) for i in items}
    assert table == {
        ("ironclad", "alice.adams@example.com"): ("active_employee", "legal-ops@example.com"),
        ("ironclad", "bob.brown@example.com"): ("active_employee", "alice.adams@example.com"),
        ("ironclad", "carol.clark@example.com"): ("active_employee", "alice.adams@example.com"),
        ("ironclad", "dave.davis@example.com"): (
            "terminated_but_active",
            "alice.adams@example.com",
        ),
        ("ironclad", "erin.evans@example.com"): (
            "terminated_but_active",
            "carol.clark@example.com",
        ),
        ("ironclad", "frank.fisher@example.com"): ("active_employee", "legal-ops@example.com"),
        ("ironclad", "grace.green@example.com"): ("active_employee", "frank.fisher@example.com"),
        ("ironclad", "heidi.hall@example.com"): ("active_employee", "alice.adams@example.com"),
        ("ironclad", "ivan.irwin@example.com"): ("active_employee", "carol.clark@example.com"),
        ("ironclad", "judy.jones@example.com"): ("active_employee", "carol.clark@example.com"),
        ("ironclad", "ghost.writer@example.com"): ("orphan", "legal-ops@example.com"),
        ("ironclad", "svc-backup@example.com"): ("service_account", "legal-ops@example.com"),
        ("ironclad", "breakglass@example.com"): ("orphan", "legal-ops@example.com"),
        ("docusign", "alice.adams@example.com"): ("active_employee", "frank.fisher@example.com"),
        ("docusign", "dave.davis@example.com"): (
            "terminated_but_active",
            "alice.adams@example.com",
        ),
        # Frank has no manager and is DocuSign's first owner: never his own reviewer.
        ("docusign", "frank.fisher@example.com"): ("active_employee", "grace.green@example.com"),
        ("docusign", "deploy-bot@example.com"): ("service_account", "frank.fisher@example.com"),
        ("docusign", "temp.contractor@example.com"): ("orphan", "frank.fisher@example.com"),
        ("imanage", "bob.brown"): ("active_employee", "alice.adams@example.com"),
        ("imanage", "erin.evans"): ("terminated_but_active", "carol.clark@example.com"),
        ("imanage", "stranger"): ("orphan", "it-lead@example.com"),
    }
    classes = [i["classification"] for i in items]
    assert classes[:4] == ["terminated_but_active"] * 4, "the riskiest are listed first"
    item = {(i["app"], i["account"]): i for i in items}
    dave = item[("ironclad", "dave.davis@example.com")]
    assert dave["person"] == {
        "id": "E1003",
        "email": "dave.davis@example.com",
        "name": "Dave Davis",
    }
    assert dave["groups"] == [] and item[("ironclad", "alice.adams@example.com")]["groups"] == [
        "Legal"
    ]
    assert item[("ironclad", "ghost.writer@example.com")]["person"] is None
    assert item[("imanage", "bob.brown")]["last_sign_in"] == "2026-10-20T08:00:00+00:00"

    # -- Reviewer scoping: only your own items; someone else's is 403.
    mine = await _json(
        alice.get(f"/api/v1/campaigns/{campaign_id}/items", params={"reviewer": "me"})
    )
    assert {(i["app"], i["account"]) for i in mine} == {
        ("ironclad", "bob.brown@example.com"),
        ("ironclad", "carol.clark@example.com"),
        ("ironclad", "dave.davis@example.com"),
        ("ironclad", "heidi.hall@example.com"),
        ("docusign", "dave.davis@example.com"),
        ("imanage", "bob.brown"),
    }
    assert mine == await _json(alice.get(f"/api/v1/campaigns/{campaign_id}/items"))
    other = await alice.get(
        f"/api/v1/campaigns/{campaign_id}/items", params={"reviewer": "carol.clark@example.com"}
    )
    assert other.status_code == 403
    assert other.json()["error"]["code"] == "forbidden"
    for_admin = await _json(
        api.get(
            f"/api/v1/campaigns/{campaign_id}/items", params={"reviewer": "alice.adams@example.com"}
        )
    )
    assert [i["id"] for i in for_admin] == [i["id"] for i in mine]
    alice_view = await _json(alice.get(f"/api/v1/campaigns/{campaign_id}"))
    assert alice_view["counts"]["items"] == 6

    def decision_url(key: tuple[str, str]) -> str:
        return f"/api/v1/campaigns/{campaign_id}/items/{item[key]['id']}/decision"

    erin = ("ironclad", "erin.evans@example.com")
    response = await alice.post(decision_url(erin), json={"decision": "revoke"})
    assert response.status_code == 403, "Erin is Carol's to review"

    # -- Decisions, one by one: keeping a terminated person needs a justification.
    response = await alice.post(
        decision_url(("docusign", "dave.davis@example.com")), json={"decision": "keep"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "justification_required"
    response = await alice.post(
        decision_url(("ironclad", "dave.davis@example.com")),
        json={"decision": "revoke", "justification": "left in October"},
    )
    assert response.status_code == 200, response.text
    decided = response.json()
    assert decided["decision"] == "revoke" and decided["decided_by"] == "alice.adams@example.com"
    response = await alice.post(
        decision_url(("docusign", "dave.davis@example.com")), json={"decision": "revoke"}
    )
    assert response.status_code == 200, response.text

    # ... and in bulk, all or nothing.
    bulk_url = f"/api/v1/campaigns/{campaign_id}/decisions"
    keep_ids = [
        item[k]["id"]
        for k in (
            ("ironclad", "bob.brown@example.com"),
            ("ironclad", "carol.clark@example.com"),
            ("ironclad", "heidi.hall@example.com"),
            ("imanage", "bob.brown"),
        )
    ]
    response = await alice.post(
        bulk_url, json={"items": [*keep_ids, item[erin]["id"]], "decision": "keep"}
    )
    assert response.status_code == 403, "one foreign item refuses the whole batch"
    response = await alice.post(bulk_url, json={"items": keep_ids, "decision": "keep"})
    assert response.status_code == 200, response.text
    assert response.json()["decided"] == 4

    carol = client_for(stack, stack.token("reviewer", "carol.clark@example.com"))
    response = await carol.post(
        bulk_url,
        json={
            "items": [item[erin]["id"], item[("imanage", "erin.evans")]["id"]],
            "decision": "revoke",
            "justification": "terminated in September",
        },
    )
    assert response.status_code == 200, response.text

    legal = client_for(stack, stack.token("reviewer", "legal-ops@example.com"))
    response = await legal.post(
        decision_url(("ironclad", "ghost.writer@example.com")), json={"decision": "revoke"}
    )
    assert response.status_code == 200, response.text
    response = await legal.post(
        decision_url(("ironclad", "breakglass@example.com")), json={"decision": "revoke"}
    )
    assert response.status_code == 422 and response.json()["error"]["code"] == "protected_account"
    response = await legal.post(
        decision_url(("ironclad", "svc-backup@example.com")),
        json={"decision": "keep", "justification": "nightly backups"},
    )
    assert response.status_code == 200, response.text

    frank = client_for(stack, stack.token("reviewer", "frank.fisher@example.com"))
    response = await frank.post(
        decision_url(("docusign", "frank.fisher@example.com")),
        json={"decision": "keep", "justification": "I still need it"},
    )
    assert response.status_code == 403, "nobody reviews their own access"
    response = await frank.post(
        decision_url(("docusign", "deploy-bot@example.com")), json={"decision": "revoke"}
    )
    assert response.status_code == 200, response.text

    lead = owner
    response = await lead.post(decision_url(("imanage", "stranger")), json={"decision": "revoke"})
    assert response.status_code == 200, response.text

    # -- Close now (admin): pending items become "keep" (auto), revocations start.
    reviewer_close = await alice.post(f"/api/v1/campaigns/{campaign_id}/close")
    assert reviewer_close.status_code == 403
    response = await api.post(f"/api/v1/campaigns/{campaign_id}/close", json={"reason": "audit"})
    assert response.status_code == 200, response.text
    closed = response.json()
    assert closed["closed"]["revoke"] == 7 and closed["closed"]["scim_revocations"] == 5
    assert closed["closed"]["manual_apps"] == ["imanage"]
    assert closed["counts"]["pending"] == 0
    late = await legal.post(
        decision_url(("ironclad", "alice.adams@example.com")), json={"decision": "keep"}
    )
    assert late.status_code == 409
    again = await api.post(f"/api/v1/campaigns/{campaign_id}/close")
    assert again.status_code == 409

    # -- The manual app's revocations are a human task; SCIM ones are read back.
    tasks = await poll(
        lambda: stack.tasks(status="open"),
        lambda ts: any(t["kind"] == "manual_step" for t in ts),
        "the manual revocation task",
    )
    [manual] = [t for t in tasks if t["kind"] == "manual_step"]
    assert manual["app"] == "imanage" and manual["assignees"] == ["it-helpdesk@example.com"]
    assert "erin.evans" in manual["instructions"] and "stranger" in manual["instructions"]
    campaign = await _json(api.get(f"/api/v1/campaigns/{campaign_id}"))
    assert campaign["status"] == "revoking", "not completed while a revocation task is open"
    helpdesk = client_for(stack, stack.token("app-admin", "it-helpdesk@example.com"))
    response = await helpdesk.post(
        f"/api/v1/tasks/{manual['id']}/complete",
        json={"outcome": "done", "note": "disabled both in Control Center"},
    )
    assert response.status_code == 200, response.text
    campaign = await poll(
        lambda: _json(api.get(f"/api/v1/campaigns/{campaign_id}")),
        lambda c: c["status"] in ("completed", "failed"),
        "the campaign to finish",
    )
    assert campaign["status"] == "completed"

    revoked = {
        ironclad: ["dave.davis@example.com", "erin.evans@example.com", "ghost.writer@example.com"],
        docusign: ["dave.davis@example.com", "deploy-bot@example.com"],
    }
    for server, names in revoked.items():
        for name in names:
            user = server.find_user(name)
            assert user is not None and user["active"] is False, name
    for name in ("alice.adams@example.com", "breakglass@example.com", "svc-backup@example.com"):
        user = ironclad.find_user(name)
        assert user is not None and user["active"] is True, name
    dave_id = ironclad.find_user("dave.davis@example.com")
    assert dave_id is not None and ironclad.groups_of(dave_id["id"]) == []

    # -- Evidence: one row per account, matching the items.
    items = await _json(api.get(f"/api/v1/campaigns/{campaign_id}/items"))
    report = await _json(api.get(f"/api/v1/campaigns/{campaign_id}/report"))
    rows = {(r["app"], r["account"]): r for r in report["rows"]}
    assert len(report["rows"]) == 21 and set(rows) == set(table)
    for i in items:
        row = rows[(i["app"], i["account"])]
        assert row["decision"] == i["decision"] and row["reviewer"] == i["reviewer"]
        assert row["classification"] == i["classification"]
        assert row["revocation"] == i["revocation"]
    assert rows[("ironclad", "dave.davis@example.com")]["revocation"] == "verified"
    assert rows[("ironclad", "dave.davis@example.com")]["verified_at"] is not None
    assert rows[("ironclad", "dave.davis@example.com")]["justification"] == "left in October"
    assert rows[("imanage", "stranger")]["revocation"] == "done"
    auto = rows[("ironclad", "frank.fisher@example.com")]
    assert auto["decision"] == "keep" and auto["auto_decided"] is True
    protected = rows[("ironclad", "breakglass@example.com")]
    assert protected["decision"] == "keep" and protected["auto_decided"] is True
    summary = report["summary"]
    assert summary["by_decision"] == {"keep": 14, "revoke": 7, "pending": 0}
    population = summary["population"]["ironclad"]
    assert (population["accounts"], population["listed"], population["reported"]) == (13, 14, 14)
    assert population["query"] == "GET /Users" and population["skipped_inactive"] == 1
    assert summary["by_classification"] == {
        "terminated_but_active": 4,
        "orphan": 4,
        "service_account": 2,
        "active_employee": 11,
    }
    assert summary["revocations"] == {"pending": 0, "verified": 5, "done": 2, "failed": 0}
    assert summary["time_to_complete_seconds"] > 0

    response = await api.get(f"/api/v1/campaigns/{campaign_id}/report", params={"format": "csv"})
    assert response.headers["content-type"].startswith("text/csv")
    csv_rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(csv_rows) == 21
    assert list(csv_rows[0])[:3] == ["app", "account", "account_id"]
    assert {(r["app"], r["account"]): r["decision"] for r in csv_rows} == {
        k: r["decision"] for k, r in rows.items()
    }
    assert (await alice.get(f"/api/v1/campaigns/{campaign_id}/report")).status_code == 403

    # -- Each revocation is on that person's audit trail (HR id, or the orphan's email).
    trail = await stack.audit("E1003")
    kinds = [e["kind"] for e in trail["events"]]
    assert trail["chain_valid"] is True
    for kind in ("review.decided", "review.revocation_requested", "scim.deactivated"):
        assert kinds.count(kind) == 2, kinds  # Ironclad and DocuSign
    assert kinds.count("step.verified") == 2
    ghost = await stack.audit("ghost.writer@example.com")
    assert "scim.deactivated" in [e["kind"] for e in ghost["events"]]
    stranger = await stack.audit("stranger@example.com")
    assert [e["kind"] for e in stranger["events"]][-1] == "review.revocation_done"
    own = await stack.campaign_audit(campaign_id)
    assert own["campaign"] == campaign_id and own["chain_valid"] is True
    own_kinds = [e["kind"] for e in own["events"]]
    assert own_kinds[0] == "campaign.started" and own_kinds[-1] == "campaign.completed"
    assert "notify.review_assigned" in own_kinds and "review.closed" in own_kinds
    # The upload task's events are the campaign's too; no person trail bears its id.
    assert "task.completed" in own_kinds
    not_a_person = await stack.http.get(f"/api/v1/people/{campaign_id}/audit")
    assert not_a_person.status_code == 404

    for client in (owner, alice, carol, legal, frank, helpdesk):
        await client.aclose()
    target = os.environ.get("OFFBOARD_SAVE_CAMPAIGN_HISTORY")
    if target and backend == "sqlite":
        # Keep this run's history for tests/test_replay.py before changing the workflow.
        history = await stack.client.get_workflow_handle(campaign_id).fetch_history()
        await asyncio.to_thread(Path(target).write_text, history.to_json())


async def _json(request: Any) -> Any:
    response = await request
    assert response.status_code == 200, response.text
    return response.json()
