"""Human tasks remind, escalate and notify by email and chat on the SLA timeline.

Runs HumanTaskWorkflow on Temporal's time-skipping test server, with a real SMTP server
(aiosmtpd) and a real HTTP server standing in for the Slack incoming webhook.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.notify import NotifyActivities
from activities.records import RecordActivities
from db import audit
from db.migrate import upgrade
from db.models import HumanTask
from db.session import get_engine
from devstack.ports import free_port
from tests.conftest import Inbox
from workflows.human_task import HumanTaskWorkflow
from workflows.types import HumanTaskInput, TaskCompletion

pytestmark = pytest.mark.slow


@pytest.fixture
def chat() -> Iterator[tuple[list[dict[str, Any]], str]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *_: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield received, f"http://127.0.0.1:{server.server_port}/hooks/T000"
    server.shutdown()
    server.server_close()


def _task(task_id: str) -> HumanTaskInput:
    return HumanTaskInput(
        task_id=task_id,
        kind="manual_step",
        app="imanage",
        run_id="run-1",
        parent_workflow_id="offboard-E1",
        person_id="E1",
        person_email="dave.davis@example.com",
        assignees=["it-helpdesk@example.com"],
        escalate_to=["it-lead@example.com"],
        sla_hours=24,
        instructions="Disable dave.davis@example.com in iManage.",
    )


async def _run_task(
    env: WorkflowEnvironment, tmp_path: Path, notify: NotifyActivities, hours: float
) -> tuple[list[dict[str, Any]], str, datetime]:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    records = RecordActivities(lambda: Session(get_engine(url), expire_on_commit=False))
    queue = f"tq-{uuid.uuid4().hex}"
    task_id = f"imanage-{uuid.uuid4().hex[:8]}"
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[HumanTaskWorkflow],
        activities=[
            records.record_task,
            records.record_events,
            notify.notify_email,
            notify.notify_chat,
        ],
        activity_executor=ThreadPoolExecutor(4),
    ):
        start = await env.get_current_time()
        handle = await env.client.start_workflow(
            HumanTaskWorkflow.run, _task(task_id), id=f"task-{task_id}", task_queue=queue
        )
        await env.sleep(timedelta(hours=hours))
        await handle.execute_update(
            HumanTaskWorkflow.complete,
            TaskCompletion(outcome="done", note="removed", actor="it-helpdesk@example.com"),
        )
        await handle.result()
    with Session(get_engine(url)) as session:
        events = audit.person_events(session, "E1")
        row = session.get(HumanTask, task_id)
        assert row is not None and row.status == "done" and row.note == "removed"
    return events, task_id, start


def _hours_after(start: datetime, event: dict[str, Any]) -> float:
    return round((datetime.fromisoformat(event["at"]) - start).total_seconds() / 3600)


async def test_reminder_escalation_timeline_by_email_and_chat(
    time_skipping_env: WorkflowEnvironment,
    tmp_path: Path,
    smtp: tuple[Inbox, int],
    chat: tuple[list[dict[str, Any]], str],
) -> None:
    inbox, port = smtp
    posts, chat_url = chat
    notify = NotifyActivities(
        "https://offboard.example.com",
        smtp_url=f"smtp://127.0.0.1:{port}",
        smtp_from="offboard@example.com",
        chat_webhook_url=chat_url,
    )
    events, task_id, start = await _run_task(time_skipping_env, tmp_path, notify, hours=49)

    sent = [
        e for e in events if e["kind"].startswith("notify.") and e["detail"]["channel"] == "email"
    ]
    timeline = [(e["kind"], _hours_after(start, e), e["detail"]["recipients"]) for e in sent]
    helpdesk, lead = "it-helpdesk@example.com", "it-lead@example.com"
    assert timeline == [
        ("notify.assigned", 0, [helpdesk]),
        ("notify.reminder", 12, [helpdesk]),
        ("notify.escalation", 24, [helpdesk, lead]),
        ("notify.reminder", 48, [helpdesk, lead]),
    ]
    assert all(e["detail"]["outcome"] == "sent" for e in sent)
    assert [e["kind"] for e in events][-1] == "task.completed"

    link = f"https://offboard.example.com/tasks/{task_id}"
    assert [m["to"] for m in inbox.messages] == [
        [helpdesk],
        [helpdesk],
        [helpdesk, lead],
        [helpdesk, lead],
    ]
    assert inbox.messages[0]["subject"] == "Task: remove dave.davis@example.com from imanage"
    assert inbox.messages[2]["subject"].startswith("Overdue: remove dave.davis@example.com")
    assert all(link in m["body"] for m in inbox.messages)
    assert len(posts) == 4 and link in posts[0]["text"] and helpdesk in posts[0]["text"]


async def test_failing_smtp_server_never_fails_the_task(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    closed_port = free_port()
    notify = NotifyActivities("http://127.0.0.1:8000", smtp_url=f"smtp://127.0.0.1:{closed_port}")
    events, _, _ = await _run_task(time_skipping_env, tmp_path, notify, hours=1)

    kinds = [e["kind"] for e in events]
    assert "notify.assigned.failed" in kinds
    failed = next(e for e in events if e["kind"] == "notify.assigned.failed")
    assert "email to it-helpdesk@example.com failed" in failed["detail"]["error"]
    assert kinds[-1] == "task.completed"
