"""HR webhook signatures.

``X-Offboard-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>``.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Sequence


class SignatureError(ValueError):
    pass


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def verify(
    header: str | None,
    body: bytes,
    secrets: Sequence[str],
    tolerance_seconds: int,
    now: float | None = None,
) -> None:
    if not secrets:
        raise SignatureError("no webhook secret configured (OFFBOARD_WEBHOOK_SECRETS)")
    if not header:
        raise SignatureError("missing X-Offboard-Signature header")
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value)
    try:
        t = int(parts["t"][0])
    except (KeyError, ValueError):
        raise SignatureError("signature header has no valid t=<unix time>") from None
    candidates = parts.get("v1", [])
    if not candidates:
        raise SignatureError("signature header has no v1=<hex digest>")
    age = (time.time() if now is None else now) - t
    if abs(age) > tolerance_seconds:
        raise SignatureError(
            f"signature timestamp is {int(age)} s off; allowed window is {tolerance_seconds} s"
        )
    signed = f"{t}.".encode() + body
    for secret in secrets:
        expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
        if any(hmac.compare_digest(expected, c) for c in candidates):
            return
    raise SignatureError("signature does not match")
