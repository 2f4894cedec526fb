"""The Alembic migrations build exactly the schema the models describe, on both backends.

Whatever tables db/models.py declares when this runs (new ones included) must come out of
``offboard migrate`` unchanged: a model edited without a revision, or a revision that does not
match its model, fails here with the differences listed.
"""

from __future__ import annotations

import pprint
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlmodel import SQLModel

import db.models  # noqa: F401  (registers every table on SQLModel.metadata)
from db.migrate import alembic_config, upgrade
from db.session import get_engine

if TYPE_CHECKING:
    from devstack.postgres_server import PostgresServer

pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'offboard.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.new_database()


def drift(url: str) -> list[Any]:
    with get_engine(url).connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, SQLModel.metadata))


def current(url: str) -> str | None:
    with get_engine(url).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def app_tables(url: str) -> set[str]:
    return set(inspect(get_engine(url)).get_table_names()) - {"alembic_version"}


def test_one_line_of_revisions() -> None:
    """Two revisions written in parallel off the same parent would make `upgrade head` fail."""
    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    assert len(heads) == 1, f"several migration heads, merge them: {heads}"


def test_migrations_match_the_models(db_url: str) -> None:
    upgrade(db_url)
    diffs = drift(db_url)
    assert not diffs, "models and migrations differ (add a revision):\n" + pprint.pformat(diffs)
    assert app_tables(db_url) == set(SQLModel.metadata.tables)


def test_downgrade_to_base_and_upgrade_again(db_url: str) -> None:
    head = ScriptDirectory.from_config(alembic_config(db_url)).get_current_head()
    upgrade(db_url)
    assert current(db_url) == head

    command.downgrade(alembic_config(db_url), "base")
    assert current(db_url) is None
    assert app_tables(db_url) == set(), "downgrade to base left tables behind"

    upgrade(db_url)
    assert current(db_url) == head
    diffs = drift(db_url)
    assert not diffs, "schema differs after downgrade + upgrade:\n" + pprint.pformat(diffs)
