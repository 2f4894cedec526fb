"""The access-review rules: how an account is classified, and who reviews it.

- classification, in this order: ``service_account`` (catalog globs on userName/email) >
  ``terminated_but_active`` (HR status terminated) > ``orphan`` (no HR match) >
  ``active_employee``;
- reviewer: with ``reviewer: manager``, the HR manager of an active or terminated employee;
  otherwise (no manager, orphans, service accounts, ``reviewer: app_owner``) the first of the
  app's owners. Nobody reviews their own account: the next candidate is taken instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
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
        candidates: list[str] = []
        if (
            self._mode == "manager"
            and person is not None
            and person.manager_email
            and classification in ("active_employee", "terminated_but_active")
        ):
            candidates.append(person.manager_email.lower())
        candidates.extend(self._owners)
        reviewer = next((c for c in candidates if c not in holder), None)
        trail = person.id if person is not None else (names[0] if names else user_name).lower()
        return {
            "classification": classification,
            "risk": RISK[classification],
            "person_id": person.id if person else None,
            "person_email": person.email if person else None,
            "person_name": person.name if person else None,
            "trail_id": trail,
            "reviewer": reviewer,
        }
