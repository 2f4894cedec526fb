"""IdP first, end to end: API + worker on real Temporal, a local Okta org, a SCIM app.

A termination disables the person in the IdP and revokes their sessions before any app is
touched; an IdP that refuses or is down opens an exception task (or keeps retrying) while
the apps still finish.
"""

# Fixtures are imported from tests.idp_support; pytest passes them by name.
# ruff: noqa: F811

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from connectors.registry import ConnectorRegistry
from tests.conftest import SCIM_TOKEN, TOKEN_ENV, ScimApp, Stack, StackFactory, steps, terminated
from tests.idp_support import Idps, idps  # noqa: F401
from tests.ssf_receiver import SESSION_REVOKED, SsfReceiver
from tests.test_end_to_end import save_history
from tests.test_scim_stack import open_exception

pytestmark = pytest.mark.slow

DAVE = 3


def catalog(idps: Idps, receivers: list[dict[str, str]] | None = None, **okta: Any) -> str:
    """Okta (the IdP) and Ironclad (SCIM); ``{base_url}`` is filled in by make_stack."""
    return yaml.safe_dump(
        {
            "ssf_receivers": receivers or [],
            "apps": [
                {
                    "id": "ironclad",
                    "name": "Ironclad",
                    "owners": ["legal-ops@example.com"],
                    "connector": "scim",
                    "scim": {"base_url": "{base_url}", "token_env": TOKEN_ENV},
                },
                idps.app("okta", **okta),
            ],
        }
    )


@pytest.fixture
def receiver() -> Iterator[SsfReceiver]:
    server = SsfReceiver().start()
    yield server
    server.stop()


async def idp_stack(
    make_stack: StackFactory, scim_app: ScimApp, idps: Idps, text: str, **settings: Any
) -> Stack:
    stack = await make_stack(scim_app, catalog_text=text, worker=False, **settings)
    env = {TOKEN_ENV: SCIM_TOKEN, "SSF_RECEIVER_TOKEN": SsfReceiver.token, **idps.env}
    stack.registry = ConnectorRegistry(stack.catalog, env=env)
    await stack.start_worker()
    return stack


async def start(stack: Stack, scim_app: ScimApp, index: int) -> str:
    response = await stack.webhook(terminated(scim_app.users[index], index))
    assert response.status_code == 202, response.text
    run_id: str = response.json()["run_id"]
    return run_id


def kinds(trail: dict[str, Any]) -> list[str]:
    return [e["kind"] for e in trail["events"]]


async def test_termination_disables_the_idp_user_before_the_apps(
    make_stack: StackFactory, scim_app: ScimApp, idps: Idps, receiver: SsfReceiver
) -> None:
    """...and tells the Shared Signals receivers, each answer on the trail: one verifies the
    SET against offboard's JWKS and accepts it, one is told the wrong audience and refuses."""
    receivers = [
        {
            "url": receiver.endpoint,
            "audience": receiver.audience,
            "token_env": "SSF_RECEIVER_TOKEN",
        },
        {
            "url": receiver.endpoint,
            "audience": "https://other.example.com",
            "token_env": "SSF_RECEIVER_TOKEN",
        },
    ]
    stack = await idp_stack(make_stack, scim_app, idps, catalog(idps, receivers))
    receiver.transmitter = str(stack.http.base_url).rstrip("/")
    email = scim_app.users[DAVE].email
    run_id = await start(stack, scim_app, DAVE)
    run = await stack.wait_run(run_id, lambda r: r["status"] == "completed", timeout=60)
    await save_history(stack, run["workflow_id"], run_id, env="OFFBOARD_SAVE_IDP_HISTORY")
    assert steps(run) == {"okta": "verified", "ironclad": "verified"}
    okta_step = next(a for a in run["apps"] if a["app"] == "okta")
    assert okta_step["detail"] == "disabled; sessions revoked; read back SUSPENDED"

    okta_id = idps.okta_ids[email]
    assert idps.okta.status_of(okta_id) == "SUSPENDED"
    assert (okta_id, "true") in idps.okta.sessions_cleared
    assert scim_app.user_by_email(email)["active"] is False
    others = [e for e in idps.okta_ids if e != email]
    assert all(idps.okta.status_of(idps.okta_ids[e]) == "ACTIVE" for e in others)

    trail = await stack.audit(f"E{1000 + DAVE}")
    # Side effects land on the trail as they happen (the run's own events a moment later).
    order = kinds(trail)
    assert order.index("idp.disabled") < order.index("idp.sessions_revoked")
    assert order.index("idp.sessions_revoked") < order.index("scim.deactivated")
    started = next(e for e in trail["events"] if e["kind"] == "run.apps_started")
    assert started["detail"] == {"after": "idp_settled", "idp": {"okta": "verified"}}
    cut = next(e for e in trail["events"] if e["kind"] == "scim.deactivated")
    assert started["at"] <= cut["at"]

    # The SET: signed with the key at /.well-known/jwks.json, about Dave's sessions.
    [claims] = receiver.received
    assert claims["sub_id"] == {"format": "email", "email": email}
    assert claims["iss"] == receiver.transmitter and claims["txn"] == run_id
    event = claims["events"][SESSION_REVOKED]
    assert event["initiating_entity"] == "policy"
    assert receiver.headers_seen[0]["typ"] == "secevent+jwt"
    answers = {e["detail"]["audience"]: e for e in trail["events"] if e["kind"].startswith("ssf.")}
    delivered = answers[receiver.audience]
    assert (delivered["kind"], delivered["detail"]["status"]) == ("ssf.delivered", 202)
    assert delivered["detail"]["jti"] == claims["jti"]
    refused = answers["https://other.example.com"]
    assert refused["kind"] == "ssf.failed" and refused["detail"]["status"] == 400
    assert "invalid_audience" in refused["detail"]["error"]
    assert SsfReceiver.token not in json.dumps(trail)
    assert trail["chain_valid"]


