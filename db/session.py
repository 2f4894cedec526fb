"""Engine and session factory; one engine per URL, created on first use."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache, partial
from typing import Any, TypeVar

import anyio.to_thread
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import QueuePool
from sqlmodel import Session, create_engine

T = TypeVar("T")


@lru_cache
def get_engine(url: str) -> Engine:
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        # Worker threads and the API share one file; WAL + a busy timeout serialise writers.
        # A few connections are kept for reuse (opening one, with its pragmas, per session
        # showed in burst profiles); past that the pool never blocks, since a capped pool would
        # make threads waiting for the write lock also starve readers. Only a few are kept:
        # each idle connection holds its own page cache, and a burst must not grow memory.
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        kwargs.update(poolclass=QueuePool, pool_size=8, max_overflow=-1)
    else:
        # Enough for the API threadpool (40) and the worker's DB threads in one process; a
        # pre-ping finds connections the server dropped (restart, idle timeout) before use.
        kwargs.update(pool_size=20, max_overflow=40, pool_pre_ping=True)
    engine = create_engine(url, **kwargs)
    if url.startswith("sqlite"):

        @event.listens_for(engine, "connect")
        def _pragmas(conn: Any, _: Any) -> None:
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

    return engine


def open_session(url: str) -> Session:
    """A session on the URL's shared engine; objects stay readable after commit."""
    return Session(get_engine(url), expire_on_commit=False)


def session_factory(url: str) -> Callable[[], Session]:
    return partial(open_session, url)


class Db:
    """Database work for async code, run in a worker thread with its own short session.

    Async code (API handlers, and under ``offboard dev`` the worker beside them) must never
    touch the DB on the event loop: a blocking pool checkout or SQLite lock wait there stalls
    every request. ``await db.run(fn)`` calls ``fn(session)`` in the threadpool instead.
    """

    def __init__(self, url: str) -> None:
        self.url = url

    async def run(self, fn: Callable[[Session], T]) -> T:
        def call() -> T:
            with open_session(self.url) as session:
                return fn(session)

        return await anyio.to_thread.run_sync(call)
