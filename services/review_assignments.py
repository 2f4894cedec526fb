"""Who reviews which item after the start: an admin's reassignment (reason required) and the
move of a departed reviewer's pending items to the app's fallback owner. Both are audited on
the campaign's trail (``db.reviewer_moves``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlmodel import Session

from config import Settings
from db.models import CampaignItem
from db.reviewer_moves import Move, apply_moves
from db.session import session_factory
from services import authz
from services.authz import Principal
from services.campaigns import get_campaign, items_by_id, require_open
from services.errors import Conflict, Invalid


def reassign(
    settings: Settings,
    session: Session,
    principal: Principal,
    campaign_id: str,
    ids: Sequence[int],
    reviewer: str,
    reason: str,
) -> list[CampaignItem]:
    """Give pending items to another reviewer (admin only), all or nothing.

    Raises Forbidden (not an admin), NotFound (an item not in the campaign), Conflict (the
    review is closed, or an item is already decided) and Invalid (no reason, not an email, or
    the new reviewer holds the account). Returns the items as reassigned.
    """
    authz.require_admin(principal)
    campaign = require_open(get_campaign(session, campaign_id))
    target = reviewer.strip().lower()
    why = reason.strip()
    if not why:
        raise Invalid(
            "reason_required",
            "a reassignment needs a reason",
            [{"field": "reason", "message": "required"}],
        )
    if "@" not in target:
        raise Invalid(
            "invalid_reviewer",
            f"not an email address: {reviewer!r}",
            [{"field": "reviewer", "message": "an email address"}],
        )
    wanted, found = items_by_id(session, campaign_id, ids)
    groups: dict[str | None, list[int]] = defaultdict(list)
    for item_id in wanted:
        item = found[item_id]
        if item.decision != "pending":
            raise Conflict("already_decided", f"item {item_id} is decided ({item.decision})")
        held = {v.lower() for v in (item.account, item.account_email, item.person_email) if v}
        if target in held:
            raise Invalid("self_review", f"{target} holds item {item_id}: not theirs to review")
        groups[item.reviewer].append(item_id)
    note = f"reassigned by {principal.actor}: {why}"
    moves = [Move(source, target, note, sorted(m)) for source, m in groups.items()]
    # Written only for items still pending in a review still open; the refreshed rows say.
    sessions = session_factory(settings.effective_database_url)
    apply_moves(sessions, campaign, moves, principal.actor, "review.reassigned")
    for item in found.values():
        session.refresh(item)
    return [found[i] for i in wanted]
