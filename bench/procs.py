"""Processes a bench starts: each with its output in a file, stopped (TERM, then KILL) by the
bench that started it. ``offboard_env`` is what every offboard process of a bench shares.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-webhook-secret"
SCIM_TOKEN = "bench-scim-token"
# The console script, run with this interpreter (the bench's PYTHONPATH wins over the install).
OFFBOARD = [sys.executable, "-c", "from cli.main import app; app()"]


@dataclass
class Proc:
    popen: subprocess.Popen[str]
    log: Path

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def spawn(
    cmd: list[str],
    workdir: Path,
    name: str,
    env: dict[str, str] | None = None,
    ready: str = "ready",
    timeout: float = 120,
) -> Proc:
    """Start a process with its output in a file (a pipe nobody drains would stall it)."""
    log = workdir / f"{name}.log"
    with log.open("w") as out:
        popen = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=workdir,
            env={**os.environ, **(env or {})},
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready in log.read_text(errors="replace"):
            return Proc(popen, log)
        if popen.poll() is not None:
            raise RuntimeError(f"{name} exited: {log.read_text()[-2000:]}")
        time.sleep(0.1)
    popen.kill()
    raise RuntimeError(f"{name} did not become ready")


def catalog_app(i: int, url: str, concurrency: int, rate: float | None = None) -> str:
    """The catalog entry of bench app ``i`` at ``url``; ``rate`` (requests/min) gives it a rate
    limit, and so its own task queue (worker.py), else it is unthrottled."""
    limit = f"      rate_limit_per_minute: {int(rate)}\n" if rate is not None else ""
    return (
        f"\n  - id: app{i}\n    name: App {i}\n    owners: [owner{i}@example.com]\n"
        f"    connector: scim\n    scim:\n      base_url: {url}\n"
        f"      token_env: BENCH_SCIM_TOKEN\n      match: userName\n{limit}"
        f"      max_concurrent_requests: {concurrency}\n"
    )


def offboard_env(workdir: Path, temporal_address: str, port: int) -> dict[str, str]:
    """The OFFBOARD_* settings of a bench's offboard processes: data and catalog in ``workdir``,
    the API on ``port``, no burst guard (a layoff is the point)."""
    return {
        "OFFBOARD_DATA_DIR": str(workdir / "data"),
        "OFFBOARD_CATALOG": str(workdir / "apps.yaml"),
        "OFFBOARD_TEMPORAL_ADDRESS": temporal_address,
        "OFFBOARD_PORT": str(port),
        "OFFBOARD_WEBHOOK_SECRETS": SECRET,
        "OFFBOARD_BURST_THRESHOLD": "0",
        "OFFBOARD_LOG_FORMAT": "json",
        "BENCH_SCIM_TOKEN": SCIM_TOKEN,
        "PYTHONPATH": str(ROOT),
    }


def spawn_baseline(workdir: Path, temporal_address: str, queue: str, urls: list[str]) -> Proc:
    """The baseline's worker (bench/baseline.py) on ``queue``, making its requests to ``urls``."""
    cmd = [sys.executable, str(ROOT / "bench/baseline.py"), temporal_address, queue, *urls]
    return spawn(cmd, workdir, "baseline", {"PYTHONPATH": str(ROOT)})


def spawn_offboard(workdir: Path, temporal_address: str, port: int) -> Proc:
    """``offboard dev`` on ``port`` with ``workdir/apps.yaml``, as users run it."""
    env = offboard_env(workdir, temporal_address, port)
    return spawn([*OFFBOARD, "dev"], workdir, "offboard", env, ready="Data dir:")
