"""The revocation phase of AccessReviewCampaignWorkflow: after the review closes, every
``revoke`` item goes through the same ``deprovision_scim`` activity as offboarding (SCIM, read
back, audited on the person's trail), in batches, continuing as new when the history grows; a
manual app's revocations become one human task, failed SCIM revocations an exception task."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Literal

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.campaign_revoke import CampaignRevokeActivities
    from activities.deprovision import DeprovisionActivities
    from domain.status import CampaignStatus, TaskKind
    from workflows.campaign_messages import (
        CampaignFinishInput,
        CampaignInput,
        CampaignOutcome,
        CampaignResume,
        ResolveRevocationsInput,
        RevocationBatch,
        RevocationBatchInput,
        RevocationOutcome,
        RevocationOutcomes,
        RevocationRef,
        RevocationTaskPlan,
        RevocationTaskPlans,
        RevocationTasksInput,
    )
    from workflows.human_task import HumanTaskWorkflow
    from workflows.steps import SCIM_RETRY, failure_message, verified_detail
    from workflows.types import HumanTaskInput, ScimStepInput, ScimStepResult, TaskCompletion

_DB = timedelta(minutes=10)
# SCIM revocations per batch; each is one deprovision_scim activity run concurrently.
REVOKE_BATCH = 50


class CampaignRevocations:
    """Mixed into the campaign workflow: the state it reads is the workflow's own."""

    _id: str
    _inp: CampaignInput
    _started: datetime
    _due: datetime
    _failed_apps: list[str]
    _version: int
    _status: CampaignStatus

    async def _revoke(self, after_item: int) -> CampaignOutcome:
        workflow_id = workflow.info().workflow_id
        while True:
            batch: RevocationBatch = await workflow.execute_activity_method(
                CampaignRevokeActivities.next_revocations,
                RevocationBatchInput(
                    campaign_id=self._id,
                    workflow_id=workflow_id,
                    after_item=after_item,
                    limit=REVOKE_BATCH,
                ),
                start_to_close_timeout=_DB,
            )
            if not batch.items:
                break
            outcomes = await asyncio.gather(*(self._revoke_one(ref) for ref in batch.items))
            await workflow.execute_activity_method(
                CampaignRevokeActivities.record_revocations,
                RevocationOutcomes(
                    campaign_id=self._id, workflow_id=workflow_id, outcomes=list(outcomes)
                ),
                start_to_close_timeout=_DB,
            )
            after_item = batch.items[-1].item_id
            info = workflow.info()
            if (
                info.is_continue_as_new_suggested()
                or info.get_current_history_length() > self._inp.history_limit
            ):
                workflow.continue_as_new(
                    self._inp.model_copy(
                        update={
                            "campaign_id": self._id,
                            "resume": CampaignResume(
                                started_at=self._started,
                                due_at=self._due,
                                after_item=after_item,
                                failed_apps=self._failed_apps,
                                version=self._version,
                            ),
                        }
                    )
                )

        manual = await self._task_plans("manual_step")
        failed_scim = await self._task_plans("exception")
        await asyncio.gather(
            *(self._manual_then_exception(p) for p in manual.tasks),
            *(self._revocation_task(p) for p in failed_scim.tasks),
        )
        outcome: CampaignOutcome = await workflow.execute_activity_method(
            CampaignRevokeActivities.finish,
            CampaignFinishInput(
                campaign_id=self._id,
                workflow_id=workflow_id,
                failed_apps=self._failed_apps,
                at=workflow.now(),
            ),
            start_to_close_timeout=_DB,
        )
        self._status = outcome.status
        return outcome

    async def _revoke_one(self, ref: RevocationRef) -> RevocationOutcome:
        try:
            result: ScimStepResult = await workflow.execute_activity_method(
                DeprovisionActivities.deprovision_scim,
                ScimStepInput(
                    app=ref.app,
                    account_id=ref.account_id,
                    account=ref.account,
                    person_id=ref.person_id,
                    workflow_id=workflow.info().workflow_id,
                    step_id=f"{self._id}:item-{ref.item_id}:{ref.mode}",
                    mode=ref.mode,
                ),
                start_to_close_timeout=timedelta(seconds=120),
                retry_policy=SCIM_RETRY,
            )
        except ActivityError as exc:
            return RevocationOutcome(
                item_id=ref.item_id, status="failed", detail=failure_message(exc)
            )
        return RevocationOutcome(
            item_id=ref.item_id, status="verified", detail=verified_detail(result)
        )

    async def _task_plans(
        self, kind: Literal["manual_step", "exception"], app: str | None = None
    ) -> RevocationTaskPlans:
        plans: RevocationTaskPlans = await workflow.execute_activity_method(
            CampaignRevokeActivities.revocation_tasks,
            RevocationTasksInput(campaign_id=self._id, kind=kind, app=app),
            start_to_close_timeout=_DB,
        )
        return plans

    async def _manual_then_exception(self, plan: RevocationTaskPlan) -> None:
        """A manual app's revocations; if they could not be completed, an exception task."""
        await self._revocation_task(plan)
        for exception in (await self._task_plans("exception", plan.app)).tasks:
            await self._revocation_task(exception)

    async def _campaign_task(
        self,
        task_id: str,
        kind: TaskKind,
        app: str,
        assignees: list[str],
        escalate_to: list[str],
        sla_hours: float,
        instructions: str,
    ) -> TaskCompletion | None:
        """A HumanTaskWorkflow child for the campaign (its events on the campaign's trail)."""
        completion: TaskCompletion | None = await workflow.execute_child_workflow(
            HumanTaskWorkflow.run,
            HumanTaskInput(
                task_id=task_id,
                kind=kind,
                app=app,
                run_id=self._id,
                parent_workflow_id=workflow.info().workflow_id,
                person_id=self._id,
                person_email="",
                subject_kind="campaign",
                assignees=assignees,
                escalate_to=escalate_to,
                sla_hours=sla_hours,
                instructions=instructions,
            ),
            id=f"task-{task_id}",
        )
        return completion

    async def _revocation_task(self, plan: RevocationTaskPlan) -> None:
        suffix = "revoke" if plan.kind == "manual_step" else "exception"
        task_id = f"{self._id}-{plan.app}-{suffix}"
        completion = await self._campaign_task(
            task_id,
            plan.kind,
            plan.app,
            plan.assignees,
            plan.escalate_to,
            plan.sla_hours,
            plan.instructions,
        )
        if completion is None:
            return
        await workflow.execute_activity_method(
            CampaignRevokeActivities.resolve_revocations,
            ResolveRevocationsInput(
                campaign_id=self._id,
                workflow_id=workflow.info().workflow_id,
                app=plan.app,
                kind=plan.kind,
                task_id=task_id,
                completion=completion,
            ),
            start_to_close_timeout=_DB,
        )
