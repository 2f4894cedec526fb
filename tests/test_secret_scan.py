"""The end-of-suite secret scan finds a secret wherever it was written."""

from __future__ import annotations

from pathlib import Path

from tests.secret_scan import files_holding


def test_the_scan_finds_a_secret_in_any_file(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "api.log").write_text('{"event": "ok"}\n')
    (tmp_path / "offboard.db-wal").write_bytes(b"\x00\x01token=s3cr3t-value\x00")

    found = files_holding(tmp_path, ["s3cr3t-value", "never-written"])

    assert found == {"s3cr3t...": [tmp_path / "offboard.db-wal"]}
