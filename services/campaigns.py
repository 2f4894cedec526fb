"""Access-review campaigns: start, read, list items, decide (one or many), close.

Items live in the DB (``campaign_items``); the workflow owns the lifecycle (collect, remind,
close, revoke) and these functions read and write what people do in between. Who sees which
items is ``services.authz``'s to say.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import exists, func, update
from sqlmodel import Session, col, select
from temporalio.client import Client

from config import Catalog, Settings
from db import audit
from db.models import Campaign, CampaignItem, utcnow
from db.session import Db, session_factory
from domain.audit import AuditEventIn, Subject
from domain.review import JUSTIFY_KEEP
from domain.status import OPEN_CAMPAIGNS, Decision, Verdict
from services import authz
from services.authz import ItemScope, Principal
from services.errors import Conflict, Invalid, NotFound
from services.offboardings import check_apps
from services.workflow_calls import update as workflow_update
from workflows.campaign import AccessReviewCampaignWorkflow
from workflows.campaign_messages import (
    CampaignInput,
    CampaignTemplate,
    CloseRequest,
    CloseReviewResult,
)

MAX_BULK = 1000


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat()


async def start_campaign(
    client: Client,
    db: Db,
    settings: Settings,
    catalog: Catalog,
    template: CampaignTemplate,
    actor: str,
    trigger: Literal["api", "cli"] = "api",
) -> Campaign:
    """Create the campaign row (so a GET answers at once), then start its workflow."""
    apps = check_apps(catalog, template.apps)
    idps = [a for a in apps if catalog.app(a).idp_settings is not None]
    if idps and template.apps:
        raise Invalid("unsupported_app", f"reviews do not cover IdP apps: {', '.join(idps)}")
    apps = [a for a in apps if a not in idps]
    template = template.model_copy(update={"apps": apps})
    campaign_id = f"campaign-{uuid.uuid4().hex[:12]}"
    now = utcnow()
    row = Campaign(
        id=campaign_id,
        workflow_id=campaign_id,
        name=template.name,
        apps=apps,
        reviewer_mode=template.reviewer,
        on_no_decision=template.on_no_decision,
        due_in_days=template.due_in_days,
        trigger=trigger,
        created_by=actor,
        created_at=now,
        # The API's estimate; the workflow writes the deadline by its own clock at once.
        due_at=now + timedelta(days=template.due_in_days),
        app_state={a: {"status": "collecting", "accounts": 0, "detail": ""} for a in apps},
    )

    def insert(session: Session) -> None:
        session.add(row)
        session.commit()

    await db.run(insert)
    await client.start_workflow(
        AccessReviewCampaignWorkflow.run,
        CampaignInput(template=template, campaign_id=campaign_id, trigger=trigger, actor=actor),
        id=campaign_id,
        task_queue=settings.task_queue,
    )
    return row


def get_campaign(session: Session, campaign_id: str) -> Campaign:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFound(f"no campaign {campaign_id!r}")
    return campaign


def counts(session: Session, campaign_id: str, scope: ItemScope | None = None) -> dict[str, int]:
    clauses = [col(CampaignItem.campaign_id) == campaign_id, *(scope or ItemScope()).where()]
    rows = session.exec(
        select(CampaignItem.decision, func.count()).where(*clauses).group_by("decision")
    ).all()
    by = {str(d): n for d, n in rows}
    total = sum(by.values())
    return {
        "items": total,
        "decided": total - by.get("pending", 0),
        "keep": by.get("keep", 0),
        "revoke": by.get("revoke", 0),
        "pending": by.get("pending", 0),
    }


def campaign_view(
    session: Session, campaign: Campaign, scope: ItemScope | None = None
) -> dict[str, Any]:
    return {
        "id": campaign.id,
        "name": campaign.name,
        "status": campaign.status,
        "apps": campaign.apps,
        "reviewer": campaign.reviewer_mode,
        "on_no_decision": campaign.on_no_decision,
        "trigger": campaign.trigger,
        "created_by": campaign.created_by,
        "created_at": iso(campaign.created_at),
        "due_at": iso(campaign.due_at),
        "closed_at": iso(campaign.closed_at),
        "completed_at": iso(campaign.completed_at),
        "collection": campaign.app_state,
        "counts": counts(session, campaign.id, scope),
    }


def review_fields(item: CampaignItem) -> dict[str, Any]:
    """What the review decided about an item, as the API and the evidence report show it."""
    return {
        "classification": item.classification,
        "last_sign_in": item.last_sign_in,
        "groups": item.groups,
        "reviewer": item.reviewer,
        "reviewer_reason": item.reviewer_reason,
        "decision": item.decision,
        "justification": item.justification,
        "decided_by": item.decided_by,
        "decided_at": iso(item.decided_at),
        "auto_decided": item.auto_decided,
        "revocation": item.revocation,
        "revocation_detail": item.revocation_detail or None,
        "verified_at": iso(item.verified_at),
    }


def item_view(item: CampaignItem) -> dict[str, Any]:
    person = (
        {"id": item.person_id, "email": item.person_email, "name": item.person_name}
        if item.person_id
        else None
    )
    return {
        "id": item.id,
        "app": item.app,
        "account": item.account,
        "account_id": item.account_id,
        "person": person,
        **review_fields(item),
    }


def list_items(
    session: Session,
    campaign_id: str,
    scope: ItemScope,
    *,
    decision: str | None = None,
    classification: str | None = None,
    app: str | None = None,
    limit: int = 500,
    offset: int = 0,
) -> list[CampaignItem]:
    """Items, riskiest first (terminated but active, orphans, service accounts, the rest)."""
    query = select(CampaignItem).where(col(CampaignItem.campaign_id) == campaign_id, *scope.where())
    if decision:
        query = query.where(col(CampaignItem.decision) == decision)
    if classification:
        query = query.where(col(CampaignItem.classification) == classification)
    if app:
        query = query.where(col(CampaignItem.app) == app)
    query = query.order_by(col(CampaignItem.risk), col(CampaignItem.app), col(CampaignItem.account))
    return list(session.exec(query.offset(offset).limit(limit)).all())


def list_campaigns(
    session: Session, principal: Principal, catalog: Catalog, status: str | None = None
) -> list[dict[str, Any]]:
    """The newest 500 campaigns; non-admins see those with items for them, counted for them."""
    query = select(Campaign).order_by(col(Campaign.created_at).desc()).limit(500)
    if status:
        query = query.where(col(Campaign.status) == status)
    scope = authz.campaign_scope(principal, catalog)
    views = [campaign_view(session, c, scope) for c in session.exec(query).all()]
    return [v for v in views if scope is None or v["counts"]["items"]]


def require_open(campaign: Campaign) -> Campaign:
    if campaign.status not in OPEN_CAMPAIGNS:
        raise Conflict("review_closed", f"campaign {campaign.id} is {campaign.status}")
    return campaign


def items_by_id(
    session: Session, campaign_id: str, ids: Sequence[int]
) -> tuple[list[int], dict[int | None, CampaignItem]]:
    """(the ids without repeats, in order; id -> item); NotFound names any id not in the
    campaign."""
    wanted = list(dict.fromkeys(ids))
    rows = session.exec(
        select(CampaignItem).where(
            col(CampaignItem.campaign_id) == campaign_id, col(CampaignItem.id).in_(wanted)
        )
    ).all()
    found = {r.id: r for r in rows}
    missing = [i for i in wanted if i not in found]
    if missing:
        raise NotFound(f"no item(s) {', '.join(map(str, missing))} in {campaign_id}")
    return wanted, found


def decide(
    settings: Settings,
    session: Session,
    catalog: Catalog,
    principal: Principal,
    campaign_id: str,
    ids: Sequence[int],
    decision: Verdict,
    justification: str,
) -> list[CampaignItem]:
    """One decision for one or many items, all or nothing: an item that is not the caller's
    (``authz.can_decide``), still unclassified, protected (revoke) or risky without a
    justification (keep) refuses the whole batch. Returns the items as decided."""
    campaign = require_open(get_campaign(session, campaign_id))
    wanted, found = items_by_id(session, campaign_id, ids)
    allowed = set(
        session.exec(
            select(CampaignItem.id).where(
                col(CampaignItem.id).in_(wanted), authz.can_decide(principal)
            )
        ).all()
    )
    items = [found[i] for i in wanted]
    for item in items:
        if item.id not in allowed:
            raise authz.refusal(principal, item)
        _check_decision(catalog, item, decision, justification)
    _apply_decisions(settings, campaign, items, decision, justification.strip(), principal.actor)
    for item in items:
        session.refresh(item)
    return items


def undo(
    settings: Settings,
    session: Session,
    principal: Principal,
    campaign_id: str,
    ids: Sequence[int],
) -> list[CampaignItem]:
    """Put decided items back to pending while the review is open (the caller's own items, as
    for a decision; an automatic decision is not undone). Audited as ``review.undone``."""
    campaign = require_open(get_campaign(session, campaign_id))
    wanted = list(dict.fromkeys(ids))
    rows = session.exec(
        select(CampaignItem).where(
            col(CampaignItem.campaign_id) == campaign_id,
            col(CampaignItem.id).in_(wanted),
            authz.can_decide(principal),
        )
    ).all()
    if len(rows) != len(wanted):
        raise NotFound(f"no item(s) of yours among {', '.join(map(str, wanted))}")
    items = [r for r in rows if r.decision != "pending" and not r.auto_decided]
    _apply_decisions(settings, campaign, items, "pending", "", principal.actor)
    for item in items:
        session.refresh(item)
    return items


def _check_decision(
    catalog: Catalog, item: CampaignItem, decision: Verdict, justification: str
) -> None:
    if item.classification is None:
        raise Conflict("not_ready", f"item {item.id} is still being classified")
    if decision == "keep" and item.classification in JUSTIFY_KEEP and not justification.strip():
        raise Invalid(
            "justification_required",
            f"item {item.id} is {item.classification}: keeping it needs a justification",
            [{"item": item.id, "field": "justification", "message": "required to keep"}],
        )
    if decision == "revoke" and catalog.is_protected(item.account, item.account_email):
        raise Invalid(
            "protected_account",
            f"item {item.id} ({item.account}) is a protected account: it is never revoked",
        )


def _apply_decisions(
    settings: Settings,
    campaign: Campaign,
    items: Sequence[CampaignItem],
    decision: Decision,
    justification: str,
    actor: str,
) -> None:
    """Write the decisions (``pending``: an undo) and their audit events in one transaction,
    only while the review is open: the campaign's status is checked by the same UPDATE, so a
    close cannot slip between."""
    if not items:
        return
    now = utcnow()
    undone = decision == "pending"
    ids = [i.id for i in items]
    open_review = exists().where(
        col(Campaign.id) == campaign.id, col(Campaign.status).in_(OPEN_CAMPAIGNS)
    )
    events = [
        AuditEventIn(
            subject=Subject.person(item.trail_id),
            workflow_id=campaign.workflow_id,
            step_id=f"{campaign.id}:item-{item.id}:decision-{uuid.uuid4().hex[:12]}",
            kind="review.undone" if undone else "review.decided",
            at=now.isoformat(),
            actor=actor,
            app=item.app,
            detail={
                "campaign": campaign.id,
                "campaign_name": campaign.name,
                "item": item.id,
                "account": item.account,
                "classification": item.classification,
                "decision": decision,
                "justification": justification,
            },
        )
        for item in items
    ]

    def write(session: Session) -> None:
        result = session.exec(
            update(CampaignItem)
            .where(
                col(CampaignItem.campaign_id) == campaign.id,
                col(CampaignItem.id).in_(ids),
                open_review,
            )
            .values(
                decision=decision,
                justification=justification,
                decided_by=None if undone else actor,
                decided_at=None if undone else now,
                auto_decided=False,
            )
        )
        if result.rowcount != len(ids):
            raise Conflict("review_closed", f"campaign {campaign.id} is no longer open")

    audit.append(session_factory(settings.effective_database_url), events, extra=write)


async def close_campaign(
    db: Db, client: Client, principal: Principal, campaign_id: str, reason: str
) -> CloseReviewResult:
    """End the review now (admin): on_no_decision for what is pending, revocations start."""
    authz.require_admin(principal)
    campaign = await db.run(lambda session: require_open(get_campaign(session, campaign_id)))
    handle = client.get_workflow_handle(campaign.workflow_id)
    request = CloseRequest(actor=principal.actor, reason=reason)
    result: CloseReviewResult = await workflow_update(
        handle, AccessReviewCampaignWorkflow.close, request, "review_closed"
    )
    return result
