"""PlanWorkflow: the dry run. It computes what an offboarding would do and changes nothing."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.planning import PlanActivities
    from workflows.steps import SCIM_RETRY
    from workflows.types import Plan, PlanInput


@workflow.defn
class PlanWorkflow:
    @workflow.run
    async def run(self, inp: PlanInput) -> Plan:
        plan: Plan = await workflow.execute_activity_method(
            PlanActivities.plan_offboarding,
            inp,
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=SCIM_RETRY,
        )
        return plan
