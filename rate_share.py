"""Split each rate-limited app's rate among the worker processes that serve it.

Each worker paces its requests to an app through its own ``RateGate``. With N workers, each
pacing at the app's full rate, the app would see up to N times its limit and answer 429, and
a 429 pauses only the worker that received it. So every worker counts the processes polling
the app's task queue (``<task queue>.<app id>``, see worker.py) — Temporal lists each poller
with its identity and when it last polled — and paces at ``rate / N``. A worker that stops
polling drops out of the count after ``STALE_AFTER`` seconds; until then the others run a
little under the app's rate, never over it. It counts itself even before its first poll, so
a worker joining a busy queue starts at its share rather than at the full rate.
"""

from __future__ import annotations

import asyncio
import time

import structlog
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.service import RPCError

from connectors.registry import ConnectorRegistry

log = structlog.get_logger()

# An idle worker's long poll lasts up to about a minute, so its last poll may be that old.
STALE_AFTER = 90.0
EVERY = 5.0


async def pollers(client: Client, queue: str) -> set[str]:
    """The identities that polled ``queue`` for activities within the last STALE_AFTER s."""
    described = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
        )
    )
    since = time.time() - STALE_AFTER
    return {p.identity for p in described.pollers if p.last_access_time.ToSeconds() >= since}


async def share_once(client: Client, registry: ConnectorRegistry, queues: dict[str, str]) -> None:
    """Set each app's share (``queues``: app id → its task queue) from who polls it now."""
    for app_id, queue in queues.items():
        try:
            workers = len(await pollers(client, queue) | {client.identity})
        except RPCError as exc:  # keep the last share: a missed count must not stop the worker
            log.warning("rate_share.describe_failed", app=app_id, error=str(exc))
            continue
        if registry.share_rate(app_id, workers):
            log.info("rate_share.changed", app=app_id, workers=workers)


async def share_rates(client: Client, registry: ConnectorRegistry, queues: dict[str, str]) -> None:
    """Keep every app's share current, every EVERY seconds, until cancelled."""
    while True:
        await share_once(client, registry, queues)
        await asyncio.sleep(EVERY)
