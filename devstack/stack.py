"""``offboard dev``: Temporal dev server, migrations, worker and API in one process tree."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn
from pydantic import SecretStr

from api.app import create_app
from config import Catalog, Settings, load_catalog, parse_catalog
from connectors.registry import ConnectorRegistry
from db.migrate import upgrade
from db.models import Person
from db.session import open_session
from devstack.temporal_server import TemporalDevServer
from metrics import count_scim_response
from services.tokens import create_token
from temporal_client import connect_with_retry
from worker import build_worker

DEMO_TOKEN_ENV = "OFFBOARD_DEMO_SCIM_TOKEN"
DEMO_CATALOG = """
apps:
  - id: ironclad
    name: Ironclad (demo)
    owners: [legal-ops@example.com]
    connector: scim
    scim:
      base_url: {base_url}
      token_env: {token_env}
      match: email
      deprovision: deactivate
      patch_style: path
      gone_after_deactivate_ok: true
      remove_groups: true
  - id: imanage
    name: iManage
    owners: [it-lead@example.com]
    connector: manual
    manual:
      assignees: [it-helpdesk@example.com]
      escalate_to: [it-lead@example.com]
      sla_hours: 24
      instructions: >-
        Disable {{{{ email }}}} in iManage Control Center and remove from all workspaces.
protected_accounts: [breakglass@example.com]
service_accounts: ["svc-*", "*-bot@*"]
"""


def persistent_secret(path: Path, make: Callable[[], str]) -> str:
    """A dev-only secret kept in the data dir, made once, so restarts keep the same one."""
    if path.exists():
        return path.read_text().strip()
    value = make()
    path.write_text(value)
    path.chmod(0o600)
    return value


def ensure_admin_token(settings: Settings) -> str:
    def make() -> str:
        with open_session(settings.effective_database_url) as session:
            return create_token(session, "admin", "dev-admin", "admin@example.com")

    return persistent_secret(settings.data_dir / "admin-token", make)


class QuietSignalsServer(uvicorn.Server):
    """uvicorn that leaves signals to us: it would re-raise SIGINT on exit, and asyncio.run
    would then cancel the worker's graceful shutdown halfway."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def request_exit(self) -> None:
        self.should_exit = True


@dataclass
class DevStack:
    settings: Settings
    demo: bool = False
    temporal: TemporalDevServer | None = None
    scim: object | None = None
    catalog: Catalog | None = None
    admin_token: str = ""
    urls: dict[str, str] = field(default_factory=dict)

    def prepare(self) -> None:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        upgrade(self.settings.effective_database_url)
        if not self.settings.webhook_secrets:
            secret = persistent_secret(
                self.settings.data_dir / "webhook-secret", lambda: secrets.token_hex(16)
            )
            os.environ["OFFBOARD_WEBHOOK_SECRETS"] = secret
            self.settings = self.settings.model_copy(
                update={"webhook_secrets": [SecretStr(secret)]}
            )
        if self.demo:
            self.catalog = self._start_demo()
        else:
            self.catalog = load_catalog(self.settings.catalog)
        address = self.settings.temporal_address
        if address is None:
            self.temporal = TemporalDevServer(self.settings.data_dir / "temporal.db", ui=True)
            self.temporal.start()
            address = self.temporal.address
            self.settings = self.settings.model_copy(update={"temporal_address": address})
        (self.settings.data_dir / "temporal-address").write_text(address)
        self.admin_token = ensure_admin_token(self.settings)
        ui = self.temporal.ui_url if self.temporal else None
        self.urls = {
            "api": f"http://{self.settings.host}:{self.settings.port}",
            "temporal_ui": ui or "(external Temporal: use its own UI)",
            "temporal": address,
        }

    def _start_demo(self) -> Catalog:
        from devstack.demo_data import DEMO_GROUPS, demo_users
        from devstack.scim_server import ScimServer

        token = persistent_secret(
            self.settings.data_dir / "demo-scim-token", lambda: secrets.token_hex(16)
        )
        os.environ[DEMO_TOKEN_ENV] = token
        server = ScimServer(token=token).start()
        self.scim = server
        users = demo_users()
        server.seed(users, DEMO_GROUPS)
        with open_session(self.settings.effective_database_url) as session:
            for i, user in enumerate(users):
                person_id = f"E{1000 + i}"
                if session.get(Person, person_id) is None:
                    session.add(
                        Person(
                            id=person_id,
                            email=user.email,
                            name=f"{user.given_name} {user.family_name}",
                            manager_email=users[0].email if i else None,
                            department="Legal" if i % 2 else "Sales",
                        )
                    )
            session.commit()
        text = DEMO_CATALOG.format(base_url=server.base_url, token_env=DEMO_TOKEN_ENV)
        return parse_catalog(text, "demo catalog")

    async def serve(self) -> None:
        assert self.catalog is not None
        settings = self.settings
        client = await connect_with_retry(settings)
        registry = ConnectorRegistry(self.catalog, observe=count_scim_response)
        worker = build_worker(client, settings, self.catalog, registry)
        app = create_app(settings, self.catalog, client)
        server = QuietSignalsServer(
            uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning")
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, server.request_exit)
        worker_task = asyncio.create_task(worker.run())
        try:
            await server.serve()
        finally:
            # Drain in-flight activities before the process (and the dev server) goes away.
            await worker.shutdown()
            await asyncio.gather(worker_task, return_exceptions=True)
            await registry.aclose()

    def stop(self) -> None:
        if self.temporal is not None:
            self.temporal.stop()
        stop = getattr(self.scim, "stop", None)
        if stop is not None:
            stop()
