"""The deprovision_scim activity per deprovision mode and server behaviour, plus the
deactivate_then_delete workflow path on Temporal's time-skipping test server."""

# Fixtures are imported from tests.test_scim_support; pytest passes them by name.
# ruff: noqa: F811

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.deprovision import DeprovisionActivities
from config import Settings, parse_catalog
from connectors.registry import ConnectorRegistry
from db import audit
from db.migrate import upgrade
from db.session import get_engine
from tests.conftest import SCIM_TOKEN, TOKEN_ENV
from tests.test_scim_support import ScimEnv, scim_env  # noqa: F401
from worker import build_worker
from workflows.offboarding import OffboardingWorkflow
from workflows.types import OffboardingInput, ScimStepInput, ScimStepResult

CATALOG = """
apps:
  - id: acme
    name: Acme
    owners: [it@example.com]
    connector: scim
    scim:
      base_url: {base_url}
      token_env: TEST_SCIM_TOKEN
      match: email
{extra}
"""


@pytest.fixture(scope="module")
def db_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('scim-activity') / 'db.sqlite'}"
    upgrade(url)
    return url


def sessions(url: str) -> Callable[[], Session]:
    return lambda: Session(get_engine(url), expire_on_commit=False)


class Harness:
    def __init__(self, env: ScimEnv, db_url: str) -> None:
        self.env = env
        self.db_url = db_url
        self.registries: list[ConnectorRegistry] = []

    def activities(self, **settings: Any) -> DeprovisionActivities:
        extra = "\n".join(f"      {k}: {v}" for k, v in settings.items())
        catalog = parse_catalog(CATALOG.format(base_url=self.env.base_url, extra=extra))
        registry = ConnectorRegistry(catalog, env={TOKEN_ENV: SCIM_TOKEN})
        self.registries.append(registry)
        return DeprovisionActivities(catalog, registry, sessions(self.db_url))

    async def run(
        self,
        acts: DeprovisionActivities,
        index: int,
        mode: str = "deactivate",
        attempt: int = 1,
        write_audit: bool = True,
    ) -> ScimStepResult:
        """Run the activity as attempt ``attempt``; attempts after the first continue the
        previous run's step (same person, same step id), as Temporal's retries do."""
        if attempt == 1:
            self.person = f"P-{uuid.uuid4().hex[:8]}"
        person = self.person
        inp = ScimStepInput(
            app="acme",
            account_id=self.env.id_of(index),
            account=self.env.users[index].user_name,
            person_id=person,
            workflow_id=f"offboard-{person}",
            step_id=f"acme#1:{mode}",
            mode=mode,  # type: ignore[arg-type]
            write_audit=write_audit,
        )
        env = ActivityEnvironment()
        now = datetime.now(UTC)
        env.info = dataclasses.replace(
            env.info, attempt=attempt, scheduled_time=now, current_attempt_scheduled_time=now
        )
        self.last_input = inp
        result: ScimStepResult = await env.run(acts.deprovision_scim, inp)
        return result

    def events(self) -> list[dict[str, Any]]:
        with Session(get_engine(self.db_url)) as session:
            return audit.person_events(session, self.person)


@pytest.fixture
async def harness(scim_env: ScimEnv, db_url: str) -> AsyncIterator[Harness]:
    h = Harness(scim_env, db_url)
    yield h
    for registry in h.registries:
        await registry.aclose()


async def test_deactivate_removes_groups_and_audits(harness: Harness) -> None:
    env = harness.env
    result = await harness.run(harness.activities(), 4)
    assert result.outcome == "deactivated" and result.state == "inactive"
    assert sorted(result.groups_removed) == ["All staff", "Legal", "Sales"]
    assert env.user(4)["active"] is False and env.server.groups_of(env.id_of(4)) == []
    kinds = [e["kind"] for e in harness.events()]
    assert kinds == [
        "scim.deactivated",
        "scim.groups_removing",
        "scim.groups_removed",
        "step.verified",
    ]
    assert harness.events()[-1]["detail"]["read_back"] == "inactive"


async def test_delete_removes_groups_first_then_404_is_verified(harness: Harness) -> None:
    env = harness.env
    uid = env.id_of(7)
    result = await harness.run(harness.activities(deprovision="delete"), 7, mode="delete")
    assert (result.outcome, result.state) == ("deleted", "gone")
    assert env.server.get_user(uid) is None
    # scim2-server keeps deleted users in member lists; we took them out before deleting.
    assert env.server.groups_of(uid) == []
    order = [m for m, t, _, _ in env.quirks.requests if m in ("PATCH", "DELETE")]
    assert order == ["PATCH", "PATCH", "PATCH", "DELETE"]


async def test_deactivate_then_delete_phases(harness: Harness) -> None:
    """The workflow runs the two phases days apart; each is one activity call."""
    env = harness.env
    acts = harness.activities(deprovision="deactivate_then_delete", delete_after_days=30)
    first = await harness.run(acts, 2)
    assert (first.outcome, first.state) == ("deactivated", "inactive")
    assert env.user(2)["active"] is False
    second = await harness.run(acts, 2, mode="delete")
    assert (second.outcome, second.state) == ("deleted", "gone")
    assert env.server.get_user(env.id_of(2)) is None


