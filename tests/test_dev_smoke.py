"""`offboard dev --demo` as a user runs it: one command, Ctrl-C, run it again, nothing lost.

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
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from api.signature import sign
from devstack.demo_data import demo_users
from devstack.ports import free_port

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
DEV_COMMAND = [sys.executable, "-c", "from cli.main import app; app()", "dev", "--demo"]
TOKEN_LINE = re.compile(r"Admin token:\s*(\S+)")


def processes_mentioning(text: str) -> list[tuple[int, str]]:
    """Live processes whose command line contains `text` (e.g. the Temporal dev server)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append((int(entry.name), cmdline))
    return found


class DevProcess:
    """One `offboard dev --demo` in its own session, with stdout drained by a thread."""

    def __init__(self, cwd: Path, env: dict[str, str], log: Path) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self._stderr = log.open("ab")
        self.proc = subprocess.Popen(
            DEV_COMMAND,
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

    def interrupt(self, timeout: float = 30) -> int:
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"offboard dev did not exit {timeout} s after Ctrl-C") from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)
        self._stderr.close()


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


@pytest.fixture
def dev_env(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    data_dir = tmp_path / ".offboard"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OFFBOARD_")}
    env.update(
        OFFBOARD_DATA_DIR=str(data_dir),
        OFFBOARD_PORT=str(free_port()),
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
        PYTHONUNBUFFERED="1",
        COLUMNS="200",
    )
    yield data_dir, env
    # Whatever happened, leave no Temporal dev server (or anything else) on this data dir.
    for pid, _ in processes_mentioning(str(data_dir)):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def assert_no_children(data_dir: Path) -> None:
    # The Temporal dev server is the child that keeps the data dir on its command line; `dev`
    # waits for it before exiting, so by now it must be gone.
    assert processes_mentioning(str(data_dir)) == []


def test_offboard_dev_demo_survives_ctrl_c_and_restart(
    tmp_path: Path, dev_env: tuple[Path, dict[str, str]]
) -> None:
    data_dir, env = dev_env
    base = f"http://127.0.0.1:{env['OFFBOARD_PORT']}"
    carol = demo_users()[2]
    running: list[DevProcess] = []
    try:
        # -- first start: offboard a demo person --------------------------------------------
        dev = DevProcess(tmp_path, env, tmp_path / "dev-1.log")
        running.append(dev)
        token = dev.admin_token()
        http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)

        wait_until(lambda: http.get("/healthz").status_code == 200, "/healthz")
        ready = wait_until(
            lambda: (r := http.get("/readyz")).status_code == 200 and r.json(), "/readyz"
        )
        assert ready["ready"] is True

        secret = (data_dir / "webhook-secret").read_text().strip()
        body = json.dumps(
            {
                "event_id": f"evt-{uuid.uuid4().hex}",
                "type": "employee.terminated",
                "employee": {
                    "id": "E1002",
                    "email": carol.email,
                    "name": f"{carol.given_name} {carol.family_name}",
                    "manager_email": demo_users()[0].email,
                    "department": "Sales",
                },
                "reason": "resigned",
            }
        ).encode()
        response = http.post(
            "/api/v1/webhooks/hr",
            content=body,
            headers={"X-Offboard-Signature": sign(secret, body), "Content-Type": "application/json"},
        )
        assert response.status_code == 202, response.text
        run_id = response.json()["run_id"]

        def step_statuses() -> dict[str, str] | None:
            run = http.get(f"/api/v1/offboardings/{run_id}")
            assert run.status_code == 200, run.text
            got = {a["app"]: a["status"] for a in run.json()["apps"]}
            return got if got == {"ironclad": "verified", "imanage": "waiting_human"} else None

        wait_until(step_statuses, "Ironclad verified and iManage waiting on a person", 60)
        assert http.get(f"/api/v1/offboardings/{run_id}").json()["status"] == "waiting_human"
        http.close()

        # -- Ctrl-C: everything stops ---------------------------------------------------------
        assert processes_mentioning(str(data_dir)), "the Temporal dev server should be running"
        dev.interrupt()
        assert_no_children(data_dir)

        # -- second start, same data dir: the run is still there ------------------------------
        again = DevProcess(tmp_path, env, tmp_path / "dev-2.log")
        running.append(again)
        assert again.admin_token() == token
        http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        wait_until(lambda: http.get("/healthz").status_code == 200, "/healthz after restart")

        run = http.get(f"/api/v1/offboardings/{run_id}")
        assert run.status_code == 200, run.text
        assert run.json()["status"] == "waiting_human"
        assert {a["app"]: a["status"] for a in run.json()["apps"]} == {
            "ironclad": "verified",
            "imanage": "waiting_human",
        }

        tasks = http.get("/api/v1/tasks", params={"status": "open"})
        assert tasks.status_code == 200, tasks.text
        [task] = [t for t in tasks.json() if t["run_id"] == run_id]
        assert task["app"] == "imanage" and carol.email in task["instructions"]
        done = http.post(
            f"/api/v1/tasks/{task['id']}/complete",
            json={"outcome": "done", "note": "removed from all workspaces"},
        )
        assert done.status_code == 200, done.text

        def completed() -> dict[str, Any] | None:
            body = http.get(f"/api/v1/offboardings/{run_id}").json()
            return body if body["status"] == "completed" else None

        final = wait_until(completed, "the run to complete", 60)
        assert {a["app"]: a["status"] for a in final["apps"]} == {
            "ironclad": "verified",
            "imanage": "done",
        }
        http.close()

        again.interrupt()
        assert_no_children(data_dir)
    finally:
        for dev in running:
            dev.kill()
