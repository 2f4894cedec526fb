"""Close an access review: no more decisions, on_no_decision for what is pending."""

from __future__ import annotations

from sqlalchemy import func, update
from sqlmodel import Session, col, select
from temporalio import activity

from activities.campaign_base import BATCH, CampaignActivityBase, campaign_event, chunks
from db import audit
from db.models import CampaignItem, utcnow
from domain.status import OPEN_CAMPAIGNS
from workflows.campaign_messages import CloseReviewInput, CloseReviewResult


class CampaignCloseActivities(CampaignActivityBase):
    @activity.defn(name="campaign_close_review")
    def close_review(self, inp: CloseReviewInput) -> CloseReviewResult:
        """End the review: no more decisions, on_no_decision for what is pending, revocations
        marked pending. Protected accounts are never auto-revoked (they are kept)."""

        def closed(session: Session) -> None:
            row = self._campaign(session, inp.campaign_id)
            if row.closed_at is None:
                row.closed_at = inp.at
                row.closed_by = inp.actor
            if row.status in OPEN_CAMPAIGNS:
                row.status = "revoking"
            session.add(row)
            session.commit()

        def status_write() -> None:
            with self._sessions() as session:
                closed(session)

        audit.with_retry(status_write)
        with self._sessions() as session:
            mode = self._campaign(session, inp.campaign_id).reviewer_mode
            leftovers = session.exec(
                select(CampaignItem.app)
                .where(
                    CampaignItem.campaign_id == inp.campaign_id,
                    col(CampaignItem.classification).is_(None),
                )
                .distinct()
            ).all()
        for app_id in leftovers:
            self._classify_pending(inp.campaign_id, self._app(app_id), mode)

        now = utcnow()
        base = (
            col(CampaignItem.campaign_id) == inp.campaign_id,
            col(CampaignItem.decision) == "pending",
        )

        def decide() -> None:
            with self._sessions() as session:
                pending = session.exec(
                    select(CampaignItem.id, CampaignItem.account, CampaignItem.account_email).where(
                        *base
                    )
                ).all()
                protected = [
                    item_id
                    for item_id, account, email in pending
                    if self._catalog.is_protected(account, email)
                ]
                for chunk in chunks(protected, BATCH):
                    session.exec(
                        update(CampaignItem)
                        .where(*base, col(CampaignItem.id).in_(chunk))
                        .values(
                            decision="keep",
                            auto_decided=True,
                            decided_at=now,
                            decided_by="offboard",
                            justification="protected account: never auto-revoked",
                        )
                    )
                session.exec(
                    update(CampaignItem)
                    .where(*base)
                    .values(
                        decision=inp.on_no_decision,
                        auto_decided=True,
                        decided_at=now,
                        decided_by="offboard",
                        justification=(
                            f"no decision when the review closed ({inp.reason}); "
                            f"on_no_decision={inp.on_no_decision}"
                        ),
                    )
                )
                session.exec(
                    update(CampaignItem)
                    .where(
                        col(CampaignItem.campaign_id) == inp.campaign_id,
                        col(CampaignItem.decision) == "revoke",
                        col(CampaignItem.revocation).is_(None),
                    )
                    .values(revocation="pending")
                )
                session.commit()

        audit.with_retry(decide)
        with self._sessions() as session:
            rows = session.exec(
                select(
                    CampaignItem.app,
                    CampaignItem.decision,
                    CampaignItem.auto_decided,
                    func.count(),
                )
                .where(CampaignItem.campaign_id == inp.campaign_id)
                .group_by("app", "decision", "auto_decided")
            ).all()
        result = CloseReviewResult(items=0, keep=0, revoke=0, auto_decided=0, scim_revocations=0)
        manual: set[str] = set()
        for app_id, decision, auto, n in rows:
            result.items += n
            result.auto_decided += n if auto else 0
            if decision == "keep":
                result.keep += n
            elif decision == "revoke":
                result.revoke += n
                if self._app(app_id).connector == "scim":
                    result.scim_revocations += n
                else:
                    manual.add(app_id)
        result.manual_apps = sorted(manual)
        event = campaign_event(
            inp.campaign_id,
            inp.workflow_id,
            "close",
            "review.closed",
            {"reason": inp.reason, **result.model_dump()},
            at=inp.at,
            actor=inp.actor,
        )
        audit.append(self._sessions, [event])
        return result
