"""``offboard apps check`` on IdP apps: auth, permissions and the probe user, read only."""

# Fixtures are imported from tests.idp_support; pytest passes them by name.
# ruff: noqa: F811

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner, Result

from cli.main import app as cli
from config import get_settings
from tests.idp_support import PEOPLE, Idps, idps  # noqa: F401

Check = Callable[..., Result]
PROBE = PEOPLE[2]


@pytest.fixture
def check(idps: Idps, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Check]:
    def run(*args: str, env: dict[str, str] | None = None) -> Result:
        apps = [
            idps.app("okta", probe_user=PROBE),
            idps.app("okta_oauth", app_id="okta-oauth", probe_user=PROBE),
            idps.app("entra", probe_user=PROBE),
            idps.app("google", probe_user=PROBE),
        ]
        catalog = tmp_path / "apps.yaml"
        catalog.write_text(yaml.safe_dump({"apps": apps}))
        monkeypatch.setenv("OFFBOARD_CATALOG", str(catalog))
        monkeypatch.setenv("OFFBOARD_DATA_DIR", str(tmp_path))
        monkeypatch.setenv("COLUMNS", "250")  # rich tables wrap at the terminal width
        chosen = idps.env if env is None else env
        for name in idps.env:
            if name in chosen:
                monkeypatch.setenv(name, chosen[name])
            else:
                monkeypatch.delenv(name, raising=False)
        get_settings.cache_clear()
        return CliRunner().invoke(cli, ["apps", "check", *args])

    yield run
    get_settings.cache_clear()


def only_reads(idps: Idps) -> bool:
    """Nothing but GETs reached the APIs; POSTs only to token endpoints."""
    for server in (idps.okta, idps.graph, idps.google):
        for r in server.requests:
            if r.method != "GET" and not r.path.endswith("/token"):
                return False
    return True


def test_every_idp_usable(check: Check, idps: Idps) -> None:
    result = check()
    assert result.exit_code == 0, result.output
    out = result.output
    for title in ("Okta (okta): usable", "Okta (okta-oauth): usable", "Entra ID (entra): usable"):
        assert title in out
    assert "Google Workspace (google): usable" in out
    assert f"{PROBE} (id {idps.okta_ids[PROBE]}, active)" in out
    assert f"{PROBE} (id {idps.graph_ids[PROBE]}, active)" in out
    assert "granted: okta.users.manage" in out
    assert "User.EnableDisableAccount.All" in out
    assert only_reads(idps)


def test_missing_permissions_in_plain_words(check: Check, idps: Idps) -> None:
    idps.graph.roles = ["User.Read.All"]
    idps.google.delegated = ["https://www.googleapis.com/auth/admin.directory.user"]
    result = check()
    assert result.exit_code == 1
    out = result.output
    assert "Entra ID (entra): UNUSABLE" in out
    assert "the token lacks application permission User.EnableDisableAccount.All" in out
    assert "the token lacks application permission User.RevokeSessions.All" in out
    assert "grant admin consent" in out
    assert "Google Workspace (google): UNUSABLE" in out
    assert "unauthorized_client" in out and "Domain-wide delegation" in out
    assert "unusable: entra, google" in out
    assert only_reads(idps)


def test_refused_and_missing_credentials(check: Check, idps: Idps) -> None:
    env = {**idps.env, "OKTA_API_TOKEN": "revoked-ssws-0000"}
    result = check("okta", env=env)
    assert result.exit_code == 1
    assert "authentication failed" in result.output and "$OKTA_API_TOKEN" in result.output
    assert "revoked-ssws-0000" not in result.output
    env = {k: v for k, v in idps.env.items() if k != "ENTRA_CLIENT_SECRET"}
    missing = check("entra", env=env)
    assert missing.exit_code == 1
    assert "$ENTRA_CLIENT_SECRET is not set" in missing.output
    assert "export ENTRA_CLIENT_SECRET" in missing.output
