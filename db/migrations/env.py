"""Alembic environment: the URL from settings (or the caller), metadata from db.models."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import db.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from config import get_settings
from db.session import get_engine

config = context.config
url = config.attributes.get("url") or get_settings().effective_database_url


def run_migrations() -> None:
    with get_engine(url).connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=SQLModel.metadata,
            render_as_batch=url.startswith("sqlite"),
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations()
