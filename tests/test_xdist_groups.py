"""The timing-bound tests run on one worker, one at a time (`tests.support.REAL_PROCESSES`)."""

from __future__ import annotations

import pytest

from tests.support import REAL_PROCESSES


@REAL_PROCESSES
def test_grouped_tests_carry_their_group(request: pytest.FixtureRequest) -> None:
    # Under `--dist loadgroup` (pyproject's addopts) pytest-xdist keeps a group on one worker
    # by the "@group" its tests' node ids end with (tests/conftest.py sees that they do).
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("not run by pytest-xdist's --dist loadgroup (-n 0, or -p no:xdist)")
    assert request.node.nodeid.endswith("@real_processes")