async def test_delete_that_only_deactivates_is_verified(harness: Harness) -> None:
    env = harness.env
    env.quirks.delete_only_deactivates = True
    result = await harness.run(harness.activities(deprovision="delete"), 3, mode="delete")
    assert (result.outcome, result.state) == ("deleted", "inactive")
    assert env.user(3)["active"] is False
    verified = harness.events()[-1]
    assert verified["kind"] == "step.verified"
    assert verified["detail"]["note"] == "the app keeps deleted accounts, deactivated"


async def test_gone_after_deactivate_is_verified_when_configured(harness: Harness) -> None:
    env = harness.env
    env.quirks.gone_after_deactivate = True
    acts = harness.activities(gone_after_deactivate_ok="true")
    result = await harness.run(acts, 4)
    assert (result.outcome, result.state) == ("deactivated", "gone")
    assert env.user(4)["active"] is False  # soft-deleted underneath
    assert env.server.groups_of(env.id_of(4)) == []


async def test_gone_after_deactivate_unexpected_needs_a_person(harness: Harness) -> None:
    harness.env.quirks.gone_after_deactivate = True
    with pytest.raises(ApplicationError) as info:
        await harness.run(harness.activities(), 4)
    assert info.value.type == "verify" and info.value.non_retryable
    assert "gone_after_deactivate_ok" in info.value.message


async def test_user_deleted_meanwhile_is_verified_gone(harness: Harness) -> None:
    env = harness.env
    env.server.client.delete(f"/Users/{env.id_of(5)}").raise_for_status()
    result = await harness.run(harness.activities(), 5)
    assert (result.outcome, result.state) == ("gone", "gone")
    assert env.server.groups_of(env.id_of(5)) == []  # stale membership removed too


async def test_a_false_404_is_caught_by_the_read_back(harness: Harness) -> None:
    """The PATCH says 404 but the account is there and active: not verified, retried."""
    harness.env.quirks.fail_next(1, 404, method="PATCH", path_contains="/Users/")
    with pytest.raises(ApplicationError) as info:
        await harness.run(harness.activities(remove_groups="false"), 3)
    assert info.value.type == "verify" and not info.value.non_retryable
    assert "still active" in info.value.message


async def test_auth_failure_is_permanent_and_names_the_env_var(harness: Harness) -> None:
    harness.env.quirks.fail_next(1, 401, method="PATCH")
    with pytest.raises(ApplicationError) as info:
        await harness.run(harness.activities(), 3)
    error = info.value
    assert error.type == "auth" and error.non_retryable
    assert error.message.startswith("acme: authentication failed")
    assert f"${TOKEN_ENV}" in error.message and SCIM_TOKEN not in error.message
    assert isinstance(error.__cause__, Exception)


async def test_429_sets_the_next_retry_delay(harness: Harness) -> None:
    """A pause longer than a step should sleep is handed to the workflow as the retry delay."""
    harness.env.quirks.fail_next(1, 429, method="PATCH", retry_after="70")
    with pytest.raises(ApplicationError) as info:
        await harness.run(harness.activities(), 3)
    error = info.value
    assert error.type == "rate_limited" and not error.non_retryable
    assert error.next_retry_delay == timedelta(seconds=70)


async def test_missing_token_env_is_a_config_error(harness: Harness) -> None:
    acts = harness.activities()
    acts._registry._env = {}  # type: ignore[attr-defined]
    with pytest.raises(ApplicationError) as info:
        await harness.run(acts, 3)
    assert info.value.type == "config" and info.value.non_retryable
    assert f"${TOKEN_ENV} is not set" in info.value.message


@pytest.mark.slow
async def test_workflow_deactivates_then_deletes_after_the_grace_period(
    time_skipping_env: WorkflowEnvironment, scim_env: ScimEnv, tmp_path: Path
) -> None:
    """On the time-skipping server: 30 days pass in a moment."""
    env, ts_env = scim_env, time_skipping_env
    person = env.users[6]
    settings = Settings(data_dir=tmp_path, task_queue=f"tq-{uuid.uuid4().hex}")
    upgrade(settings.effective_database_url)
    extra = "      deprovision: deactivate_then_delete\n      delete_after_days: 30"
    catalog = parse_catalog(CATALOG.format(base_url=env.base_url, extra=extra))
    registry = ConnectorRegistry(catalog, env={TOKEN_ENV: SCIM_TOKEN})
    try:
        async with build_worker(ts_env.client, settings, catalog, registry):
            started = await ts_env.get_current_time()
            handle = await ts_env.client.start_workflow(
                OffboardingWorkflow.run,
                OffboardingInput(person_id="E2006", email=person.email),
                id=f"offboard-E2006-{uuid.uuid4().hex[:6]}",
                task_queue=settings.task_queue,
            )
            try:
                state = await handle.result()
            except WorkflowFailureError as exc:  # pragma: no cover - diagnostic
                raise AssertionError(f"workflow failed: {exc.cause}") from exc
            finished = await ts_env.get_current_time()
    finally:
        await registry.aclose()
    assert state.status == "completed"
    [step] = state.steps
    assert step.status == "verified" and step.detail.startswith("deleted, read back gone")
    assert env.server.get_user(env.id_of(6)) is None
    assert finished - started >= timedelta(days=30)
    with Session(get_engine(settings.effective_database_url)) as session:
        kinds = [e["kind"] for e in audit.person_events(session, "E2006")]
    assert kinds.index("scim.deactivated") < kinds.index("step.delete_scheduled")
    assert kinds.index("step.delete_scheduled") < kinds.index("scim.deleted")
