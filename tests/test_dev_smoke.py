"""`offboard dev` as a user runs it: one command, Ctrl-C, run it again, nothing lost.

The whole stack runs as a real subprocess (Temporal dev server, worker, API, demo SCIM app).
A signed HR webhook offboards a demo person; Ctrl-C stops every child; a second start on the
same data dir finds the same run still waiting on its human task, and the same admin token.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from api.signature import sign
from devstack.demo_data import DEMO_GROUPS, demo_users
from devstack.ports import free_port
from devstack.scim_server import ScimServer
from tests.scim_quirks import Quirks

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-c", "from cli.main import app; app()"]
TOKEN_LINE = re.compile(r"Admin token:\s*(\S+)")
CTRL_C_TIMEOUT = 30


def processes_mentioning(text: str) -> list[tuple[int, str]]:
    """Live processes whose command line contains `text` (e.g. the Temporal dev server)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        cmdline = raw.replace(b"\0", b" ").decode(errors="replace")
        if text in cmdline:
            found.append((int(entry.name), cmdline))
    return found


def kill_mentioning(text: str) -> None:
    for pid, _ in processes_mentioning(text):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class DevProcess:
    """One `offboard dev` in its own session, with stdout drained by a thread."""

    def __init__(self, cwd: Path, env: dict[str, str], log: Path, *args: str) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self._stderr = log.open("ab")
        self.proc = subprocess.Popen(
            [*CLI, "dev", *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            stdin=subprocess.DEVNULL,
            # Its own process group, so SIGINT to the group is exactly a terminal's Ctrl-C.
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        threading.Thread(target=self._drain, args=(self.proc.stdout,), daemon=True).start()

    def _drain(self, stream: IO[bytes]) -> None:
        for raw in stream:
            line = raw.decode(errors="replace").rstrip("\n")
            self.output.append(line)
            self.lines.put(line)

    def admin_token(self, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None and self.lines.empty():
                break
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                continue
            match = TOKEN_LINE.search(line)
            if match:
                return match.group(1)
        raise AssertionError(f"no admin token line; exit={self.proc.poll()} stdout={self.output}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)
        self._stderr.close()


@dataclass
class Dev:
    """Starts and stops `offboard dev` on one data dir; remembers what must be cleaned up."""

    cwd: Path
    data_dir: Path
    env: dict[str, str]
    args: tuple[str, ...] = ()
    started: list[DevProcess] = field(default_factory=list)
    hangs: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.env['OFFBOARD_PORT']}"

    def start(self) -> tuple[DevProcess, str]:
        dev = DevProcess(self.cwd, self.env, self.cwd / f"dev-{len(self.started)}.log", *self.args)
        self.started.append(dev)
        return dev, dev.admin_token()

    def ctrl_c(self, dev: DevProcess) -> bool:
        """Ctrl-C; True when it exited in time and left no child behind.

        A process that does not exit is killed (with its Temporal server) and counted in
        `hangs`, so the rest of the scenario still runs on the same data dir.
        """
        assert processes_mentioning(str(self.data_dir)), "the Temporal dev server should run"
        os.killpg(dev.proc.pid, signal.SIGINT)
        try:
            dev.proc.wait(timeout=CTRL_C_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.hangs += 1
            dev.kill()
            kill_mentioning(str(self.data_dir))
            return False
        # `dev` waits for the Temporal dev server (the child that names the data dir on its
        # command line) before exiting, so by now nothing may be left.
        assert processes_mentioning(str(self.data_dir)) == []
        return True

    def cleanup(self) -> None:
        for dev in self.started:
            dev.kill()
        kill_mentioning(str(self.data_dir))


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[Dev]:
    data_dir = tmp_path / ".offboard"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OFFBOARD_")}
    env.update(
        OFFBOARD_DATA_DIR=str(data_dir),
        OFFBOARD_PORT=str(free_port()),
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
        PYTHONUNBUFFERED="1",
        COLUMNS="200",
    )
    stack = Dev(tmp_path, data_dir, env)
    try:
        yield stack
    finally:
        stack.cleanup()


def wait_until(check: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except httpx.TransportError as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


@contextmanager
def client(dev: Dev, token: str) -> Iterator[httpx.Client]:
    """An admin client, once the API answers /healthz."""
    with httpx.Client(
        base_url=dev.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as http:
        wait_until(lambda: http.get("/healthz").status_code == 200, "/healthz")
        yield http


def step_statuses(http: httpx.Client, run_id: str) -> dict[str, str]:
    response = http.get(f"/api/v1/offboardings/{run_id}")
    assert response.status_code == 200, response.text
    return {a["app"]: a["status"] for a in response.json()["apps"]}


def completed_run(http: httpx.Client, run_id: str) -> dict[str, Any] | None:
    body: dict[str, Any] = http.get(f"/api/v1/offboardings/{run_id}").json()
    return body if body["status"] == "completed" else None


def test_offboard_dev_demo_survives_ctrl_c_and_restart(dev: Dev) -> None:
    dev.args = ("--demo",)
    carol = demo_users()[2]  # E1002 in the demo HR table

    # -- first start: a signed HR webhook offboards a demo person ---------------------------
    first, token = dev.start()
    with client(dev, token) as http:
        ready = wait_until(
            lambda: (r := http.get("/readyz")).status_code == 200 and r.json(), "/readyz"
        )
        assert ready["ready"] is True

        secret = (dev.data_dir / "webhook-secret").read_text().strip()
        body = json.dumps(
            {
                "event_id": f"evt-{uuid.uuid4().hex}",
                "type": "employee.terminated",
                "employee": {
                    "id": "E1002",
                    "email": carol.email,
                    "name": f"{carol.given_name} {carol.family_name}",
                    "manager_email": demo_users()[0].email,
                    "department": "Legal",
                },
                "reason": "resigned",
            }
        ).encode()
        response = http.post(
            "/api/v1/webhooks/hr",
            content=body,
            headers={
                "X-Offboard-Signature": sign(secret, body),
                "Content-Type": "application/json",
            },
        )
        assert response.status_code == 202, response.text
        run_id = response.json()["run_id"]

        expected = {"ironclad": "verified", "imanage": "waiting_human"}
        wait_until(
            lambda: step_statuses(http, run_id) == expected,
            "Ironclad (demo) verified and iManage waiting on a person",
            60,
        )
        assert http.get(f"/api/v1/offboardings/{run_id}").json()["status"] == "waiting_human"

    # -- Ctrl-C stops everything -------------------------------------------------------------
    first_stopped = dev.ctrl_c(first)

    # -- second start on the same data dir: same token, the run is still there ----------------
    second, again = dev.start()
    assert again == token
    with client(dev, token) as http:
        run = http.get(f"/api/v1/offboardings/{run_id}")
        assert run.status_code == 200, run.text
        assert run.json()["status"] == "waiting_human"
        assert step_statuses(http, run_id) == {"ironclad": "verified", "imanage": "waiting_human"}

        tasks = http.get("/api/v1/tasks", params={"status": "open"})
        assert tasks.status_code == 200, tasks.text
        [task] = [t for t in tasks.json() if t["run_id"] == run_id]
        assert task["app"] == "imanage" and carol.email in task["instructions"]
        done = http.post(
            f"/api/v1/tasks/{task['id']}/complete",
            json={"outcome": "done", "note": "removed from all workspaces"},
        )
        assert done.status_code == 200, done.text

        final = wait_until(lambda: completed_run(http, run_id), "the run to complete", 60)
        assert {a["app"]: a["status"] for a in final["apps"]} == {
            "ironclad": "verified",
            "imanage": "done",
        }
        assert final["completed_at"] is not None

    second_stopped = dev.ctrl_c(second)
    assert first_stopped and second_stopped, "offboard dev did not exit after Ctrl-C"


def test_ctrl_c_lets_an_in_flight_scim_call_finish(dev: Dev, tmp_path: Path) -> None:
    """Ctrl-C while an app is answering a deactivation: the worker's graceful shutdown lets
    the call finish, so the app is told once, and the next start just carries on."""
    quirks = Quirks()
    users = demo_users()
    dave = users[3]
    with ScimServer(token="smoke-scim-token", middleware=quirks.wrap) as scim:
        scim.seed(users, DEMO_GROUPS)
        catalog = tmp_path / "apps.yaml"
        catalog.write_text(
            "apps:\n"
            "  - id: ironclad\n"
            "    name: Ironclad\n"
            "    connector: scim\n"
            "    scim:\n"
            f"      base_url: {scim.base_url}\n"
            "      token_env: SMOKE_SCIM_TOKEN\n"
            "      gone_after_deactivate_ok: true\n"
        )
        dev.env.update(OFFBOARD_CATALOG=str(catalog), SMOKE_SCIM_TOKEN="smoke-scim-token")

        first, token = dev.start()
        with client(dev, token) as http:
            # The app holds the deactivation for a few seconds, well inside the grace period.
            quirks.delay_next(1, 3, method="PATCH", path_contains="/Users/")
            response = http.post(
                "/api/v1/offboardings", json={"email": dave.email, "reason": "resigned"}
            )
            assert response.status_code == 202, response.text
            run_id = response.json()["run_id"]
            wait_until(lambda: quirks.count("PATCH", "/Users/") >= 1, "the deactivation PATCH")

        first_stopped = dev.ctrl_c(first)

        second, _ = dev.start()
        with client(dev, token) as http:
            final = wait_until(lambda: completed_run(http, run_id), "the run to complete", 60)
            assert step_statuses(http, run_id) == {"ironclad": "verified"}
            assert final["completed_at"] is not None
            assert scim.find_user(dave.email)["active"] is False  # type: ignore[index]
            # The in-flight call was allowed to finish, not abandoned and sent again.
            assert quirks.count("PATCH", "/Users/") == 1
            trail = http.get(f"/api/v1/people/{final['person']['id']}/audit").json()
            assert trail["chain_valid"] is True
            assert [e["kind"] for e in trail["events"]].count("scim.deactivated") == 1

        second_stopped = dev.ctrl_c(second)
        quirks.reset()
    assert first_stopped and second_stopped, "offboard dev did not exit after Ctrl-C"
