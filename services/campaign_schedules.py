"""Temporal Schedules that start access-review campaigns from a template (quarterly, cron)."""

from __future__ import annotations

import contextlib
import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from temporalio.api.common.v1 import Payload
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
from temporalio.service import RPCError

from config import Catalog
from services.campaigns import iso
from services.errors import Invalid, NotFound
from services.offboardings import check_apps
from workflows.campaign import AccessReviewCampaignWorkflow
from workflows.campaign_messages import CampaignInput, CampaignTemplate

SCHEDULE_PREFIX = "campaign-schedule-"
SCHEDULE_NAME = re.compile(r"[A-Za-z0-9_-]{1,60}")


def check_time_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise Invalid(
            "unknown_time_zone",
            f"unknown time zone {name!r} (use an IANA name like Europe/Berlin)",
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
            if isinstance(payload, Payload):  # a described schedule's args come back raw
                [payload] = await client.data_converter.decode([payload])
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


async def save_quarterly(
    client: Client,
    catalog: Catalog,
    name: str,
    template: CampaignTemplate,
    time_zone: str,
    task_queue: str,
) -> ScheduleHandle:
    """Create or replace (same name) the quarterly schedule ``campaign-schedule-<name>``.

    Raises Invalid for a bad name, an app not in the catalog or an unknown time zone; nothing
    is changed then."""
    if not SCHEDULE_NAME.fullmatch(name):
        raise Invalid("invalid_name", "a schedule name is letters, digits, - and _ (1-60)")
    check_apps(catalog, template.apps)
    spec = quarterly_spec(time_zone)
    with contextlib.suppress(RPCError):  # no schedule of that name yet
        await client.get_schedule_handle(f"{SCHEDULE_PREFIX}{name}").delete()
    return await create_schedule(client, name, template, spec, task_queue)


async def delete_schedule(client: Client, name: str) -> None:
    """Delete ``campaign-schedule-<name>``; NotFound when there is none."""
    try:
        await client.get_schedule_handle(f"{SCHEDULE_PREFIX}{name}").delete()
    except RPCError as exc:
        raise NotFound(f"no campaign schedule {name!r}") from exc
