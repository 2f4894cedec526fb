"""Licences an access review reclaimed: the seats and monthly cost of its revocations that
took (verified by read-back, or done by a person), per app and in total, priced from the
catalog's ``license:`` as a leaver's run is (``Catalog.licenses_reclaimed``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from config import RECLAIMED_STEPS, Catalog
from db.models import CampaignItem
from services.authz import ItemScope


def campaign_licenses(
    session: Session, catalog: Catalog, campaign_id: str, scope: ItemScope | None = None
) -> dict[str, Any]:
    """``{seats, monthly_cost: {currency: amount}, by_app: {app: {seats, monthly_cost}}}``
    over the items ``scope`` shows (all by default); apps without ``license:`` count for
    nothing and are left out of ``by_app``."""
    rows = session.exec(
        select(CampaignItem.app, func.count())
        .where(
            col(CampaignItem.campaign_id) == campaign_id,
            col(CampaignItem.revocation).in_(RECLAIMED_STEPS),
            *(scope or ItemScope()).where(),
        )
        .group_by(col(CampaignItem.app))
    ).all()
    # One (app, "verified") pair per reclaimed seat: the run's pricing rule, unchanged.
    seats = {app: [(app, "verified")] * n for app, n in sorted(rows)}
    by_app = {app: catalog.licenses_reclaimed(pairs) for app, pairs in seats.items()}
    total = catalog.licenses_reclaimed(p for pairs in seats.values() for p in pairs)
    return {
        **total.model_dump(),
        "by_app": {app: r.model_dump() for app, r in by_app.items() if r.seats},
    }
