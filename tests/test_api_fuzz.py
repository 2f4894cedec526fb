"""Schemathesis over the OpenAPI, as each role: no input gets a 5xx.

A fixed, derandomized example budget per operation keeps it fast and repeatable; every
operation is tried with the admin's, an app admin's and a reviewer's token.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.conftest import Stack

pytestmark = pytest.mark.slow

EXAMPLES_PER_OPERATION = 6


def fuzz(schema: Any, base_url: str, token: str) -> tuple[int, list[str]]:
    """Call every operation with generated inputs; returns (requests made, 5xx seen)."""
    made = 0
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            nonlocal made
            response = case.call(
                base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
            )
            made += 1
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path}: {response.status_code}")
            elif response.status_code >= 400:
                error = response.json().get("error", {})
                shown = (case.method, case.formatted_path, response.status_code, response.text)
                assert set(error) == {"code", "message", "details"}, shown

        check()
    return made, failures


async def test_no_input_gets_a_5xx_for_any_role(stack: Stack) -> None:
    spec = (await stack.http.get("/openapi.json")).json()
    schema = schemathesis.openapi.from_dict(spec)
    base_url = str(stack.http.base_url)
    tokens = {
        "admin": stack.admin_token,
        "app-admin": stack.token("app-admin", "legal-ops@example.com"),
        "reviewer": stack.token("reviewer", "alice.adams@example.com"),
    }
    total = 0
    for role, token in tokens.items():
        # Off the event loop: the API under test serves from this loop.
        made, failures = await asyncio.to_thread(fuzz, schema, base_url, token)
        total += made
        assert failures == [], (role, failures)
    print(f"schemathesis: {total} requests, 0 5xx")
    assert total > 0
