"""CSV files people upload: the HR directory, a manual app's accounts. All or nothing: every
problem is collected with its file line (header = line 1) and column, and none is imported."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from services.errors import Invalid

ACCOUNT_COLUMNS = ("account", "email", "display_name", "last_sign_in", "account_id", "active")
_TRUE = {"true", "yes", "1", "y", "active"}
_FALSE = {"false", "no", "0", "n", "inactive", "disabled"}


class CsvProblem(Invalid):
    """A CSV refused as a whole: ``problems`` lists ``{line, column, message}`` (header = line
    1); the message names the first, the details carry up to 50."""

    def __init__(self, problems: list[dict[str, Any]]) -> None:
        first = problems[0]
        where = f"line {first['line']}" + (f", column {first['column']}" if first["column"] else "")
        super().__init__("invalid_csv", f"{where}: {first['message']}", problems[:50])
        self.problems = problems


def decode_csv(body: bytes) -> str:
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = body[: exc.start].count(b"\n") + 1
        raise CsvProblem([{"line": line, "column": None, "message": "not UTF-8 text"}]) from None


def parse_instant(value: str) -> datetime:
    """An ISO-8601 date or date-time; naive values are UTC."""
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        parsed = datetime.combine(date.fromisoformat(text), datetime.min.time())
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def read_csv(
    text: str, allowed: Sequence[str], required: Sequence[str]
) -> Iterator[tuple[int, dict[str, str]]]:
    """(line, row) pairs; header problems raise CsvProblem naming line 1 and the column."""
    reader = csv.DictReader(io.StringIO(text.removeprefix("\ufeff")))
    header = [h.strip() for h in reader.fieldnames or []]
    if not header:
        raise CsvProblem([{"line": 1, "column": None, "message": "empty file: no header row"}])
    problems = [
        {"line": 1, "column": h, "message": f"unknown column; expected {', '.join(allowed)}"}
        for h in header
        if h not in allowed
    ] + [
        {"line": 1, "column": c, "message": "required column is missing"}
        for c in required
        if c not in header
    ]
    if problems:
        raise CsvProblem(problems)
    reader.fieldnames = header
    try:
        for row in reader:
            if None in row:
                raise CsvProblem(
                    [
                        {
                            "line": reader.line_num,
                            "column": None,
                            "message": f"more fields than the header's {len(header)}",
                        }
                    ]
                )
            yield reader.line_num, {k: (v or "").strip() for k, v in row.items()}
    except csv.Error as exc:
        raise CsvProblem(
            [{"line": reader.line_num, "column": None, "message": f"not valid CSV: {exc}"}]
        ) from None


@dataclass
class ParsedAccounts:
    rows: list[dict[str, Any]]
    skipped_inactive: int


def parse_accounts_csv(text: str) -> ParsedAccounts:
    """A manual app's export: ``account`` (required), ``email``, ``display_name``,
    ``last_sign_in`` (ISO-8601), ``account_id`` (defaults to account), ``active``."""
    rows: list[dict[str, Any]] = []
    problems: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    skipped = 0
    for line, raw in read_csv(text, ACCOUNT_COLUMNS, ("account",)):

        def bad(column: str, message: str, line: int = line) -> None:
            problems.append({"line": line, "column": column, "message": message})

        account = raw.get("account", "")
        if not account:
            bad("account", "required (the account's login or userName)")
        email = raw.get("email", "")
        if email and ("@" not in email or any(c.isspace() for c in email)):
            bad("email", f"not an email address: {email!r}")
        last = raw.get("last_sign_in", "")
        last_iso = None
        if last:
            try:
                last_iso = parse_instant(last).isoformat()
            except ValueError:
                bad("last_sign_in", f"not an ISO-8601 date or date-time: {last!r}")
        active_text = raw.get("active", "").lower()
        if active_text and active_text not in _TRUE | _FALSE:
            bad("active", f"expected true or false, got {raw.get('active')!r}")
        account_id = raw.get("account_id", "") or account
        if account_id and account_id in seen:
            column = "account_id" if raw.get("account_id") else "account"
            bad(column, f"duplicate of line {seen[account_id]}")
        seen.setdefault(account_id, line)
        if active_text in _FALSE:
            skipped += 1
            continue
        rows.append(
            {
                "account": account,
                "account_id": account_id,
                "account_email": email or None,
                "display_name": raw.get("display_name") or None,
                "last_sign_in": last_iso,
            }
        )
    if problems:
        raise CsvProblem(problems)
    return ParsedAccounts(rows=rows, skipped_inactive=skipped)
