"""Settings (``OFFBOARD_*`` env vars) and the app catalog (``apps.yaml``)."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from connectors.settings import (
    REQUESTS_PER_STEP as REQUESTS_PER_STEP,
)
from connectors.settings import (
    ApiSettings as ApiSettings,
)
from connectors.settings import (
    EntraSettings as EntraSettings,
)
from connectors.settings import (
    GoogleSettings as GoogleSettings,
)
from connectors.settings import (
    OktaSettings as OktaSettings,
)
from connectors.settings import (
    ScimSettings as ScimSettings,
)
from connectors.settings import (
    _Strict,
)
from workflows.types import IDP_CONNECTORS, Connector


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OFFBOARD_", extra="ignore")

    data_dir: Path = Path(".offboard")
    database_url: SecretStr | None = None
    catalog: Path = Path("apps.yaml")
    # Two secrets may be active at once so the HR system can be switched over without downtime.
    webhook_secrets: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    webhook_tolerance_seconds: int = 300
    # An HR event is claimed before any work; a copy arriving while the claim is younger than
    # this gets 409 (try later), an older claim is taken over: its handler died mid-way.
    # A date-only or zone-less ``effective_at`` (HR events and admin starts) is read in this
    # IANA time zone.
    hr_time_zone: str = "UTC"
    # Request bodies under /api/v1: JSON up to max_body_bytes, the CSV uploads up to
    # max_upload_bytes (413 beyond); a body that stalls this long between chunks is 408.
    max_body_bytes: Annotated[int, Field(gt=0)] = 1_048_576
    max_upload_bytes: Annotated[int, Field(gt=0)] = 50 * 1024 * 1024
    body_read_timeout_seconds: Annotated[float, Field(gt=0)] = 10.0
    webhook_claim_lease_seconds: Annotated[float, Field(gt=0)] = 30.0
    temporal_address: str | None = None
    temporal_namespace: str = "default"
    task_queue: str = "offboard"
    temporal_tls_cert: Path | None = None
    temporal_tls_key: Path | None = None
    temporal_tls_ca: Path | None = None
    temporal_api_key: SecretStr | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = None
    smtp_url: SecretStr | None = None
    smtp_from: str = "offboard@localhost"
    slack_webhook_url: SecretStr | None = None
    log_format: Literal["json", "console"] = "console"
    burst_threshold: int = 50
    burst_window_minutes: int = 10
    max_concurrent_activities: int = 200
    # Workflow tasks a worker takes at once. Python runs them one at a time under the GIL, so a
    # large number only queues them inside the worker, where under a burst they outlive their
    # 10 s timeout and get replayed; left on the server they just wait their turn.
    max_concurrent_workflow_tasks: int = 16
    # Running workflows kept in memory; beyond it the least recent are evicted and replayed
    # from history when they next wake, so a burst of terminations cannot grow memory unbounded.
    workflow_cache_size: int = 200
    # Temporal's workflow sandbox re-checks every call a workflow makes for non-determinism and
    # runs each activation (and each payload's serialization context) through exec(); under a
    # burst that was a fifth of the worker's CPU. The workflows follow the determinism rules
    # by construction (workflow.now(), workflow.uuid4(), no I/O) and the test suite runs them
    # all sandboxed, so production runs them without it; true turns it back on.
    workflow_sandbox: bool = False
    # Threads for DB-writing activities; SQLite has one writer, so more only adds contention.
    db_threads: int = 16
    # How long a SCIM step keeps retrying transient failures (5xx, 429, timeouts, an app that
    # is down) before it becomes an exception task for a person. Seconds; default one day.
    step_retry_budget_seconds: Annotated[float, Field(gt=0)] = 86400.0
    # `offboard worker` serves its own Prometheus /metrics here (0 = off); the Temporal SDK's
    # runtime metrics (task latencies, slots, polls) on the second port.
    worker_metrics_port: int = 9464
    worker_sdk_metrics_port: int = 9465
    # IdP steps (catalog ``idp: true``) start first; the other apps start once every IdP step
    # is verified (or needs a person), or after this many seconds, whichever comes first.
    idp_wait_seconds: Annotated[float, Field(ge=0)] = 60.0
    # A restore plan (rescind after effect, rehire) waits this long for an admin's approval.
    restore_offer_days: Annotated[float, Field(gt=0)] = 30.0
    # The private key (PEM) that signs Shared Signals SETs. Unset: a key generated once into
    # <data_dir>/ssf-signing-key.pem (fine for `offboard dev`; set this in production so every
    # worker and API replica signs and publishes the same key).
    ssf_signing_key: SecretStr | None = None

    @field_validator("webhook_secrets", mode="before")
    @classmethod
    def _split_secrets(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [s.strip() for s in value.split(",") if s.strip()]
        return value

    @field_validator("hr_time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value

    @property
    def effective_public_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def effective_database_url(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{(self.data_dir / 'offboard.db').resolve()}"


@lru_cache
def get_settings() -> Settings:
    return Settings()


class ManualSettings(_Strict):
    assignees: list[str] = Field(min_length=1)
    escalate_to: list[str] = Field(default_factory=list)
    sla_hours: float = 24
    instructions: str = "Remove {{ email }} from this app."
    # Reminders at these fractions of the SLA; at the SLA the task escalates to escalate_to,
    # then everyone is reminded every repeat_every_hours until it is done.
    reminder_fractions: list[Annotated[float, Field(gt=0, lt=1)]] = Field(
        default_factory=lambda: [0.5]
    )
    repeat_every_hours: Annotated[float, Field(gt=0)] = 24


class HandoverSettings(_Strict):
    """A person takes over what the leaver owned in the app (contracts, workflows, files).

    ``assignees: manager`` is the leaver's manager from HR (the app's owners when HR has no
    manager); or a list of emails. ``instructions`` is a Jinja template with ``name``,
    ``email``, ``manager_email`` and ``app``.
    """

    assignees: Literal["manager"] | list[str] = "manager"
    escalate_to: list[str] = Field(default_factory=list)
    sla_hours: Annotated[float, Field(gt=0)] = 72
    instructions: str = (
        "Reassign what {{ name }} ({{ email }}) owns in {{ app }} to {{ manager_email }}."
    )


class LicenseSettings(_Strict):
    """What one seat of the app costs; a leaver's seat is reclaimed when their step is
    verified (or done by hand)."""

    cost_per_month: Annotated[float, Field(ge=0)]
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "USD"


RECLAIMED_STEPS = frozenset({"verified", "done"})


class LicensesReclaimed(BaseModel):
    seats: int = 0
    monthly_cost: dict[str, float] = Field(default_factory=dict)  # currency -> per month

    def add(self, license: LicenseSettings) -> None:
        self.seats += 1
        total = self.monthly_cost.get(license.currency, 0.0) + license.cost_per_month
        self.monthly_cost[license.currency] = round(total, 2)


class AppConfig(_Strict):
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")]
    name: str
    owners: list[str] = Field(default_factory=list)
    connector: Connector
    scim: ScimSettings | None = None
    manual: ManualSettings | None = None
    okta: OktaSettings | None = None
    entra: EntraSettings | None = None
    google: GoogleSettings | None = None
    # Identity providers: their steps (disable, revoke sessions) run before every other app's.
    # Defaults to true for the okta, entra and google connectors.
    idp: bool = False
    # No account found for the leaver: skip the app (the default), or open an exception task
    # for apps where everyone has an account, so a person checks.
    on_no_account: Literal["skip", "exception"] = "skip"
    # A handover task beside the deprovisioning (same reminders and evidence as manual steps).
    handover: HandoverSettings | None = None
    license: LicenseSettings | None = None

    def task_queue(self, base: str) -> str | None:
        """This app's own activity task queue under ``base`` (rate-limited SCIM apps only)."""
        if self.scim is None or self.scim.admission is None:
            return None
        return f"{base}.{self.id}"

    @model_validator(mode="before")
    @classmethod
    def _idp_default(cls, data: Any) -> Any:
        if isinstance(data, dict) and "idp" not in data and data.get("connector") in IDP_CONNECTORS:
            return {**data, "idp": True}
        return data

    @property
    def idp_settings(self) -> OktaSettings | EntraSettings | GoogleSettings | None:
        """The IdP connector's section, or None for SCIM and manual apps."""
        return self.okta or self.entra or self.google

    @model_validator(mode="after")
    def _connector_section(self) -> AppConfig:
        section = getattr(self, self.connector)
        if section is None:
            raise ValueError(f"connector {self.connector!r} needs a '{self.connector}:' section")
        return self

    @property
    def reviewers(self) -> list[str]:
        """Who answers for the app (lower-cased, in order): its owners; a manual app without
        owners falls back to its assignees. Reviewers of last resort, escalation targets."""
        owners = [o.lower() for o in self.owners]
        if not owners and self.manual is not None:
            owners = [a.lower() for a in self.manual.assignees]
        return owners


