"""Classification precedence and reviewer rules, on the pure classifier (no servers)."""

from __future__ import annotations

from activities.campaign_base import classifier_for
from config import parse_catalog
from domain.review import PersonRow
from services.csv_import import CsvProblem, parse_accounts_csv

CATALOG = parse_catalog(
    """
apps:
  - id: scimapp
    name: SCIM app
    owners: [owner@example.com, second@example.com]
    connector: scim
    scim: {base_url: "http://127.0.0.1:9/v2", token_env: T, match: externalId}
  - id: nowners
    name: No owners
    connector: manual
    manual: {assignees: [helpdesk@example.com]}
service_accounts: ["svc-*", "*-bot@*"]
"""
)
PEOPLE = [
    PersonRow("E1", "ann@example.com", "Ann", "boss@example.com", "active"),
    PersonRow("E2", "ben@example.com", "Ben", "boss@example.com", "terminated"),
    # A rehire: the old terminated record and the new active one share the email.
    PersonRow("E3-old", "cat@example.com", "Cat", "boss@example.com", "terminated"),
    PersonRow("E3", "Cat@Example.com", "Cat", "boss@example.com", "active"),
    PersonRow("E4", "svc-deploy@example.com", "Deploy", "boss@example.com", "terminated"),
    PersonRow("E5", "owner@example.com", "Owner", None, "active"),
    PersonRow("E6", "boss@example.com", "Boss", "boss@example.com", "active"),
]


def fields(mode: str, user: str, emails: list[str], external_id: str | None = None) -> tuple:
    c = classifier_for(CATALOG, CATALOG.app("scimapp"), mode, PEOPLE)
    f = c.fields(user, emails, external_id)
    return f["classification"], f["reviewer"], f["person_id"], f["trail_id"]


def test_precedence_and_reviewers() -> None:
    assert fields("manager", "ann@example.com", []) == (
        "active_employee",
        "boss@example.com",
        "E1",
        "E1",
    )
    assert fields("manager", "ben", ["BEN@example.com"]) == (
        "terminated_but_active",
        "boss@example.com",
        "E2",
        "E2",
    )
    # A service account glob wins over an HR record, even a terminated one.
    assert fields("manager", "svc-deploy@example.com", [])[:2] == (
        "service_account",
        "owner@example.com",
    )
    assert fields("manager", "ci-bot@example.com", [])[:2] == (
        "service_account",
        "owner@example.com",
    )
    # No HR match: an orphan, reviewed by the first owner, trail by lower-cased email.
    assert fields("manager", "Ghost@Example.com", []) == (
        "orphan",
        "owner@example.com",
        None,
        "ghost@example.com",
    )
    # The active record of a rehire wins.
    assert fields("manager", "cat@example.com", [])[:3] == (
        "active_employee",
        "boss@example.com",
        "E3",
    )
    # app_owner mode: everyone goes to the first owner.
    assert fields("app_owner", "ann@example.com", [])[1] == "owner@example.com"


def test_never_your_own_reviewer() -> None:
    # The first owner has an account and no manager: the second owner reviews it.
    assert fields("manager", "owner@example.com", [])[1] == "second@example.com"
    # The boss is their own manager in HR: falls back to the first owner.
    assert fields("manager", "boss@example.com", [])[1] == "owner@example.com"


def test_external_id_match_and_manual_owner_fallback() -> None:
    assert fields("manager", "someone", [], external_id="E1")[2] == "E1"
    manual = classifier_for(CATALOG, CATALOG.app("nowners"), "manager", PEOPLE)
    assert manual.fields("stranger", [])["reviewer"] == "helpdesk@example.com"
    # Only apps matched by externalId trust it.
    assert manual.fields("someone", [], "E1")["person_id"] is None


def test_account_csv_errors_name_line_and_column() -> None:
    text = "account,email,active\nalice,alice@example.com,true\n,bob@example.com,maybe\n"
    try:
        parse_accounts_csv(text)
    except CsvProblem as exc:
        assert [(p["line"], p["column"]) for p in exc.problems] == [
            (3, "account"),
            (3, "active"),
        ]
    else:
        raise AssertionError("a bad CSV must be refused")
    try:
        parse_accounts_csv("login,email\nx,y@example.com\n")
    except CsvProblem as exc:
        assert exc.problems[0]["line"] == 1 and exc.problems[0]["column"] == "login"
    else:
        raise AssertionError("an unknown column must be refused")
    parsed = parse_accounts_csv("\ufeffaccount\nsolo\n")
    assert parsed.rows[0]["account_id"] == "solo"
