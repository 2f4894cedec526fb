"""Access-review campaigns: the side effects AccessReviewCampaignWorkflow needs.

Accounts and decisions live in ``campaign_items``; every activity here returns counts or small
batches of ids, never the account lists, so the workflow's history stays small however big the
apps are. Classification and reviewer assignment happen here, as the accounts are stored:

- classification, in this order: ``service_account`` (catalog globs on userName/email) >
  ``terminated_but_active`` (HR status terminated) > ``orphan`` (no HR match) >
  ``active_employee``;
- reviewer: with ``reviewer: manager``, the HR manager of an active or terminated employee;
  otherwise (no manager, orphans, service accounts, ``reviewer: app_owner``) the first of the
  app's ``owners``. Nobody reviews their own account: the next candidate is taken instead.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import func, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.base import AppActivities
from activities.errors import to_application_error
from activities.notify import Mailer
from config import AppConfig, Catalog
from connectors.base import Account, ConnectorError
from connectors.registry import ConnectorRegistry
from connectors.scim import ScimConnector
from db import audit
from db.models import Campaign, CampaignItem, Person
from workflows.types import (
    AuditEventIn,
    CampaignAppPlan,
    CampaignBeginInput,
    CampaignFinishInput,
    CampaignNotifyInput,
    CampaignOutcome,
    CampaignPlan,
    CampaignSyncInput,
    CloseReviewInput,
    CloseReviewResult,
    CollectInput,
    CollectResult,
    ResolveRevocationsInput,
    RevocationBatch,
    RevocationBatchInput,
    RevocationOutcomes,
    RevocationRef,
    RevocationTaskPlan,
    RevocationTaskPlans,
    RevocationTasksInput,
)

log = structlog.get_logger("offboard.campaign")

BATCH = 500
# A listing that fails transiently part-way (429, 5xx) starts over this many times inside the
# activity; rows already stored are kept (inserts are idempotent), so only requests repeat.
LIST_RESTARTS = 5
RISK = {"terminated_but_active": 0, "orphan": 1, "service_account": 2, "active_employee": 3}
INSTRUCTION_LINES = 50


def utcnow() -> datetime:
    return datetime.now(UTC)


def app_reviewers(app: AppConfig) -> list[str]:
    """The app's owners (lower-cased); a manual app without owners falls back to its assignees."""
    owners = [o.lower() for o in app.owners]
    if not owners and app.manual is not None:
        owners = [a.lower() for a in app.manual.assignees]
    return owners


@dataclass(frozen=True)
class PersonRow:
    id: str
    email: str
    name: str
    manager_email: str | None
    status: str


class Classifier:
    """Classify accounts of one app against the HR people that could match them."""

    def __init__(
        self, catalog: Catalog, app: AppConfig, mode: str, people: Iterable[PersonRow]
    ) -> None:
        self._catalog = catalog
        self._owners = app_reviewers(app)
        self._mode = mode
        self._by_external_id = app.scim is not None and app.scim.match == "externalId"
        self._by_id: dict[str, PersonRow] = {}
        self._by_email: dict[str, PersonRow] = {}
        for person in people:
            self._by_id[person.id] = person
            key = person.email.lower()
            current = self._by_email.get(key)
            # A rehire has an old terminated record and a new active one: the active one wins.
            if current is None or (current.status != "active" and person.status == "active"):
                self._by_email[key] = person

    @staticmethod
    def identities(user_name: str, emails: Sequence[str]) -> list[str]:
        found = [e.lower() for e in emails if e]
        if "@" in user_name:
            found.append(user_name.lower())
        return list(dict.fromkeys(found))

    def person_for(
        self, user_name: str, emails: Sequence[str], external_id: str | None
    ) -> PersonRow | None:
        if self._by_external_id and external_id and external_id in self._by_id:
            return self._by_id[external_id]
        for identity in self.identities(user_name, emails):
            if identity in self._by_email:
                return self._by_email[identity]
        return None

    def fields(
        self, user_name: str, emails: Sequence[str], external_id: str | None = None
    ) -> dict[str, Any]:
        """classification, risk, person_*, trail_id and reviewer for one account."""
        person = self.person_for(user_name, emails, external_id)
        if self._catalog.is_service_account(user_name, *emails):
            classification = "service_account"
        elif person is not None and person.status == "terminated":
            classification = "terminated_but_active"
        elif person is None:
            classification = "orphan"
        else:
            classification = "active_employee"
        holder = set(self.identities(user_name, emails))
        if person is not None:
            holder.add(person.email.lower())
        candidates: list[str] = []
        if (
            self._mode == "manager"
            and person is not None
            and person.manager_email
            and classification in ("active_employee", "terminated_but_active")
        ):
            candidates.append(person.manager_email.lower())
        candidates.extend(self._owners)
        reviewer = next((c for c in candidates if c not in holder), None)
        identities = self.identities(user_name, emails)
        trail = person.id if person is not None else (identities[0] if identities else user_name)
        return {
            "classification": classification,
            "risk": RISK[classification],
            "person_id": person.id if person else None,
            "person_email": person.email if person else None,
            "person_name": person.name if person else None,
            "trail_id": trail.lower() if person is None else trail,
            "reviewer": reviewer,
        }


