"""What the access-review activities share: the campaign row, the app, the campaign's trail.

Accounts and decisions live in ``campaign_items``; every campaign activity returns counts or
small batches of ids, never the account lists, so the workflow's history stays small however
big the apps are. The review rules themselves (classification, reviewer) are in
``domain.review``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select
from temporalio.exceptions import ApplicationError

from activities.base import AppActivities
from activities.notify import Mailer
from config import AppConfig, Catalog
from connectors.registry import ConnectorRegistry
from db import audit
from db.campaign_items import people_matching
from db.models import Campaign, CampaignItem, utcnow
from domain.audit import AuditEventIn, Subject
from domain.review import Classifier, PersonRow, identities
from domain.status import ReviewerMode

# Rows per DB batch (stored, classified or decided at once).
BATCH = 500


def classifier_for(
    catalog: Catalog, app: AppConfig, mode: ReviewerMode | str, people: Iterable[PersonRow]
) -> Classifier:
    """The review rules for one app, with what the catalog says about it."""
    return Classifier(
        owners=app.reviewers,
        by_external_id=app.scim is not None and app.scim.match == "externalId",
        is_service_account=catalog.is_service_account,
        mode=mode,
        people=people,
    )


def campaign_event(
    campaign_id: str,
    workflow_id: str,
    step_id: str,
    kind: str,
    detail: dict[str, Any],
    at: datetime | None = None,
    actor: str = "offboard",
    app: str | None = None,
) -> AuditEventIn:
    """An event on the campaign's own trail."""
    return AuditEventIn(
        subject=Subject.campaign(campaign_id),
        workflow_id=workflow_id,
        step_id=step_id,
        kind=kind,
        at=(at or utcnow()).isoformat(),
        actor=actor,
        app=app,
        detail={"campaign": campaign_id, **detail},
    )


def chunks(values: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


class CampaignActivityBase(AppActivities):
    def __init__(
        self,
        catalog: Catalog,
        registry: ConnectorRegistry,
        session_factory: Callable[[], Session],
        public_url: str = "",
        mailer: Mailer | None = None,
        chat_url: str | None = None,
    ) -> None:
        super().__init__(catalog, registry, session_factory)
        self._mailer = mailer
        self._chat_url = chat_url
        self._public_url = public_url.rstrip("/")

    def _campaign(self, session: Session, campaign_id: str) -> Campaign:
        campaign = session.get(Campaign, campaign_id)
        if campaign is None:
            raise ApplicationError(
                f"no campaign {campaign_id!r}", type="not_found", non_retryable=True
            )
        return campaign

    def _app(self, app_id: str) -> AppConfig:
        try:
            return self._catalog.app(app_id)
        except KeyError:
            raise ApplicationError(
                f"app {app_id!r} is not in the catalog", type="config", non_retryable=True
            ) from None

    def _reviewer_mode(self, campaign_id: str) -> ReviewerMode:
        with self._sessions() as session:
            return self._campaign(session, campaign_id).reviewer_mode

    def _classify_pending(self, campaign_id: str, app: AppConfig, mode: ReviewerMode) -> None:
        """Classify an app's stored, unclassified rows (an upload), a batch at a time."""
        while True:

            def batch() -> int:
                with self._sessions() as session:
                    rows = session.exec(
                        select(CampaignItem)
                        .where(
                            CampaignItem.campaign_id == campaign_id,
                            CampaignItem.app == app.id,
                            col(CampaignItem.classification).is_(None),
                        )
                        .order_by(col(CampaignItem.id))
                        .limit(BATCH)
                    ).all()
                    people = people_matching(
                        session,
                        (
                            i
                            for r in rows
                            for i in identities(
                                r.account, [r.account_email] if r.account_email else []
                            )
                        ),
                    )
                    classifier = classifier_for(self._catalog, app, mode, people)
                    for row in rows:
                        emails = [row.account_email] if row.account_email else []
                        for key, value in classifier.fields(row.account, emails).items():
                            setattr(row, key, value)
                        session.add(row)
                    session.commit()
                    return len(rows)

            if audit.with_retry(batch) < BATCH:
                return
