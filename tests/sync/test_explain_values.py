"""`explain` shows values as a person writes them, and every time with its zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from leadsync.sync.explain import shown_value


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "blank"),
        ("VP Sales", '"VP Sales"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("Zürich", '"Zürich"'),
        (42, "42"),
        (42.0, "42"),
        (1.5, "1.5"),
        (True, "true"),
        (datetime(2026, 12, 3, 9, 30, tzinfo=UTC), "2026-12-03 09:30:00 UTC"),
        (
            datetime(2026, 12, 3, 10, 30, tzinfo=timezone(timedelta(hours=1))),
            "2026-12-03 09:30:00 UTC",
        ),
        (date(2026, 12, 3), "2026-12-03"),
    ],
)
def test_a_value_is_shown_as_a_person_writes_it(value: object, shown: str) -> None:
    assert shown_value(value) == shown
    assert "datetime." not in shown_value(value)
