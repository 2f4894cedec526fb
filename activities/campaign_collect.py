"""Access-review collection: create the campaign row, list each SCIM app's accounts into
``campaign_items`` (classified as they are stored), classify a manual app's uploaded rows, and
mirror the workflow's status for the API."""

from __future__ import annotations

import asyncio

import structlog
from sqlmodel import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.campaign_base import (
    BATCH,
    CampaignActivityBase,
    campaign_event,
    classifier_for,
)
from activities.errors import to_application_error
from config import AppConfig
from connectors.base import Account, ConnectorError
from connectors.scim import ScimConnector
from db import audit
from db.campaign_items import count_items, insert_ignoring_duplicates, people_matching
from db.models import Campaign
from domain.review import identities
from domain.status import ReviewerMode
from workflows.campaign_messages import (
    CampaignAppPlan,
    CampaignBeginInput,
    CampaignPlan,
    CampaignSyncInput,
    CollectInput,
    CollectResult,
)

log = structlog.get_logger("offboard.campaign")

# A listing that fails transiently part-way (429, 5xx) starts over this many times inside the
# activity; rows already stored are kept (inserts are idempotent), so only requests repeat.
LIST_RESTARTS = 5


class CampaignCollectActivities(CampaignActivityBase):
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
                # A fresh pager per try: its evidence is that of the listing that completed.
                pager = connector.pager("/Users")
                try:
                    async for account in connector.list_users(pager):
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
        listing = pager.listing
        result = CollectResult(
            app=inp.app,
            accounts=stored,
            skipped_inactive=skipped,
            listed=listing.collected,
            reported=listing.reported,
            query=listing.query,
        )
        return result

    async def _group_names(self, connector: ScimConnector) -> dict[str, list[str]]:
        """account id -> names of its groups, from one listing of /Groups (the same pager as
        every listing: an early end is a loud error, not a shorter list)."""
        members: dict[str, list[str]] = {}
        try:
            async for group in connector.pager("/Groups"):
                name = str(group.get("displayName") or group.get("id"))
                for member in group.get("members") or []:
                    if isinstance(member, dict) and member.get("value") is not None:
                        members.setdefault(str(member["value"]), []).append(name)
        except ConnectorError as exc:
            if exc.retryable:
                raise
            # No /Groups (or not allowed): review the accounts without their groups.
            log.info("campaign.groups_unavailable", app=connector.app_id, error=exc.message)
            return {}
        return members

    def _count(self, campaign_id: str, app: str) -> int:
        with self._sessions() as session:
            return count_items(session, campaign_id, app)

    def _store_accounts(
        self,
        campaign_id: str,
        app: AppConfig,
        mode: ReviewerMode,
        accounts: list[Account],
        groups: dict[str, list[str]],
    ) -> None:
        if not accounts:
            return

        def write() -> None:
            with self._sessions() as session:
                people = people_matching(
                    session,
                    (i for a in accounts for i in identities(a.user_name, a.emails)),
                    (a.external_id for a in accounts if a.external_id),
                )
                classifier = classifier_for(self._catalog, app, mode, people)
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
        self._classify_pending(inp.campaign_id, app, self._reviewer_mode(inp.campaign_id))
        return CollectResult(app=inp.app, accounts=self._count(inp.campaign_id, inp.app))

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
                # Keep what collection recorded beside the workflow's state (the population).
                old = row.app_state or {}
                row.app_state = {
                    k: {**old.get(k, {}), **v.model_dump()} for k, v in inp.apps.items()
                }
            if inp.completed_at is not None:
                row.completed_at = inp.completed_at
            session.add(row)

        return audit.append(self._sessions, inp.events, extra=mirror)
