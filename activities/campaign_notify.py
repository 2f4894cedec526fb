"""Access-review notices: tell each reviewer (or, escalated, each app owner) what is pending."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import structlog
from sqlalchemy import func
from sqlmodel import col, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.campaign_base import CampaignActivityBase, campaign_event
from db import audit
from db.models import CampaignItem
from db.reviewer_moves import move_departed
from workflows.campaign_messages import CampaignNotifyInput, CampaignRef

log = structlog.get_logger("offboard.campaign")


class CampaignNotifyActivities(CampaignActivityBase):
    @activity.defn(name="campaign_move_departed")
    def move_departed(self, inp: CampaignRef) -> int:
        """Move the pending items of reviewers who have left (terminated in HR, or with an
        offboarding run) to their apps' fallback owners, audited; returns how many moved."""
        return move_departed(self._sessions, inp.campaign_id, self._catalog.reviewers_of)

    @activity.defn(name="campaign_notify")
    def notify(self, inp: CampaignNotifyInput) -> int:
        """Tell each reviewer (or, for the escalation, each app owner) what is still pending.

        Recipients are computed here from the DB, so the workflow carries no lists. Each
        message is logged with its deep link; the campaign's trail records who was told what.
        """
        # A reviewer who left since the last check hands their pending items on first.
        self.move_departed(CampaignRef(campaign_id=inp.campaign_id, workflow_id=inp.workflow_id))
        with self._sessions() as session:
            campaign = self._campaign(session, inp.campaign_id)
            pending = (
                CampaignItem.campaign_id == inp.campaign_id,
                CampaignItem.decision == "pending",
                col(CampaignItem.classification).is_not(None),
            )
            if inp.kind == "review_escalation":
                per_app = session.exec(
                    select(CampaignItem.app, func.count()).where(*pending).group_by("app")
                ).all()
                counts: Counter[str] = Counter()
                for app_id, n in per_app:
                    for owner in self._app(app_id).reviewers:
                        counts[owner] += n
            else:
                per_reviewer = session.exec(
                    select(CampaignItem.reviewer, func.count())
                    .where(*pending, col(CampaignItem.reviewer).is_not(None))
                    .group_by("reviewer")
                ).all()
                counts = Counter({str(r): n for r, n in per_reviewer})
        # The reviewer's own items in this campaign; signing in from it returns there.
        link = f"{self._public_url}/campaigns/{inp.campaign_id}/review"
        subject = {
            "review_assigned": "Access review {name}: {n} accounts to review by {due}",
            "review_reminder": "Reminder: access review {name}: {n} accounts still to review, "
            "due {due}",
            "review_escalation": "Escalation: access review {name}: {n} accounts in your apps "
            "have no decision; due {due}, then on_no_decision={policy} applies",
        }[inp.kind]
        due = inp.due_at.strftime("%Y-%m-%d %H:%M UTC")
        failed: list[str] = []
        for recipient, n in sorted(counts.items()):
            line = subject.format(name=campaign.name, n=n, due=due, policy=campaign.on_no_decision)
            log.info(
                "campaign.notify",
                kind=inp.kind,
                to=recipient,
                subject=line,
                link=link,
            )
            if self._mailer is not None:
                body = f"{line}\n\nReview them here: {link}\n"
                try:
                    # A sync activity runs in a worker thread, so it may run its own loop.
                    asyncio.run(self._mailer.send([recipient], line, body))
                except ApplicationError:
                    # Never fail the campaign over a notice: the trail records who missed it.
                    failed.append(recipient)
        total = subject.format(
            name=campaign.name, n=sum(counts.values()), due=due, policy=campaign.on_no_decision
        )
        chat = self._post_chat(total, link, sorted(counts)) if counts else "skipped"
        shown = dict(sorted(counts.items())[:200])
        event = campaign_event(
            inp.campaign_id,
            inp.workflow_id,
            inp.step_id,
            f"notify.{inp.kind}",
            {
                "recipients": shown,
                "recipient_count": len(counts),
                "email_failed": failed[:200],
                "chat": chat,
                "pending_items": sum(counts.values()),
                "due_at": inp.due_at.isoformat(),
            },
            at=inp.at,
        )
        audit.append(self._sessions, [event])
        return len(counts)

    def _post_chat(self, line: str, link: str, recipients: list[str]) -> str:
        """One Slack-compatible webhook message for the notice, naming who is asked and linking
        to the review page (each reader sees their own items there). Returns "sent", "failed"
        (audited, never fatal) or "skipped" (no webhook configured)."""
        if self._chat_url is None:
            return "skipped"
        named = ", ".join(recipients[:20]) + (" and others" if len(recipients) > 20 else "")
        payload = {"text": f"*{line}*\nFor: {named}\n<{link}|Open your review>"}
        try:
            httpx.post(self._chat_url, json=payload, timeout=10).raise_for_status()
        except httpx.HTTPError as exc:
            log.warning("campaign.chat_failed", error=type(exc).__name__)
            return "failed"
        return "sent"

    # -- close -------------------------------------------------------------------------------
