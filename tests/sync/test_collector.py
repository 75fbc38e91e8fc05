"""`old_objects_left_alone`: the objects made before a long step frozen out of the garbage
collector's walks, and the youngest collected less often, until the step ends."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from leadsync.sandbox import Sandbox
from leadsync.sync import collector
from leadsync.sync.collector import old_objects_left_alone
from tests.support import set_up_sandbox_config
from tests.sync.test_engine import cycle


@pytest.fixture(autouse=True)
def collector_as_python_leaves_it() -> Iterator[None]:
    threshold = gc.get_threshold()
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_the_objects_made_before_are_frozen_and_the_youngest_collected_less_often() -> None:
    before = object()
    with old_objects_left_alone():
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (collector._YOUNGEST, 10, 10)
        made = [object()]  # a container the collector tracks, made inside: not frozen
        assert gc.is_tracked(made)
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == (700, 10, 10)
    del before


def test_an_error_in_the_step_leaves_the_collector_as_it_was() -> None:
    with pytest.raises(RuntimeError), old_objects_left_alone():
        raise RuntimeError("the step failed")
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == (700, 10, 10)


def _as_frozen_as(frozen: int) -> bool:
    """The objects frozen at `frozen` are still frozen, none added: another thread of the
    process (pytest-xdist's) may free a few frozen objects meanwhile, never freeze more,
    and an unfreeze would leave none."""
    return frozen - 1_000 < gc.get_freeze_count() <= frozen


def test_a_step_inside_another_or_a_process_that_froze_itself_changes_nothing() -> None:
    with old_objects_left_alone():
        frozen = gc.get_freeze_count()
        assert frozen > 10_000  # a test process holds far more objects than the margin
        with old_objects_left_alone():
            assert _as_frozen_as(frozen)
        # The inner step's end neither unfroze the outer step's objects nor reset its pace.
        assert _as_frozen_as(frozen)
        assert gc.get_threshold()[0] == collector._YOUNGEST
    gc.freeze()
    frozen = gc.get_freeze_count()
    with old_objects_left_alone():
        assert gc.get_threshold() == (700, 10, 10)
    assert _as_frozen_as(frozen)


def test_a_higher_threshold_a_process_set_is_kept() -> None:
    gc.set_threshold(50_000, 20, 30)
    with old_objects_left_alone():
        assert gc.get_threshold() == (50_000, 20, 30)
    assert gc.get_threshold() == (50_000, 20, 30)


class _Watched:
    """A connector that notes, at each page it pulls, how the collector stands."""

    def __init__(self, inner: Any, seen: list[tuple[int, int]]) -> None:
        self._inner = inner
        self._seen = seen

    def pull(self, position: Any, **options: Any) -> Any:
        for page in self._inner.pull(position, **options):
            self._seen.append((gc.get_freeze_count(), gc.get_threshold()[0]))
            yield page

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_a_sync_runs_with_the_old_objects_left_alone(sandbox: Sandbox, tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    config = set_up_sandbox_config(sandbox, tmp_path)
    summary = cycle(config, wrap=lambda crm, connector: _Watched(connector, seen))
    assert sum(counts.written for counts in summary.crms.values()) > 0
    assert seen
    assert all(frozen > 0 and youngest == collector._YOUNGEST for frozen, youngest in seen)
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == (700, 10, 10)
