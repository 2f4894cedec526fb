"""The right reviewer, always: the manager only when they are an active employee known to HR
and not the holder, else the app's first owner with the reason on the item; a reviewer who
leaves mid-campaign hands their pending items to the fallback (audited); an admin reassigns
with a reason (audited); reviewers with no items get no email.

Service level, on a real migrated SQLite DB and a real SMTP server (aiosmtpd)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from activities.campaign_collect import CampaignCollectActivities
from activities.campaign_notify import CampaignNotifyActivities
from activities.notify import Mailer
from config import Settings, parse_catalog
from connectors.base import Account
from connectors.registry import ConnectorRegistry
from db import audit
from db.migrate import upgrade
from db.models import Campaign, CampaignItem, OffboardingRun, Person, utcnow
from db.reviewer_moves import departed
from db.session import session_factory
from domain.audit import Subject
from services.authz import Principal
from services.errors import Conflict, Forbidden, Invalid
from services.review_assignments import reassign
from tests.conftest import Inbox
from tests.test_task_reminders import chat  # noqa: F401 (fixture)
from workflows.campaign_messages import CampaignNotifyInput

CATALOG = parse_catalog(
    """
apps:
  - id: app
    name: App
    owners: [owner@example.com, second@example.com]
    connector: scim
    scim: {base_url: "http://127.0.0.1:9/v2", token_env: T}