def people_matching(
    session: Session, identities: Iterable[str], ids: Iterable[str] = ()
) -> list[PersonRow]:
    """HR people whose email (case-insensitively) or id is among the given ones."""
    emails = sorted({i.lower() for i in identities if i})
    wanted_ids = sorted({i for i in ids if i})
    rows: list[Person] = []
    if emails:
        rows.extend(session.exec(select(Person).where(func.lower(Person.email).in_(emails))))
    if wanted_ids:
        rows.extend(session.exec(select(Person).where(col(Person.id).in_(wanted_ids))))
    return [
        PersonRow(p.id, p.email, p.name, p.manager_email, p.status)
        for p in {p.id: p for p in rows}.values()
    ]


def insert_ignoring_duplicates(session: Session, rows: list[dict[str, Any]]) -> None:
    """Bulk insert items; a row already there (a retried batch) is left alone."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    table = CampaignItem.__table__  # type: ignore[attr-defined]
    if dialect == "postgresql":
        stmt: Any = postgresql.insert(table).on_conflict_do_nothing(
            constraint="uq_campaign_item_account"
        )
    else:
        stmt = sqlite.insert(table).on_conflict_do_nothing()
    session.execute(stmt, rows)


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
    """An event on the campaign's own trail (its person id is the campaign id)."""
    return AuditEventIn(
        person_id=campaign_id,
        workflow_id=workflow_id,
        step_id=step_id,
        kind=kind,
        at=(at or utcnow()).isoformat(),
        actor=actor,
        app=app,
        detail={"campaign": campaign_id, **detail},
    )


