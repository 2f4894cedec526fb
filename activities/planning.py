"""Plan an offboarding: which account in which app, and what to do with it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment
from sqlmodel import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.base import AppActivities
from activities.errors import to_application_error
from config import AppConfig, Catalog
from connectors.base import ConnectorError
from connectors.registry import ConnectorRegistry
from db.models import Person
from workflows.types import AppPlan, ManualPlan, Plan, PlanBatch, PlanInput

# A plan keeps asking an app that is down or pausing us this many times (about five minutes
# of the workflow's backoff), then the app's step becomes an exception task with a retry.
PLAN_ATTEMPTS = 8
# How long ``plan_apps`` waits for one app before leaving it to an activity of its own.
TOGETHER_SECONDS = 10.0

_templates = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
# The plan of an account the app already shows inactive and in no group: nothing to write.
NOTHING_TO_DO = "nothing to do: already inactive and in no groups"


def render_instructions(template: str, person_id: str, email: str, name: str, **more: str) -> str:
    """A task's instructions from the catalog's Jinja template (sandboxed, strict)."""
    return _templates.from_string(template).render(
        person_id=person_id, email=email, name=name, **more
    )


class PlanActivities(AppActivities):
    def _leaver(self, person_id: str) -> tuple[str, str | None]:
        """The leaver's name and manager's email, as HR knows them ("" / None if unknown)."""
        with self._sessions() as session:
            person = session.get(Person, person_id)
            return (person.name, person.manager_email) if person else ("", None)

    def __init__(
        self,
        catalog: Catalog,
        registry: ConnectorRegistry,
        session_factory: Callable[[], Session],
        task_queue: str = "offboard",
    ) -> None:
        super().__init__(catalog, registry, session_factory)
        self._task_queue = task_queue

    @activity.defn(name="catalog_apps")
    def catalog_apps(self, inp: PlanInput) -> list[AppPlan]:
        """The apps a run covers (``inp.apps``, or the whole catalog), as plans to fill in.

        Raises ApplicationError (non-retryable) naming apps not in the catalog.
        """
        unknown = self._catalog.unknown_apps(inp.apps)
        if unknown:
            raise ApplicationError(
                f"unknown app(s): {', '.join(unknown)}", type="config", non_retryable=True
            )
        return [self._base(a) for a in self._catalog.apps if inp.apps is None or a.id in inp.apps]

    @activity.defn(name="plan_offboarding")
    async def plan_offboarding(self, inp: PlanInput) -> Plan:
        """Every app's plan in one activity (runs started before per-app planning)."""
        unknown = self._catalog.unknown_apps(inp.apps)
        if unknown:
            raise ApplicationError(
                f"unknown app(s): {', '.join(unknown)}", type="config", non_retryable=True
            )
        apps = [a.id for a in self._catalog.apps if inp.apps is None or a.id in inp.apps]
        plans = await asyncio.gather(
            *(self.plan_app(inp.model_copy(update={"apps": [app]})) for app in apps)
        )
        return Plan(apps=list(plans))

    @activity.defn(name="plan_app")
    async def plan_app(self, inp: PlanInput) -> AppPlan:
        """One app's plan (``inp.apps`` holds exactly its id): which account, what to do.

        Per app, so one app's pause (a long Retry-After) or outage never delays planning for
        the others. Raises ApplicationError (retryable) when the app cannot be asked now.
        """
        [app] = self._apps(inp)
        return await self._plan_one(app, inp, *await self._leaver_for([app], inp))

    @activity.defn(name="plan_apps")
    async def plan_apps(self, inp: PlanInput) -> PlanBatch:
        """Several apps' plans in one activity (``inp.apps``: apps without a task queue of
        their own), so a run over many apps costs one activity, not one per app.

        An app that cannot be asked at once (a 429, an outage, no answer within
        TOGETHER_SECONDS) is left in ``unplanned``, to be planned by its own ``plan_app`` with
        its retries and budget: no app holds up the others longer than that. Raises
        ApplicationError (non-retryable) naming an app not in the catalog.
        """
        apps = self._apps(inp)
        name, manager = await self._leaver_for(apps, inp)

        async def one(app: AppConfig) -> AppPlan | None:
            try:
                plan = self._plan_one(app, inp, name, manager)
                return await asyncio.wait_for(plan, TOGETHER_SECONDS)
            except (ApplicationError, TimeoutError):
                return None

        plans = await asyncio.gather(*(one(app) for app in apps))
        return PlanBatch(
            apps=[p for p in plans if p is not None],
            unplanned=[app.id for app, p in zip(apps, plans, strict=True) if p is None],
        )

    def _apps(self, inp: PlanInput) -> list[AppConfig]:
        try:
            return [self._catalog.app(app_id) for app_id in inp.apps or [""]]
        except KeyError as exc:
            raise ApplicationError(
                f"unknown app: {exc.args[0]}", type="config", non_retryable=True
            ) from None

    async def _leaver_for(self, apps: list[AppConfig], inp: PlanInput) -> tuple[str, str | None]:
        """The leaver's name and manager when some app's task instructions need them: no DB
        read for the rest (one per app per person under a burst)."""
        if any(app.manual is not None or app.handover is not None for app in apps):
            return await asyncio.to_thread(self._leaver, inp.person_id)
        return "", None

    async def _plan_one(
        self, app: AppConfig, inp: PlanInput, name: str, manager: str | None
    ) -> AppPlan:
        plan = await self._plan_app(app, inp, name)
        if app.handover is None or plan.action == "skip":
            return plan
        return plan.model_copy(update={"handover": self._handover(app, inp, name, manager)})

    def _handover(
        self, app: AppConfig, inp: PlanInput, name: str, manager: str | None
    ) -> ManualPlan:
        """The handover task: to the manager (else the app's owners) or the listed people."""
        spec = app.handover
        assert spec is not None
        if spec.assignees == "manager":
            assignees = [manager] if manager else app.reviewers
        else:
            assignees = list(spec.assignees)
        instructions = render_instructions(
            spec.instructions,
            inp.person_id,
            inp.email,
            name or inp.email,
            manager_email=manager or "the new owner",
            app=app.name,
        )
        return ManualPlan(
            assignees=assignees,
            escalate_to=spec.escalate_to or app.reviewers,
            sla_hours=spec.sla_hours,
            instructions=instructions,
        )

    async def _in_no_group(self, app: AppConfig, account_id: str) -> bool:
        """Whether the app shows the account in no group, with every membership read: an
        unknown membership, or an app that cannot answer now, is never "nothing to do" (the
        step then runs and verifies as usual). IdP accounts are not asked: their step also
        revokes sessions, which a disabled account may still hold."""
        try:
            memberships = await self._registry.scim(app.id).groups_of(account_id)
        except ConnectorError:
            return False
        return not memberships.member and not memberships.unknown

    def _base(self, app: AppConfig) -> AppPlan:
        """The plan's catalog part: names, owners, the app's task queue and step timeout."""
        return AppPlan(
            app=app.id,
            name=app.name,
            connector=app.connector,
            idp=app.idp,
            action="skip",
            owners=app.owners,
            task_queue=app.task_queue(self._task_queue),
            step_timeout_seconds=app.scim.step_timeout_seconds if app.scim else 120.0,
        )

    async def _plan_app(self, app: AppConfig, inp: PlanInput, name: str) -> AppPlan:
        base = self._base(app)
        if self._catalog.is_protected(inp.email):
            return base.model_copy(update={"reason": "protected account"})
        if app.manual is not None:
            manual = ManualPlan(
                assignees=app.manual.assignees,
                escalate_to=app.manual.escalate_to,
                sla_hours=app.manual.sla_hours,
                reminder_fractions=app.manual.reminder_fractions,
                repeat_every_hours=app.manual.repeat_every_hours,
                instructions=render_instructions(
                    app.manual.instructions, inp.person_id, inp.email, name
                ),
            )
            return base.model_copy(
                update={"action": "manual_task", "account": inp.email, "manual": manual}
            )
        extra: dict[str, Any] = {}
        match: str = "login or email"
        value = inp.email
        if app.scim is not None:
            match = app.scim.match
            value = inp.person_id if match == "externalId" else inp.email
            extra = {
                "deprovision": app.scim.deprovision,
                "delete_after_days": app.scim.delete_after_days,
            }
        try:
            if app.scim is not None:
                verb = app.scim.deprovision.replace("_", " ")
                lookup = await self._registry.scim(app.id).lookup(value)
            else:
                idp = self._registry.idp(app.id)
                verb = f"{idp.verb}; revoke sessions"
                lookup = await idp.lookup(value)
        except ConnectorError as exc:
            if exc.retryable and activity.info().attempt < PLAN_ATTEMPTS:
                raise to_application_error(app.id, exc) from exc
            reason = exc.message if not exc.retryable else f"could not look up: {exc.message}"
            return base.model_copy(update={"action": "exception", "reason": reason})
        accounts = lookup.accounts
        if not accounts:
            reason = f"no account found; tried {'; '.join(lookup.tried)}"
            action = "skip" if app.on_no_account == "skip" else "exception"
            if action == "exception":
                reason += " (on_no_account: exception: a person checks the app)"
            return base.model_copy(update={"action": action, "reason": reason, **extra})
        if len(accounts) > 1:
            ids = ", ".join(a.id for a in accounts)
            reason = f"ambiguous: {len(accounts)} accounts match {match} = {value} ({ids})"
            return base.model_copy(update={"action": "exception", "reason": reason, **extra})
        account = accounts[0]
        update = {"account": account.user_name, "account_id": account.id, **extra}
        if self._catalog.is_protected(account.user_name, *account.emails):
            return base.model_copy(update={**update, "reason": "protected account"})
        if (
            app.scim is not None
            and account.active is False
            and await self._in_no_group(app, account.id)
        ):
            return base.model_copy(update={**update, "reason": NOTHING_TO_DO})
        return base.model_copy(update={**update, "action": "deprovision", "reason": verb})
