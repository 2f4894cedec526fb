"""API tokens: random, shown once, stored as SHA-256; a token names its holder's principal."""

from __future__ import annotations

import hashlib
import secrets

from sqlmodel import Session, select

from db.models import ApiToken
from domain.status import Role
from services.authz import Principal


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, role: Role, name: str, email: str | None = None) -> str:
    """Store a new token's hash and return the token (``ofb_`` + 43 url-safe characters)."""
    token = "ofb_" + secrets.token_urlsafe(32)
    session.add(ApiToken(name=name, role=role, email=email, token_hash=hash_token(token)))
    session.commit()
    return token


def lookup(session: Session, token: str) -> ApiToken | None:
    row = session.exec(select(ApiToken).where(ApiToken.token_hash == hash_token(token))).first()
    if row is None or row.revoked_at is not None:
        return None
    return row


def principal_for(session: Session, token: str) -> Principal | None:
    """Who holds ``token``; None for an empty, unknown or revoked one."""
    row = lookup(session, token) if token else None
    if row is None:
        return None
    return Principal(name=row.name, role=row.role, email=row.email)
