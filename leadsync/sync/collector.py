"""The cyclic garbage collector kept off the objects a long step finds made.

A first sync or a what-if makes millions of short-lived objects, and every full collection
they set off walks every object in the process again: the modules, the mapping and the
definition, the store's engine, the connectors' clients. Frozen (`gc.freeze`), those are left
out of the collector's walks until the step ends; what the step itself makes is collected
as before.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["old_objects_left_alone"]

# Allocations between two collections of the youngest objects (Python's default: 700). A
# sync's objects are mostly freed by their counts, not found in cycles: collecting less
# often finds the same garbage, a little later, for a fraction of the walks.
_YOUNGEST = 10_000


@contextmanager
def old_objects_left_alone() -> Iterator[None]:
    """The objects made before the step kept out of the collector's walks until it ends. A
    process that froze objects itself (or a step around this one) keeps them frozen: nothing
    is done then."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    threshold = gc.get_threshold()
    gc.set_threshold(max(threshold[0], _YOUNGEST), *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()
