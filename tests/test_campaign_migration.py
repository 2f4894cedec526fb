"""Revision 0002 creates exactly the campaign tables db.models declares, and downgrades cleanly."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
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


def test_0003_moves_campaign_trails_off_the_people(tmp_path: Path) -> None:
    """Trails written under person_id = a campaign id become that campaign's own."""
    url = f"sqlite:///{tmp_path / 'subject.db'}"
    command.upgrade(alembic_config(url), "0002")
    engine = get_engine(url)
    event = (
        "INSERT INTO audit_events (person_id, seq, at, kind, actor, detail, workflow_id,"
        " step_id, hash, prev_hash) VALUES (:who, 1, 't', 'k', 'a', '{}', :who, 's', 'h', 'p')"
    )
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO campaigns (id, workflow_id, name, apps, reviewer_mode,"
                " on_no_decision, due_in_days, status, trigger, created_by, created_at, due_at,"
                " app_state, state_version) VALUES ('campaign-1', 'campaign-1', 'Q', '[]',"
                " 'manager', 'keep', 14, 'completed', 'api', 'x', '2026-01-01', '2026-01-15',"
                " '{}', 0)"
            )
        )
        conn.execute(text(event), {"who": "campaign-1"})
        conn.execute(text(event), {"who": "E1"})
    upgrade(url)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT subject_kind, subject_id FROM audit_events ORDER BY subject_id")
        ).all()
    assert [tuple(r) for r in rows] == [("person", "E1"), ("campaign", "campaign-1")]
