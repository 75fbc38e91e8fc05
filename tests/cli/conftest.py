"""The exception and run commands against a small sandbox, with a config pointed at it."""

from __future__ import annotations

from pathlib import Path

import pytest

from leadsync.config import Config
from leadsync.sandbox import HubSpotSettings, Sandbox, SandboxSettings
from tests.support import set_up_sandbox_config

OPEN_LIMITS = HubSpotSettings(ten_second_limit=100_000, searches_per_second=1_000)


@pytest.fixture
def sandbox_settings() -> SandboxSettings:
    return SandboxSettings(port=0, seed=19, leads=40, hubspot=OPEN_LIMITS)


@pytest.fixture
def config(sandbox: Sandbox, tmp_path: Path) -> Config:
    loaded: Config = set_up_sandbox_config(sandbox, tmp_path)
    return loaded
