"""What every command group shares: settings, catalog, DB, Temporal, errors as exit codes.

Exit codes: 0 ok, 1 failure, 2 usage (a domain ``Invalid`` is a usage error).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import typer
from rich.console import Console
from sqlmodel import Session
from temporalio.client import Client
from temporalio.service import RPCError

from config import Catalog, CatalogError, Settings, get_settings, load_catalog
from db.session import Db, open_session
from logs import configure_logging
from services.errors import DomainError, Invalid
from temporal_client import connect

T = TypeVar("T")
err = Console(stderr=True)


def settings(dev_address: bool = True) -> Settings:
    """The settings, with logging configured; beside ``offboard dev`` its Temporal address."""
    current = get_settings()
    configure_logging(current.log_format)
    if dev_address and current.temporal_address is None:
        # `offboard dev` writes where its embedded server listens, for CLI calls beside it.
        address_file = current.data_dir / "temporal-address"
        if address_file.exists():
            current = current.model_copy(update={"temporal_address": address_file.read_text()})
    return current


def catalog(current: Settings) -> Catalog:
    try:
        return load_catalog(current.catalog)
    except CatalogError as exc:
        raise fail(str(exc)) from None


def session(current: Settings) -> Session:
    return open_session(current.effective_database_url)


def db(current: Settings) -> Db:
    return Db(current.effective_database_url)


async def client(current: Settings) -> Client:
    return await connect(current)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``message`` in red on stderr; raise the returned Exit."""
    err.print(f"[red]{message}[/red]", highlight=False)
    return typer.Exit(code)


@contextmanager
def exit_codes() -> Iterator[None]:
    """A use case's refusal becomes its message and an exit code (2 for Invalid, else 1);
    so does a Temporal error (1)."""
    try:
        yield
    except DomainError as exc:
        raise fail(exc.message, 2 if isinstance(exc, Invalid) else 1) from None
    except RPCError as exc:
        raise fail(f"Temporal: {exc.message}") from None


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run an async use case to completion, its refusals as exit codes."""
    with exit_codes():
        return asyncio.run(coro)