async def test_refused_idp_opens_an_exception_and_the_apps_still_finish(
    make_stack: StackFactory, scim_app: ScimApp, idps: Idps
) -> None:
    stack = await idp_stack(make_stack, scim_app, idps, catalog(idps))
    idps.okta.fail_next(
        1,
        403,
        path_contains="/lifecycle/",
        body={"errorCode": "E0000006", "errorSummary": "You do not have permission"},
    )
    run_id = await start(stack, scim_app, DAVE)
    run = await stack.wait_run(
        run_id, lambda r: r["status"] == "waiting_human" and "running" not in steps(r), 60
    )
    assert steps(run) == {"okta": "failed", "ironclad": "verified"}
    okta_step = next(a for a in run["apps"] if a["app"] == "okta")
    assert "authorization failed" in okta_step["detail"]
    assert "$OKTA_API_TOKEN" in okta_step["detail"]
    task = await open_exception(stack, run_id)
    assert (task["kind"], task["app"]) == ("exception", "okta")
    email = scim_app.users[DAVE].email
    assert scim_app.user_by_email(email)["active"] is False

    # The admin grants the permission and retries: the run completes.
    retry = await stack.http.post(f"/api/v1/offboardings/{run_id}/steps/okta/retry")
    assert retry.status_code == 202, retry.text
    run = await stack.wait_run(run_id, lambda r: r["status"] == "completed", timeout=60)
    assert idps.okta.status_of(idps.okta_ids[email]) == "SUSPENDED"


async def test_idp_outage_never_holds_the_apps_back(
    make_stack: StackFactory, scim_app: ScimApp, idps: Idps
) -> None:
    """The IdP is down for writes: after OFFBOARD_IDP_WAIT_SECONDS the apps go ahead; the
    IdP step keeps retrying and the run completes once the IdP is back."""
    stack = await idp_stack(
        make_stack, scim_app, idps, catalog(idps, request_retries=0), idp_wait_seconds=1
    )
    idps.okta.fail_next(10_000, 503, path_contains="/lifecycle/")
    run_id = await start(stack, scim_app, DAVE)
    run = await stack.wait_run(run_id, lambda r: steps(r).get("ironclad") == "verified", 60)
    assert steps(run)["okta"] == "running"
    assert run["status"] == "running"
    trail = await stack.audit(f"E{1000 + DAVE}")
    started = next(e for e in trail["events"] if e["kind"] == "run.apps_started")
    assert started["detail"] == {"after": "idp_wait_elapsed", "idp": {"okta": "running"}}

    idps.okta.clear_faults()
    run = await stack.wait_run(run_id, lambda r: r["status"] == "completed", timeout=90)
    assert steps(run) == {"okta": "verified", "ironclad": "verified"}
