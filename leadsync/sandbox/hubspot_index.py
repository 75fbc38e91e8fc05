"""HubSpot's search index: what `POST .../search` sees, which lags behind the records.

Real HubSpot serves reads (get, list, batch read) from its records and searches from an index
that catches up with each write a few seconds later: "The Search API is eventually
consistent" (blog.sequin.io, "How we built our sync on HubSpot's API"); "changes made by other
API calls will take several seconds to propagate to the search indexing" (Locoia's HubSpot
connector docs). Until it has, a search serves the record as it was before the write, old
values and old `lastmodifieddate` included, filters and sorts judged on those old values (a
HubSpot community thread: an `LT` filter on a timestamp returned records whose stored value was
already newer). A record created since is missing altogether.

So the index keeps, for each contact, the version it has caught up with; each write is queued
to reach it after its own delay, drawn between half the lag and the whole of it, so that edits
of different contacts become searchable out of edit order. One contact's versions reach the
index in order (a newer one is never overtaken by an older one). The draw is seeded: the same
writes at the same moments give the same index.
"""

from __future__ import annotations

import bisect
import heapq
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Generic, Protocol, Self, TypeVar


class Indexable(Protocol):
    """What the index needs of a contact: its id, whether it is archived, and a copy."""

    @property
    def id(self) -> int: ...

    @property
    def archived_ms(self) -> int | None: ...

    def frozen(self) -> Self:
        """A copy that later writes to the original leave alone."""
        ...


T = TypeVar("T", bound=Indexable)


@dataclass(order=True)
class _Pending(Generic[T]):
    due_ms: int
    sequence: int  # unique, so that versions themselves are never compared
    version: T  # the contact as written, frozen


class SearchIndex(Generic[T]):
    """The searchable versions of contacts, behind the live ones by up to `lag_ms`."""

    def __init__(self, lag_ms: int, *, seed: int = 0) -> None:
        self.lag_ms = lag_ms
        self._random = random.Random(seed)
        self._indexed: dict[int, T] = {}
        self._searchable: list[int] = []  # sorted ids of indexed versions not archived
        self._pending: list[_Pending[T]] = []
        self._last_due: dict[int, int] = {}  # contact id -> due time of its latest queued write
        self._sequence = 0
        self.version = 0  # moves whenever what a search can see changes

    def reset(self, contacts: Iterable[T]) -> None:
        """Index `contacts` as they are now, nothing pending (a freshly seeded portal)."""
        self._indexed = {contact.id: contact for contact in contacts}
        self._searchable = sorted(i for i, c in self._indexed.items() if c.archived_ms is None)
        self._pending = []
        self._last_due = {}
        self.version += 1

    def before_write(self, contact: T) -> None:
        """Call before changing a live contact: an index that shares the live object (no
        write pending) keeps a frozen copy of it, the version searches go on serving."""
        if self.lag_ms and self._indexed.get(contact.id) is contact:
            self._indexed[contact.id] = contact.frozen()

    def written(self, contact: T, now_ms: int) -> None:
        """A write of `contact` (already applied to it) will reach the index later."""
        if not self.lag_ms:
            self._show(contact)
            return
        delay = self.lag_ms // 2 + int(self._random.random() * (self.lag_ms - self.lag_ms // 2))
        due = max(now_ms + delay, self._last_due.get(contact.id, 0))
        self._last_due[contact.id] = due
        self._sequence += 1
        heapq.heappush(self._pending, _Pending(due, self._sequence, contact.frozen()))

    def catch_up(self, now_ms: int) -> None:
        """Bring in every queued write whose delay has passed by `now_ms`."""
        while self._pending and self._pending[0].due_ms <= now_ms:
            entry = heapq.heappop(self._pending)
            version = entry.version
            self._show(version)
            if self._last_due.get(version.id) == entry.due_ms:
                del self._last_due[version.id]

    def settle(self) -> None:
        """Bring in every queued write now, as if the lag had passed."""
        if self._pending:
            self.catch_up(max(entry.due_ms for entry in self._pending))

    @property
    def pending(self) -> int:
        """How many writes have not reached the index yet."""
        return len(self._pending)

    def searchable(self) -> Iterator[T]:
        """The indexed version of every contact a search can find, in id order."""
        indexed = self._indexed
        return (indexed[contact_id] for contact_id in self._searchable)

    def _show(self, version: T) -> None:
        was = self._indexed.get(version.id)
        self._indexed[version.id] = version
        position = bisect.bisect_left(self._searchable, version.id)
        listed = position < len(self._searchable) and self._searchable[position] == version.id
        if version.archived_ms is None and not listed:
            self._searchable.insert(position, version.id)
        elif version.archived_ms is not None and listed:
            del self._searchable[position]
        if was is not version:
            self.version += 1
