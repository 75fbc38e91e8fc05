"""The exception and run commands against a small sandbox, with a config pointed at it."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from leadsync.config import Config, load_config
from leadsync.sandbox import HubSpotSettings, Sandbox, SandboxSettings
from tests.support import set_up_sandbox_config

EXAMPLES = Path(__file__).resolve().parents[2] / "leadsync" / "examples"
MQL_SCORE = (
    "[lifecycle.stages.mql]\n"
    "# Marketing qualified: engaged enough, and a fit worth a salesperson's time.\n"
    'all = [\n  { field = "score", gte = 60 },'
)
OPEN_LIMITS = HubSpotSettings(ten_second_limit=100_000, searches_per_second=1_000)


@pytest.fixture
def sandbox_settings() -> SandboxSettings:
    return SandboxSettings(port=0, seed=19, leads=40, hubspot=OPEN_LIMITS)


@pytest.fixture
def config(sandbox: Sandbox, tmp_path: Path) -> Config:
    loaded: Config = set_up_sandbox_config(sandbox, tmp_path)
    return loaded


def with_definition(config: Config, text: str, folder: Path) -> Config:
    """The config, its lead definition replaced by `text` (a copy RevOps edit)."""
    assert config.path is not None
    definition = folder / "lead_definition.toml"
    definition.write_text(text)
    shipped = str(EXAMPLES / "lead_definition.toml")
    source = config.path.read_text()
    assert shipped in source
    config.path.write_text(source.replace(shipped, str(definition)))
    return load_config(config.path)


def with_mql_at_30(config: Config, folder: Path) -> Config:
    """The config, its MQL threshold lowered from 60 to 30: the edit the what-if tests try."""
    shipped = (EXAMPLES / "lead_definition.toml").read_text()
    assert MQL_SCORE in shipped
    return with_definition(
        config, shipped.replace(MQL_SCORE, MQL_SCORE.replace("gte = 60", "gte = 30")), folder
    )


# Forking a process that runs other threads (the sandbox's, pytest-xdist's) warns on Python
# 3.12 and later; the command line that forks a what-if's copies runs none.
FORK_WARNING = "ignore:This process .* is multi-threaded:DeprecationWarning"


def on_a_terminal(config: Config, *args: str, answer: str) -> subprocess.CompletedProcess[str]:
    """`leadsync ARGS --config ...` with a terminal on its standard input, where a person
    types `answer` (and Enter) to its question."""
    command = [sys.executable, "-m", "leadsync.cli", *args, "--config", str(config.path)]
    leader, follower = pty.openpty()
    try:
        os.write(leader, f"{answer}\n".encode())
        return subprocess.run(
            command, stdin=follower, capture_output=True, text=True, timeout=120, check=False
        )
    finally:
        os.close(follower)
        os.close(leader)
