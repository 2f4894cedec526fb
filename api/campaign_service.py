"""Access-review campaigns: start, read, decide, report, schedule; shared by the API and the CLI.

Items live in the DB (``campaign_items``); the workflow owns the lifecycle (collect, remind,
close, revoke) and these functions read and write what people do in between: decisions, CSV
uploads, reports.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import delete, exists, func, update
from sqlmodel import Session, col, select
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleCalendarSpec,
    ScheduleHandle,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
)

from api.deps import Db, Principal, check_apps
from api.errors import ApiError
from config import Catalog, Settings
from db import audit
from db.models import Campaign, CampaignItem
from db.session import get_engine
from workflows.campaign import AccessReviewCampaignWorkflow
from workflows.types import AuditEventIn, CampaignInput, CampaignTemplate

OPEN = ("collecting", "reviewing")
CLASSIFICATIONS = ("terminated_but_active", "orphan", "service_account", "active_employee")
# Justification is required to keep these (the risky ones).
JUSTIFY_KEEP = ("terminated_but_active", "orphan")
MAX_BULK = 1000
SCHEDULE_PREFIX = "campaign-schedule-"
REPORT_FIELDS = (
    "app",
    "account",
    "account_id",
    "person_id",
    "person_email",
    "person_name",
    "classification",
    "last_sign_in",
    "groups",
    "reviewer",
    "decision",
    "justification",
    "decided_by",
    "decided_at",
    "auto_decided",
    "revocation",
    "revocation_detail",
    "verified_at",
)


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat()


# -- start ---------------------------------------------------------------------------------


async def start_campaign(
    client: Client,
    db: Db,
    settings: Settings,
    catalog: Catalog,
    template: CampaignTemplate,
    actor: str,
    trigger: Literal["api", "cli"] = "api",
) -> Campaign:
    """Create the campaign row (so a GET answers at once), then start its workflow."""
    apps = check_apps(catalog, template.apps)
    idps = [a for a in apps if catalog.app(a).idp_settings is not None]
    if idps and template.apps:
        raise ApiError(422, "unsupported_app", f"reviews do not cover IdP apps: {', '.join(idps)}")
    apps = [a for a in apps if a not in idps]
    template = template.model_copy(update={"apps": apps})
    campaign_id = f"campaign-{uuid.uuid4().hex[:12]}"
    now = utcnow()
    row = Campaign(
        id=campaign_id,
        workflow_id=campaign_id,
        name=template.name,
        apps=apps,
        reviewer_mode=template.reviewer,
        on_no_decision=template.on_no_decision,
        due_in_days=template.due_in_days,
        trigger=trigger,
        created_by=actor,
        created_at=now,
        # The API's estimate; the workflow writes the deadline by its own clock at once.
        due_at=now + timedelta(days=template.due_in_days),
        app_state={a: {"status": "collecting", "accounts": 0, "detail": ""} for a in apps},
    )

    def insert(session: Session) -> None:
        session.add(row)
        session.commit()

    await db.run(insert)
    await client.start_workflow(
        AccessReviewCampaignWorkflow.run,
        CampaignInput(template=template, campaign_id=campaign_id, trigger=trigger, actor=actor),
        id=campaign_id,
        task_queue=settings.task_queue,
    )
    return row


def get_campaign(session: Session, campaign_id: str) -> Campaign:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise ApiError(404, "not_found", f"no campaign {campaign_id!r}")
    return campaign


# -- who sees what -------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """Which items a caller may see: a reviewer email and/or a set of apps (None = any)."""

    reviewer: str | None = None
    apps: frozenset[str] | None = None

    def where(self) -> list[Any]:
        clauses: list[Any] = [col(CampaignItem.classification).is_not(None)]
        if self.reviewer is not None:
            clauses.append(col(CampaignItem.reviewer) == self.reviewer)
        if self.apps is not None:
            clauses.append(col(CampaignItem.app).in_(sorted(self.apps)))
        return clauses


def item_scope(principal: Principal, catalog: Catalog, reviewer: str | None) -> Scope:
    """A reviewer sees only their own items, whatever they ask for; asking for someone else's
    is refused (403). Admins see all and may filter; app admins see their apps' items."""
    own = (principal.email or "").lower()
    wanted = (
        (own if reviewer.strip().lower() == "me" else reviewer.strip().lower())
        if reviewer
        else None
    )
    if principal.role == "admin":
        return Scope(reviewer=wanted or None)
    if not own:
        raise ApiError(403, "forbidden", "this token has no email, so it has no review items")
    if principal.role == "reviewer":
        if wanted is not None and wanted != own:
            raise ApiError(403, "forbidden", "reviewers see only their own items (reviewer=me)")
        return Scope(reviewer=own)
    owned = frozenset(a.id for a in catalog.apps if own in {o.lower() for o in a.owners})
    if wanted is not None and wanted != own:
        return Scope(reviewer=wanted, apps=owned)
    if wanted == own:
        return Scope(reviewer=own)
    return Scope(apps=owned) if owned else Scope(reviewer=own)


