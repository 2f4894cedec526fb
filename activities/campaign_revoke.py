"""Revoke what an access review decided: SCIM items in batches (through the same
deprovision_scim activity as offboarding), a human task per manual app or for failed SCIM
revocations, and the campaign's final status."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select
from temporalio import activity

from activities.campaign_base import CampaignActivityBase, campaign_event
from config import RECLAIMED_STEPS
from db import audit
from db.models import Campaign, CampaignItem, utcnow
from domain.audit import AuditEventIn, Subject
from domain.status import CampaignStatus, RevocationStatus
from metrics import count_licenses_reclaimed
from workflows.campaign_messages import (
    CampaignFinishInput,
    CampaignOutcome,
    ResolveRevocationsInput,
    RevocationBatch,
    RevocationBatchInput,
    RevocationOutcomes,
    RevocationRef,
    RevocationTaskPlan,
    RevocationTaskPlans,
    RevocationTasksInput,
)

# Accounts listed in a revocation task's instructions (the rest by link).
INSTRUCTION_LINES = 50


class CampaignRevokeActivities(CampaignActivityBase):
    @activity.defn(name="campaign_next_revocations")
    def next_revocations(self, inp: RevocationBatchInput) -> RevocationBatch:
        """The next SCIM items to revoke (by id, after a cursor); each is announced on the
        person's trail before the same deprovision_scim activity as offboarding runs."""
        scim_apps = [a.id for a in self._catalog.apps if a.scim is not None]
        with self._sessions() as session:
            campaign = self._campaign(session, inp.campaign_id)
            rows = session.exec(
                select(CampaignItem)
                .where(
                    CampaignItem.campaign_id == inp.campaign_id,
                    CampaignItem.revocation == "pending",
                    col(CampaignItem.app).in_(scim_apps),
                    col(CampaignItem.id) > inp.after_item,
                )
                .order_by(col(CampaignItem.id))
                .limit(inp.limit)
            ).all()
        refs: list[RevocationRef] = []
        events: list[AuditEventIn] = []
        for row in rows:
            assert row.id is not None
            scim = self._app(row.app).scim
            assert scim is not None
            refs.append(
                RevocationRef(
                    item_id=row.id,
                    app=row.app,
                    account_id=row.account_id,
                    account=row.account,
                    person_id=row.trail_id,
                    mode="delete" if scim.deprovision == "delete" else "deactivate",
                )
            )
            events.append(self._item_event(campaign, row, inp.workflow_id, "requested"))
        audit.append(self._sessions, events)
        return RevocationBatch(items=refs)

    @staticmethod
    def _item_event(
        campaign: Campaign,
        row: CampaignItem,
        workflow_id: str,
        what: str,
        extra: dict[str, Any] | None = None,
        actor: str = "offboard",
    ) -> AuditEventIn:
        return AuditEventIn(
            subject=Subject.person(row.trail_id),
            workflow_id=workflow_id,
            step_id=f"{campaign.id}:item-{row.id}",
            kind=f"review.revocation_{what}",
            at=utcnow().isoformat(),
            actor=actor,
            app=row.app,
            detail={
                "campaign": campaign.id,
                "campaign_name": campaign.name,
                "item": row.id,
                "account": row.account,
                "account_id": row.account_id,
                "classification": row.classification,
                "decided_by": row.decided_by,
                "justification": row.justification,
                "auto_decided": row.auto_decided,
                **(extra or {}),
            },
        )

    @activity.defn(name="campaign_record_revocations")
    def record_revocations(self, inp: RevocationOutcomes) -> int:
        outcomes = {o.item_id: o for o in inp.outcomes}
        now = utcnow()
        with self._sessions() as session:
            campaign = self._campaign(session, inp.campaign_id)
            rows = session.exec(
                select(CampaignItem).where(
                    CampaignItem.campaign_id == inp.campaign_id,
                    col(CampaignItem.id).in_(list(outcomes)),
                )
            ).all()
        events = [
            self._item_event(
                campaign, r, inp.workflow_id, "failed", {"error": outcomes[r.id].detail}
            )
            for r in rows
            if r.id is not None and outcomes[r.id].status == "failed"
        ]

        # Read before the write: a retry after the commit finds them reclaimed already.
        reclaimed = [
            r.app for r in rows if r.id is not None and _reclaims(r, outcomes[r.id].status)
        ]

        def write(session: Session) -> None:
            for row in rows:
                assert row.id is not None
                outcome = outcomes[row.id]
                row.revocation = outcome.status
                row.revocation_detail = outcome.detail
                row.verified_at = now if outcome.status == "verified" else None
                session.add(row)

        written = audit.append(self._sessions, events, extra=write)
        self._count_licenses(reclaimed)
        return written

    def _count_licenses(self, apps: list[str]) -> None:
        """The licence metric, one seat per revocation that took (after its commit)."""
        for app in apps:
            seat = self._catalog.licenses_reclaimed([(app, "verified")])
            count_licenses_reclaimed("campaign", app, seat.monthly_cost)

    @activity.defn(name="campaign_revocation_tasks")
    def revocation_tasks(self, inp: RevocationTasksInput) -> RevocationTaskPlans:
        """Per app, a human task: manual apps' revoke items, or SCIM revocations that failed."""
        status = "pending" if inp.kind == "manual_step" else "failed"
        with self._sessions() as session:
            campaign = self._campaign(session, inp.campaign_id)
            rows = session.exec(
                select(CampaignItem)
                .where(
                    CampaignItem.campaign_id == inp.campaign_id,
                    CampaignItem.revocation == status,
                )
                .order_by(col(CampaignItem.app), col(CampaignItem.account))
            ).all()
        per_app: dict[str, list[CampaignItem]] = {}
        for row in rows:
            if inp.app is not None and row.app != inp.app:
                continue
            # Pending manual items get the app's task; failed ones (any app) an exception task.
            if inp.kind == "manual_step" and self._app(row.app).connector != "manual":
                continue
            per_app.setdefault(row.app, []).append(row)
        items_url = f"{self._public_url}/api/v1/campaigns/{campaign.id}/items"
        plans = []
        for app_id, items in per_app.items():
            app = self._app(app_id)
            lines = [
                f"- {r.account}" + (f" ({r.person_email})" if r.person_email else "")
                for r in items[:INSTRUCTION_LINES]
            ]
            if len(items) > INSTRUCTION_LINES:
                lines.append(f"- ... and {len(items) - INSTRUCTION_LINES} more")
            listing = "\n".join(lines)
            if inp.kind == "manual_step":
                assert app.manual is not None
                text = (
                    f"Access review '{campaign.name}' decided to revoke {len(items)} "
                    f"account(s) in {app.name}. Remove them, then complete this task with a "
                    f"note:\n{listing}\nAll of them: {items_url}?app={app_id}&decision=revoke"
                )
                plan = RevocationTaskPlan(
                    app=app_id,
                    kind="manual_step",
                    count=len(items),
                    assignees=app.manual.assignees,
                    escalate_to=app.manual.escalate_to,
                    sla_hours=app.manual.sla_hours,
                    instructions=text,
                )
            else:
                text = (
                    f"Access review '{campaign.name}': {len(items)} revocation(s) in {app.name} "
                    f"failed (first error: {items[0].revocation_detail}). Revoke them by hand, "
                    f"then complete this task with a note; 'could not complete' leaves them "
                    f"failed:\n{listing}"
                )
                plan = RevocationTaskPlan(
                    app=app_id,
                    kind="exception",
                    count=len(items),
                    assignees=app.owners or (app.manual.assignees if app.manual else []),
                    instructions=text,
                )
            plans.append(plan)
        return RevocationTaskPlans(tasks=plans)

    @activity.defn(name="campaign_resolve_revocations")
    def resolve_revocations(self, inp: ResolveRevocationsInput) -> int:
        """A revocation task was completed: its items are done, or failed if it could not be."""
        status = "pending" if inp.kind == "manual_step" else "failed"
        done = inp.completion.outcome != "could_not_complete"
        detail = f"{inp.completion.outcome} by {inp.completion.actor}: {inp.completion.note}"
        now = utcnow()
        with self._sessions() as session:
            campaign = self._campaign(session, inp.campaign_id)
            rows = session.exec(
                select(CampaignItem).where(
                    CampaignItem.campaign_id == inp.campaign_id,
                    CampaignItem.app == inp.app,
                    CampaignItem.revocation == status,
                )
            ).all()
        events = [
            self._item_event(
                campaign,
                r,
                inp.workflow_id,
                "done" if done else "failed",
                {"task_id": inp.task_id, "outcome": inp.completion.outcome, "note": detail},
                actor=inp.completion.actor,
            )
            for r in rows
        ]

        def write(session: Session) -> None:
            for row in rows:
                row.revocation = "done" if done else "failed"
                row.revocation_detail = detail
                row.verified_at = now if done else None
                session.add(row)

        audit.append(self._sessions, events, extra=write)
        self._count_licenses([r.app for r in rows if done])
        return len(rows)

    @activity.defn(name="campaign_finish")
    def finish(self, inp: CampaignFinishInput) -> CampaignOutcome:
        """completed only when every revocation is verified or done (and every app collected)."""
        with self._sessions() as session:
            rows = session.exec(
                select(CampaignItem.revocation, func.count())
                .where(CampaignItem.campaign_id == inp.campaign_id)
                .group_by("revocation")
            ).all()
        counts = {str(r or "none"): n for r, n in rows}
        unfinished = counts.get("failed", 0) + counts.get("pending", 0)
        status: CampaignStatus = "failed" if unfinished or inp.failed_apps else "completed"

        def mirror(session: Session) -> None:
            row = self._campaign(session, inp.campaign_id)
            row.status = status
            row.completed_at = inp.at
            row.state_version += 1
            session.add(row)

        event = campaign_event(
            inp.campaign_id,
            inp.workflow_id,
            "finish",
            f"campaign.{status}",
            {"revocations": counts, "apps_not_collected": inp.failed_apps},
            at=inp.at,
        )
        audit.append(self._sessions, [event], extra=mirror)
        return CampaignOutcome(campaign_id=inp.campaign_id, status=status, counts=counts)


def _reclaims(row: CampaignItem, status: RevocationStatus) -> bool:
    """Whether this outcome frees the item's seat now (it had not been freed before)."""
    return status in RECLAIMED_STEPS and row.revocation not in RECLAIMED_STEPS
