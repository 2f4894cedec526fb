"""Bulk reads and writes of campaign items: the HR people accounts match, idempotent inserts."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import func
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from db.models import CampaignItem, Person
from domain.review import PersonRow


def people_matching(
    session: Session, identities: Iterable[str], ids: Iterable[str] = ()
) -> list[PersonRow]:
    """HR people whose email (case-insensitively) or id is among the given ones, and the HR
    records of their managers (the reviewer rule needs the manager's status)."""
    emails = sorted({i.lower() for i in identities if i})
    wanted_ids = sorted({i for i in ids if i})
    rows: list[Person] = []
    if emails:
        rows.extend(session.exec(select(Person).where(func.lower(Person.email).in_(emails))))
    if wanted_ids:
        rows.extend(session.exec(select(Person).where(col(Person.id).in_(wanted_ids))))
    managers = sorted({p.manager_email.lower() for p in rows if p.manager_email} - set(emails))
    if managers:
        rows.extend(session.exec(select(Person).where(func.lower(Person.email).in_(managers))))
    return [
        PersonRow(p.id, p.email, p.name, p.manager_email, p.status)
        for p in {p.id: p for p in rows}.values()
    ]


def insert_ignoring_duplicates(session: Session, rows: list[dict[str, Any]]) -> None:
    """Bulk insert items; a row already there (a retried batch) is left alone."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    table = CampaignItem.__table__  # type: ignore[attr-defined]
    if dialect == "postgresql":
        stmt: Any = postgresql.insert(table).on_conflict_do_nothing(
            constraint="uq_campaign_item_account"
        )
    else:
        stmt = sqlite.insert(table).on_conflict_do_nothing()
    session.execute(stmt, rows)


def count_items(session: Session, campaign_id: str, app: str) -> int:
    return session.exec(
        select(func.count())
        .select_from(CampaignItem)
        .where(CampaignItem.campaign_id == campaign_id, CampaignItem.app == app)
    ).one()