# -- views ---------------------------------------------------------------------------------


def counts(session: Session, campaign_id: str, scope: Scope | None = None) -> dict[str, int]:
    clauses = [col(CampaignItem.campaign_id) == campaign_id, *(scope or Scope()).where()]
    rows = session.exec(
        select(CampaignItem.decision, func.count()).where(*clauses).group_by("decision")
    ).all()
    by = {str(d): n for d, n in rows}
    total = sum(by.values())
    return {
        "items": total,
        "decided": total - by.get("pending", 0),
        "keep": by.get("keep", 0),
        "revoke": by.get("revoke", 0),
        "pending": by.get("pending", 0),
    }


def campaign_view(
    session: Session, campaign: Campaign, scope: Scope | None = None
) -> dict[str, Any]:
    return {
        "id": campaign.id,
        "name": campaign.name,
        "status": campaign.status,
        "apps": campaign.apps,
        "reviewer": campaign.reviewer_mode,
        "on_no_decision": campaign.on_no_decision,
        "trigger": campaign.trigger,
        "created_by": campaign.created_by,
        "created_at": iso(campaign.created_at),
        "due_at": iso(campaign.due_at),
        "closed_at": iso(campaign.closed_at),
        "completed_at": iso(campaign.completed_at),
        "collection": campaign.app_state,
        "counts": counts(session, campaign.id, scope),
    }


def review_fields(item: CampaignItem) -> dict[str, Any]:
    """What the review decided about an item, as the API and the evidence report show it."""
    return {
        "classification": item.classification,
        "last_sign_in": item.last_sign_in,
        "groups": item.groups,
        "reviewer": item.reviewer,
        "decision": item.decision,
        "justification": item.justification,
        "decided_by": item.decided_by,
        "decided_at": iso(item.decided_at),
        "auto_decided": item.auto_decided,
        "revocation": item.revocation,
        "revocation_detail": item.revocation_detail or None,
        "verified_at": iso(item.verified_at),
    }


def item_view(item: CampaignItem) -> dict[str, Any]:
    person = (
        {"id": item.person_id, "email": item.person_email, "name": item.person_name}
        if item.person_id
        else None
    )
    return {
        "id": item.id,
        "app": item.app,
        "account": item.account,
        "account_id": item.account_id,
        "person": person,
        **review_fields(item),
    }


def list_items(
    session: Session,
    campaign_id: str,
    scope: Scope,
    *,
    decision: str | None = None,
    classification: str | None = None,
    app: str | None = None,
    limit: int = 500,
    offset: int = 0,
) -> list[CampaignItem]:
    """Items, riskiest first (terminated but active, orphans, service accounts, the rest)."""
    query = select(CampaignItem).where(col(CampaignItem.campaign_id) == campaign_id, *scope.where())
    if decision:
        query = query.where(col(CampaignItem.decision) == decision)
    if classification:
        query = query.where(col(CampaignItem.classification) == classification)
    if app:
        query = query.where(col(CampaignItem.app) == app)
    query = query.order_by(col(CampaignItem.risk), col(CampaignItem.app), col(CampaignItem.account))
    return list(session.exec(query.offset(offset).limit(limit)).all())


# -- decisions -----------------------------------------------------------------------------


def _holder(item: CampaignItem) -> set[str]:
    return {v.lower() for v in (item.account, item.account_email, item.person_email) if v}


def check_decision(
    principal: Principal,
    catalog: Catalog,
    item: CampaignItem,
    decision: Literal["keep", "revoke"],
    justification: str,
) -> None:
    own = (principal.email or "").lower()
    if principal.role != "admin" and (not own or item.reviewer != own):
        raise ApiError(403, "forbidden", f"item {item.id} is not yours to review")
    if own and own in _holder(item):
        raise ApiError(
            403, "self_review", f"item {item.id} is your own access; not yours to review"
        )
    if item.classification is None:
        raise ApiError(409, "not_ready", f"item {item.id} is still being classified")
    if decision == "keep" and item.classification in JUSTIFY_KEEP and not justification.strip():
        raise ApiError(
            422,
            "justification_required",
            f"item {item.id} is {item.classification}: keeping it needs a justification",
            [{"item": item.id, "field": "justification", "message": "required to keep"}],
        )
    if decision == "revoke" and catalog.is_protected(item.account, item.account_email):
        raise ApiError(
            422,
            "protected_account",
            f"item {item.id} ({item.account}) is a protected account: it is never revoked",
        )


