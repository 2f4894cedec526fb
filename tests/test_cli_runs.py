"""The admin's shell: `offboard start`, `status`, `tasks list|complete` drive a real run."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from devstack.temporal_server import TemporalDevServer
from tests.conftest import CATALOG, Stack, steps

pytestmark = pytest.mark.slow


async def offboard(stack: Stack, temporal: TemporalDevServer, *args: str) -> tuple[int, str]:
    catalog = stack.settings.data_dir / "apps.yaml"
    assert stack.scim is not None
    await asyncio.to_thread(catalog.write_text, CATALOG.format(base_url=stack.scim.server.base_url))
    env = {
        **os.environ,
        "OFFBOARD_DATABASE_URL": stack.db_url,
        "OFFBOARD_TEMPORAL_ADDRESS": temporal.address,
        "OFFBOARD_TASK_QUEUE": stack.settings.task_queue,
        "OFFBOARD_CATALOG": str(catalog),
        "OFFBOARD_DATA_DIR": str(stack.settings.data_dir),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from cli.main import app; app()", *args,
        env=env, cwd=Path(__file__).parent.parent,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def test_start_status_and_complete_from_the_shell(
    stack: Stack, temporal_server: TemporalDevServer
) -> None:
    assert stack.scim is not None
    dave = stack.scim.users[3]

    code, out = await offboard(stack, temporal_server, "start", dave.email, "--dry-run")
    assert code == 0, out
    plan = {a["app"]: a for a in json.loads(out)["apps"]}
    assert plan["ironclad"]["action"] == "deprovision" and plan["ironclad"]["account"]
    assert stack.scim.user_by_email(dave.email)["active"] is True  # a dry run changes nothing

    code, out = await offboard(stack, temporal_server, "start", dave.email, "--reason", "left")
    assert code == 0, out
    run_id = json.loads(out)["run_id"]
    await stack.wait_run(run_id, lambda r: steps(r).get("imanage") == "waiting_human")
    assert stack.scim.user_by_email(dave.email)["active"] is False

    code, out = await offboard(stack, temporal_server, "tasks", "list")
    [task] = await stack.tasks(status="open")
    assert code == 0 and task["id"] in out

    code, out = await offboard(
        stack, temporal_server, "tasks", "complete", task["id"], "--note", "disabled by hand"
    )
    assert code == 0, out
    await stack.wait_run(run_id, lambda r: r["status"] == "completed")
    code, out = await offboard(stack, temporal_server, "status", run_id)
    assert code == 0 and "completed" in out and "verified" in out

    code, out = await offboard(stack, temporal_server, "status", "no-such-run")
    assert code == 1 and "no offboarding run" in out
