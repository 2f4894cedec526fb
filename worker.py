"""Build the worker: every workflow, every activity, with its dependencies injected.

Besides the main task queue, each SCIM app with a ``rate_limit_per_minute`` gets its own
activity task queue (``<task queue>.<app id>``) for its planning and deprovisioning steps: a
worker runs at most ``admission`` of them at once, and Temporal hands them out no faster than
the app's rate can serve, across every worker process. A burst of terminations beyond what an
app allows waits there, durably and without counting against any step's timeout. The requests
themselves are paced per process at the app's rate divided by the workers polling its queue
(rate_share.py), so N workers together stay within the app's limit.
"""

from __future__ import annotations

import asyncio
import signal
import warnings
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from pydantic import SecretStr
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import (
    PollerBehaviorAutoscaling,
    UnsandboxedWorkflowRunner,
    Worker,
    WorkflowRunner,
)
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.campaign_close import CampaignCloseActivities
from activities.campaign_collect import CampaignCollectActivities
from activities.campaign_notify import CampaignNotifyActivities
from activities.campaign_revoke import CampaignRevokeActivities
from activities.deprovision import DeprovisionActivities
from activities.idp import IdpActivities
from activities.notify import NotifyActivities
from activities.planning import PlanActivities
from activities.records import RecordActivities
from activities.restore import RestoreActivities
from activities.restore_plan import RestorePlanActivities
from activities.signals import SignalActivities
from config import Catalog, Settings
from connectors.registry import ConnectorRegistry
from connectors.ssf import signing_key
from db.session import session_factory
from metrics import count_scim_response, serve_metrics
from rate_share import share_rates
from temporal_client import connect_with_retry
from workflows.campaign import AccessReviewCampaignWorkflow
from workflows.human_task import HumanTaskWorkflow
from workflows.offboarding import OffboardingWorkflow
from workflows.plan import PlanWorkflow
from workflows.restore import RestoreWorkflow

WORKFLOWS = [
    OffboardingWorkflow,
    HumanTaskWorkflow,
    PlanWorkflow,
    AccessReviewCampaignWorkflow,
    RestoreWorkflow,
]


def secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


class Workers:
    """The main worker and the per-app ones, started, run and stopped together; while they
    run, ``share()`` keeps each app's share of its rate current (rate_share.py)."""

    def __init__(
        self,
        main: Worker,
        per_app: list[Worker],
        share: Callable[[], Coroutine[None, None, None]] | None = None,
    ) -> None:
        self.main = main
        self.all = [main, *per_app]
        self._share = share

    @property
    def task_queue(self) -> str:
        return self.main.task_queue

    async def run(self) -> None:
        sharing = asyncio.create_task(self._share()) if self._share is not None else None
        try:
            await asyncio.gather(*(w.run() for w in self.all))
        finally:
            if sharing is not None:
                sharing.cancel()
                await asyncio.gather(sharing, return_exceptions=True)

    async def shutdown(self) -> None:
        await asyncio.gather(*(w.shutdown() for w in self.all))

    async def __aenter__(self) -> Workers:
        for w in self.all:
            await w.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for w in reversed(self.all):
            await w.__aexit__(*exc)  # type: ignore[arg-type]


