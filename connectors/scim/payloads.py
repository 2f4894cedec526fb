"""SCIM messages in and out: filter quoting, resource reading, PatchOp bodies, error summaries.

Everything here is pure: no I/O, so each rule is tested on its own.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Literal

import httpx
from pydantic import ValidationError
from scim2_models import Error, Group, PatchOp, User

from connectors.base import Account

PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SCIM_JSON = "application/scim+json"

Membership = Literal["member", "not_member", "unknown"]

# `active` as apps really send it. Anything else is not guessed at: it is unknown.
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def escape_filter_value(value: str) -> str:
    """Quote a value for a SCIM filter (RFC 7644 3.4.2.2): it can never widen the match."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def parse_active(value: Any) -> bool | None:
    """``active`` as the app sent it: True, False, or None when it cannot be read.

    RFC 7643 makes it a boolean; in the field it also arrives as "True"/"False" (Entra-style),
    "1"/"0" or 1/0. An absent attribute means active (a user POSTed without it is active).
    An unrecognised value is None, never a guess: "verified" must not rest on it.
    """
    if value is None or isinstance(value, bool):
        return True if value is None else value
    if isinstance(value, int | float):
        return bool(value) if value in (0, 1) else None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    return None


def account_from(resource: dict[str, Any]) -> Account:
    """An ``Account`` from a SCIM User resource (``active`` None when unreadable)."""
    emails = [
        str(e.get("value"))
        for e in resource.get("emails") or []
        if isinstance(e, dict) and e.get("value") is not None
    ]
    meta = resource.get("meta") or {}
    external_id = resource.get("externalId")
    return Account(
        id=str(resource["id"]),
        user_name=str(resource.get("userName", "")),
        emails=emails,
        external_id=str(external_id) if external_id is not None else None,
        active=parse_active(resource.get("active")),
        display_name=resource.get("displayName"),
        last_sign_in=meta.get("lastLogin") if isinstance(meta, dict) else None,
    )


def membership(group: dict[str, Any], account_id: str) -> Membership:
    """Whether a group resource lists the account; "unknown" when it carries no member list.

    A group without ``members`` may be empty or may simply not return them (many apps omit
    members from listings, some from every read): only a present list is evidence.
    """
    members = group.get("members")
    if members is None:
        return "unknown"
    listed = any(isinstance(m, dict) and str(m.get("value")) == account_id for m in members or [])
    return "member" if listed else "not_member"


def group_name(group: dict[str, Any]) -> str:
    return str(group.get("displayName") or group["id"])


def member_ids(group: dict[str, Any]) -> list[str]:
    return [
        str(m["value"])
        for m in group.get("members") or []
        if isinstance(m, dict) and m.get("value") is not None
    ]


def resource_version(response: httpx.Response, resource: dict[str, Any] | None) -> str | None:
    """The resource's version for If-Match: the ETag header, else ``meta.version``."""
    meta = resource.get("meta") if resource else None
    version = response.headers.get("ETag") or (
        meta.get("version") if isinstance(meta, dict) else None
    )
    return str(version) if version else None


@functools.cache
def _patch_op_type(model: type[User[Any]] | type[Group]) -> Any:
    # Parametrising PatchOp[...] builds a class each time; it showed up in burst profiles.
    return PatchOp[model]  # type: ignore[valid-type]


def patch_body(model: type[User[Any]] | type[Group], operation: dict[str, Any]) -> dict[str, Any]:
    """A PatchOp message (RFC 7644 3.5.2), validated by scim2-models against the schema."""
    message = _patch_op_type(model).model_validate(
        {"schemas": [PATCH_SCHEMA], "Operations": [operation]}
    )
    body: dict[str, Any] = message.model_dump(mode="json", exclude_none=True)
    return body


_TAGS = re.compile(r"<[^>]+>")


def error_detail(response: httpx.Response) -> str:
    """A short reason from an error body: a SCIM Error, or text from an HTML proxy page."""
    try:
        data = response.json()
    except ValueError:
        text = " ".join(_TAGS.sub(" ", response.text).split())
        return text[:200] or response.reason_phrase
    if isinstance(data, dict):
        try:
            error = Error.model_validate(data)
        except ValidationError:
            error = None
        if error is not None and (error.detail or error.scim_type):
            parts = [str(error.scim_type) if error.scim_type else "", str(error.detail or "")]
            return ": ".join(p for p in parts if p)[:300]
    return response.reason_phrase