def apply_decisions(
    settings: Settings,
    campaign: Campaign,
    items: Sequence[CampaignItem],
    decision: Literal["keep", "revoke"],
    justification: str,
    actor: str,
) -> None:
    """Write the decisions and their audit events in one transaction, only while the review is
    open: the campaign's status is checked by the same UPDATE, so a close cannot slip between."""
    now = utcnow()
    ids = [i.id for i in items]
    open_review = exists().where(col(Campaign.id) == campaign.id, col(Campaign.status).in_(OPEN))
    events = [
        AuditEventIn(
            person_id=item.trail_id,
            workflow_id=campaign.workflow_id,
            step_id=f"{campaign.id}:item-{item.id}:decision-{uuid.uuid4().hex[:12]}",
            kind="review.decided",
            at=now.isoformat(),
            actor=actor,
            app=item.app,
            detail={
                "campaign": campaign.id,
                "campaign_name": campaign.name,
                "item": item.id,
                "account": item.account,
                "classification": item.classification,
                "decision": decision,
                "justification": justification,
            },
        )
        for item in items
    ]

    def write(session: Session) -> None:
        result = session.exec(
            update(CampaignItem)
            .where(
                col(CampaignItem.campaign_id) == campaign.id,
                col(CampaignItem.id).in_(ids),
                open_review,
            )
            .values(
                decision=decision,
                justification=justification,
                decided_by=actor,
                decided_at=now,
                auto_decided=False,
            )
        )
        if result.rowcount != len(ids):
            raise ApiError(409, "review_closed", f"campaign {campaign.id} is no longer open")

    factory = lambda: Session(  # noqa: E731
        get_engine(settings.effective_database_url), expire_on_commit=False
    )
    audit.append(factory, events, extra=write)


# -- CSV uploads (manual apps) -------------------------------------------------------------

ACCOUNT_COLUMNS = ("account", "email", "display_name", "last_sign_in", "account_id", "active")
_TRUE = {"true", "yes", "1", "y", "active"}
_FALSE = {"false", "no", "0", "n", "inactive", "disabled"}


class CsvProblem(Exception):
    def __init__(self, problems: list[dict[str, Any]]) -> None:
        first = problems[0]
        where = f"line {first['line']}" + (f", column {first['column']}" if first["column"] else "")
        super().__init__(f"{where}: {first['message']}")
        self.problems = problems

    def api_error(self) -> ApiError:
        return ApiError(422, "invalid_csv", str(self), self.problems[:50])


def decode_csv(body: bytes) -> str:
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = body[: exc.start].count(b"\n") + 1
        raise CsvProblem([{"line": line, "column": None, "message": "not UTF-8 text"}]) from None


def parse_instant(value: str) -> datetime:
    """An ISO-8601 date or date-time; naive values are UTC."""
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        parsed = datetime.combine(date.fromisoformat(text), datetime.min.time())
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def read_csv(
    text: str, allowed: Sequence[str], required: Sequence[str]
) -> Iterator[tuple[int, dict[str, str]]]:
    """(line, row) pairs; header problems raise CsvProblem naming line 1 and the column."""
    reader = csv.DictReader(io.StringIO(text.removeprefix("\ufeff")))
    header = [h.strip() for h in reader.fieldnames or []]
    if not header:
        raise CsvProblem([{"line": 1, "column": None, "message": "empty file: no header row"}])
    problems = [
        {"line": 1, "column": h, "message": f"unknown column; expected {', '.join(allowed)}"}
        for h in header
        if h not in allowed
    ] + [
        {"line": 1, "column": c, "message": "required column is missing"}
        for c in required
        if c not in header
    ]
    if problems:
        raise CsvProblem(problems)
    reader.fieldnames = header
    try:
        for row in reader:
            if None in row:
                raise CsvProblem(
                    [
                        {
                            "line": reader.line_num,
                            "column": None,
                            "message": f"more fields than the header's {len(header)}",
                        }
                    ]
                )
            yield reader.line_num, {k: (v or "").strip() for k, v in row.items()}
    except csv.Error as exc:
        raise CsvProblem(
            [{"line": reader.line_num, "column": None, "message": f"not valid CSV: {exc}"}]
        ) from None


