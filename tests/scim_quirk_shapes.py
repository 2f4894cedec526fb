"""How real SCIM apps reshape their answers, as pure rewrites of a response document.

Used by ``tests.scim_quirks.Quirks``; each function changes ``doc`` (a resource or a
ListResponse) in place the way a documented app behaviour does.
"""

from __future__ import annotations

import re
from typing import Any

# `userName eq "x"` / `emails.value eq "x"`: the filters a lookup sends.
_EQ = re.compile(r'^\s*(userName|emails\.value)\s+eq\s+"((?:[^"\\]|\\.)*)"\s*$', re.IGNORECASE)


def resources(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The resources in a document: the ListResponse's, or the document itself."""
    listed = doc.get("Resources")
    if isinstance(listed, list):
        return [r for r in listed if isinstance(r, dict)]
    return [doc]


def strip_members(doc: dict[str, Any]) -> None:
    """Groups come without ``members`` (many apps leave them out of listings, some always)."""
    for resource in resources(doc):
        resource.pop("members", None)


def cap_members(doc: dict[str, Any], cap: int) -> None:
    """Groups list at most ``cap`` members, silently (the rest exist but are not shown)."""
    for resource in resources(doc):
        members = resource.get("members")
        if isinstance(members, list) and len(members) > cap:
            resource["members"] = members[:cap]


def drop_meta(doc: dict[str, Any]) -> None:
    """Resources without ``meta`` (the ETag header stays)."""
    for resource in [doc, *resources(doc)]:
        resource.pop("meta", None)


def active_as(doc: dict[str, Any], true: str, false: str) -> None:
    """``active`` as strings: ("True", "False") Entra-style, ("1", "0") as some apps send."""
    for resource in resources(doc):
        if isinstance(resource.get("active"), bool):
            resource["active"] = true if resource["active"] else false


def exact_case(doc: dict[str, Any], scim_filter: str) -> None:
    """An app whose ``eq`` on userName/emails compares case-sensitively (against RFC 7643)."""
    match = _EQ.match(scim_filter)
    listed = doc.get("Resources")
    if match is None or not isinstance(listed, list):
        return
    attribute, value = match.group(1), match.group(2).replace('\\"', '"').replace("\\\\", "\\")

    def keeps(user: dict[str, Any]) -> bool:
        if attribute.lower() == "username":
            return user.get("userName") == value
        return any(isinstance(e, dict) and e.get("value") == value for e in user.get("emails", []))

    kept = [r for r in listed if isinstance(r, dict) and keeps(r)]
    doc["Resources"] = kept
    doc["totalResults"] = len(kept)
    doc["itemsPerPage"] = len(kept)


def total_is_page_size(doc: dict[str, Any]) -> None:
    """``totalResults`` reports how many are on this page, not in the listing."""
    listed = doc.get("Resources")
    if isinstance(listed, list):
        doc["totalResults"] = len(listed)


def user_list(users: list[dict[str, Any]]) -> dict[str, Any]:
    """A ListResponse of users (what an app answers to a ``groups.value eq`` query)."""
    return {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": len(users),
        "itemsPerPage": len(users),
        "startIndex": 1,
        "Resources": users,
    }
