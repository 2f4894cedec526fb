"""The same-run baseline: a minimal hand-written Temporal workflow, one activity per app making
the requests our connector makes (bench/bare_scim.py: find, deactivate, remove from groups,
read both back), with one pooled httpx client per app.

``PYTHONPATH=. python bench/baseline.py ADDRESS TASK_QUEUE URL [URL ...]`` runs its worker
until killed.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

with workflow.unsafe.imports_passed_through():
    import httpx

    from bench.bare_scim import SCIM_JSON, deprovision_by_hand

TOKEN = "bench-scim-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Accept": SCIM_JSON}
_clients: dict[str, httpx.AsyncClient] = {}


@activity.defn
async def deactivate(url: str, email: str) -> str:
    client = _clients.get(url)
    if client is None:  # not setdefault: building a client per call (TLS context) is costly
        client = _clients[url] = httpx.AsyncClient(base_url=url, timeout=30, headers=HEADERS)
    return await deprovision_by_hand(client, email)


@workflow.defn
class BaselineWorkflow:
    @workflow.run
    async def run(self, email: str, urls: list[str]) -> None:
        await asyncio.gather(
            *(
                workflow.execute_activity(
                    deactivate, args=[url, email], start_to_close_timeout=timedelta(seconds=60)
                )
                for url in urls
            )
        )


async def main() -> None:
    address, queue = sys.argv[1], sys.argv[2]
    client = await Client.connect(address)
    worker = Worker(
        client,
        task_queue=queue,
        workflows=[BaselineWorkflow],
        activities=[deactivate],
        max_concurrent_activities=200,
    )
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, lambda: loop.create_task(worker.shutdown()))
    print("ready", flush=True)
    await worker.run()


if __name__ == "__main__":
    asyncio.run(main())
