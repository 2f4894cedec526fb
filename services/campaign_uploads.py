"""A manual app's accounts for an access review, uploaded as CSV by its owner."""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import delete
from sqlmodel import Session, col, select
from temporalio.client import Client

from config import Catalog
from db.models import CampaignItem, HumanTask
from db.session import Db
from services import authz
from services.authz import Principal
from services.campaigns import get_campaign
from services.csv_import import ParsedAccounts, decode_csv, parse_accounts_csv
from services.errors import Conflict, DomainError, Forbidden, NotFound
from services.tasks import complete_task


def _upload_task(
    session: Session, catalog: Catalog, principal: Principal, campaign_id: str, app: str
) -> HumanTask:
    campaign = get_campaign(session, campaign_id)
    if app not in campaign.apps:
        raise NotFound(f"app {app!r} is not part of campaign {campaign_id}")
    if app not in {a.id for a in catalog.apps} or catalog.app(app).connector != "manual":
        raise Conflict("not_manual", f"{app} is not a manual app: its accounts are collected")
    task = session.get(HumanTask, f"{campaign_id}-{app}-upload")
    if task is None or task.kind != "csv_upload":
        raise Conflict("no_upload_task", f"no upload is expected for {app} (yet)")
    mine = session.exec(
        select(HumanTask.id).where(HumanTask.id == task.id, authz.visible_tasks(principal, catalog))
    ).first()
    if mine is None:
        raise Forbidden(f"only {app}'s owners or an admin may upload")
    if task.status != "open":
        raise Conflict("task_closed", f"the upload task for {app} is already {task.status}")
    return task


async def upload_accounts(
    db: Db,
    catalog: Catalog,
    client: Client,
    principal: Principal,
    campaign_id: str,
    app: str,
    body: bytes,
) -> dict[str, Any]:
    """Store the rows (unclassified) and complete the owner's upload task, whose completion
    lets the workflow classify them. Returns ``{campaign, app, accepted, skipped_inactive,
    sha256, task_id}``. A bad CSV is ``CsvProblem`` (Invalid) and changes nothing."""
    task = await db.run(lambda s: _upload_task(s, catalog, principal, campaign_id, app))
    parsed = parse_accounts_csv(decode_csv(body))
    digest = hashlib.sha256(body).hexdigest()
    await db.run(lambda session: _replace_uploaded_accounts(session, campaign_id, app, parsed))
    note = f"uploaded {len(parsed.rows)} account(s) (sha256 {digest[:16]})"
    try:
        await complete_task(db, catalog, client, principal, task.id, "done", note, digest)
    except DomainError:
        # The task closed meanwhile (the review ended): the upload does not count.
        await db.run(lambda session: _drop_unclassified(session, campaign_id, app))
        raise
    return {
        "campaign": campaign_id,
        "app": app,
        "accepted": len(parsed.rows),
        "skipped_inactive": parsed.skipped_inactive,
        "sha256": digest,
        "task_id": task.id,
    }


def _replace_uploaded_accounts(
    session: Session, campaign_id: str, app: str, parsed: ParsedAccounts
) -> None:
    """Store an upload's rows unclassified (the workflow classifies them once the task is done)."""
    session.exec(
        delete(CampaignItem).where(
            col(CampaignItem.campaign_id) == campaign_id, col(CampaignItem.app) == app
        )
    )
    session.add_all(CampaignItem(campaign_id=campaign_id, app=app, **row) for row in parsed.rows)
    session.commit()


def _drop_unclassified(session: Session, campaign_id: str, app: str) -> None:
    session.exec(
        delete(CampaignItem).where(
            col(CampaignItem.campaign_id) == campaign_id,
            col(CampaignItem.app) == app,
            col(CampaignItem.classification).is_(None),
        )
    )
    session.commit()
