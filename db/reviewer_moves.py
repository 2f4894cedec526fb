"""Moving review items between reviewers: a departed reviewer's pending items go to the app's
fallback owner, and an admin may reassign items; every move is one audit event on the
campaign's trail, written in the same transaction as the items."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from db import audit
from db.models import Campaign, CampaignItem, OffboardingRun, Person, utcnow
from domain.audit import AuditEventIn, Subject
from domain.review import fallback_owner
from domain.status import LIVE_RUNS, OPEN_CAMPAIGNS

# Item ids listed in one move event (the count is always exact).
SHOWN_IDS = 500


class ReviewClosed(Exception):
    """The campaign closed before the move was written: nothing was."""


@dataclass(frozen=True)
class Move:
    """``ids`` moved from ``source`` to ``target`` (None: nobody could take them)."""

    source: str | None
    target: str | None
    reason: str
    ids: list[int]


def departed(session: Session, emails: Sequence[str]) -> set[str]:
    """Which of these (lower-cased) emails belong to someone who has left: terminated in HR
    with no active record, or being offboarded (a live run), or offboarded (a finished run)
    and not active in HR since (a rehire is not departed)."""
    wanted = sorted({e.lower() for e in emails if e})
    if not wanted:
        return set()
    statuses: dict[str, set[str]] = defaultdict(set)
    for email, status in session.exec(
        select(func.lower(Person.email), Person.status).where(func.lower(Person.email).in_(wanted))
    ).all():
        statuses[email].add(status)
    gone = {e for e, s in statuses.items() if "active" not in s}
    runs = session.exec(
        select(func.lower(OffboardingRun.email), OffboardingRun.status).where(
            func.lower(OffboardingRun.email).in_(wanted), col(OffboardingRun.status) != "cancelled"
        )
    ).all()
    offboarded = {
        e for e, status in runs if status in LIVE_RUNS or "active" not in statuses.get(e, set())
    }
    return gone | offboarded


def _holder(item: CampaignItem) -> set[str]:
    return {v.lower() for v in (item.account, item.account_email, item.person_email) if v}


def plan_departed_moves(
    session: Session, campaign_id: str, owners_of: Callable[[str], Sequence[str]]
) -> list[Move]:
    """Pending items whose reviewer has left, grouped by (from, to): each goes to the first of
    its app's owners who is neither the holder nor departed."""
    reviewers = session.exec(
        select(CampaignItem.reviewer)
        .where(
            col(CampaignItem.campaign_id) == campaign_id,
            col(CampaignItem.decision) == "pending",
            col(CampaignItem.reviewer).is_not(None),
        )
        .distinct()
    ).all()
    gone = departed(session, [r for r in reviewers if r])
    if not gone:
        return []
    items = session.exec(
        select(CampaignItem).where(
            col(CampaignItem.campaign_id) == campaign_id,
            col(CampaignItem.decision) == "pending",
            col(CampaignItem.reviewer).in_(sorted(gone)),
        )
    ).all()
    groups: dict[tuple[str | None, str | None, str], list[int]] = defaultdict(list)
    for item in items:
        why = f"the reviewer {item.reviewer} has left (terminated or offboarded)"
        target, reason = fallback_owner(owners_of(item.app), _holder(item) | gone, why)
        if target is not None and item.id is not None:
            groups[(item.reviewer, target, reason)].append(item.id)
    return [Move(s, t, r, sorted(ids)) for (s, t, r), ids in sorted(groups.items(), key=str)]


def apply_moves(
    session_factory: Callable[[], Session],
    campaign: Campaign,
    moves: Sequence[Move],
    actor: str,
    kind: str = "review.reviewer_moved",
) -> int:
    """Write the moves and one audit event per move on the campaign's trail, all in one
    transaction, only while the review is open and only for items still pending (a decision
    that landed meanwhile stays with whoever made it). Returns the number of items moved."""
    if not moves:
        return 0
    now = utcnow()
    events = [
        AuditEventIn(
            subject=Subject.campaign(campaign.id),
            workflow_id=campaign.workflow_id,
            step_id=f"{campaign.id}:move-{uuid.uuid4().hex[:12]}",
            kind=kind,
            at=now.isoformat(),
            actor=actor,
            detail={
                "campaign": campaign.id,
                "from": m.source,
                "to": m.target,
                "reason": m.reason,
                "items": len(m.ids),
                "item_ids": m.ids[:SHOWN_IDS],
            },
        )
        for m in moves
    ]
    moved = 0

    def write(session: Session) -> None:
        nonlocal moved
        moved = 0
        still_open = session.exec(
            select(func.count()).where(
                col(Campaign.id) == campaign.id, col(Campaign.status).in_(OPEN_CAMPAIGNS)
            )
        ).one()
        if not still_open:
            raise ReviewClosed(campaign.id)  # rolls back the events too
        for m in moves:
            result = session.exec(
                update(CampaignItem)
                .where(
                    col(CampaignItem.campaign_id) == campaign.id,
                    col(CampaignItem.id).in_(m.ids),
                    col(CampaignItem.decision) == "pending",
                )
                .values(reviewer=m.target, reviewer_reason=m.reason)
            )
            moved += result.rowcount

    try:
        audit.append(session_factory, events, extra=write)
    except ReviewClosed:
        return 0
    return moved


def move_departed(
    session_factory: Callable[[], Session],
    campaign_id: str,
    owners_of: Callable[[str], Sequence[str]],
) -> int:
    """Move every pending item of a departed reviewer to its app's fallback owner (audited);
    returns how many moved. ``owners_of(app)`` gives the app's fallback reviewers in order."""
    with session_factory() as session:
        campaign = session.get(Campaign, campaign_id)
        if campaign is None or campaign.status not in OPEN_CAMPAIGNS:
            return 0
        moves = plan_departed_moves(session, campaign_id, owners_of)
    return apply_moves(session_factory, campaign, moves, "offboard")
