"""Access-review collection at scale: 10 SCIM apps x 10,000 accounts on local scim2-servers.

    python bench/campaign_collect.py [--apps 10] [--small 1000] [--large 10000]

Each round seeds every app with N demo users (20 team groups each, 5% of the people terminated
in HR, every 50th account an orphan) in its own process, starts a fresh worker process, starts
a campaign over every app and times the collection (start -> every app collected, status
``reviewing``), sampling the worker's RSS. Then it closes the review (keep) and measures the
campaign workflow's history in bytes. Same-run baseline: a bare httpx pager reading every page
of every app concurrently, no Temporal, no DB, no classification (the floor the SCIM servers
set). Prints the three figures the issue asks for: collection time at N=10,000, peak worker
RSS growth from 1,000 to 10,000 accounts per app, and the largest workflow history.
Targets: <= 60 s, < 200 MB, < 2 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.proc_stats import rss_kib  # noqa: E402

TOKEN = "bench-campaign-token"
TOKEN_ENV = "BENCH_CAMPAIGN_SCIM_TOKEN"
PAGE_SIZE = 1000
TERMINATED_EVERY = 20  # 5% of the people are terminated in HR
ORPHAN_EVERY = 50  # and every 50th account has no HR record


# -- child processes ---------------------------------------------------------------------------


def serve(port: int, count: int, prerender: bool = False) -> None:
    """One seeded scim2-server; prints "ready" once it serves.

    ``prerender``: answer the listing pages (the exact GETs the pager sends) from responses
    rendered before the clock starts, so the bench measures the collector rather than
    scim2-server's serializer (~1 ms of CPU per user per listing).
    """
    import httpx

    from devstack.demo_data import demo_users
    from devstack.scim_server import ScimServer, WSGIApp

    pages: dict[tuple[str, str], tuple[str, list[tuple[str, str]], bytes]] = {}

    def cached(app: WSGIApp) -> WSGIApp:
        def handle(environ: dict[str, Any], start_response: Any) -> Any:
            key = (environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", ""))
            if environ.get("REQUEST_METHOD") == "GET" and key in pages:
                status, headers, body = pages[key]
                start_response(status, headers)
                return [body]
            return app(environ, start_response)

        return handle

    users = demo_users(count)
    groups = {f"Team {k}": [u.user_name for u in users[k::20]] for k in range(20)}
    server = ScimServer(token=TOKEN, port=port, middleware=cached if prerender else None).start()
    server.seed(users, groups)
    if prerender:
        direct = httpx.Client(
            transport=httpx.WSGITransport(app=server.scim_app),
            base_url=server.base_url,
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        for path, total in (("/Users", count), ("/Groups", len(groups))):
            for start in range(1, total + 1, PAGE_SIZE):
                query = f"startIndex={start}&count={PAGE_SIZE}"
                response = direct.get(f"{path}?{query}")
                headers = [(k, v) for k, v in response.headers.items() if k != "content-length"]
                headers.append(("Content-Length", str(len(response.content))))
                status = f"{response.status_code} {response.reason_phrase}"
                pages[(f"/v2{path}", query)] = (status, headers, response.content)
    print("ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    server.stop()


def work() -> None:
    """The offboard worker, configured from OFFBOARD_* env vars (as `offboard worker`)."""
    from config import get_settings, load_catalog
    from connectors.registry import ConnectorRegistry
    from temporal_client import connect
    from worker import build_worker

    async def run() -> None:
        settings = get_settings()
        catalog = load_catalog(settings.catalog)
        client = await connect(settings)
        registry = ConnectorRegistry(catalog)
        worker = build_worker(client, settings, catalog, registry)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, lambda: loop.create_task(worker.shutdown()))
        print("ready", flush=True)
        try:
            await worker.run()
        finally:
            await registry.aclose()

    asyncio.run(run())


# -- the bench ---------------------------------------------------------------------------------


def spawn(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, __file__, *args],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )
    return proc


def wait_ready(procs: list[subprocess.Popen[str]]) -> None:
    for proc in procs:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"child {proc.args} did not start: {line!r}")
        # Keep reading (and dropping) what the child logs, or a full pipe would block it.
        threading.Thread(target=proc.stdout.read, daemon=True).start()


def stop(procs: list[subprocess.Popen[str]]) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@dataclass
class Round:
    accounts_per_app: int
    baseline_s: float
    collect_s: float
    items: int
    worker_idle_mib: float
    worker_peak_mib: float
    history_bytes: int
    history_events: int


def catalog_yaml(ports: list[int]) -> str:
    apps = "\n".join(
        f"""  - id: app{n:02d}
    name: App {n:02d}
    owners: [owner{n:02d}@example.com]
    connector: scim
    scim:
      base_url: http://127.0.0.1:{port}/v2
      token_env: {TOKEN_ENV}
      match: email
      page_size: {PAGE_SIZE}"""
        for n, port in enumerate(ports)
    )
    return f"apps:\n{apps}\nservice_accounts: ['svc-*']\n"


def seed_people(db_url: str, count: int) -> None:
    from sqlmodel import Session

    from db.models import Person
    from db.session import get_engine
    from devstack.demo_data import demo_users

    users = demo_users(count)
    with Session(get_engine(db_url)) as session:
        for i, user in enumerate(users):
            if i % ORPHAN_EVERY == ORPHAN_EVERY - 1:
                continue
            manager = users[(i // 10) * 10].email if i % 10 else None
            terminated = i % TERMINATED_EVERY == 3
            session.add(
                Person(
                    id=f"E{i:06d}",
                    email=user.email,
                    name=f"{user.given_name} {user.family_name}",
                    manager_email=manager,
                    status="terminated" if terminated else "active",
                    terminated_at=datetime.now(UTC) if terminated else None,
                )
            )
        session.commit()


async def bare_pager(urls: list[str]) -> tuple[float, int]:
    """The floor: every page of every app, concurrently, parsed as JSON and dropped."""
    import httpx

    async def one(client: httpx.AsyncClient, url: str) -> int:
        seen, start = 0, 1
        while True:
            response = await client.get(
                f"{url}/Users", params={"startIndex": start, "count": PAGE_SIZE}
            )
            page = response.json()
            resources = page.get("Resources") or []
            seen += len(resources)
            start += len(resources)
            if not resources or start > page["totalResults"]:
                return seen

    started = time.perf_counter()
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/scim+json"}
    async with httpx.AsyncClient(headers=headers, timeout=120) as client:
        total = sum(await asyncio.gather(*(one(client, u) for u in urls)))
    return time.perf_counter() - started, total


async def run_round(address: str, apps: int, count: int, workdir: Path, prerender: bool) -> Round:
    from sqlmodel import Session
    from temporalio.api.history.v1 import History
    from temporalio.client import WorkflowUpdateFailedError

    from config import Settings, parse_catalog
    from db.migrate import upgrade
    from db.models import Campaign
    from db.session import Db, get_engine
    from devstack.ports import free_port
    from services.campaigns import start_campaign
    from temporal_client import connect
    from workflows.campaign import AccessReviewCampaignWorkflow
    from workflows.campaign_messages import CampaignTemplate, CloseRequest

    ports = [free_port() for _ in range(apps)]
    print(f"[{count}/app] seeding {apps} SCIM apps in their own processes ...", flush=True)
    servers = [spawn("--serve", str(p), str(count), str(int(prerender))) for p in ports]
    worker: subprocess.Popen[str] | None = None
    try:
        wait_ready(servers)
        urls = [f"http://127.0.0.1:{p}/v2" for p in ports]
        baseline_s, listed = await bare_pager(urls)
        assert listed == apps * count, listed
        print(f"[{count}/app] bare pager: {listed} accounts in {baseline_s:.1f} s", flush=True)

        db_url = f"sqlite:///{workdir / f'bench-{count}.db'}"
        upgrade(db_url)
        seed_people(db_url, count)
        catalog_file = workdir / f"apps-{count}.yaml"
        catalog_file.write_text(catalog_yaml(ports))
        queue = f"bench-{uuid.uuid4().hex[:8]}"
        env = {
            "OFFBOARD_TEMPORAL_ADDRESS": address,
            "OFFBOARD_TASK_QUEUE": queue,
            "OFFBOARD_DATABASE_URL": db_url,
            "OFFBOARD_CATALOG": str(catalog_file),
            "OFFBOARD_DATA_DIR": str(workdir),
            "OFFBOARD_LOG_FORMAT": "json",
            TOKEN_ENV: TOKEN,
        }
        worker = spawn("--work", env=env)
        wait_ready([worker])
        await asyncio.sleep(1.0)
        idle, _ = rss_kib(worker.pid)

        settings = Settings(
            temporal_address=address, task_queue=queue, database_url=db_url, data_dir=workdir
        )
        catalog = parse_catalog(catalog_file.read_text())
        client = await connect(settings)
        engine = get_engine(db_url)
        started = time.perf_counter()
        campaign = await start_campaign(
            client,
            Db(db_url),
            settings,
            catalog,
            CampaignTemplate(name=f"bench {count}", due_in_days=14),
            "bench",
        )
        peak = idle
        while True:
            rss, hwm = rss_kib(worker.pid)
            peak = max(peak, rss, hwm)
            with Session(engine) as session:
                row = session.get(Campaign, campaign.id)
                assert row is not None
                status, state = row.status, row.app_state
            failed = [a for a, s in state.items() if s.get("status") == "failed"]
            if failed:
                raise RuntimeError(f"collection failed: {state}")
            if status == "reviewing":
                break
            await asyncio.sleep(0.2)
        collect_s = time.perf_counter() - started
        items = sum(int(s.get("accounts", 0)) for s in state.values())
        _, hwm = rss_kib(worker.pid)
        peak = max(peak, hwm)

        print(f"[{count}/app] collected {items} accounts in {collect_s:.1f} s", flush=True)
        handle = client.get_workflow_handle(campaign.id)
        try:
            await handle.execute_update(
                AccessReviewCampaignWorkflow.close, CloseRequest(actor="bench", reason="bench")
            )
        except WorkflowUpdateFailedError as exc:
            raise RuntimeError(f"close failed: {exc.cause}") from exc
        await handle.result()
        history = await handle.fetch_history()
        size = History(events=history.events).ByteSize()
        return Round(
            accounts_per_app=count,
            baseline_s=baseline_s,
            collect_s=collect_s,
            items=items,
            worker_idle_mib=idle / 1024,
            worker_peak_mib=peak / 1024,
            history_bytes=size,
            history_events=len(history.events),
        )
    finally:
        stop([*servers, *([worker] if worker else [])])


async def bench(apps: int, small: int, large: int, prerender: bool) -> None:
    from devstack.temporal_server import TemporalDevServer

    with tempfile.TemporaryDirectory(prefix="bench-campaign-") as tmp:
        workdir = Path(tmp)
        with TemporalDevServer(workdir / "temporal.db") as temporal:
            rounds = [
                await run_round(temporal.address, apps, n, workdir, prerender)
                for n in (small, large)
            ]
    print()
    print(
        f"{'accounts/app':>12} {'items':>7} {'bare pager':>11} {'collect':>9} "
        f"{'worker idle':>12} {'worker peak':>12} {'history':>12}"
    )
    for r in rounds:
        print(
            f"{r.accounts_per_app:>12} {r.items:>7} {r.baseline_s:>10.1f}s {r.collect_s:>8.1f}s "
            f"{r.worker_idle_mib:>10.0f}MB {r.worker_peak_mib:>10.0f}MB "
            f"{r.history_bytes / 1024:>8.1f} KiB ({r.history_events} events)"
        )
    big = rounds[-1]
    growth = rounds[-1].worker_peak_mib - rounds[0].worker_peak_mib
    largest = max(r.history_bytes for r in rounds)
    print()
    print(
        f"collection time, {apps} apps x {large} accounts: {big.collect_s:.1f} s "
        f"(target <= 60 s; bare pager floor {big.baseline_s:.1f} s)"
    )
    print(
        f"peak worker RSS growth {small} -> {large} accounts/app: {growth:.0f} MB (target < 200 MB)"
    )
    print(f"largest workflow history: {largest / 1024:.1f} KiB (target < 2 MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--apps", type=int, default=10)
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=10000)
    parser.add_argument(
        "--prerender",
        action="store_true",
        help="serve listing pages rendered before the clock starts (isolates the collector)",
    )
    parser.add_argument("--serve", nargs=3, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--work", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], args.serve[1], bool(args.serve[2]))
    elif args.work:
        work()
    else:
        asyncio.run(bench(args.apps, args.small, args.large, args.prerender))


if __name__ == "__main__":
    main()
