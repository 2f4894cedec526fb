"""``offboard apps check``: read-only probes of the catalog's SCIM apps, with suggestions."""

# Fixtures are imported from tests.test_scim_support; pytest passes them by name.
# ruff: noqa: F811

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from cli.main import app as cli
from config import get_settings
from devstack.ports import free_port
from tests.conftest import SCIM_TOKEN, TOKEN_ENV
from tests.test_scim_support import ScimEnv, scim_env  # noqa: F401

CATALOG = """
apps:
  - id: acme
    name: Acme
    connector: scim
    scim:
      base_url: {base_url}
      token_env: TEST_SCIM_TOKEN
      match: {match}
      probe_user: carol.clark@example.com
  - id: broken
    name: Broken
    connector: scim
    scim:
      base_url: {base_url}
      token_env: BROKEN_SCIM_TOKEN
  - id: imanage
    name: iManage
    connector: manual
    manual:
      assignees: [it-helpdesk@example.com]
"""


@pytest.fixture
def check(scim_env: ScimEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    def run(*args: str, match: str = "email", base_url: str | None = None) -> Result:
        catalog = tmp_path / "apps.yaml"
        catalog.write_text(CATALOG.format(base_url=base_url or scim_env.base_url, match=match))
        monkeypatch.setenv("OFFBOARD_CATALOG", str(catalog))
        monkeypatch.setenv("OFFBOARD_DATA_DIR", str(tmp_path))
        monkeypatch.setenv(TOKEN_ENV, SCIM_TOKEN)
        monkeypatch.setenv("BROKEN_SCIM_TOKEN", "revoked-token-0000")
        monkeypatch.setenv("COLUMNS", "220")  # rich tables wrap at the terminal width
        get_settings.cache_clear()
        return CliRunner().invoke(cli, ["apps", "check", *args])

    yield run
    get_settings.cache_clear()


def only_gets(env: ScimEnv) -> bool:
    return {m for m, _, _, _ in env.quirks.requests} == {"GET"}


def test_healthy_app_is_usable_and_probe_user_found(check: object, scim_env: ScimEnv) -> None:
    result = check("acme")  # type: ignore[operator]
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Acme (acme): usable" in out
    for expected in ("reach", "authenticate", "PATCH", "ETag", "filter", "bulk", "groups"):
        assert expected in out
    assert f"carol.clark@example.com (id {scim_env.id_of(2)}, active)" in out
    assert "member of 2 via member_filter: All staff, Engineering" in out
    assert SCIM_TOKEN not in out
    assert only_gets(scim_env) and scim_env.quirks.requests


def test_every_app_and_an_unusable_one(check: object, scim_env: ScimEnv) -> None:
    result = check()  # type: ignore[operator]
    assert result.exit_code == 1, result.output
    out = result.output
    assert "Acme (acme): usable" in out
    assert "Broken (broken): UNUSABLE" in out
    assert "$BROKEN_SCIM_TOKEN" in out and "revoked-token-0000" not in out
    assert "iManage (imanage): manual app, nothing to probe" in out
    assert "unusable: broken" in out
    assert only_gets(scim_env)


def test_patch_unsupported_suggests_put_fallback(check: object, scim_env: ScimEnv) -> None:
    config = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "patch": {"supported": False},
        "bulk": {"supported": False},
        "filter": {"supported": True, "maxResults": 50},
        "changePassword": {"supported": False},
        "sort": {"supported": False},
        "etag": {"supported": False},
    }
    scim_env.quirks.fail_next(
        5,
        200,
        path_contains="ServiceProviderConfig",
        body=json.dumps(config).encode(),
        content_type="application/scim+json",
    )
    result = check("acme")  # type: ignore[operator]
    assert result.exit_code == 0, result.output
    assert "PATCH unsupported -> set patch_style: put_fallback" in result.output
    suggested = result.output.split("Suggested catalog settings for acme (under scim:):")[1]
    assert "patch_style: put_fallback" in suggested
    assert "page_size: 50" in suggested
    assert only_gets(scim_env)


def test_probe_user_found_by_another_attribute_suggests_match(
    check: object, scim_env: ScimEnv
) -> None:
    result = check("acme", match="externalId")  # type: ignore[operator]
    assert result.exit_code == 0, result.output
    assert "not found by externalId, but found by userName" in result.output
    assert "  match: userName" in result.output
    assert only_gets(scim_env)


def test_unreachable_app_is_unusable(check: object) -> None:
    result = check("acme", base_url=f"http://127.0.0.1:{free_port()}/v2")  # type: ignore[operator]
    assert result.exit_code == 1
    assert "connection failed" in result.output
    assert "UNUSABLE" in result.output


def test_missing_credentials_and_unknown_app(
    check: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    unknown = check("nope")  # type: ignore[operator]
    assert unknown.exit_code == 2
    assert "unknown app 'nope'" in unknown.output
    monkeypatch.delenv(TOKEN_ENV)
    get_settings.cache_clear()
    from typer.testing import CliRunner as Runner

    missing = Runner().invoke(cli, ["apps", "check", "acme"])
    assert missing.exit_code == 1
    assert f"${TOKEN_ENV} is not set" in missing.output


def test_quirks_detected_and_settings_suggested(check: object, scim_env: ScimEnv) -> None:
    """Groups whose members the app never shows (and whose member filter it rejects unless
    next to an id), and totals that are only the page size: found, and named."""
    scim_env.quirks.group_members_hidden = True
    scim_env.quirks.total_is_page_size = True
    result = check("acme")  # type: ignore[operator]
    assert result.exit_code == 0, result.output
    out = result.output
    assert "member of 2 via group_filter: All staff, Engineering" in out
    assert "totalResults reports the page size" in out
    suggested = out.split("Suggested catalog settings for acme (under scim:):")[1]
    assert "group_membership: group_filter" in suggested
    assert "pagination: defensive" in suggested
    assert only_gets(scim_env)
