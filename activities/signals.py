"""Tell the catalog's Shared Signals receivers that a leaver's sessions are revoked.

One CAEP session-revoked SET per receiver, pushed after the run's IdP steps, each answer on
the person's trail (``ssf.delivered`` with the receiver's status, or ``ssf.failed`` with
its error). A receiver already answered (an earlier attempt, a crash) is not sent to again;
a retried delivery carries the same ``jti``, so a receiver can drop a duplicate.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from joserfc.jwk import RSAKey
from sqlmodel import Session, col, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from config import Catalog, SsfReceiver
from connectors.base import ConnectorError
from connectors.registry import ConnectorRegistry
from connectors.ssf import push, session_revoked_set
from db import audit
from db.models import AuditEvent
from workflows.types import AuditEventIn, SignalInput, SignalResult

DELIVERED = "ssf.delivered"
FAILED = "ssf.failed"


class SignalActivities:
    def __init__(
        self,
        catalog: Catalog,
        registry: ConnectorRegistry,
        session_factory: Callable[[], Session],
        issuer: str,
        key: Callable[[], RSAKey],
    ) -> None:
        self._catalog = catalog
        self._registry = registry
        self._sessions = session_factory
        self._issuer = issuer
        self._key = key  # loaded on first use: no key file for catalogs without receivers

    @activity.defn(name="share_session_revoked")
    async def share_session_revoked(self, inp: SignalInput) -> SignalResult:
        """Push the SET to every receiver not yet answered; audit each answer.

        A receiver that refuses (4xx) is audited as failed at once; one that is unreachable
        (5xx, 429, timeouts, after per-request retries) raises a retryable ApplicationError,
        and is audited as failed on the last attempt the retry policy allows.
        """
        info = activity.info()
        limit = info.retry_policy.maximum_attempts if info.retry_policy else 0
        last = limit > 0 and info.attempt >= limit
        answered = await asyncio.to_thread(self._answered, inp)
        pending = [(n, r) for n, r in enumerate(self._catalog.ssf_receivers) if n not in answered]
        outcomes = await asyncio.gather(*(self._deliver(inp, n, r, last) for n, r in pending))
        unreachable = [r.url for (_, r), ok in zip(pending, outcomes, strict=True) if ok is None]
        if unreachable:
            raise ApplicationError(
                f"ssf: receiver(s) unreachable: {', '.join(unreachable)}", type="transient"
            )
        delivered = len(answered) + sum(1 for ok in outcomes if ok)
        return SignalResult(
            delivered=delivered, failed=len(self._catalog.ssf_receivers) - delivered
        )

    async def _deliver(
        self, inp: SignalInput, n: int, receiver: SsfReceiver, last: bool
    ) -> bool | None:
        """True: delivered; False: refused (audited); None: unreachable, try again later."""
        jti = uuid.uuid5(uuid.NAMESPACE_URL, f"{inp.run_id}/{n}/{receiver.url}").hex
        detail: dict[str, object] = {
            "receiver": receiver.url,
            "audience": receiver.audience,
            "jti": jti,
        }
        try:
            token = session_revoked_set(
                self._key(),
                issuer=self._issuer,
                audience=receiver.audience,
                jti=jti,
                email=inp.email,
                event_time=inp.at,
                txn=inp.run_id,
            )
            status = await push(self._registry.ssf_receiver(receiver), token)
        except ConnectorError as exc:
            if exc.retryable and not last:
                return None
            await self._record(
                inp, n, FAILED, {**detail, "status": exc.status, "error": exc.message}
            )
            return False
        await self._record(inp, n, DELIVERED, {**detail, "status": status})
        return True

    async def _record(self, inp: SignalInput, n: int, kind: str, detail: dict[str, object]) -> None:
        event = AuditEventIn(
            person_id=inp.person_id,
            workflow_id=inp.workflow_id,
            step_id=f"{inp.run_id}:ssf:{n}",
            kind=kind,
            at=datetime.now(UTC).isoformat(),
            detail=detail,
        )
        await asyncio.to_thread(audit.append, self._sessions, [event])

    def _answered(self, inp: SignalInput) -> set[int]:
        """Receivers (by index) whose answer is already on the trail."""
        prefix = f"{inp.run_id}:ssf:"
        with self._sessions() as session:
            rows = session.exec(
                select(AuditEvent.step_id).where(
                    AuditEvent.workflow_id == inp.workflow_id,
                    col(AuditEvent.step_id).startswith(prefix),
                )
            ).all()
        return {int(step_id.removeprefix(prefix)) for step_id in rows}
