"""The access-review rules: how an account is classified, and who reviews it.

- classification, in this order: ``service_account`` (catalog globs on userName/email) >
  ``terminated_but_active`` (HR status terminated) > ``orphan`` (no HR match) >
  ``active_employee``;
- reviewer (``choose_reviewer``): with ``reviewer: manager``, the HR manager of an active or
  terminated employee when that manager is an active employee known to HR and not the holder;
  otherwise (no manager, a terminated or unknown manager, orphans, service accounts,
  ``reviewer: app_owner``) the first of the app's owners, and the item says why
  (``reviewer_reason``). Nobody reviews their own account: the next owner is taken instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from domain.status import Classification, ReviewerMode

# Items are listed riskiest first.
RISK: dict[Classification, int] = {
    "terminated_but_active": 0,
    "orphan": 1,
    "service_account": 2,
    "active_employee": 3,
}
CLASSIFICATIONS: tuple[Classification, ...] = tuple(sorted(RISK, key=RISK.__getitem__))
# Keeping one of these needs a justification.
JUSTIFY_KEEP: frozenset[Classification] = frozenset({"terminated_but_active", "orphan"})


@dataclass(frozen=True)
class PersonRow:
    id: str
    email: str
    name: str
    manager_email: str | None
    status: str


def identities(user_name: str, emails: Sequence[str]) -> list[str]:
    """The lower-cased email-like names an account goes by (its emails, an email userName)."""
    found = [e.lower() for e in emails if e]
    if "@" in user_name:
        found.append(user_name.lower())
    return list(dict.fromkeys(found))


class Classifier:
    """Classify the accounts of one app against the HR people that could match them.

    ``owners`` are the app's fallback reviewers (lower-cased, in order); ``by_external_id``
    trusts the account's externalId as the HR id; ``is_service_account(*names)`` applies the
    catalog's globs.
    """

    def __init__(
        self,
        *,
        owners: Sequence[str],
        by_external_id: bool,
        is_service_account: Callable[..., bool],
        mode: ReviewerMode | str,
        people: Iterable[PersonRow],
    ) -> None:
        self._owners = list(owners)
        self._by_external_id = by_external_id
        self._is_service_account = is_service_account
        self._mode = mode
        self._by_id: dict[str, PersonRow] = {}
        self._by_email: dict[str, PersonRow] = {}
        for person in people:
            self._by_id[person.id] = person
            key = person.email.lower()
            current = self._by_email.get(key)
            # A rehire has an old terminated record and a new active one: the active one wins.
            if current is None or (current.status != "active" and person.status == "active"):
                self._by_email[key] = person

    def person_for(
        self, user_name: str, emails: Sequence[str], external_id: str | None
    ) -> PersonRow | None:
        if self._by_external_id and external_id and external_id in self._by_id:
            return self._by_id[external_id]
        for identity in identities(user_name, emails):
            if identity in self._by_email:
                return self._by_email[identity]
        return None

    def fields(
        self, user_name: str, emails: Sequence[str], external_id: str | None = None
    ) -> dict[str, Any]:
        """classification, risk, person_*, trail_id and reviewer for one account."""
        person = self.person_for(user_name, emails, external_id)
        classification: Classification
        if self._is_service_account(user_name, *emails):
            classification = "service_account"
        elif person is not None and person.status == "terminated":
            classification = "terminated_but_active"
        elif person is None:
            classification = "orphan"
        else:
            classification = "active_employee"
        names = identities(user_name, emails)
        holder = set(names)
        if person is not None:
            holder.add(person.email.lower())
        reviewer, reason = choose_reviewer(
            mode=self._mode,
            classification=classification,
            person=person,
            manager=self._manager_of(person),
            owners=self._owners,
            holder=holder,
        )
        trail = person.id if person is not None else (names[0] if names else user_name).lower()
        return {
            "classification": classification,
            "risk": RISK[classification],
            "person_id": person.id if person else None,
            "person_email": person.email if person else None,
            "person_name": person.name if person else None,
            "trail_id": trail,
            "reviewer": reviewer,
            "reviewer_reason": reason,
        }

    def _manager_of(self, person: PersonRow | None) -> PersonRow | None:
        if person is None or not person.manager_email:
            return None
        return self._by_email.get(person.manager_email.lower())


def choose_reviewer(
    *,
    mode: ReviewerMode | str,
    classification: Classification,
    person: PersonRow | None,
    manager: PersonRow | None,
    owners: Sequence[str],
    holder: set[str],
) -> tuple[str | None, str]:
    """(reviewer email or None, reviewer_reason in words) for one account.

    ``person`` is the holder's HR record, ``manager`` the HR record of their manager's email
    (None when HR does not know it), ``owners`` the app's fallback reviewers in order,
    ``holder`` every lower-cased email the holder goes by. The manager reviews only when they
    are an active employee known to HR and not the holder; else the first owner who is not
    the holder, with the reason.
    """
    why: str
    if mode != "manager":
        why = "the campaign's reviewer rule is app_owner"
    elif classification == "service_account":
        why = "service account"
    elif person is None:
        why = "no HR match for the account"
    elif not person.manager_email:
        why = "no manager in HR"
    else:
        boss = person.manager_email.lower()
        if boss in holder:
            why = f"the manager {boss} is the account holder"
        elif manager is None:
            why = f"the manager {boss} is not in the HR directory"
        elif manager.status != "active":
            why = f"the manager {boss} is {manager.status} in HR"
        else:
            return boss, "manager"
    return fallback_owner(owners, holder, why)


def fallback_owner(owners: Sequence[str], holder: set[str], why: str) -> tuple[str | None, str]:
    """The first owner who does not hold the account, and ``app owner: <why>``."""
    for index, owner in enumerate(owners):
        if owner.lower() not in holder:
            skipped = " (the first owner holds the account)" if index else ""
            return owner.lower(), f"app owner: {why}{skipped}"
    return None, f"no reviewer: {why}, and no app owner who is not the holder"


# The classification in words, for reviewers.
EXPLAINED: dict[Classification, str] = {
    "terminated_but_active": "HR says this person has left, but the account is still active",
    "orphan": "No one in the HR directory matches this account",
    "service_account": "The name matches a service-account pattern in the catalog",
    "active_employee": "A current employee",
}
# Days without a sign-in after which an account is called stale.
STALE_AFTER_DAYS = 30


def recommendations(
    classification: Classification | None, last_sign_in: str | None, now: datetime
) -> list[str]:
    """What a reviewer should weigh, in words: "terminated in HR", "no HR match", "service
    account pattern", "no sign-in for N days" (N >= ``STALE_AFTER_DAYS``, when the app gives a
    last sign-in as ISO-8601; an unreadable one is ignored). ``now`` is timezone-aware."""
    found = {
        "terminated_but_active": ["terminated in HR"],
        "orphan": ["no HR match"],
        "service_account": ["service account pattern"],
    }.get(classification or "", [])
    if last_sign_in:
        try:
            seen = datetime.fromisoformat(last_sign_in.replace("Z", "+00:00"))
        except ValueError:
            return found
        if seen.tzinfo is None:
            seen = seen.replace(tzinfo=UTC)
        days = (now - seen).days
        if days >= STALE_AFTER_DAYS:
            found = [*found, f"no sign-in for {days} days"]
    return found
