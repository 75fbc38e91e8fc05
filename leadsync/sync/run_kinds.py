"""The kinds of run the store records, apart from the store: the command line offers them
as choices, and `leadsync --help` must not import the store to list them."""

from __future__ import annotations

RUN_KINDS = frozenset({"sync", "plan", "backfill", "sweep", "revert", "retry"})