def build_worker(
    client: Client,
    settings: Settings,
    catalog: Catalog,
    registry: ConnectorRegistry,
    task_queue: str | None = None,
) -> Workers:
    queue = task_queue or settings.task_queue
    sessions = session_factory(settings.effective_database_url)
    budget = settings.step_retry_budget_seconds
    plan = PlanActivities(catalog, registry, sessions, task_queue=queue)
    deprovision = DeprovisionActivities(catalog, registry, sessions, budget)
    idp = IdpActivities(catalog, registry, sessions, budget)
    records = RecordActivities(sessions, catalog)
    restore_plan = RestorePlanActivities(catalog, sessions)
    restore = RestoreActivities(catalog, registry, sessions, budget)
    signals = SignalActivities(
        catalog, registry, sessions, settings.effective_public_url, lambda: signing_key(settings)
    )
    notify = NotifyActivities(
        settings.effective_public_url,
        smtp_url=secret(settings.smtp_url),
        smtp_from=settings.smtp_from,
        chat_webhook_url=secret(settings.slack_webhook_url),
    )
    campaign_deps = (
        catalog,
        registry,
        sessions,
        settings.effective_public_url,
        notify.mailer,
        secret(settings.slack_webhook_url),
    )
    collect = CampaignCollectActivities(*campaign_deps)
    review = CampaignNotifyActivities(*campaign_deps)
    close = CampaignCloseActivities(*campaign_deps)
    revoke = CampaignRevokeActivities(*campaign_deps)
    # The executor runs only the sync (DB) activities; SCIM calls are async and need no thread.
    # Temporal warns when it is smaller than max_concurrent_activities: that is the intent here.
    per_app = []
    app_queues = {}
    for app in catalog.apps:
        app_queue = app.task_queue(queue)
        if app_queue is None or app.scim is None or app.scim.admission is None:
            continue
        per_second = (app.scim.rate_limit_per_minute or 0) / 60
        app_queues[app.id] = app_queue
        per_app.append(
            Worker(
                client,
                task_queue=app_queue,
                activities=[plan.plan_app, deprovision.deprovision_scim],
                max_concurrent_activities=app.scim.admission,
                # Every activity makes at least one request, so this never starves the app; it
                # bounds dispatch across all workers (the server counts), while each worker's
                # admission slots and rate gate keep its own share in step.
                max_task_queue_activities_per_second=per_second,
                graceful_shutdown_timeout=timedelta(seconds=10),
            )
        )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Worker max_concurrent_activities")
        main = Worker(
            client,
            task_queue=queue,
            workflows=WORKFLOWS,
            activities=[
                plan.catalog_apps,
                plan.plan_offboarding,
                plan.plan_app,
                plan.plan_apps,
                deprovision.deprovision_scim,
                idp.deprovision_idp,
                signals.share_session_revoked,
                records.record_events,
                records.record_run,
                records.record_task,
                restore_plan.plan_restore,
                restore.restore_scim,
                notify.notify_email,
                notify.notify_chat,
                collect.begin,
                collect.collect_scim,
                collect.classify,
                collect.sync,
                review.notify,
                review.move_departed,
                close.close_review,
                revoke.next_revocations,
                revoke.record_revocations,
                revoke.revocation_tasks,
                revoke.resolve_revocations,
                revoke.finish,
            ],
            activity_executor=ThreadPoolExecutor(max_workers=settings.db_threads),
            workflow_runner=workflow_runner(settings),
            max_concurrent_activities=settings.max_concurrent_activities,
            max_concurrent_workflow_tasks=settings.max_concurrent_workflow_tasks,
            # Pollers scale with the backlog (5 fixed before): under a burst the server hands
            # tasks to a waiting poll instead of parking them in its task queue store first
            # (Temporal's CPU per person 107-113 ms -> 82-92 ms in bench/burst.py, N=200).
            workflow_task_poller_behavior=PollerBehaviorAutoscaling(),
            activity_task_poller_behavior=PollerBehaviorAutoscaling(),
            max_cached_workflows=settings.workflow_cache_size,
            graceful_shutdown_timeout=timedelta(seconds=10),
        )
    share = (lambda: share_rates(client, registry, app_queues)) if app_queues else None
    return Workers(main, per_app, share)


def workflow_runner(settings: Settings) -> WorkflowRunner:
    """The sandbox (``OFFBOARD_WORKFLOW_SANDBOX``; the tests turn it on) or the plain runner."""
    if not settings.workflow_sandbox:
        return UnsandboxedWorkflowRunner()
    # Keep the sandbox's guards on non-deterministic calls, but share already-imported modules
    # instead of re-importing them for every new run: under a burst of terminations that
    # re-import was most of the worker's CPU.
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_all_modules()
    )


def sdk_runtime(settings: Settings) -> Runtime | None:
    """A Temporal runtime exporting the SDK's own metrics (None: the default, without)."""
    if not settings.worker_sdk_metrics_port:
        return None
    address = f"0.0.0.0:{settings.worker_sdk_metrics_port}"
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address)))


async def serve_worker(settings: Settings, catalog: Catalog) -> None:
    """``offboard worker``: run until SIGTERM/SIGINT, then drain in-flight activities.

    Serves this process's ``offboard_*`` metrics on ``OFFBOARD_WORKER_METRICS_PORT`` and the
    SDK's on ``OFFBOARD_WORKER_SDK_METRICS_PORT`` (0 turns either off).
    """
    if settings.worker_metrics_port:
        serve_metrics(settings.worker_metrics_port)
    client = await connect_with_retry(settings, runtime=sdk_runtime(settings))
    registry = ConnectorRegistry(catalog, observe=count_scim_response)
    built = build_worker(client, settings, catalog, registry)
    # As PID 1 in a container SIGTERM has no default action: drain in-flight activities.
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: loop.create_task(built.shutdown()))
    try:
        await built.run()
    finally:
        await registry.aclose()
