"""What the review pages show: a reviewer's pending items across open campaigns, the HR
facts beside each item, and a campaign's progress per reviewer and per classification, the
notices sent. Every read goes through ``services.authz`` scopes before any limit."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import case, func
from sqlmodel import Session, col, select

from db import audit
from db.models import Campaign, CampaignItem, Person
from domain.audit import Subject
from domain.review import CLASSIFICATIONS, EXPLAINED, recommendations
from domain.status import OPEN_CAMPAIGNS
from services.authz import ItemScope, Principal
from services.campaigns import list_items

# Items shown on one review page (riskiest first); the rest follow once these are decided.
PAGE = 500


@dataclass
class ItemRow:
    """One item as a reviewer sees it: the row, its holder's HR facts, and advice."""

    item: CampaignItem
    department: str | None
    manager: str | None
    explained: str
    advice: list[str] = field(default_factory=list)


def rows_for(session: Session, items: list[CampaignItem]) -> list[ItemRow]:
    """Items with their holders' department and manager (from HR) and recommendations."""
    ids = sorted({i.person_id for i in items if i.person_id})
    people = (
        {p.id: p for p in session.exec(select(Person).where(col(Person.id).in_(ids))).all()}
        if ids
        else {}
    )
    now = datetime.now(UTC)
    rows = []
    for item in items:
        person = people.get(item.person_id or "")
        rows.append(
            ItemRow(
                item=item,
                department=person.department if person else None,
                manager=person.manager_email if person else None,
                explained=EXPLAINED[item.classification]
                if item.classification
                else "Not classified yet",
                advice=recommendations(item.classification, item.last_sign_in, now),
            )
        )
    return rows


def _mine(principal: Principal) -> list[Any]:
    return [
        col(CampaignItem.reviewer) == principal.own,
        col(CampaignItem.classification).is_not(None),
    ]


def pending_count(session: Session, principal: Principal) -> int:
    """The caller's pending review items in open campaigns (0 for a token with no email)."""
    if not principal.own:
        return 0
    open_ids = select(Campaign.id).where(col(Campaign.status).in_(OPEN_CAMPAIGNS))
    return session.exec(
        select(func.count()).where(
            *_mine(principal),
            col(CampaignItem.decision) == "pending",
            col(CampaignItem.campaign_id).in_(open_ids),
        )
    ).one()


def my_open_reviews(session: Session, principal: Principal) -> list[tuple[Campaign, list[ItemRow]]]:
    """Per open campaign with pending items for the caller: those items, riskiest first."""
    if not principal.own:
        return []
    campaigns = session.exec(
        select(Campaign)
        .where(col(Campaign.status).in_(OPEN_CAMPAIGNS))
        .order_by(col(Campaign.due_at))
    ).all()
    found = []
    for campaign in campaigns:
        items = list_items(
            session, campaign.id, ItemScope(reviewer=principal.own), decision="pending", limit=PAGE
        )
        if items:
            found.append((campaign, rows_for(session, items)))
    return found


def review_items(session: Session, principal: Principal, campaign_id: str) -> list[ItemRow]:
    """The caller's own items in one campaign (pending first, then decided), riskiest first."""
    if not principal.own:
        return []
    scope = ItemScope(reviewer=principal.own)
    pending = list_items(session, campaign_id, scope, decision="pending", limit=PAGE)
    decided = [
        i
        for d in ("revoke", "keep")
        for i in list_items(session, campaign_id, scope, decision=d, limit=PAGE)
    ]
    return rows_for(session, pending + decided)


def reviewer_progress(
    session: Session, campaign_id: str, scope: ItemScope | None
) -> list[dict[str, Any]]:
    """Per reviewer: items, decided, pending; those who have not started come first."""
    clauses = [col(CampaignItem.campaign_id) == campaign_id, *(scope or ItemScope()).where()]
    decided = func.sum(case((col(CampaignItem.decision) != "pending", 1), else_=0))
    rows = session.exec(
        select(CampaignItem.reviewer, func.count(), decided)
        .where(*clauses)
        .group_by(col(CampaignItem.reviewer))
    ).all()
    progress = [
        {
            "reviewer": reviewer or "(nobody)",
            "items": total,
            "decided": int(done or 0),
            "pending": total - int(done or 0),
            "started": bool(done),
        }
        for reviewer, total, done in rows
    ]
    return sorted(progress, key=lambda p: (p["started"], -p["pending"], p["reviewer"]))


def by_classification(
    session: Session, campaign_id: str, scope: ItemScope | None
) -> dict[str, dict[str, int]]:
    """classification -> {keep, revoke, pending}, riskiest classification first."""
    clauses = [col(CampaignItem.campaign_id) == campaign_id, *(scope or ItemScope()).where()]
    rows = session.exec(
        select(CampaignItem.classification, CampaignItem.decision, func.count())
        .where(*clauses)
        .group_by(col(CampaignItem.classification), col(CampaignItem.decision))
    ).all()
    table: dict[str, dict[str, int]] = {
        c: {"keep": 0, "revoke": 0, "pending": 0} for c in CLASSIFICATIONS
    }
    for classification, decision, n in rows:
        table[str(classification)][str(decision)] = n
    return table


def notices(session: Session, campaign_id: str) -> list[dict[str, Any]]:
    """The notices and reviewer moves on the campaign's trail, oldest first."""
    wanted = ("notify.", "review.reviewer_moved", "review.reassigned")
    return [
        e
        for e in audit.trail(session, Subject.campaign(campaign_id))
        if str(e["kind"]).startswith(wanted)
    ]
