"""API tokens: random, shown once, stored as SHA-256."""

from __future__ import annotations

import hashlib
import secrets
from typing import Literal

from sqlmodel import Session, select

from db.models import ApiToken

Role = Literal["admin", "app-admin", "reviewer"]
ROLES: tuple[Role, ...] = ("admin", "app-admin", "reviewer")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, role: Role, name: str, email: str | None = None) -> str:
    token = "ofb_" + secrets.token_urlsafe(32)
    session.add(ApiToken(name=name, role=role, email=email, token_hash=hash_token(token)))
    session.commit()
    return token


def lookup(session: Session, token: str) -> ApiToken | None:
    row = session.exec(select(ApiToken).where(ApiToken.token_hash == hash_token(token))).first()
    if row is None or row.revoked_at is not None:
        return None
    return row
