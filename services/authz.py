"""Who sees what, in one place, as SQL conditions applied before paging.

- ``admin``: everything;
- any token holder: the tasks assigned to their email;
- ``app-admin``: also the runs and tasks that involve an app whose catalog ``owners`` include
  their email, and the review items of those apps;
- ``reviewer``: only their own review items.

The JSON API, the web UI and the CLI all filter with these conditions, so a page of results is
a full page of rows the caller may see. Single objects are read through the same conditions:
an object outside them is 404 where its existence is confidential, else 403.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, false, func, or_, true
from sqlmodel import col, select

from config import Catalog
from db.models import CampaignItem, HumanTask, OffboardingRun, Step
from db.sql import JsonListHas
from domain.status import STAFF_ROLES, Role
from services.errors import Forbidden


@dataclass(frozen=True)
class Principal:
    """The caller: a token's name, role and (optional) email, its identity for tasks/reviews."""

    name: str
    role: Role
    email: str | None

    @property
    def actor(self) -> str:
        return self.email or f"token:{self.name}"

    @property
    def own(self) -> str:
        """The lower-cased email ("" when the token has none)."""
        return (self.email or "").lower()


def owned_apps(principal: Principal, catalog: Catalog) -> frozenset[str] | None:
    """The apps whose runs and tasks the caller sees; None means every app (admin)."""
    if principal.role == "admin":
        return None
    if principal.role != "app-admin":
        return frozenset()
    return catalog.owned_by(principal.email)


def require_staff(principal: Principal) -> None:
    """Runs are for admins and app admins (not reviewers)."""
    if principal.role not in STAFF_ROLES:
        raise Forbidden(f"role admin or app-admin required (you are {principal.role})")


def require_admin(principal: Principal) -> None:
    if principal.role != "admin":
        raise Forbidden(f"role admin required (you are {principal.role})")


def visible_runs(principal: Principal, catalog: Catalog) -> ColumnElement[bool]:
    """Runs with a step in an app the caller owns (every run for an admin)."""
    owned = owned_apps(principal, catalog)
    if owned is None:
        return true()
    if not owned:
        return false()
    in_owned = select(Step.run_id).where(col(Step.app).in_(sorted(owned)))
    return col(OffboardingRun.run_id).in_(in_owned)


def visible_tasks(principal: Principal, catalog: Catalog) -> ColumnElement[bool]:
    """Tasks assigned to the caller, plus (app admins) the tasks of the apps they own."""
    owned = owned_apps(principal, catalog)
    if owned is None:
        return true()
    clauses: list[ColumnElement[bool]] = []
    if principal.own:
        clauses.append(JsonListHas(HumanTask.assignees, principal.own))
    if owned:
        clauses.append(col(HumanTask.app).in_(sorted(owned)))
    return or_(*clauses) if clauses else false()


def assigned_to(email: str) -> ColumnElement[bool]:
    """Tasks whose assignees include ``email`` (an admin's ``?assignee=`` filter)."""
    return JsonListHas(HumanTask.assignees, email)


@dataclass(frozen=True)
class ItemScope:
    """Which review items a caller may see: a reviewer email and/or a set of apps (None = any)."""

    reviewer: str | None = None
    apps: frozenset[str] | None = None

    def where(self) -> list[Any]:
        clauses: list[Any] = [col(CampaignItem.classification).is_not(None)]
        if self.reviewer is not None:
            clauses.append(col(CampaignItem.reviewer) == self.reviewer)
        if self.apps is not None:
            clauses.append(col(CampaignItem.app).in_(sorted(self.apps)))
        return clauses


def visible_items(principal: Principal, catalog: Catalog, reviewer: str | None) -> ItemScope:
    """A reviewer sees only their own items, whatever they ask for; asking for someone else's
    is refused. Admins see all and may filter (``reviewer=me`` is their own email); app admins
    see their apps' items."""
    own = principal.own
    wanted = None
    if reviewer:
        wanted = own if reviewer.strip().lower() == "me" else reviewer.strip().lower()
    if principal.role == "admin":
        return ItemScope(reviewer=wanted or None)
    if not own:
        raise Forbidden("this token has no email, so it has no review items")
    if principal.role == "reviewer":
        if wanted is not None and wanted != own:
            raise Forbidden("reviewers see only their own items (reviewer=me)")
        return ItemScope(reviewer=own)
    owned = catalog.owned_by(own)
    if wanted is not None and wanted != own:
        return ItemScope(reviewer=wanted, apps=owned)
    if wanted == own:
        return ItemScope(reviewer=own)
    return ItemScope(apps=owned) if owned else ItemScope(reviewer=own)


def campaign_scope(principal: Principal, catalog: Catalog) -> ItemScope | None:
    """What a campaign's counts cover for the caller: everything for an admin (None)."""
    return None if principal.role == "admin" else visible_items(principal, catalog, None)


def can_decide(principal: Principal) -> ColumnElement[bool]:
    """Items the caller may decide: their own as reviewer (any, for an admin), never an item
    for an account they hold themselves."""
    own = principal.own
    if principal.role == "admin":
        mine: ColumnElement[bool] = true()
    else:
        mine = col(CampaignItem.reviewer) == own if own else false()
    if not own:
        return mine
    held = (CampaignItem.account, CampaignItem.account_email, CampaignItem.person_email)
    return and_(mine, *(or_(col(c).is_(None), func.lower(c) != own) for c in held))


def refusal(principal: Principal, item: CampaignItem) -> Forbidden:
    """Why ``can_decide`` excludes ``item``, for the error message."""
    held = {v.lower() for v in (item.account, item.account_email, item.person_email) if v}
    if principal.own and principal.own in held:
        return Forbidden(f"item {item.id} is your own access; not yours to review", "self_review")
    return Forbidden(f"item {item.id} is not yours to review")
