"""An admin's apps.yaml and OFFBOARD_* settings: mistakes are named precisely, secrets stay hidden.

No servers: `config.parse_catalog` and `Settings` directly, and `offboard token create` through
Typer's runner against a migrated SQLite file.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session
from typer.testing import CliRunner

from cli.main import app as cli
from config import Catalog, CatalogError, Settings, get_settings, parse_catalog
from db.migrate import upgrade
from db.session import get_engine
from services.tokens import lookup

MANUAL = """\
  - id: imanage
    name: iManage Work
    connector: manual
    manual:
      assignees: [it-helpdesk@example.com]
"""


def catalog(*apps: str, extra: str = "") -> str:
    return "apps:\n" + "".join(textwrap.dedent(a).rstrip("\n") + "\n" for a in apps) + extra


def scim_app(app_id: str = "ironclad", **scim: str) -> str:
    fields = {"base_url": "https://ironcladapp.com/scim/v2", "token_env": "IRONCLAD_SCIM_TOKEN"}
    fields.update(scim)
    lines = "".join(f"      {k}: {v}\n" for k, v in fields.items())
    return f"  - id: {app_id}\n    name: Ironclad\n    connector: scim\n    scim:\n{lines}"


def error_of(text: str) -> str:
    with pytest.raises(CatalogError) as raised:
        parse_catalog(text, "apps.yaml")
    return str(raised.value)


def test_a_valid_catalog_parses() -> None:
    parsed = parse_catalog(catalog(MANUAL, scim_app(deprovision="deactivate")))
    assert [a.id for a in parsed.apps] == ["imanage", "ironclad"]
    scim = parsed.app("ironclad").scim
    assert scim is not None and scim.token_env == "IRONCLAD_SCIM_TOKEN"


def test_unknown_key_names_its_path_and_the_app() -> None:
    message = error_of(catalog(MANUAL, scim_app(bogus="1")))
    assert message.startswith("apps.yaml:")
    assert "apps[1].scim.bogus" in message
    assert "ironclad" in message
    assert "imanage" not in message, "the error must point at the app that is wrong"


def test_base_url_must_be_http_or_https() -> None:
    message = error_of(catalog(scim_app("ironclad", base_url="ironcladapp.com/scim/v2")))
    assert "apps[0].scim.base_url" in message and "ironclad" in message
    message = error_of(catalog(scim_app("ironclad", base_url="ftp://ironcladapp.com/scim/v2")))
    assert "apps[0].scim.base_url" in message


def test_scim_connector_needs_a_scim_section() -> None:
    text = catalog("  - id: ironclad\n    name: Ironclad\n    connector: scim\n")
    message = error_of(text)
    assert "apps[0]" in message and "ironclad" in message
    assert "'scim:' section" in message


def test_duplicate_app_ids_are_rejected() -> None:
    message = error_of(catalog(scim_app("ironclad"), scim_app("ironclad")))
    assert "duplicate app id 'ironclad'" in message


def test_deactivate_then_delete_needs_delete_after_days() -> None:
    message = error_of(catalog(scim_app(deprovision="deactivate_then_delete")))
    assert "delete_after_days" in message and "ironclad" in message
    ok = parse_catalog(
        catalog(scim_app(deprovision="deactivate_then_delete", delete_after_days="30"))
    )
    scim = ok.app("ironclad").scim
    assert scim is not None and scim.delete_after_days == 30


def test_invalid_yaml_is_a_catalog_error_with_the_line() -> None:
    text = "apps:\n  - id: ironclad\n    name: [unclosed\n    connector: scim\n"
    message = error_of(text)
    assert message.startswith("apps.yaml: not valid YAML")
    assert "line 3" in message


def test_top_level_must_be_a_mapping() -> None:
    assert "top level" in error_of("- id: ironclad\n")


def test_validation_errors_name_the_yaml_line() -> None:
    text = catalog(MANUAL, scim_app(bogus="1"))
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "bogus" in row)
    assert re.search(rf"\bline {line}\b", error_of(text))


def test_protected_accounts_match_case_insensitively() -> None:
    parsed = parse_catalog(catalog(MANUAL, extra="protected_accounts: [BreakGlass@Example.com]\n"))
    assert parsed.is_protected("breakglass@example.com")
    assert parsed.is_protected(None, "BREAKGLASS@EXAMPLE.COM")
    assert not parsed.is_protected("alice.adams@example.com", None)
    assert not parsed.is_protected("breakglass@example.com.evil.test")


def test_service_account_globs() -> None:
    parsed: Catalog = parse_catalog(
        catalog(MANUAL, extra='service_accounts: ["svc-*", "*-bot@*"]\n')
    )
    assert parsed.is_service_account("svc-backup@example.com")
    assert parsed.is_service_account("SVC-Backup@example.com")
    assert parsed.is_service_account("alice.adams@example.com", "deploy-bot@example.com")
    assert not parsed.is_service_account("alice.adams@example.com")
    assert not parsed.is_service_account("robot@example.com", None)


# -- Settings ---------------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    import os

    for key in list(os.environ):
        if key.startswith("OFFBOARD_"):
            monkeypatch.delenv(key)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_two_webhook_secrets_for_rotation(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("OFFBOARD_WEBHOOK_SECRETS", "whsec-old-1f2e, whsec-new-9a8b")
    settings = Settings()
    assert [s.get_secret_value() for s in settings.webhook_secrets] == [
        "whsec-old-1f2e",
        "whsec-new-9a8b",
    ]


def test_settings_repr_hides_secret_values(clean_env: pytest.MonkeyPatch) -> None:
    secrets = {
        "OFFBOARD_WEBHOOK_SECRETS": "whsec-old-1f2e, whsec-new-9a8b",
        "OFFBOARD_SMTP_URL": "smtp://mailer:smtp-pw-77c1@mail.example.com:587",
        "OFFBOARD_SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T000/B000/slack-x9y8",
        "OFFBOARD_TEMPORAL_API_KEY": "tmprl-key-4d4d",
    }
    for key, value in secrets.items():
        clean_env.setenv(key, value)
    settings = Settings()
    shown = repr(settings) + str(settings) + repr(settings.model_dump())
    for needle in ("whsec-old-1f2e", "whsec-new-9a8b", "smtp-pw-77c1", "slack-x9y8", "tmprl-key"):
        assert needle not in shown


def test_settings_repr_hides_the_database_password(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("OFFBOARD_DATABASE_URL", "postgresql://offboard:db-pw-3c3c@db:5432/offboard")
    settings = Settings()
    assert "db-pw-3c3c" not in repr(settings) + str(settings)


# -- offboard token create ------------------------------------------------------------------


@pytest.fixture
def cli_db(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'offboard.db'}"
    upgrade(url)
    clean_env.setenv("OFFBOARD_DATA_DIR", str(tmp_path / ".offboard"))
    clean_env.setenv("OFFBOARD_DATABASE_URL", url)
    get_settings.cache_clear()
    return url


def test_token_create_prints_only_a_working_token(cli_db: str) -> None:
    result = CliRunner().invoke(cli, ["token", "create", "--role", "admin", "--name", "x"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    token = lines[0]
    assert token == token.strip() and re.fullmatch(r"[A-Za-z0-9_-]{20,}", token), token
    with Session(get_engine(cli_db)) as session:
        row = lookup(session, token)
        assert row is not None
        assert (row.role, row.name) == ("admin", "x")

    second = CliRunner().invoke(cli, ["token", "create", "--role", "reviewer", "--name", "y"])
    assert second.exit_code == 0, second.output
    assert second.stdout.strip() != token


def test_token_create_with_a_bad_role_is_a_usage_error(cli_db: str) -> None:
    result = CliRunner().invoke(cli, ["token", "create", "--role", "root", "--name", "x"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "admin" in result.stderr
