"""Every pytest-xdist worker collects the same tests, or the run stops before any runs
("Different tests were collected between gw0 and gw1"): no test id may be drawn at random."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


# Collecting the suite twice takes ~30 s of two cores.
@pytest.mark.slow
def test_two_processes_collect_the_same_test_ids() -> None:
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-n",
        "0",
        "--collect-only",
        "-q",
        str(ROOT / "tests"),
    ]
    # At once, as the workers do: the two take one process's time.
    both = [
        subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=300)[0].decode() for process in both]
    assert [process.returncode for process in both] == [0, 0], outputs[0][-2000:]
    first, second = ([line for line in output.splitlines() if "::" in line] for output in outputs)
    assert len(first) > 1_000
    assert sorted(set(first) ^ set(second)) == []