class SsfReceiver(_Strict):
    """A Shared Signals receiver: SETs are pushed (RFC 8935) to ``url``, with ``aud``
    ``audience``, and ``Authorization: Bearer $token_env`` when set."""

    url: Annotated[str, Field(pattern=r"^https?://")]
    audience: str = Field(min_length=1)
    token_env: str | None = None


class Catalog(_Strict):
    apps: list[AppConfig] = Field(default_factory=list)
    protected_accounts: list[str] = Field(default_factory=list)
    service_accounts: list[str] = Field(default_factory=list)
    # CAEP session-revoked SETs go to these after a run's IdP steps.
    ssf_receivers: list[SsfReceiver] = Field(default_factory=list)

    @model_validator(mode="after")
    def _receivers_follow_an_idp(self) -> Catalog:
        if self.ssf_receivers and not any(a.idp for a in self.apps):
            raise ValueError("ssf_receivers: SETs follow the IdP step; no app has idp: true")
        return self

    @field_validator("apps")
    @classmethod
    def _unique_ids(cls, apps: list[AppConfig]) -> list[AppConfig]:
        seen: set[str] = set()
        for app in apps:
            if app.id in seen:
                raise ValueError(f"duplicate app id {app.id!r}")
            seen.add(app.id)
        return apps

    def app(self, app_id: str) -> AppConfig:
        for app in self.apps:
            if app.id == app_id:
                return app
        raise KeyError(app_id)

    def reviewers_of(self, app_id: str) -> list[str]:
        """The app's fallback reviewers (``AppConfig.reviewers``); [] for an app no longer in
        the catalog."""
        try:
            return self.app(app_id).reviewers
        except KeyError:
            return []

    def owned_by(self, email: str | None) -> frozenset[str]:
        """The ids of the apps whose ``owners`` include ``email`` (case-insensitively)."""
        wanted = (email or "").lower()
        if not wanted:
            return frozenset()
        return frozenset(a.id for a in self.apps if wanted in {o.lower() for o in a.owners})

    def unknown_apps(self, app_ids: Iterable[str] | None) -> list[str]:
        """The ids not in the catalog, sorted (for one error naming them all)."""
        return sorted(set(app_ids or []) - {a.id for a in self.apps})

    def licenses_reclaimed(self, steps: Iterable[tuple[str, str]]) -> LicensesReclaimed:
        """Seats and monthly cost reclaimed by ``(app id, step status)`` pairs: a seat is
        reclaimed once the step is verified (or done by hand); apps without ``license:``
        count for nothing."""
        reclaimed = LicensesReclaimed()
        for app_id, status in steps:
            if status not in RECLAIMED_STEPS:
                continue
            license = next((a.license for a in self.apps if a.id == app_id), None)
            if license is not None:
                reclaimed.add(license)
        return reclaimed

    def is_protected(self, *identities: str | None) -> bool:
        protected = {p.lower() for p in self.protected_accounts}
        return any(i is not None and i.lower() in protected for i in identities)

    def is_service_account(self, *identities: str | None) -> bool:
        return any(
            i is not None and fnmatch.fnmatch(i.lower(), pattern.lower())
            for i in identities
            for pattern in self.service_accounts
        )


