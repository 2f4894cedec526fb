"""Prometheus metrics (names prefixed ``offboard_``), one registry per process.

Counters and histograms are updated where things happen, once a write has committed (never
inside a transaction that may be retried); gauges that describe stored state (open tasks by
app and age, runs by status) are read from the DB at scrape time, by the API.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func
from sqlmodel import Session, select

from db.models import HumanTask, OffboardingRun
from db.session import get_engine

REGISTRY = CollectorRegistry()

WEBHOOK_EVENTS = Counter(
    "offboard_webhook_events", "HR webhook events by outcome", ["outcome"], registry=REGISTRY
)
RUNS_STARTED = Counter(
    "offboard_runs_started", "Offboarding runs started", ["trigger"], registry=REGISTRY
)
RUNS_FINISHED = Counter(
    "offboard_runs_finished", "Offboarding runs finished by status", ["status"], registry=REGISTRY
)
STEP_SECONDS = Histogram(
    "offboard_step_duration_seconds",
    "Duration of one app step attempt, by app and outcome",
    ["app", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
    registry=REGISTRY,
)
# Licences reclaimed, by source: "run" (a leaver's offboarding) or "campaign" (an access
# review's revocation).
LICENSE_COST_RECLAIMED = Counter(
    "offboard_license_cost_reclaimed",
    "Monthly licence cost reclaimed (catalog license:), by currency and source",
    ["currency", "source"],
    registry=REGISTRY,
)
LICENSE_SEATS_RECLAIMED = Counter(
    "offboard_license_seats_reclaimed",
    "Licence seats reclaimed, by app and source",
    ["app", "source"],
    registry=REGISTRY,
)


def count_licenses_reclaimed(source: str, app: str, monthly_cost: dict[str, float]) -> None:
    """One seat of ``app`` reclaimed (its cost by currency), once its write has committed."""
    for currency, cost in monthly_cost.items():
        LICENSE_COST_RECLAIMED.labels(currency, source).inc(cost)
        LICENSE_SEATS_RECLAIMED.labels(app, source).inc()


AUDIT_DUPLICATES = Counter(
    "offboard_audit_duplicates_dropped",
    "Audit events not written because their (workflow, step, kind) key was already written",
    registry=REGISTRY,
)
SCIM_REQUESTS = Counter(
    "offboard_scim_requests",
    "SCIM requests by app and HTTP status",
    ["app", "status"],
    registry=REGISTRY,
)

AGE_BUCKETS = ((1, "lt_1h"), (24, "1h_24h"), (72, "1d_3d"))


def age_bucket(hours: float) -> str:
    for limit, label in AGE_BUCKETS:
        if hours < limit:
            return label
    return "gt_3d"


class StoredStateCollector(Collector):
    def __init__(self, database_url: str) -> None:
        self._url = database_url

    def collect(self) -> Iterator[Metric]:
        now = datetime.now(UTC)
        tasks = GaugeMetricFamily(
            "offboard_open_human_tasks", "Open human tasks by app and age", labels=["app", "age"]
        )
        runs = GaugeMetricFamily(
            "offboard_runs", "Offboarding runs by current status", labels=["status"]
        )
        with Session(get_engine(self._url)) as session:
            counts: dict[tuple[str, str], int] = {}
            for app, created in session.exec(
                select(HumanTask.app, HumanTask.created_at).where(HumanTask.status == "open")
            ):
                key = (app, age_bucket((now - created).total_seconds() / 3600))
                counts[key] = counts.get(key, 0) + 1
            for (app, age), n in sorted(counts.items()):
                tasks.add_metric([app, age], n)
            for status, n in session.exec(
                select(OffboardingRun.status, func.count()).group_by(OffboardingRun.status)
            ):
                runs.add_metric([status], n)
        yield tasks
        yield runs


def render(database_url: str) -> bytes:
    """The exposition text: this process's metrics plus the stored-state gauges."""
    scrape = CollectorRegistry()
    scrape.register(StoredStateCollector(database_url))
    return generate_latest(REGISTRY) + generate_latest(scrape)


def serve_metrics(port: int, host: str = "0.0.0.0") -> None:  # noqa: S104 (scraped in-cluster)
    """Serve this process's counters at ``http://host:port/metrics`` from a daemon thread (the
    worker has no HTTP API of its own; its stored-state gauges come from the API)."""
    start_http_server(port, addr=host, registry=REGISTRY)


def count_scim_response(app: str, status: int) -> None:
    SCIM_REQUESTS.labels(app, str(status)).inc()
