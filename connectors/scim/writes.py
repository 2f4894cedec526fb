"""Writes to one SCIM app that survive its quirks: preconditions, two PATCH forms, PUT.

- 428 (If-Match required) or 412 (stale version): read the version, send again with If-Match
  (RFC 7644 3.14);
- a PATCH form the app rejects (400) is retried in the other form; 405/501 or both forms
  rejected means "unsupported", and the caller may GET + PUT instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import httpx
import structlog
from scim2_models import Group, User

from connectors.base import RejectedError, TransientError
from connectors.scim.payloads import error_detail, patch_body, resource_version
from connectors.scim.transport import ScimTransport

log = structlog.get_logger("offboard.scim")

PatchResult = Literal["ok", "gone", "unsupported"]


class ScimWrites:
    """The write forms of one app (shared by every run on the worker)."""

    def __init__(self, transport: ScimTransport) -> None:
        self.transport = transport
        self.app_id = transport.app_id

    async def conditional(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        allow: tuple[int, ...],
    ) -> httpx.Response | None:
        """Send a write; on 428 (If-Match required) or 412 (stale) read the resource's
        version and send it again with If-Match (RFC 7644 3.14). None: the resource is gone."""
        headers: dict[str, str] = {}
        for _ in range(3):
            response = await self.transport.request(
                method, path, body=body, headers=headers, allow=(*allow, 412, 428)
            )
            if response.status_code not in (412, 428):
                return response
            read, resource = await self.transport.read(path, missing_ok=True)
            if resource is None:
                return None
            version = resource_version(read, resource)
            if version is None:
                raise RejectedError(
                    f"{self.app_id}: {method} {path}: HTTP {response.status_code}: the app "
                    "requires If-Match but shows no ETag or meta.version",
                    status=response.status_code,
                )
            headers = {"If-Match": version}
            log.info("scim.precondition", app=self.app_id, path=path, status=response.status_code)
        raise TransientError(
            f"{self.app_id}: {method} {path}: HTTP 412: version conflict three times; will retry",
            status=412,
        )

    async def patch_forms(
        self,
        path: str,
        model: type[User[Any]] | type[Group],
        forms: list[tuple[str, dict[str, Any]]],
        setting: str,
    ) -> PatchResult:
        """Try the configured PATCH form, then the other one if the app rejects it (400).

        "unsupported" means the caller should GET + PUT: PATCH answered 405/501, or every
        form was rejected.
        """
        rejected: list[str] = []
        for name, operation in forms:
            response = await self.conditional(
                "PATCH", path, patch_body(model, operation), allow=(400, 404, 405, 501)
            )
            if response is None or response.status_code == 404:
                return "gone"
            status = response.status_code
            if status < 300:
                if rejected:
                    log.warning(
                        "scim.patch_form_fallback",
                        app=self.app_id,
                        path=path,
                        rejected=rejected,
                        hint=f"set {setting}: {name}",
                    )
                return "ok"
            if status in (405, 501):
                log.warning(
                    "scim.patch_unsupported",
                    app=self.app_id,
                    path=path,
                    status=status,
                    hint="set patch_style: put_fallback",
                )
                return "unsupported"
            rejected.append(f"{name}: {self.transport.scrub(error_detail(response))}")
        log.warning(
            "scim.patch_rejected",
            app=self.app_id,
            path=path,
            rejected=rejected,
            hint="set patch_style: put_fallback",
        )
        return "unsupported"

    async def put_modified(
        self, path: str, change: Callable[[dict[str, Any]], None]
    ) -> Literal["ok", "gone"]:
        """GET, change, PUT back with If-Match when the app versions the resource.

        A 412 (someone changed it in between) re-reads and retries once; a second 412 is a
        transient error for the workflow to retry later.
        """
        for _ in range(2):
            read, resource = await self.transport.read(path, missing_ok=True)
            if resource is None:
                return "gone"
            version = resource_version(read, resource)
            change(resource)
            resource.pop("meta", None)
            headers = {"If-Match": version} if version else {}
            put = await self.transport.request(
                "PUT", path, body=resource, headers=headers, allow=(404, 412)
            )
            if put.status_code == 404:
                return "gone"
            if put.status_code != 412:
                return "ok"
            log.info("scim.version_conflict", app=self.app_id, path=path)
        raise TransientError(
            f"{self.app_id}: PUT {path}: HTTP 412: version conflict twice; will retry",
            status=412,
        )
