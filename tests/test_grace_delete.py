"""deactivate_then_delete: the account is deactivated at once and deleted after the grace
period, durably (Temporal's time-skipping server: days pass in a moment); the run shows when
the delete is due; a rehire during the grace period calls the delete off."""

# Fixtures are imported from tests.test_scim_support; pytest passes them by name.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from config import Settings, parse_catalog
from connectors.registry import ConnectorRegistry
from db import audit
from db.migrate import upgrade
from db.models import Person
from db.session import Db, get_engine
from services.hr_events import Employee, HrEvent, handle_hr_event
from tests.conftest import SCIM_TOKEN, TOKEN_ENV, scim_app_yaml
from tests.test_scim_support import ScimEnv, scim_env  # noqa: F401
from worker import build_worker
from workflows.offboarding import OffboardingWorkflow
from workflows.types import OffboardingInput, RunState, StepState

pytestmark = pytest.mark.slow

LEAVER = 6
PERSON = "E3006"
GRACE = "deactivate_then_delete"


@dataclass
class Grace:
    env: WorkflowEnvironment
    scim: ScimEnv
    settings: Settings

    async def start(self) -> WorkflowHandle[OffboardingWorkflow, RunState]:
        person = self.scim.users[LEAVER]
        with Session(get_engine(self.settings.effective_database_url)) as session:
            session.add(Person(id=PERSON, email=person.email, status="terminated"))
            session.commit()
        return await self.env.client.start_workflow(
            OffboardingWorkflow.run,
            OffboardingInput(person_id=PERSON, email=person.email),
            id=f"offboard-{PERSON}",
            task_queue=self.settings.task_queue,
        )

    async def step_when(
        self, handle: WorkflowHandle[OffboardingWorkflow, RunState], prefix: str
    ) -> StepState:
        """Poll the run's query (time does not skip meanwhile) until its step's detail
        starts with ``prefix``."""
        step = StepState(app="?", connector="?")
        for _ in range(600):
            steps = (await handle.query(OffboardingWorkflow.state)).steps
            if steps and steps[0].detail.startswith(prefix):
                return steps[0]
            step = steps[0] if steps else step
            await asyncio.sleep(0.1)
        raise AssertionError(f"step never showed {prefix!r}: {step}")

    def kinds(self) -> list[str]:
        with Session(get_engine(self.settings.effective_database_url)) as session:
            return [e["kind"] for e in audit.person_events(session, PERSON)]


@pytest.fixture
async def grace(
    time_skipping_env: WorkflowEnvironment, scim_env: ScimEnv, tmp_path: Path
) -> AsyncIterator[Grace]:
    settings = Settings(data_dir=tmp_path, task_queue=f"tq-{uuid.uuid4().hex}")
    upgrade(settings.effective_database_url)
    text = "apps:\n" + scim_app_yaml(
        "acme", "Acme", deprovision=GRACE, delete_after_days=30, gone_after_deactivate_ok=True
    )
    catalog = parse_catalog(text.format(base_url=scim_env.base_url))
    registry = ConnectorRegistry(catalog, env={TOKEN_ENV: SCIM_TOKEN})
    try:
        async with build_worker(time_skipping_env.client, settings, catalog, registry):
            yield Grace(time_skipping_env, scim_env, settings)
    finally:
        await registry.aclose()


async def test_the_account_is_deleted_after_the_grace_period(grace: Grace) -> None:
    started = await grace.env.get_current_time()
    handle = await grace.start()
    step = await grace.step_when(handle, "deactivated; delete due ")
    due = step.detail.removeprefix("deactivated; delete due ")
    assert due.startswith((started + timedelta(days=30)).date().isoformat())
    assert grace.scim.user(LEAVER)["active"] is False  # cut at once, not yet deleted

    state = await handle.result()  # the 30 days pass here
    assert state.status == "completed"
    assert state.steps[0].detail.startswith("deleted, read back gone")
    assert grace.scim.server.get_user(grace.scim.id_of(LEAVER)) is None
    assert await grace.env.get_current_time() - started >= timedelta(days=30)
    kinds = grace.kinds()
    assert kinds.index("step.delete_scheduled") < kinds.index("scim.deleted")


async def test_a_rehire_in_the_grace_period_cancels_the_delete(grace: Grace) -> None:
    handle = await grace.start()
    await grace.step_when(handle, "deactivated; delete due ")
    rehired = HrEvent(
        event_id=f"evt-{uuid.uuid4().hex}",
        type="employee.rehired",
        employee=Employee(id=PERSON, email=grace.scim.users[LEAVER].email),
    )
    db = Db(grace.settings.effective_database_url)
    outcome = await handle_hr_event(grace.env.client, db, grace.settings, rehired)
    assert outcome.run_id == handle.result_run_id

    state = await handle.result()
    [step] = state.steps
    assert step.status == "verified"
    assert step.detail == "deactivated; delete cancelled: rehired"
    await grace.env.sleep(timedelta(days=31))
    account = grace.scim.server.get_user(grace.scim.id_of(LEAVER))
    assert account is not None  # never deleted: the restore plan can bring it back
    assert "step.delete_cancelled" in grace.kinds() and "scim.deleted" not in grace.kinds()
    with Session(get_engine(grace.settings.effective_database_url)) as session:
        person = session.get(Person, PERSON)
        assert person is not None and person.status == "active" and person.terminated_at is None
    target = os.environ.get("OFFBOARD_SAVE_REHIRE_HISTORY")
    if target:
        history = await handle.fetch_history()
        await asyncio.to_thread(Path(target).write_text, history.to_json())
