"""Revision 0002 creates exactly the campaign tables db.models declares, and downgrades cleanly."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

from db.migrate import alembic_config, upgrade
from db.session import get_engine


def test_0002_matches_the_models_and_downgrades(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'migrate.db'}"
    upgrade(url)
    engine = get_engine(url)
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "render_as_batch": True}
        )
        assert compare_metadata(context, SQLModel.metadata) == []
    assert {"campaigns", "campaign_items"} <= set(inspect(engine).get_table_names())

    command.downgrade(alembic_config(url), "0001")
    assert not {"campaigns", "campaign_items"} & set(inspect(engine).get_table_names())
    command.upgrade(alembic_config(url), "head")
    assert {"campaigns", "campaign_items"} <= set(inspect(engine).get_table_names())
