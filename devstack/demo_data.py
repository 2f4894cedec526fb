"""Deterministic people and groups for the demo SCIM app, tests and benches.

Names come from the cryptography cast (alice.adams, bob.brown, ...), so runs are
reproducible and any count up to 10,000+ stays unique. userName is the work email,
as in most SaaS apps. externalId is the HR employee id (`emp-00001`, ...).

Index 12 is Mallory, whose userName and email are a filter injection:
`userName eq "<value>"` built without escaping reads as
`userName eq "mallory" or emails.value co "@example.com"` and matches every
user, so a connector that skips escaping would pick (or find ambiguous) the wrong
people. scim2-server stores it and finds exactly her when `"` and `\\` are escaped.
"""

from __future__ import annotations

from collections.abc import Sequence

from devstack.scim_server import SeedUser

__all__ = ["DEMO_GROUPS", "MALLORY", "demo_groups", "demo_users"]

_FIRST = (
    "alice bob carol dave erin frank grace heidi ivan judy kevin laura mallory "
    "niaj olivia peggy quentin rupert sybil trent ursula victor walter xena yusuf zoe"
).split()
_LAST = (
    "adams brown clark davis evans fisher green hall irwin jones king lewis moore "
    "nash owens parker quinn reed scott turner underwood vance walsh young xu zimmer"
).split()

_MALLORY_INDEX = 12
MALLORY = 'mallory" or emails.value co "@example.com'


def _person(i: int) -> SeedUser:
    if i == _MALLORY_INDEX:
        return SeedUser(MALLORY, MALLORY, "Mallory", "Moore", external_id="emp-00013")
    n = len(_FIRST)
    # (first, (first + cycle) % n) is a bijection over n*n indexes, so the first n
    # are the alliterative pairs and the next n*n - n never repeat; beyond that a
    # numeric suffix keeps userNames unique.
    first = _FIRST[i % n]
    last = _LAST[(i + i // n) % n]
    suffix = str(i // (n * n)) if i >= n * n else ""
    user_name = f"{first}.{last}{suffix}@example.com"
    return SeedUser(
        user_name=user_name,
        email=user_name,
        given_name=first.capitalize(),
        family_name=last.capitalize(),
        external_id=f"emp-{i + 1:05d}",
    )


def demo_users(n: int = 20) -> list[SeedUser]:
    """The first n demo people; the same n always gives the same list."""
    return [_person(i) for i in range(n)]


def demo_groups(users: Sequence[SeedUser]) -> dict[str, list[str]]:
    """Groups by displayName -> member userNames, spread so people sit in 1-3 groups."""
    names = [u.user_name for u in users]
    return {
        "All staff": names,
        "Legal": names[0::4],
        "Sales": names[1::3],
        "Engineering": names[2::5],
    }


DEMO_GROUPS: dict[str, list[str]] = demo_groups(demo_users())