class CatalogError(ValueError):
    """A catalog file that does not validate; the message names app id and field."""


def _location(raw: dict[str, Any], loc: tuple[int | str, ...]) -> str:
    path = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in loc).lstrip(".")
    if len(loc) >= 2 and loc[0] == "apps" and isinstance(loc[1], int):
        apps = raw.get("apps")
        if isinstance(apps, list) and loc[1] < len(apps) and isinstance(apps[loc[1]], dict):
            path += f" (app {apps[loc[1]].get('id', '?')})"
    return path


def _line(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """The YAML line of the deepest node along ``loc`` (the key itself for unknown keys)."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if k.value == key:
                    line, child = k.start_mark.line + 1, v
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            child = node.value[key]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line


def parse_catalog(text: str, source: str = "apps.yaml") -> Catalog:
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise CatalogError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise CatalogError(f"{source}: the top level must be a mapping with 'apps:'")
    try:
        return Catalog.model_validate(raw)
    except ValidationError as exc:
        tree = yaml.compose(text)
        lines = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            line = _line(tree, loc)
            where = f"{source}: line {line}" if line else source
            lines.append(f"{where}: {_location(raw, loc)}: {err['msg']}")
        raise CatalogError("\n".join(lines)) from None


def load_catalog(path: Path) -> Catalog:
    if not path.exists():
        raise CatalogError(f"{path}: catalog file not found (set OFFBOARD_CATALOG)")
    return parse_catalog(path.read_text(), str(path))
