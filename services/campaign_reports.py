"""Evidence of an access review: one row per account (decision, who, why, when, revocation
and its read-back), as CSV or JSON with a summary (with the licences reclaimed)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from config import Catalog
from db.models import Campaign, CampaignItem
from domain.review import CLASSIFICATIONS
from domain.status import REVOCATION_STATUSES
from services.authz import ItemScope
from services.campaign_licenses import campaign_licenses
from services.campaigns import campaign_view, iso, list_items, review_fields

REPORT_FIELDS = (
    "app",
    "account",
    "account_id",
    "person_id",
    "person_email",
    "person_name",
    "classification",
    "last_sign_in",
    "groups",
    "reviewer",
    "reviewer_reason",
    "decision",
    "justification",
    "decided_by",
    "decided_at",
    "auto_decided",
    "revocation",
    "revocation_detail",
    "verified_at",
)


def report_row(item: CampaignItem) -> dict[str, Any]:
    return {
        "app": item.app,
        "account": item.account,
        "account_id": item.account_id,
        "person_id": item.person_id,
        "person_email": item.person_email,
        "person_name": item.person_name,
        **review_fields(item),
    }


def report_items(session: Session, campaign_id: str, batch: int = 1000) -> Iterator[CampaignItem]:
    """Every classified item, riskiest first, read in batches."""
    offset = 0
    while True:
        items = list_items(session, campaign_id, ItemScope(), limit=batch, offset=offset)
        yield from items
        if len(items) < batch:
            return
        offset += batch


def report_summary(session: Session, campaign: Campaign, catalog: Catalog) -> dict[str, Any]:
    def group(column: Any) -> dict[str, int]:
        rows = session.exec(
            select(column, func.count())
            .where(
                col(CampaignItem.campaign_id) == campaign.id,
                col(CampaignItem.classification).is_not(None),
            )
            .group_by(column)
        ).all()
        return {str(k): n for k, n in rows}

    by_decision = group(CampaignItem.decision)
    by_class = group(CampaignItem.classification)
    by_revocation = group(CampaignItem.revocation)
    auto = session.exec(
        select(func.count()).where(
            col(CampaignItem.campaign_id) == campaign.id,
            col(CampaignItem.classification).is_not(None),
            col(CampaignItem.auto_decided).is_(True),
        )
    ).one()
    completed = campaign.completed_at
    created = campaign.created_at

    def seconds(end: datetime | None) -> float | None:
        if end is None:
            return None
        start = created if created.tzinfo else created.replace(tzinfo=UTC)
        end = end if end.tzinfo else end.replace(tzinfo=UTC)
        return round((end - start).total_seconds(), 3)

    return {
        "items": sum(by_decision.values()),
        "by_decision": {d: by_decision.get(d, 0) for d in ("keep", "revoke", "pending")},
        "by_classification": {c: by_class.get(c, 0) for c in CLASSIFICATIONS},
        "auto_decided": auto,
        "revocations": {r: by_revocation.get(r, 0) for r in REVOCATION_STATUSES},
        "apps": campaign.app_state,
        "population": population(campaign),
        "created_at": iso(created),
        "closed_at": iso(campaign.closed_at),
        "completed_at": iso(completed),
        "time_to_close_seconds": seconds(campaign.closed_at),
        "time_to_complete_seconds": seconds(completed),
        "licenses": campaign_licenses(session, catalog, campaign.id),
    }


def population(campaign: Campaign) -> dict[str, dict[str, Any]]:
    """Per app, the population the review covered: accounts stored, accounts the listing
    returned, the total the app reported (None: it did not say), the query and when it ran
    (SCIM apps; a manual app's upload says ``detail`` only)."""
    keys = ("accounts", "listed", "reported", "query", "skipped_inactive", "collected_at")
    return {
        app: {k: state.get(k) for k in keys} | {"detail": state.get("detail", "")}
        for app, state in (campaign.app_state or {}).items()
    }


def report_json(session: Session, campaign: Campaign, catalog: Catalog) -> dict[str, Any]:
    return {
        "campaign": campaign_view(session, campaign),
        "summary": report_summary(session, campaign, catalog),
        "rows": [report_row(i) for i in report_items(session, campaign.id)],
    }


def report_csv(session: Session, campaign_id: str) -> Iterator[str]:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=REPORT_FIELDS, lineterminator="\n")
    writer.writeheader()
    for n, item in enumerate(report_items(session, campaign_id), start=1):
        row = report_row(item)
        row["groups"] = ";".join(row["groups"])
        row["auto_decided"] = "true" if row["auto_decided"] else "false"
        writer.writerow(row)
        if n % 500 == 0:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()
