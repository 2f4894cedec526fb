"""Deprovisioning throughput: ScimConnector vs a bare httpx script making the same requests.

    python bench/scim_deprovision.py [--users 500] [--concurrency 16] [--max-requests 8]

Starts two local scim2-servers (each in its own process, so server and client do not share a
GIL), seeded with the same demo people and groups. Then, in the same run, per user:
find -> PATCH active=false -> GET the groups listing the user -> PATCH each group to remove
the member -> GET the user -> GET the removed groups still listing the user (read back):

- connector: through one shared ScimConnector (pooled keep-alive client, RateGate limiting
  requests in flight to --max-requests, typed errors, retries, three-valued read-back);
- bare: the same requests by hand on one pooled httpx client with the same connection limit,
  no checks beyond asserting the final state.

Prints users/s and requests/user for both, and their ratio. Numbers only: nothing asserts time.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench.bare_scim import SCIM_JSON, deprovision_by_hand
from config import ScimSettings
from connectors.scim import ScimConnector
from devstack.demo_data import demo_groups, demo_users

TOKEN = "bench-token-0f3b"
TOKEN_ENV = "BENCH_SCIM_TOKEN"


# -- server process ---------------------------------------------------------------------------


def serve(users: int) -> None:
    """Child process: a seeded ScimServer; prints its base URL, runs until stdin closes."""
    from devstack.scim_server import ScimServer

    class Counter:
        def __init__(self) -> None:
            self.n = 0

        def wrap(self, app: Any) -> Any:
            def counted(environ: dict[str, Any], start_response: Any) -> Any:
                self.n += 1
                return app(environ, start_response)

            return counted

    counter = Counter()
    people = demo_users(users)
    with ScimServer(token=TOKEN, middleware=counter.wrap) as server:
        server.seed(people, demo_groups(people))
        print(server.base_url, flush=True)
        for line in sys.stdin:
            if line.strip() == "count":
                print(counter.n, flush=True)
            elif line.strip() == "inactive":
                inactive = 0
                for person in people:
                    user = server.find_user(person.user_name)
                    inactive += user is not None and user.get("active") is False
                print(inactive, flush=True)


class ServerProcess:
    def __init__(self, users: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(users)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.base_url = self.proc.stdout.readline().strip()
        if not self.base_url:
            raise RuntimeError("the SCIM server process did not start")

    def ask(self, what: str) -> int:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(what + "\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# -- the two clients ----------------------------------------------------------------------------


async def with_connector(
    base_url: str, emails: list[str], concurrency: int, max_requests: int
) -> None:
    settings = ScimSettings(
        base_url=base_url, token_env=TOKEN_ENV, max_concurrent_requests=max_requests
    )
    limits = httpx.Limits(max_connections=max_requests, max_keepalive_connections=max_requests)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        connector = ScimConnector("bench", settings, client, TOKEN)

        async def one(email: str) -> None:
            [account] = await connector.find(email)
            await connector.deactivate(account.id)
            removed = (await connector.remove_groups(account.id)).removed
            state = await connector.read_back(account.id, removed)
            assert state.state == "inactive" and not state.groups, (email, state)

        await bounded(emails, concurrency, one)


async def bare(base_url: str, emails: list[str], concurrency: int, max_requests: int) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": SCIM_JSON}
    limits = httpx.Limits(max_connections=max_requests, max_keepalive_connections=max_requests)
    async with httpx.AsyncClient(
        base_url=base_url, timeout=60, headers=headers, limits=limits
    ) as c:

        async def one(email: str) -> None:
            await deprovision_by_hand(c, email)

        await bounded(emails, concurrency, one)


async def bounded(items: list[str], limit: int, fn: Callable[[str], Awaitable[None]]) -> None:
    sem = asyncio.Semaphore(limit)

    async def run(item: str) -> None:
        async with sem:
            await fn(item)

    await asyncio.gather(*(run(i) for i in items))


# -- main -----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=16, help="users in flight")
    parser.add_argument("--max-requests", type=int, default=8, help="connector's request limit")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve)
        return

    emails = [p.email for p in demo_users(args.users)]
    print(f"starting 2 scim2-servers with {args.users} users each ...", flush=True)
    servers = [ServerProcess(args.users) for _ in range(2)]
    runs: list[tuple[str, ServerProcess, Callable[[str], Coroutine[Any, Any, None]]]] = [
        (
            "connector",
            servers[0],
            lambda url: with_connector(url, emails, args.concurrency, args.max_requests),
        ),
        (
            "bare",
            servers[1],
            lambda url: bare(url, emails, args.concurrency, args.max_requests),
        ),
    ]
    try:
        rates: dict[str, float] = {}
        for name, server, work in runs:
            before = server.ask("count")
            started = time.perf_counter()
            asyncio.run(work(server.base_url))
            elapsed = time.perf_counter() - started
            requests = server.ask("count") - before
            inactive = server.ask("inactive")
            rates[name] = args.users / elapsed
            print(
                f"{name:>20}: {args.users} users in {elapsed:6.2f} s = {rates[name]:6.1f} users/s"
                f", {requests / elapsed:6.1f} requests/s"
                f"  ({requests / args.users:.1f} requests/user, {inactive}/{args.users} inactive)",
                flush=True,
            )
        print(f"ratio connector / bare = {rates['connector'] / rates['bare']:.2f}x")
    finally:
        for server in servers:
            server.stop()


if __name__ == "__main__":
    main()