@dataclass
class ParsedAccounts:
    rows: list[dict[str, Any]]
    skipped_inactive: int


def parse_accounts_csv(text: str) -> ParsedAccounts:
    """A manual app's export: ``account`` (required), ``email``, ``display_name``,
    ``last_sign_in`` (ISO-8601), ``account_id`` (defaults to account), ``active``."""
    rows: list[dict[str, Any]] = []
    problems: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    skipped = 0
    for line, raw in read_csv(text, ACCOUNT_COLUMNS, ("account",)):

        def bad(column: str, message: str, line: int = line) -> None:
            problems.append({"line": line, "column": column, "message": message})

        account = raw.get("account", "")
        if not account:
            bad("account", "required (the account's login or userName)")
        email = raw.get("email", "")
        if email and ("@" not in email or any(c.isspace() for c in email)):
            bad("email", f"not an email address: {email!r}")
        last = raw.get("last_sign_in", "")
        last_iso = None
        if last:
            try:
                last_iso = parse_instant(last).isoformat()
            except ValueError:
                bad("last_sign_in", f"not an ISO-8601 date or date-time: {last!r}")
        active_text = raw.get("active", "").lower()
        if active_text and active_text not in _TRUE | _FALSE:
            bad("active", f"expected true or false, got {raw.get('active')!r}")
        account_id = raw.get("account_id", "") or account
        if account_id and account_id in seen:
            column = "account_id" if raw.get("account_id") else "account"
            bad(column, f"duplicate of line {seen[account_id]}")
        seen.setdefault(account_id, line)
        if active_text in _FALSE:
            skipped += 1
            continue
        rows.append(
            {
                "account": account,
                "account_id": account_id,
                "account_email": email or None,
                "display_name": raw.get("display_name") or None,
                "last_sign_in": last_iso,
            }
        )
    if problems:
        raise CsvProblem(problems)
    return ParsedAccounts(rows=rows, skipped_inactive=skipped)


def replace_uploaded_accounts(
    session: Session, campaign_id: str, app: str, parsed: ParsedAccounts
) -> None:
    """Store an upload's rows unclassified (the workflow classifies them once the task is done)."""
    session.exec(
        delete(CampaignItem).where(
            col(CampaignItem.campaign_id) == campaign_id, col(CampaignItem.app) == app
        )
    )
    session.add_all(CampaignItem(campaign_id=campaign_id, app=app, **row) for row in parsed.rows)
    session.commit()


def drop_unclassified(session: Session, campaign_id: str, app: str) -> None:
    session.exec(
        delete(CampaignItem).where(
            col(CampaignItem.campaign_id) == campaign_id,
            col(CampaignItem.app) == app,
            col(CampaignItem.classification).is_(None),
        )
    )
    session.commit()


# -- evidence ------------------------------------------------------------------------------


def report_row(item: CampaignItem) -> dict[str, Any]:
    return {
        "app": item.app,
        "account": item.account,
        "account_id": item.account_id,
        "person_id": item.person_id,
        "person_email": item.person_email,
        "person_name": item.person_name,
        **review_fields(item),
    }


def report_items(session: Session, campaign_id: str, batch: int = 1000) -> Iterator[CampaignItem]:
    """Every classified item, riskiest first, read in batches."""
    offset = 0
    while True:
        items = list_items(session, campaign_id, Scope(), limit=batch, offset=offset)
        yield from items
        if len(items) < batch:
            return
        offset += batch


