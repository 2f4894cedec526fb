"""Recommendations beside each review item, from the classification and the last sign-in."""

from __future__ import annotations

from datetime import UTC, datetime

from domain.review import recommendations

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def test_recommendations_in_words() -> None:
    assert recommendations("terminated_but_active", None, NOW) == ["terminated in HR"]
    assert recommendations("orphan", "2026-06-04T08:00:00Z", NOW) == [
        "no HR match",
        "no sign-in for 179 days",
    ]
    assert recommendations("service_account", "2026-11-30", NOW) == ["service account pattern"]
    assert recommendations("active_employee", "2026-10-01", NOW) == ["no sign-in for 61 days"]
    # Recent, unreadable or missing sign-ins say nothing.
    assert recommendations("active_employee", "2026-11-20T00:00:00+00:00", NOW) == []
    assert recommendations("active_employee", "last tuesday", NOW) == []
    assert recommendations(None, None, NOW) == []
