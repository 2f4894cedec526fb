"""A leaver's deprovisioning by hand, the requests our SCIM connector makes and nothing more:
find -> PATCH active=false -> GET the groups listing the user -> PATCH each to remove the
member -> GET the user -> GET the removed groups still listing the user (read back).

The baselines the benches compare against (bench/scim_deprovision.py's bare script, the
hand-written Temporal workflow in bench/baseline.py) share it, so a ratio compares the same
work (RFC 7644 §3.4.2.2 filters, §3.5.2 PATCH). Every refused request (a 429 too) raises, so a
caller that retries re-runs it all: each step is safe to repeat (a deactivated account stays
found, a removed membership is no longer listed).
"""

from __future__ import annotations

import asyncio
import json

import httpx

SCIM_JSON = "application/scim+json"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
DEACTIVATE = {
    "schemas": [PATCH_OP],
    "Operations": [{"op": "replace", "path": "active", "value": False}],
}
_WRITE = {"Content-Type": SCIM_JSON}


async def deprovision_by_hand(c: httpx.AsyncClient, email: str) -> str:
    """Deactivate ``email``'s account on the app ``c`` is based at, remove it from every
    group, read both back; returns the user id. Raises AssertionError when the read-back
    still shows access, httpx.HTTPStatusError on any refused request (429 included)."""
    quoted = email.replace("\\", "\\\\").replace('"', '\\"')
    found = await c.get("/Users", params={"filter": f'emails.value eq "{quoted}"'})
    found.raise_for_status()
    user_id: str = found.json()["Resources"][0]["id"]
    patched = await c.patch(f"/Users/{user_id}", content=json.dumps(DEACTIVATE), headers=_WRITE)
    patched.raise_for_status()
    member = f'members.value eq "{user_id}"'
    listed = await c.get("/Groups", params={"filter": member, "attributes": "displayName"})
    listed.raise_for_status()
    group_ids = [g["id"] for g in listed.json().get("Resources", [])]
    remove = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "remove", "path": f'members[value eq "{user_id}"]'}],
    }
    for response in await asyncio.gather(
        *(c.patch(f"/Groups/{g}", content=json.dumps(remove), headers=_WRITE) for g in group_ids)
    ):
        response.raise_for_status()
    user = await c.get(f"/Users/{user_id}")
    user.raise_for_status()
    assert user.json()["active"] is False, email
    if group_ids:
        ids = " or ".join(f'id eq "{g}"' for g in group_ids)
        still = await c.get(
            "/Groups", params={"filter": f"({ids}) and {member}", "attributes": "displayName"}
        )
        still.raise_for_status()
        assert not still.json().get("Resources"), email
    return user_id