"""
)
PEOPLE = [
    # (id, email, manager, status)
    ("E1", "ann@example.com", "gone.boss@example.com", "active"),  # terminated manager
    ("E2", "ben@example.com", "nobody@example.com", "active"),  # manager unknown to HR
    ("E3", "cat@example.com", "cat@example.com", "active"),  # her own manager
    ("E4", "dan@example.com", "boss@example.com", "active"),  # a good manager...
    ("E5", "eve@example.com", "boss@example.com", "terminated"),  # ...also of a leaver
    ("E6", "fay@example.com", None, "active"),  # no manager
    ("M1", "gone.boss@example.com", "boss@example.com", "terminated"),
    ("M2", "boss@example.com", None, "active"),
    ("O1", "owner@example.com", None, "active"),
]
ACCOUNTS = ["ann", "ben", "cat", "dan", "eve", "fay", "ghost", "owner"]


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'offboard.db'}"
    upgrade(url)
    sessions = session_factory(url)
    now = utcnow()
    with sessions() as session:
        for pid, email, manager, status in PEOPLE:
            session.add(Person(id=pid, email=email, name=pid, manager_email=manager, status=status))
        session.add(
            Campaign(
                id="c1",
                workflow_id="c1",
                name="Q4",
                apps=["app"],
                status="reviewing",
                due_at=now + timedelta(days=14),
            )
        )
        session.commit()
    accounts = [
        Account(id=f"id-{n}", user_name=f"{n}@example.com", emails=[f"{n}@example.com"])
        for n in ACCOUNTS
    ]
    collect = CampaignCollectActivities(CATALOG, ConnectorRegistry(CATALOG, {}), sessions)
    collect._store_accounts("c1", CATALOG.app("app"), "manager", accounts, {})
    yield url


def items(url: str) -> dict[str, CampaignItem]:
    with session_factory(url)() as session:
        rows = session.exec(select(CampaignItem).where(col(CampaignItem.campaign_id) == "c1"))
        return {r.account.split("@")[0]: r for r in rows}


def reviewers(url: str) -> dict[str, tuple[str | None, str]]:
    return {k: (v.reviewer, v.reviewer_reason) for k, v in items(url).items()}


def campaign_events(url: str, kind: str) -> list[dict]:
    with session_factory(url)() as session:
        trail = audit.trail(session, Subject.campaign("c1"))
    return [e for e in trail if e["kind"] == kind]


def test_the_manager_reviews_only_when_active_known_and_not_the_holder(url: str) -> None:
    got = reviewers(url)
    assert got["ann"] == (
        "owner@example.com",
        "app owner: the manager gone.boss@example.com is terminated in HR",
    )
    assert got["ben"] == (
        "owner@example.com",
        "app owner: the manager nobody@example.com is not in the HR directory",
    )
    assert got["cat"] == (
        "owner@example.com",
        "app owner: the manager cat@example.com is the account holder",
    )
    assert got["dan"] == ("boss@example.com", "manager")
    assert got["eve"] == ("boss@example.com", "manager")
    assert got["fay"] == ("owner@example.com", "app owner: no manager in HR")
    assert got["ghost"] == ("owner@example.com", "app owner: no HR match for the account")
    # The first owner holds an account: the second owner reviews it, and the item says so.
    assert got["owner"] == (
        "second@example.com",
        "app owner: no manager in HR (the first owner holds the account)",
    )


def reminder(step_id: str) -> CampaignNotifyInput:
    return CampaignNotifyInput(
        campaign_id="c1",
        workflow_id="c1",
        kind="review_reminder",
        step_id=step_id,
        at=utcnow(),
        due_at=utcnow() + timedelta(days=7),
    )


def test_reviewer_offboarded_mid_campaign_hands_over_and_only_reviewers_get_mail(
    url: str,
    smtp: tuple[Inbox, int],
    chat: tuple[list[dict[str, Any]], str],  # noqa: F811 (the fixture)
) -> None:
    inbox, port = smtp
    posted, chat_url = chat
    sessions = session_factory(url)
    # boss decides one item, then is offboarded (a run, HR not yet updated).
    with sessions() as session:
        dan = session.exec(select(CampaignItem).where(CampaignItem.account == "dan@example.com"))
        row = dan.one()
        row.decision, row.decided_by = "keep", "boss@example.com"
        session.add(row)
        session.add(
            OffboardingRun(
                run_id="r1",
                workflow_id="offboard-M2",
                person_id="M2",
                email="Boss@Example.com",
                status="running",
            )
        )
        session.commit()
    mailer = Mailer(f"smtp://127.0.0.1:{port}", "offboard@example.com")
    notify = CampaignNotifyActivities(
        CATALOG,
        ConnectorRegistry(CATALOG, {}),
        sessions,
        "https://offboard.example.com",
        mailer,
        chat_url,
    )
    told = notify.notify(reminder("notify-reminder-50pct"))
    got = reviewers(url)
    # The pending item moved to the first owner, with the reason; the decided one stayed.
    assert got["eve"] == (
        "owner@example.com",
        "app owner: the reviewer boss@example.com has left (terminated or offboarded)",
    )
    assert got["dan"] == ("boss@example.com", "manager")
    [moved] = campaign_events(url, "review.reviewer_moved")
    assert moved["actor"] == "offboard"
    assert moved["detail"]["from"] == "boss@example.com"
    assert moved["detail"]["to"] == "owner@example.com"
    assert moved["detail"]["items"] == 1 and moved["detail"]["item_ids"] == [items(url)["eve"].id]
    # Only reviewers with pending items are told: boss (now none) and nobody else gets mail.
    assert told == 2
    assert sorted(m["to"][0] for m in inbox.messages) == [
        "owner@example.com",
        "second@example.com",
    ]
    for message in inbox.messages:
        assert "https://offboard.example.com/campaigns/c1/review" in message["body"]
    # One chat message for the notice, naming who is asked, with the same link.
    [message] = posted
    assert "For: owner@example.com, second@example.com" in message["text"]
    assert "<https://offboard.example.com/campaigns/c1/review|Open your review>" in message["text"]
    [notice] = campaign_events(url, "notify.review_reminder")
    assert notice["detail"]["chat"] == "sent"
    # A second notice moves nothing more and writes no second move event.
    notify.notify(reminder("notify-reminder-1d"))
    assert len(campaign_events(url, "review.reviewer_moved")) == 1


def test_admin_reassigns_with_a_reason_audited(url: str) -> None:
    settings = Settings(database_url=url)
    admin = Principal("root", "admin", "admin@example.com")
    rows = items(url)
    ids = [rows["ann"].id, rows["ghost"].id]
    assert all(i is not None for i in ids)
    with session_factory(url)() as session:
        with pytest.raises(Invalid, match="reason"):
            reassign(settings, session, admin, "c1", ids, "helper@example.com", "  ")
        with pytest.raises(Invalid, match="holds item"):
            reassign(settings, session, admin, "c1", ids, "Ann@example.com", "cover")
        reviewer = Principal("r", "reviewer", "owner@example.com")
        with pytest.raises(Forbidden):
            reassign(settings, session, reviewer, "c1", ids, "helper@example.com", "cover")
        done = reassign(settings, session, admin, "c1", ids, "Helper@Example.com", "owner on leave")
    assert [i.reviewer for i in done] == ["helper@example.com"] * 2
    reason = "reassigned by admin@example.com: owner on leave"
    assert {i.reviewer_reason for i in done} == {reason}
    [event] = campaign_events(url, "review.reassigned")
    assert event["actor"] == "admin@example.com"
    assert event["detail"]["from"] == "owner@example.com"
    assert event["detail"]["to"] == "helper@example.com"
    assert event["detail"]["reason"] == reason and event["detail"]["items"] == 2
    # A decided item is not reassigned; nor anything once the review is closed.
    with session_factory(url)() as session:
        row = session.get(CampaignItem, ids[0])
        assert row is not None
        row.decision = "revoke"
        session.add(row)
        session.commit()
        with pytest.raises(Conflict, match="decided"):
            reassign(settings, session, admin, "c1", ids, "x@example.com", "again")
        campaign = session.get(Campaign, "c1")
        assert campaign is not None
        campaign.status = "revoking"
        session.add(campaign)
        session.commit()
        with pytest.raises(Conflict):
            reassign(settings, session, admin, "c1", ids[1:], "x@example.com", "again")


def test_who_has_left(url: str) -> None:
    runs = [
        ("r1", "owner@example.com", "completed"),  # offboarded once, active in HR again
        ("r2", "second@example.com", "cancelled"),
        ("r3", "contractor@example.com", "completed"),  # not in HR at all
        ("r4", "ann@example.com", "scheduled"),  # leaving: HR still says active
    ]
    with session_factory(url)() as session:
        for run_id, email, status in runs:
            session.add(
                OffboardingRun(
                    run_id=run_id, workflow_id=run_id, person_id=email, email=email, status=status
                )
            )
        session.commit()
        asked = [
            "OWNER@example.com",
            "second@example.com",
            "contractor@example.com",
            "ann@example.com",
            "gone.boss@example.com",
            "boss@example.com",
            "nobody@example.com",
        ]
        assert departed(session, asked) == {
            "contractor@example.com",
            "ann@example.com",
            "gone.boss@example.com",
        }
