"""kill -9 of the worker, the API and the Temporal dev server, each mid-burst of terminations
sent by an HR system that redelivers on 5xx, 409 or a dropped connection.

Everything runs as the operator runs it: separate `offboard api` and `offboard worker`
processes, a dedicated Temporal dev server, two SCIM apps. Afterwards: every event has exactly
one run, every run is verified in both apps, each app's `scim.deactivated` events match the
accounts the app itself shows inactive (no duplicate, none missing), every chain verifies, and
no log, database file or export the stack wrote holds a configured secret.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import select

from api.signature import sign
from db import audit
from db.models import OffboardingRun, Step, WebhookEvent
from db.session import open_session
from devstack.demo_data import DEMO_GROUPS, demo_users
from devstack.ports import free_port
from devstack.scim_server import ScimServer
from devstack.temporal_server import TemporalDevServer
from services.tokens import create_token
from tests.conftest import SCIM_TOKEN, TOKEN_ENV, WEBHOOK_SECRET, catalog_yaml, scim_app_yaml
from tests.secret_scan import files_holding

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

PEOPLE = 60
# Plain emails only: the demo set also holds people made to test filter escaping.
PERSONS = [u for u in demo_users(PEOPLE + 20) if re.fullmatch(r"[a-z0-9.]+@example\.com", u.email)]
PERSONS = PERSONS[:PEOPLE]
# The CLI of this checkout (PYTHONPATH is inherited), as `offboard <command>`.
OFFBOARD = [sys.executable, "-c", "from cli.app import app; app()"]
APPS = ("ironclad", "docusign")


class Process:
    """One `offboard <command>` subprocess, its output in a log file, killable with SIGKILL."""

    def __init__(self, command: str, env: dict[str, str], log: Path) -> None:
        self.command, self.env, self.log = command, env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*OFFBOARD, self.command],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def scim_servers() -> Iterator[dict[str, ScimServer]]:
    users = demo_users(PEOPLE + 20)
    with ScimServer(token=SCIM_TOKEN) as one, ScimServer(token=SCIM_TOKEN) as two:
        for server in (one, two):
            server.seed(users, DEMO_GROUPS)
        yield dict(zip(APPS, (one, two), strict=True))


def hr_event(index: int) -> dict[str, Any]:
    person = PERSONS[index]
    return {
        "event_id": f"evt-crash-{index}-{uuid.uuid4().hex[:6]}",
        "type": "employee.terminated",
        "employee": {"id": f"E{2000 + index}", "email": person.email, "name": "Crash Test"},
        "reason": "layoff",
    }


async def deliver(http: httpx.AsyncClient, event: dict[str, Any], tries: Counter[str]) -> str:
    """Send until the API accepts the event (as HR systems do): the run id it answers with."""
    body = httpx.Request("POST", "/", json=event).content
    while True:
        tries["sent"] += 1
        try:
            response = await http.post(
                "/api/v1/webhooks/hr",
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "X-Offboard-Signature": sign(WEBHOOK_SECRET, body),
                },
            )
        except httpx.TransportError:
            tries["dropped"] += 1
        else:
            if response.status_code in (200, 202):
                run_id: str = response.json()["run_id"]
                return run_id
            assert response.status_code >= 500 or response.status_code == 409, response.text
            tries[str(response.status_code)] += 1
        await asyncio.sleep(0.3)


async def wait_listening(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            try:
                if (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError(f"API on {port} never came up")


async def test_kill_9_mid_burst_loses_nothing_and_duplicates_nothing(
    tmp_path: Path, scim_servers: dict[str, ScimServer]
) -> None:
    temporal = TemporalDevServer(tmp_path / "temporal.db").start()
    port = free_port()
    catalog = tmp_path / "apps.yaml"
    apps = [
        scim_app_yaml(
            app, app.title(), base_url=scim_servers[app].base_url, deprovision="deactivate"
        )
        for app in APPS
    ]
    catalog.write_text(catalog_yaml(*apps))
    env = {
        **os.environ,
        "OFFBOARD_DATA_DIR": str(tmp_path),
        "OFFBOARD_CATALOG": str(catalog),
        "OFFBOARD_TEMPORAL_ADDRESS": temporal.address,
        "OFFBOARD_TASK_QUEUE": f"crash-{uuid.uuid4().hex[:8]}",
        "OFFBOARD_WEBHOOK_SECRETS": WEBHOOK_SECRET,
        "OFFBOARD_PORT": str(port),
        "OFFBOARD_BURST_THRESHOLD": "0",
        "OFFBOARD_WEBHOOK_CLAIM_LEASE_SECONDS": "3",
        "OFFBOARD_WORKER_METRICS_PORT": "0",
        "OFFBOARD_WORKER_SDK_METRICS_PORT": "0",
        "OFFBOARD_LOG_FORMAT": "json",
        TOKEN_ENV: SCIM_TOKEN,
    }
    await asyncio.to_thread(subprocess.run, [*OFFBOARD, "migrate"], env=env, check=True)
    db_url = f"sqlite:///{tmp_path / 'offboard.db'}"
    with open_session(db_url) as session:
        admin = create_token(session, "admin", "crash-admin", "admin@example.com")
    api = Process("api", env, tmp_path / "api.log")
    worker = Process("worker", env, tmp_path / "worker.log")
    api.start()
    worker.start()
    faults: list[str] = []
    try:
        await wait_listening(port)
        tries: Counter[str] = Counter()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20) as http:

            async def burst() -> dict[str, str]:
                events = [hr_event(i) for i in range(PEOPLE)]
                sends = []
                for event in events:
                    sends.append(asyncio.create_task(deliver(http, event, tries)))
                    await asyncio.sleep(0.1)
                run_ids = await asyncio.gather(*sends)
                return {e["employee"]["id"]: r for e, r in zip(events, run_ids, strict=True)}

            async def chaos() -> None:
                await asyncio.sleep(1.5)
                worker.kill()
                faults.append("worker")
                await asyncio.sleep(1)
                worker.start()
                await asyncio.sleep(1)
                api.kill()
                faults.append("api")
                await asyncio.sleep(1)
                api.start()
                await asyncio.sleep(1)
                os.kill(temporal.pid or 0, signal.SIGKILL)
                faults.append("temporal")
                await asyncio.sleep(1)
                temporal._proc = None
                temporal.start()

            run_by_person, _ = await asyncio.gather(burst(), chaos())
        await wait_all_completed(db_url, PEOPLE)
        check_outcome(db_url, run_by_person, scim_servers)
        taken_over = claims_taken_over(db_url)
        print(
            f"crash: {PEOPLE} runs x faults {faults} survived; deliveries {dict(tries)}; "
            f"claims taken over from a killed API: {taken_over}"
        )
    finally:
        api.stop()
        worker.stop()
        temporal.stop()
    # Logs, the app DB and its WAL, Temporal's DB: none holds a secret (nor the admin token).
    assert files_holding(tmp_path, [SCIM_TOKEN, WEBHOOK_SECRET, admin]) == {}


async def wait_all_completed(db_url: str, count: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    statuses: Counter[str] = Counter()
    while time.monotonic() < deadline:
        with open_session(db_url) as session:
            statuses = Counter(r.status for r in session.exec(select(OffboardingRun)))
        if statuses.get("completed", 0) >= count:
            return
        await asyncio.sleep(1)
    raise AssertionError(f"runs never all completed: {dict(statuses)}")


def claims_taken_over(db_url: str) -> int:
    """Events whose claim a redelivery took over (the API died while handling them)."""
    with open_session(db_url) as session:
        claims = session.exec(select(WebhookEvent)).all()
        assert {c.status for c in claims} == {"done"}
        return sum(
            1 for c in claims if c.claimed_at and (c.claimed_at - c.received_at).total_seconds() > 1
        )


def check_outcome(
    db_url: str, run_by_person: dict[str, str], scim_servers: dict[str, ScimServer]
) -> None:
    with open_session(db_url) as session:
        runs = session.exec(select(OffboardingRun)).all()
        assert Counter(r.person_id for r in runs) == Counter(list(run_by_person))  # one run each
        assert {r.person_id: r.run_id for r in runs} == run_by_person
        steps = session.exec(select(Step)).all()
        assert {s.status for s in steps} == {"verified"}, Counter(s.status for s in steps)
        assert len(steps) == PEOPLE * len(APPS)
        deactivated: Counter[str] = Counter()
        for person_id in run_by_person:
            events = audit.person_events(session, person_id)
            assert audit.verify(events).valid, person_id
            keys = Counter((e["kind"], e["app"]) for e in events if e["kind"] != "run.joined")
            for kind in ("scim.deactivated", "step.verified", "step.started", "run.completed"):
                twice = {k: n for k, n in keys.items() if k[0] == kind and n > 1}
                assert twice == {}, (person_id, twice)
            deactivated.update(e["app"] for e in events if e["kind"] == "scim.deactivated")
    for app, server in scim_servers.items():
        inactive = sum(1 for user in PERSONS if server.find_user(user.email)["active"] is False)
        assert inactive == PEOPLE, app
        assert deactivated[app] == inactive, (app, deactivated[app], inactive)