class CampaignActivities(AppActivities):
    def __init__(
        self,
        catalog: Catalog,
        registry: ConnectorRegistry,
        session_factory: Callable[[], Session],
        public_url: str = "",
        mailer: Mailer | None = None,
    ) -> None:
        super().__init__(catalog, registry, session_factory)
        self._mailer = mailer
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

    # -- begin -------------------------------------------------------------------------------

    @activity.defn(name="campaign_begin")
    def begin(self, inp: CampaignBeginInput) -> CampaignPlan:
        """Create (or find) the campaign row and return which apps to collect, and how."""
        # Reviews cover SCIM and manual apps; IdP accounts are not collected (yet).
        wanted = inp.template.apps or [a.id for a in self._catalog.apps if a.idp_settings is None]
        apps = [self._app(a) for a in dict.fromkeys(wanted)]
        idps = [a.id for a in apps if a.idp_settings is not None]
        if idps:
            raise ApplicationError(
                f"access reviews do not cover IdP apps yet: {', '.join(idps)}",
                type="config",
                non_retryable=True,
            )

        def upsert(session: Session) -> None:
            row = session.get(Campaign, inp.campaign_id)
            if row is None:
                row = Campaign(
                    id=inp.campaign_id,
                    workflow_id=inp.workflow_id,
                    name=inp.template.name,
                    apps=[a.id for a in apps],
                    reviewer_mode=inp.template.reviewer,
                    on_no_decision=inp.template.on_no_decision,
                    due_in_days=inp.template.due_in_days,
                    trigger=inp.trigger,
                    created_by=inp.actor,
                    created_at=inp.started_at,
                    due_at=inp.due_at,
                )
            if not row.app_state:
                row.app_state = {a.id: {"status": "collecting", "accounts": 0} for a in apps}
            row.due_at = inp.due_at  # the workflow's clock decides the deadline
            session.add(row)

        event = campaign_event(
            inp.campaign_id,
            inp.workflow_id,
            "begin",
            "campaign.started",
            {
                "name": inp.template.name,
                "apps": [a.id for a in apps],
                "reviewer": inp.template.reviewer,
                "on_no_decision": inp.template.on_no_decision,
                "due_at": inp.due_at.isoformat(),
                "trigger": inp.trigger,
            },
            at=inp.started_at,
            actor=inp.actor,
        )
        audit.append(self._sessions, [event], extra=upsert)
        plans = []
        for app in apps:
            plan = CampaignAppPlan(app=app.id, name=app.name, connector=app.connector)
            if app.manual is not None:
                plan.uploaders = app.owners or app.manual.assignees
                plan.escalate_to = app.manual.escalate_to
                plan.sla_hours = app.manual.sla_hours
            plans.append(plan)
        return CampaignPlan(apps=plans)

    # -- collect -----------------------------------------------------------------------------

    @activity.defn(name="campaign_collect_scim")
    async def collect_scim(self, inp: CollectInput) -> CollectResult:
        """Page through every user of a SCIM app into campaign_items, classified, in batches."""
        app = self._app(inp.app)
        mode = await asyncio.to_thread(self._reviewer_mode, inp.campaign_id)
        try:
            connector = self._registry.scim(inp.app)
            groups = await self._group_names(connector)
            seen: set[str] = set()
            skipped = 0
            restarts = 0
            batch: list[Account] = []
            while True:
                try:
                    async for account in connector.list_users():
                        if account.id in seen:
                            continue
                        seen.add(account.id)
                        if account.active is False:  # unreadable (None) is reviewed
                            skipped += 1
                            continue
                        batch.append(account)
                        if len(batch) >= BATCH:
                            await asyncio.to_thread(
                                self._store_accounts, inp.campaign_id, app, mode, batch, groups
                            )
                            batch = []
                            activity.heartbeat(len(seen))
                    break
                except ConnectorError as exc:
                    if not exc.retryable or restarts >= LIST_RESTARTS:
                        raise
                    restarts += 1
                    activity.heartbeat(len(seen))
                    log.warning(
                        "campaign.listing_restarted", app=inp.app, error=exc.message, seen=len(seen)
                    )
                    # A 429 has paused the app's rate gate already; the next request waits.
                    if exc.kind != "rate_limited":
                        await asyncio.sleep(min(2.0**restarts, 30.0))
            await asyncio.to_thread(self._store_accounts, inp.campaign_id, app, mode, batch, groups)
        except ConnectorError as exc:
            raise to_application_error(inp.app, exc) from exc
        stored = await asyncio.to_thread(self._count, inp.campaign_id, inp.app)
        return CollectResult(app=inp.app, accounts=stored, skipped_inactive=skipped)

    async def _group_names(self, connector: ScimConnector) -> dict[str, list[str]]:
        """account id -> names of its groups, from one listing of /Groups (cheap: one pager)."""
        members: dict[str, list[str]] = {}
        start, size = 1, connector.settings.page_size
        try:
            for _ in range(connector.settings.max_pages):
                page = await connector.get_json("/Groups", {"startIndex": start, "count": size})
                groups = [g for g in page.get("Resources") or [] if isinstance(g, dict)]
                for group in groups:
                    name = str(group.get("displayName") or group.get("id"))
                    for member in group.get("members") or []:
                        if isinstance(member, dict) and member.get("value") is not None:
                            members.setdefault(str(member["value"]), []).append(name)
                start += len(groups)
                total = page.get("totalResults")
                if not groups or (isinstance(total, int) and start > total):
                    break
        except ConnectorError as exc:
            if exc.retryable:
                raise
            # No /Groups (or not allowed): review the accounts without their groups.
            log.info("campaign.groups_unavailable", app=connector.app_id, error=exc.message)
            return {}
        return members

    def _reviewer_mode(self, campaign_id: str) -> str:
        with self._sessions() as session:
            return self._campaign(session, campaign_id).reviewer_mode

    def _count(self, campaign_id: str, app: str) -> int:
        with self._sessions() as session:
            return session.exec(
                select(func.count())
                .select_from(CampaignItem)
                .where(CampaignItem.campaign_id == campaign_id, CampaignItem.app == app)
            ).one()

    def _store_accounts(
        self,
        campaign_id: str,
        app: AppConfig,
        mode: str,
        accounts: list[Account],
        groups: dict[str, list[str]],
    ) -> None:
        if not accounts:
            return

        def write() -> None:
            with self._sessions() as session:
                people = people_matching(
                    session,
                    (i for a in accounts for i in Classifier.identities(a.user_name, a.emails)),
                    (a.external_id for a in accounts if a.external_id),
                )
                classifier = Classifier(self._catalog, app, mode, people)
                rows = [
                    {
                        "campaign_id": campaign_id,
                        "app": app.id,
                        "account": a.user_name,
                        "account_id": a.id,
                        "account_email": a.emails[0] if a.emails else None,
                        "display_name": a.display_name,
                        "last_sign_in": a.last_sign_in,
                        "groups": sorted(groups.get(a.id, [])),
                        "decision": "pending",
                        "justification": "",
                        "auto_decided": False,
                        "revocation_detail": "",
                        **classifier.fields(a.user_name, a.emails, a.external_id),
                    }
                    for a in accounts
                ]
                insert_ignoring_duplicates(session, rows)
                session.commit()

        audit.with_retry(write)

    @activity.defn(name="campaign_classify")
    def classify(self, inp: CollectInput) -> CollectResult:
        """Classify the rows an owner uploaded for a manual app (stored unclassified)."""
        app = self._app(inp.app)
        with self._sessions() as session:
            mode = self._campaign(session, inp.campaign_id).reviewer_mode
        self._classify_pending(inp.campaign_id, app, mode)
        return CollectResult(app=inp.app, accounts=self._count(inp.campaign_id, inp.app))

    def _classify_pending(self, campaign_id: str, app: AppConfig, mode: str) -> None:
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
                            for i in Classifier.identities(
                                r.account, [r.account_email] if r.account_email else []
                            )
                        ),
                    )
                    classifier = Classifier(self._catalog, app, mode, people)
                    for row in rows:
                        emails = [row.account_email] if row.account_email else []
                        for key, value in classifier.fields(row.account, emails).items():
                            setattr(row, key, value)
                        session.add(row)
                    session.commit()
                    return len(rows)

            if audit.with_retry(batch) < BATCH:
                return

    # -- state mirror and notifications ------------------------------------------------------

    @activity.defn(name="campaign_sync")
    def sync(self, inp: CampaignSyncInput) -> int:
        """Mirror the workflow's status (and per-app collection) to the row the API reads."""

        def mirror(session: Session) -> None:
            row = self._campaign(session, inp.campaign_id)
            if row.state_version >= inp.version:
                return  # a newer snapshot already landed
            row.state_version = inp.version
            row.status = inp.status
            if inp.apps:
                row.app_state = {k: v.model_dump() for k, v in inp.apps.items()}
            if inp.completed_at is not None:
                row.completed_at = inp.completed_at
            session.add(row)

        return audit.append(self._sessions, inp.events, extra=mirror)

    @activity.defn(name="campaign_notify")
    def notify(self, inp: CampaignNotifyInput) -> int:
        """Tell each reviewer (or, for the escalation, each app owner) what is still pending.

        Recipients are computed here from the DB, so the workflow carries no lists. Each
        message is logged with its deep link; the campaign's trail records who was told what.
        """
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
                    for owner in app_reviewers(self._app(app_id)):
                        counts[owner] += n
            else:
                per_reviewer = session.exec(
                    select(CampaignItem.reviewer, func.count())
                    .where(*pending, col(CampaignItem.reviewer).is_not(None))
                    .group_by("reviewer")
                ).all()
                counts = Counter({str(r): n for r, n in per_reviewer})
        link = f"{self._public_url}/campaigns/{inp.campaign_id}"
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
                link=f"{link}/items?reviewer=me",
            )
            if self._mailer is not None:
                body = f"{line}\n\nReview them here: {link}/items?reviewer=me\n"
                try:
                    # A sync activity runs in a worker thread, so it may run its own loop.
                    asyncio.run(self._mailer.send([recipient], line, body))
                except ApplicationError:
                    # Never fail the campaign over a notice: the trail records who missed it.
                    failed.append(recipient)
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
                "pending_items": sum(counts.values()),
                "due_at": inp.due_at.isoformat(),
            },
            at=inp.at,
        )
        audit.append(self._sessions, [event])
        return len(counts)

    # -- close -------------------------------------------------------------------------------

    @activity.defn(name="campaign_close_review")
    def close_review(self, inp: CloseReviewInput) -> CloseReviewResult:
        """End the review: no more decisions, on_no_decision for what is pending, revocations
        marked pending. Protected accounts are never auto-revoked (they are kept)."""

        def closed(session: Session) -> None:
            row = self._campaign(session, inp.campaign_id)
            if row.closed_at is None:
                row.closed_at = inp.at
                row.closed_by = inp.actor
            if row.status in ("collecting", "reviewing"):
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
                for chunk in _chunks(protected, BATCH):
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

    # -- revoke ------------------------------------------------------------------------------

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
            person_id=row.trail_id,
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

        def write(session: Session) -> None:
            for row in rows:
                assert row.id is not None
                outcome = outcomes[row.id]
                row.revocation = outcome.status
                row.revocation_detail = outcome.detail
                row.verified_at = now if outcome.status == "verified" else None
                session.add(row)

        return audit.append(self._sessions, events, extra=write)

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
        status = "failed" if unfinished or inp.failed_apps else "completed"

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


def _chunks(values: list[int | None], size: int) -> Iterable[list[int | None]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]
