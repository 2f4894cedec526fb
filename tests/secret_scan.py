"""After the whole suite: no file it wrote (logs, databases, exports, Temporal's files) under
its temp dir holds a secret the suite configured. A pytest plugin, loaded by conftest."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

# Files larger than this are not read whole (none of the suite's are near it).
MAX_SCAN_BYTES = 256 * 1024 * 1024


def files_holding(root: Path, secrets: list[str]) -> dict[str, list[Path]]:
    """Which secret is in which file under root (empty when none is anywhere)."""
    found: dict[str, list[Path]] = {}
    for path in root.rglob("*"):
        if not path.is_file() or path.is_symlink() or path.stat().st_size > MAX_SCAN_BYTES:
            continue
        data = path.read_bytes()
        for secret in secrets:
            if secret.encode() in data:
                found.setdefault(secret[:6] + "...", []).append(path)
    return found


@pytest.fixture(scope="session", autouse=True)
def no_secret_in_the_suites_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    yield
    from tests.conftest import SCIM_TOKEN, WEBHOOK_SECRET
    from tests.idp_support import OKTA_TOKEN

    found = files_holding(tmp_path_factory.getbasetemp(), [SCIM_TOKEN, WEBHOOK_SECRET, OKTA_TOKEN])
    assert found == {}, f"configured secrets written to files: {found}"
