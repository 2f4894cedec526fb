"""The same-run baseline: a minimal hand-written Temporal workflow, one activity per app making
the requests our connector makes (bench/bare_scim.py: find, deactivate, remove from groups,
read both back), with one pooled httpx client per app.

Naive on purpose, as a hand-written integration reading the app's docs would be: a request
answered 429 is sent again once its own Retry-After has passed, while every other request to
that app goes on (no pause of the app, no pacing); any other refusal fails the activity, and
Temporal's default retry policy runs the whole deprovisioning again (every step is safe to
repeat). Leaving 429s to that retry too did not finish 5 people on a 180/min app in 14 minutes:
the attempts, started together and backing off alike (1 s doubling to 100 s), kept draining
the token bucket for each other, and one attempt needs 6 requests within about a second.

``PYTHONPATH=. python bench/baseline.py ADDRESS TASK_QUEUE URL [URL ...]`` runs its worker
until killed (bench/procs.py ``spawn_baseline``); ``deprovision_all`` starts one workflow per
person on it at once and waits for them all.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
import uuid
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


class WaitOn429(httpx.AsyncHTTPTransport):
    """Sends a request again after its Retry-After (delay-seconds, RFC 9110 §10.2.3; 1 when
    absent), for as long as the app answers 429 to it."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        while True:
            response = await super().handle_async_request(request)
            if response.status_code != 429:
                return response
            await response.aread()  # read to the end: the connection stays reusable
            await response.aclose()
            await asyncio.sleep(float(response.headers.get("Retry-After", 1)))


@activity.defn
async def deactivate(url: str, email: str) -> str:
    client = _clients.get(url)
    if client is None:  # not setdefault: building a client per call (TLS context) is costly
        client = _clients[url] = httpx.AsyncClient(
            base_url=url, timeout=30, headers=HEADERS, transport=WaitOn429()
        )
    return await deprovision_by_hand(client, email)


@workflow.defn
class BaselineWorkflow:
    @workflow.run
    async def run(self, email: str, urls: list[str]) -> None:
        await asyncio.gather(
            *(
                workflow.execute_activity(
                    deactivate,
                    args=[url, email],
                    # A layoff's requests to a rate-limited app take turns: one person's may
                    # wait about as long as the whole layoff, and a timeout would start them over.
                    start_to_close_timeout=timedelta(hours=2),
                )
                for url in urls
            )
        )


async def deprovision_all(
    address: str, queue: str, urls: list[str], emails: list[str]
) -> tuple[float, float]:
    """Start a BaselineWorkflow per email on ``queue``, all at once, and wait for every result;
    returns (started, finished) as Unix times. Raises what a failed workflow raises."""
    client = await Client.connect(address)
    started = time.time()
    handles = await asyncio.gather(
        *(
            client.start_workflow(
                BaselineWorkflow.run,
                args=[email, urls],
                id=f"baseline-{uuid.uuid4().hex}",
                task_queue=queue,
            )
            for email in emails
        )
    )
    await asyncio.gather(*(h.result() for h in handles))
    return started, time.time()


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