def report_summary(session: Session, campaign: Campaign) -> dict[str, Any]:
    def group(column: Any) -> dict[str, int]:
        rows = session.exec(
            select(column, func.count())
            .where(
                col(CampaignItem.campaign_id) == campaign.id,
                col(CampaignItem.classification).is_not(None),
            )
            .group_by(column)
        ).all()
        return {str(k): n for k, n in rows}

    by_decision = group(CampaignItem.decision)
    by_class = group(CampaignItem.classification)
    by_revocation = group(CampaignItem.revocation)
    auto = session.exec(
        select(func.count()).where(
            col(CampaignItem.campaign_id) == campaign.id,
            col(CampaignItem.classification).is_not(None),
            col(CampaignItem.auto_decided).is_(True),
        )
    ).one()
    completed = campaign.completed_at
    created = campaign.created_at

    def seconds(end: datetime | None) -> float | None:
        if end is None:
            return None
        start = created if created.tzinfo else created.replace(tzinfo=UTC)
        end = end if end.tzinfo else end.replace(tzinfo=UTC)
        return round((end - start).total_seconds(), 3)

    return {
        "items": sum(by_decision.values()),
        "by_decision": {d: by_decision.get(d, 0) for d in ("keep", "revoke", "pending")},
        "by_classification": {c: by_class.get(c, 0) for c in CLASSIFICATIONS},
        "auto_decided": auto,
        "revocations": {
            r: by_revocation.get(r, 0) for r in ("pending", "verified", "done", "failed")
        },
        "apps": campaign.app_state,
        "created_at": iso(created),
        "closed_at": iso(campaign.closed_at),
        "completed_at": iso(completed),
        "time_to_close_seconds": seconds(campaign.closed_at),
        "time_to_complete_seconds": seconds(completed),
    }


def report_json(session: Session, campaign: Campaign) -> dict[str, Any]:
    return {
        "campaign": campaign_view(session, campaign),
        "summary": report_summary(session, campaign),
        "rows": [report_row(i) for i in report_items(session, campaign.id)],
    }


def report_csv(session: Session, campaign_id: str) -> Iterator[str]:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=REPORT_FIELDS, lineterminator="\n")
    writer.writeheader()
    for n, item in enumerate(report_items(session, campaign_id), start=1):
        row = report_row(item)
        row["groups"] = ";".join(row["groups"])
        row["auto_decided"] = "true" if row["auto_decided"] else "false"
        writer.writerow(row)
        if n % 500 == 0:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()


# -- schedules -----------------------------------------------------------------------------


def check_time_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (use an IANA name like Europe/Berlin)"
        ) from None
    return name


def quarterly_spec(time_zone: str = "UTC") -> ScheduleSpec:
    """The first Monday of January, April, July and October at 09:00 in ``time_zone``: a Monday
    that is also one of the month's first seven days (calendar fields must all match)."""
    return ScheduleSpec(
        calendars=[
            ScheduleCalendarSpec(
                second=[ScheduleRange(0)],
                minute=[ScheduleRange(0)],
                hour=[ScheduleRange(9)],
                day_of_month=[ScheduleRange(1, 7)],
                month=[ScheduleRange(1), ScheduleRange(4), ScheduleRange(7), ScheduleRange(10)],
                day_of_week=[ScheduleRange(1)],
                comment="first Monday of each quarter, 09:00",
            )
        ],
        time_zone_name=check_time_zone(time_zone),
    )


def cron_spec(expression: str, time_zone: str = "UTC") -> ScheduleSpec:
    return ScheduleSpec(cron_expressions=[expression], time_zone_name=check_time_zone(time_zone))


async def create_schedule(
    client: Client,
    name: str,
    template: CampaignTemplate,
    spec: ScheduleSpec,
    task_queue: str,
) -> ScheduleHandle:
    """A Temporal Schedule that starts a campaign from ``template`` (id campaign-schedule-NAME;
    each campaign's id is campaign-NAME-<start time>)."""
    return await client.create_schedule(
        f"{SCHEDULE_PREFIX}{name}",
        Schedule(
            action=ScheduleActionStartWorkflow(
                AccessReviewCampaignWorkflow.run,
                CampaignInput(template=template, trigger="schedule", actor=f"schedule:{name}"),
                id=f"campaign-{name}",
                task_queue=task_queue,
            ),
            spec=spec,
            # Campaigns are independent: a late one never holds back the next quarter's.
            policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.ALLOW_ALL),
        ),
    )


async def list_schedules(client: Client) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    async for entry in await client.list_schedules():
        if not entry.id.startswith(SCHEDULE_PREFIX):
            continue
        described = await client.get_schedule_handle(entry.id).describe()
        spec = described.schedule.spec
        action = described.schedule.action
        template: dict[str, Any] = {}
        if isinstance(action, ScheduleActionStartWorkflow) and action.args:
            payload = action.args[0]
            template = payload.get("template", {}) if isinstance(payload, dict) else {}
        found.append(
            {
                "name": entry.id[len(SCHEDULE_PREFIX) :],
                "id": entry.id,
                "cron": list(spec.cron_expressions),
                "calendars": [c.comment or repr(c) for c in spec.calendars],
                "time_zone": spec.time_zone_name,
                "template": template,
                "next": [iso(t) for t in described.info.next_action_times[:4]],
                "paused": described.schedule.state.paused,
            }
        )
    return found
