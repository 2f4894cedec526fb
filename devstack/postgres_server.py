"""A throwaway PostgreSQL cluster on loopback, from Debian's server binaries: for tests and benches.

``PostgresServer().start_on_free_port()`` initialises a cluster in a temp dir and starts it;
``close()`` stops it and removes the dir. As root every server command runs as ``postgres``
(``runuser -u postgres``), since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import psycopg

from devstack.ports import free_port


def postgres_bin_dir() -> Path:
    """Where initdb/pg_ctl live: next to ``pg_ctl`` on PATH, else Debian's versioned dir."""
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).resolve().parent
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if not found:
        raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")
    return found[-1].parent


class PostgresServer:
    """A throwaway PostgreSQL cluster on loopback, trust auth, with its socket in its own dir.

    PostgreSQL refuses to run as root, so as root every server command runs as ``postgres``;
    the cluster lives in a mkdtemp dir (pytest's tmp dirs are 0700 root, unreadable to it).
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = free_port(host)
        self.bin = postgres_bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="offboard-pg-"))
        self.data = self.root / "data"
        self.log_file = self.root / "server.log"
        self._as_root = os.geteuid() == 0
        os.chmod(self.root, 0o755)  # noqa: S103 (postgres must traverse it; the data dir is 0700)
        self.running = False
        try:
            if self._as_root:
                shutil.chown(self.root, "postgres", "postgres")
            self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8")
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise

    def _cmd(self, tool: str, *args: str) -> list[str]:
        cmd = [str(self.bin / tool), *args]
        return ["runuser", "-u", "postgres", "--", *cmd] if self._as_root else cmd

    def _run(self, tool: str, *args: str) -> None:
        done = subprocess.run(
            self._cmd(tool, *args), capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            log = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
            raise RuntimeError(f"{tool} failed: {done.stdout}{done.stderr}{log[-2000:]}")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/{database}"

    def start(self) -> None:
        options = f"-h {self.host} -p {self.port} -k {self.root} -c max_connections=200"
        log = str(self.log_file)
        self._run("pg_ctl", "-D", str(self.data), "-l", log, "-o", options, "-w", "start")
        self.running = True

    def stop(self) -> None:
        # By the pid file, not the flag: a start that timed out may still have left a server.
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        self.running = False

    def new_database(self) -> str:
        """CREATE a fresh, empty database and return its SQLAlchemy URL."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        conninfo = f"host={self.host} port={self.port} user=postgres dbname=postgres"
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def start_on_free_port(self, attempts: int = 3) -> PostgresServer:
        """start(), on another free port when the one picked was taken meanwhile."""
        for attempt in range(attempts):
            try:
                self.start()
                return self
            except RuntimeError:
                self.stop()
                if attempt == attempts - 1:
                    raise
                self.port = free_port(self.host)
        return self
