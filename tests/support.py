"""Helpers shared by tests (import as `from tests.support import ...`)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

# The recorded real Salesforce bodies, in ../shared beside the project root.
SALESFORCE_FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "salesforce"


class FakeClock:
    """A wall clock that moves only when told to, for limits and timestamps in tests."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def recorded(name: str) -> Any:
    """A recorded real Salesforce response body; skips the test when ../shared is missing."""
    if not SALESFORCE_FIXTURES.is_dir():
        pytest.skip(f"recorded Salesforce bodies not found at {SALESFORCE_FIXTURES}")
    return json.loads((SALESFORCE_FIXTURES / f"{name}.json").read_text())
