"""``/login?next=<path>`` returns only to same-site relative paths (no open redirect)."""

from __future__ import annotations

import pytest

from api.web.session import safe_next


@pytest.mark.parametrize(
    "target", ["/", "/campaigns/campaign-1/review", "/reviews?done=1", "/runs%3Fstatus%3Dfailed"]
)
def test_same_site_paths_are_kept(target: str) -> None:
    assert safe_next(target) == target


@pytest.mark.parametrize(
    "target",
    [
        "",
        "//evil.test/",
        "/\\evil.test",
        "/\t/evil.test",
        "/\n/evil.test",
        "https://evil.test/campaigns/1/review",
        "javascript:alert(1)",
        "campaigns/1/review",
        "/campaigns/1/review space",
    ],
)
def test_anything_else_goes_home(target: str) -> None:
    assert safe_next(target) == "/"
