"""Tell people about their tasks: SMTP and a Slack-compatible incoming webhook, both optional.

Each channel is its own activity so a failing one is retried alone and never re-sends the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib
import httpx
import structlog
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from temporalio import activity
from temporalio.exceptions import ApplicationError

from workflows.types import NotifyInput

log = structlog.get_logger()
_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    undefined=StrictUndefined,
    autoescape=False,  # noqa: S701 (plain-text messages, never rendered as HTML)
    keep_trailing_newline=True,
)


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    username: str | None
    password: str | None
    use_tls: bool
    start_tls: bool


def parse_smtp_url(url: str) -> SmtpTarget:
    """``smtp://[user:pass@]host:port`` (``smtps://`` implicit TLS, ``?starttls=1``)."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("OFFBOARD_SMTP_URL must look like smtp://[user:pass@]host:port")
    query = parse_qs(parts.query)
    implicit = parts.scheme == "smtps"
    return SmtpTarget(
        host=parts.hostname,
        port=parts.port or (465 if implicit else 25),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        use_tls=implicit,
        start_tls=query.get("starttls", ["0"])[0] in ("1", "true", "yes"),
    )


class Mailer:
    """Sends plain-text email through the configured SMTP server."""

    def __init__(self, smtp_url: str, sender: str) -> None:
        self.target = parse_smtp_url(smtp_url)
        self.sender = sender

    async def send(self, recipients: list[str], subject: str, body: str) -> None:
        email = EmailMessage()
        email["From"] = self.sender
        email["To"] = ", ".join(recipients)
        email["Subject"] = subject
        email.set_content(body)
        target = self.target
        try:
            await aiosmtplib.send(
                email,
                hostname=target.host,
                port=target.port,
                username=target.username,
                password=target.password,
                use_tls=target.use_tls,
                start_tls=target.start_tls,
                timeout=15,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise ApplicationError(
                f"email to {', '.join(recipients)} failed: {type(exc).__name__}: {exc}",
                type="notify",
            ) from exc


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str
    link: str


class NotifyActivities:
    def __init__(
        self,
        public_url: str,
        smtp_url: str | None = None,
        smtp_from: str = "offboard@localhost",
        chat_webhook_url: str | None = None,
    ) -> None:
        self._public_url = public_url.rstrip("/")
        self.mailer = Mailer(smtp_url, smtp_from) if smtp_url else None
        self._chat_url = chat_webhook_url

    def render(self, msg: NotifyInput) -> Rendered:
        link = f"{self._public_url}/tasks/{msg.task_id}"
        due = msg.due_at.strftime("%Y-%m-%d %H:%M UTC") if msg.due_at else "-"
        who, app = msg.person_email, msg.app
        restore = msg.task_kind == "restore"
        text = _templates.get_template(f"{msg.kind}.txt").render(
            work=f"restore {who}'s access to {app}" if restore else f"remove {who} from {app}",
            work_long=f"restore {who}'s access to {app}"
            if restore
            else f"remove {who}'s access to {app}",
            app=msg.app,
            person_email=msg.person_email,
            instructions=msg.instructions,
            due=due,
            link=link,
        )
        subject, _, body = text.partition("\n")
        return Rendered(subject=subject.strip(), body=body.lstrip("\n"), link=link)

    @activity.defn(name="notify_email")
    async def notify_email(self, msg: NotifyInput) -> str:
        rendered = self.render(msg)
        if self.mailer is None or not msg.recipients:
            log.info("notify.email.skipped", kind=msg.kind, subject=rendered.subject)
            return "skipped"
        await self.mailer.send(msg.recipients, rendered.subject, rendered.body)
        log.info("notify.email.sent", kind=msg.kind, to=msg.recipients, subject=rendered.subject)
        return "sent"

    @activity.defn(name="notify_chat")
    async def notify_chat(self, msg: NotifyInput) -> str:
        rendered = self.render(msg)
        if self._chat_url is None:
            return "skipped"
        mentions = ", ".join(msg.recipients)
        payload = {
            "text": f"*{rendered.subject}*\nFor: {mentions}\n<{rendered.link}|Open the task>",
        }
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                response = await client.post(self._chat_url, json=payload)
                response.raise_for_status()
        except httpx.HTTPError as exc:
            raise ApplicationError(
                f"chat webhook failed: {type(exc).__name__}", type="notify"
            ) from exc
        return "sent"
