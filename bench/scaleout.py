"""The production shape on one machine, for benches: an app DB, the API and N worker processes.

``Deployment.start(workdir, temporal_address, db, workers)`` runs ``offboard migrate``, creates
an admin token (``offboard token create``), and starts ``offboard api`` and ``workers`` times
``offboard worker``, all from the same OFFBOARD_* settings (bench/procs.py ``offboard_env``)
with ``OFFBOARD_DATABASE_URL`` pointing at a throwaway PostgreSQL (devstack/postgres_server.py)
or a SQLite file. It returns once every worker polls every task queue and has had the time to
see the others (rate_share.py). ``worker_shares`` reads
which worker completed each activity and workflow task from the histories (the identity
Temporal records is ``<pid>@<host>``).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import rate_share
from bench.procs import OFFBOARD, Proc, offboard_env, spawn
from devstack.postgres_server import PostgresServer


@dataclass
class Deployment:
    api: str
    token: str
    workers: dict[str, str]  # pid → worker name (Temporal's identity is <pid>@<host>)
    procs: list[Proc] = field(default_factory=list)
    postgres: PostgresServer | None = None

    @classmethod
    def start(
        cls,
        workdir: Path,
        temporal_address: str,
        port: int,
        queues: list[str],
        db: Literal["postgres", "sqlite"] = "postgres",
        workers: int = 2,
    ) -> Deployment:
        """Start it all; on any failure stop what started and raise."""
        env = offboard_env(workdir, temporal_address, port)
        # Each worker would serve /metrics on 0.0.0.0:9464/9465: off, the bench reads histories.
        env |= {"OFFBOARD_WORKER_METRICS_PORT": "0", "OFFBOARD_WORKER_SDK_METRICS_PORT": "0"}
        deployment = cls(f"http://127.0.0.1:{port}", "", {})
        try:
            if db == "postgres":
                deployment.postgres = PostgresServer().start_on_free_port()
                env["OFFBOARD_DATABASE_URL"] = deployment.postgres.new_database()
            else:
                env["OFFBOARD_DATABASE_URL"] = f"sqlite:///{workdir / 'offboard.db'}"
            run(["migrate"], workdir, env)
            admin = ["token", "create", "--role", "admin", "--name", "bench"]
            deployment.token = run(admin, workdir, env).strip()
            api = spawn([*OFFBOARD, "api"], workdir, "api", env, ready="startup complete")
            deployment.procs.append(api)
            for i in range(workers):
                proc = spawn([*OFFBOARD, "worker"], workdir, f"worker{i + 1}", env, ready="")
                deployment.procs.append(proc)
                deployment.workers[str(proc.popen.pid)] = proc.log.stem
            asyncio.run(deployment._until_polled(temporal_address, queues, workers))
        except BaseException:
            deployment.stop()
            raise
        return deployment

    async def _until_polled(self, address: str, queues: list[str], workers: int) -> None:
        """Wait until ``workers`` processes poll every queue (each worker may start late)."""
        from temporalio.api.enums.v1 import TaskQueueType
        from temporalio.api.taskqueue.v1 import TaskQueue
        from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
        from temporalio.client import Client

        client = await Client.connect(address)
        for _ in range(1200):
            for p in self.procs:
                if p.popen.poll() is not None:
                    raise RuntimeError(f"{p.log.stem} exited: {p.log.read_text()[-2000:]}")
            polled = []  # the identities polling each queue
            for queue in queues:
                described = await client.workflow_service.describe_task_queue(
                    DescribeTaskQueueRequest(
                        namespace="default",
                        task_queue=TaskQueue(name=queue),
                        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
                    )
                )
                polled.append({p.identity for p in described.pollers})
            if all(len(identities) >= workers for identities in polled):
                # A worker counts the others at its next look (rate_share.py): the layoff
                # measures the steady state, not the first seconds after a worker joins.
                await asyncio.sleep(rate_share.EVERY + 1)
                return
            await asyncio.sleep(0.1)
        raise RuntimeError("the workers did not poll every task queue within 2 minutes")

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        if self.postgres is not None:
            self.postgres.close()


def run(args: list[str], workdir: Path, env: dict[str, str]) -> str:
    """One ``offboard`` command to completion; its stdout."""
    done = subprocess.run(
        [*OFFBOARD, *args],
        cwd=workdir,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"offboard {' '.join(args)} failed: {done.stdout}{done.stderr}")
    return done.stdout


@dataclass
class Shares:
    """From the histories: who did the work, and how many activities were retried."""

    activities: Counter[tuple[str, str]] = field(default_factory=Counter)  # (identity, queue)
    workflow_tasks: Counter[str] = field(default_factory=Counter)
    retried: int = 0


async def worker_shares(address: str) -> Shares:
    """Tally every workflow's history on the bench's own Temporal server."""
    from temporalio.api.enums.v1 import EventType
    from temporalio.client import Client

    client = await Client.connect(address)
    shares = Shares()
    async for execution in client.list_workflows():
        handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
        queues: dict[int, str] = {}
        async for event in handle.fetch_history_events():
            kind = event.event_type
            if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                scheduled = event.activity_task_scheduled_event_attributes
                queues[event.event_id] = scheduled.task_queue.name
            elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                shares.retried += event.activity_task_started_event_attributes.attempt > 1
            elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                done = event.activity_task_completed_event_attributes
                shares.activities[done.identity, queues.get(done.scheduled_event_id, "?")] += 1
            elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                shares.workflow_tasks[event.workflow_task_completed_event_attributes.identity] += 1
    return shares
