"""Build the worker: every workflow, every activity, with its dependencies injected."""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from pydantic import SecretStr
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.campaign import CampaignActivities
from activities.deprovision import DeprovisionActivities
from activities.idp import IdpActivities
from activities.notify import NotifyActivities
from activities.planning import PlanActivities
from activities.records import RecordActivities
from activities.signals import SignalActivities
from config import Catalog, Settings
from connectors.registry import ConnectorRegistry
from connectors.ssf import signing_key
from db.session import session_factory
from workflows.campaign import AccessReviewCampaignWorkflow
from workflows.human_task import HumanTaskWorkflow
from workflows.offboarding import OffboardingWorkflow
from workflows.plan import PlanWorkflow

WORKFLOWS = [OffboardingWorkflow, HumanTaskWorkflow, PlanWorkflow, AccessReviewCampaignWorkflow]


def secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def build_worker(
    client: Client,
    settings: Settings,
    catalog: Catalog,
    registry: ConnectorRegistry,
    task_queue: str | None = None,
) -> Worker:
    sessions = session_factory(settings.effective_database_url)
    budget = settings.step_retry_budget_seconds
    plan = PlanActivities(catalog, registry, sessions)
    deprovision = DeprovisionActivities(catalog, registry, sessions, budget)
    idp = IdpActivities(catalog, registry, sessions, budget)
    records = RecordActivities(sessions)
    signals = SignalActivities(
        catalog, registry, sessions, settings.effective_public_url, lambda: signing_key(settings)
    )
    notify = NotifyActivities(
        settings.effective_public_url,
        smtp_url=secret(settings.smtp_url),
        smtp_from=settings.smtp_from,
        chat_webhook_url=secret(settings.slack_webhook_url),
    )
    campaign = CampaignActivities(
        catalog, registry, sessions, settings.effective_public_url, mailer=notify.mailer
    )
    # The executor runs only the sync (DB) activities; SCIM calls are async and need no thread.
    # Temporal warns when it is smaller than max_concurrent_activities: that is the intent here.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Worker max_concurrent_activities")
        return Worker(
            client,
            task_queue=task_queue or settings.task_queue,
            workflows=WORKFLOWS,
            activities=[
                plan.catalog_apps,
                plan.plan_offboarding,
                plan.plan_app,
                deprovision.deprovision_scim,
                idp.deprovision_idp,
                signals.share_session_revoked,
                records.record_events,
                records.record_run,
                records.record_task,
                notify.notify_email,
                notify.notify_chat,
                campaign.begin,
                campaign.collect_scim,
                campaign.classify,
                campaign.sync,
                campaign.notify,
                campaign.close_review,
                campaign.next_revocations,
                campaign.record_revocations,
                campaign.revocation_tasks,
                campaign.resolve_revocations,
                campaign.finish,
            ],
            activity_executor=ThreadPoolExecutor(max_workers=settings.db_threads),
            # Keep the sandbox's guards on non-deterministic calls, but share already-imported
            # modules instead of re-importing them for every new run: under a burst of
            # terminations that re-import was most of the worker's CPU.
            workflow_runner=SandboxedWorkflowRunner(
                restrictions=SandboxRestrictions.default.with_passthrough_all_modules()
            ),
            max_concurrent_activities=settings.max_concurrent_activities,
            max_concurrent_workflow_tasks=settings.max_concurrent_workflow_tasks,
            max_cached_workflows=settings.workflow_cache_size,
            graceful_shutdown_timeout=timedelta(seconds=10),
        )
